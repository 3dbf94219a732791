//! Declarations of `c/rpmsg_glue.c` (keep in sync with it).

use core::ffi::{c_char, c_int, c_void};

extern "C" {
    pub fn rpmsg_glue_ivshmem_is_ready() -> bool;
    pub fn rpmsg_glue_ivshmem_get_mem(addr: *mut usize) -> usize;
    pub fn rpmsg_glue_ivshmem_get_id() -> u32;
    pub fn rpmsg_glue_ivshmem_get_vectors() -> u16;
    pub fn rpmsg_glue_ivshmem_int_peer(peer_id: u32, vector: u16) -> c_int;
    pub fn rpmsg_glue_ivshmem_register_handler(vector: u16) -> c_int;
    pub fn rpmsg_glue_doorbell_wait(timeout_ms: i32) -> c_int;
    pub fn rpmsg_glue_doorbell_raise(mask: u32);
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    pub fn rpmsg_glue_doorbell_own(vector: u16) -> c_int;
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    pub fn rpmsg_glue_doorbell_own_wait(timeout_ms: i32) -> c_int;

    pub fn rpmsg_glue_cycles() -> u64;
    pub fn rpmsg_glue_cycles_per_sec() -> u32;
    pub fn rpmsg_glue_spin_us() -> u32;
    pub fn rpmsg_glue_peer_id_config() -> i32;
    pub fn rpmsg_glue_event_raise();
    pub fn rpmsg_glue_event_wait(timeout_ms: i32) -> c_int;

    pub fn rpmsg_glue_console_write(buf: *const c_char, len: usize);
    pub fn rpmsg_glue_shell_write(sh: *const c_void, buf: *const c_char, len: usize);
    pub fn rpmsg_glue_log(level: u32, msg: *const c_char);
    pub fn rpmsg_glue_log_flush();

    pub fn rpmsg_glue_rx_thread_start();
}
