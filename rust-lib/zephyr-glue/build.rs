//! Zephyr's boolean Kconfig options as `cfg`s (as zephyr-lang-rust's samples do): the
//! shell commands are compiled only with CONFIG_RPMSG_IVSHMEM_SHELL, as the C shim
//! registers them only then, and the host's only without CONFIG_RPMSG_IVSHMEM_REMOTE.

fn main() {
    zephyr_build::export_bool_kconfig();
    for option in [
        "CONFIG_RPMSG_IVSHMEM_SHELL",
        "CONFIG_RPMSG_IVSHMEM_REMOTE",
        "CONFIG_RPMSG_IVSHMEM_BENCH",
        "CONFIG_LOG",
        "CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_OFF",
        "CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_ERR",
        "CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_WRN",
        "CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_INF",
        "CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_DBG",
        "CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_DEFAULT",
    ] {
        println!("cargo::rustc-check-cfg=cfg({option})");
    }
}
