//! RPMsg over IVSHMEM, host side (Zephyr). Thin: the application is rust-lib/app
//! (`rpmsg-app`, shared with the native peer), its Zephyr adapter rust-lib/zephyr-glue
//! (`app::host`): the host starts its receive thread and returns, so the shell is usable at
//! once.
#![no_std]

zephyr_glue::image_entry_points!(host);
