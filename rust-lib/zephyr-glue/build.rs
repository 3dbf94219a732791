//! Zephyr's boolean Kconfig options as `cfg`s (as zephyr-lang-rust's samples do): the
//! shell commands are compiled only with CONFIG_RPMSG_IVSHMEM_SHELL, as the C shim
//! registers them only then, and the host's only without CONFIG_RPMSG_IVSHMEM_REMOTE.

fn main() {
    zephyr_build::export_bool_kconfig();
    println!("cargo::rustc-check-cfg=cfg(CONFIG_RPMSG_IVSHMEM_SHELL)");
    println!("cargo::rustc-check-cfg=cfg(CONFIG_RPMSG_IVSHMEM_REMOTE)");
}
