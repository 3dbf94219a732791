//! RPMsg over IVSHMEM, host side (Zephyr). Thin: the logic lives in rust-lib.
#![no_std]

use zephyr_glue::ivshmem::Ivshmem;
use zephyr_glue::shell::Shell;
use zephyr_glue::{logger, placeholder, shell, thread};

#[no_mangle]
extern "C" fn rust_main() {
    logger::init(log::LevelFilter::Info);
    shell::set_send_handler(send);
    // Do not block boot: the link comes up in the receive thread; the shell is
    // usable at once.
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
    match placeholder::host_ping(&shm, 120_000) {
        Some(peer) => log::info!("doorbell exchange with remote id {} done", peer),
        None => log::warn!("no remote answered the doorbell"),
    }
}

fn send(sh: &Shell, _text: &[u8], _count: &[u8]) -> i32 {
    // PLACEHOLDER until rpmsg-engine is wired in.
    sh.write_bytes(b"RPMsg over IVSHMEM backend is not ready yet!\n");
    -11
}
