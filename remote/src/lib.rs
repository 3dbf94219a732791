//! RPMsg over IVSHMEM, remote side (Zephyr). Thin: the logic lives in rust-lib.
#![no_std]

use zephyr_glue::ivshmem::Ivshmem;
use zephyr_glue::{logger, placeholder, thread};

#[no_mangle]
extern "C" fn rust_main() {
    logger::init(log::LevelFilter::Info);
    thread::start_rx_thread(rx_main);
}

fn rx_main() {
    let shm = match Ivshmem::open() {
        Ok(s) => s,
        Err(e) => {
            log::error!("ivshmem: {:?}", e);
            return;
        }
    };
    log::info!(
        "ivshmem: own id {}, shared memory {:p}, {:#x} bytes, {} vectors",
        shm.id(),
        shm.base(),
        shm.size(),
        shm.vectors()
    );
    // PLACEHOLDER until rpmsg-engine is wired in.
    placeholder::remote_pong_loop(&shm);
}
