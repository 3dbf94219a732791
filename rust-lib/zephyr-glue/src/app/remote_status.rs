//! The remote's `rpmsg_ivshmem status` shell command (registered in c/rpmsg_glue.c with
//! CONFIG_RPMSG_IVSHMEM_SHELL and CONFIG_RPMSG_IVSHMEM_REMOTE): `rpmsg-app`'s remote
//! status text, from the copy the receive thread publishes.
//!
//! The receive thread owns the node and may sleep on the doorbell for as long as nothing
//! happens, so the shell neither touches the node nor waits for that thread: the thread
//! copies what `status` shows ([`RemoteSnapshot`]) into [`LAST`] after every pass of its
//! loop, and every change of the link, the session or a counter happens in such a pass;
//! the shell prints the last copy. Each side holds the critical section only for a copy.

use core::cell::Cell;
#[cfg(all(CONFIG_RPMSG_IVSHMEM_SHELL, CONFIG_RPMSG_IVSHMEM_REMOTE))]
use core::ffi::{c_char, c_int, c_void};
use critical_section::Mutex;
use rpmsg_app::remote::RemoteApp;
#[cfg(all(CONFIG_RPMSG_IVSHMEM_SHELL, CONFIG_RPMSG_IVSHMEM_REMOTE))]
use rpmsg_app::status;
use rpmsg_app::status::RemoteSnapshot;
use rpmsg_engine::Doorbell;

/// The last status the receive thread published; `None` before its node exists.
static LAST: Mutex<Cell<Option<RemoteSnapshot>>> = Mutex::new(Cell::new(None));

/// Publishes the status of `app` for the shell (the receive thread, after each pass).
pub(super) fn publish<D: Doorbell>(app: &RemoteApp<'_, D>) {
    let now = RemoteSnapshot::of(app);
    critical_section::with(|cs| LAST.borrow(cs).set(Some(now)));
}

/// `rpmsg_ivshmem status` on the remote: ids, link, session and counters, one
/// `key: value` a line.
#[cfg(all(CONFIG_RPMSG_IVSHMEM_SHELL, CONFIG_RPMSG_IVSHMEM_REMOTE))]
#[no_mangle]
extern "C" fn rpmsg_glue_shell_remote_status(
    sh: *const c_void,
    _argc: usize,
    _argv: *const *const c_char,
) -> c_int {
    const EIO: c_int = -5;
    let sh = crate::shell::Shell::from_raw(sh);
    // The receive thread's console type: the text functions exist once in the image.
    let mut line = super::Line::new();
    let mut out = super::Console {
        line: &mut line,
        shell: Some(&sh),
    };
    let last = critical_section::with(|cs| LAST.borrow(cs).get());
    let result = match last {
        Some(last) => {
            status::write_remote(&mut out, &last);
            0
        }
        None => {
            rpmsg_app::text::line(&mut out, rpmsg_app::text::NOT_READY);
            EIO
        }
    };
    rpmsg_app::Console::end(&mut out);
    result
}
