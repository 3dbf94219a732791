//! Zephyr's boolean Kconfig options as `cfg`s (as zephyr-lang-rust's samples do): the
//! shell commands are compiled only with CONFIG_RPMSG_IVSHMEM_SHELL, as the C shim
//! registers them only then, and the host's only without CONFIG_RPMSG_IVSHMEM_REMOTE.

fn main() {
    zephyr_build::export_bool_kconfig();
    // zephyr-build asks for a rerun on a changed .config with a misspelled line
    // ("cargo-rerun-if-changed=", one colon missing), which Cargo ignores: a Kconfig
    // change in an existing build directory (bench off, another log level) would keep
    // the old cfgs. Ask for it here.
    if let Ok(dotconfig) = std::env::var("DOTCONFIG") {
        println!("cargo:rerun-if-changed={dotconfig}");
    }
    println!("cargo:rerun-if-changed=build.rs");
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
