//! RPMsg over IVSHMEM, remote side (Zephyr). Thin: the application is rust-lib/app
//! (`rpmsg-app`, shared with the native peer), its Zephyr adapter rust-lib/zephyr-glue
//! (`app::remote`): the remote starts its receive thread, which attaches, announces "k" (and
//! "bench") and echoes.
#![no_std]

zephyr_glue::image_entry_points!(remote);
