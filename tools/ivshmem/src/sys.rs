//! Thin, safe wrappers over the Linux system calls the protocol needs.
//!
//! Everything `unsafe` about file descriptors and `sendmsg`/`recvmsg` control
//! messages lives here, so the rest of the crate deals in `OwnedFd`s.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::time::{Duration, Instant};

/// Most file descriptors a single `recvmsg` accepts; extra ones are discarded
/// by the kernel and reported through `MSG_CTRUNC`.
const MAX_RECV_FDS: usize = 8;

/// Control buffer, aligned for `cmsghdr`, big enough for `MAX_RECV_FDS` fds.
#[repr(C)]
union CmsgBuf {
    _align: libc::cmsghdr,
    buf: [u8; 128],
}

/// Turns a `-1` return value into the current `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for `ssize_t` results.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Wraps a freshly returned raw descriptor.
///
/// # Safety
/// `fd` must be a valid descriptor that nothing else owns.
unsafe fn owned(fd: RawFd) -> OwnedFd {
    OwnedFd::from_raw_fd(fd)
}

/// Converts a path into a `CString`, refusing interior NUL bytes.
pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Builds a `sockaddr_un` for `path`.
pub(crate) fn sockaddr_un(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path must be 1..{} bytes long, {} is {} bytes",
                addr.sun_path.len() - 1,
                path.display(),
                bytes.len()
            ),
        ));
    }
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path contains a NUL byte",
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Creates a non-blocking, close-on-exec `AF_UNIX` stream socket.
pub(crate) fn unix_stream_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked and owned below.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { owned(fd) })
}

/// `connect()` on a Unix socket. Returns the raw `io::Error` so callers can
/// tell `ECONNREFUSED`/`EAGAIN`/`ENOENT` apart.
pub(crate) fn connect_unix(sock: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let (addr, len) = sockaddr_un(path)?;
    loop {
        // SAFETY: addr is a valid sockaddr_un of length len.
        let ret = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        };
        match cvt(ret) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `bind()` on a Unix socket.
pub(crate) fn bind_unix(sock: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let (addr, len) = sockaddr_un(path)?;
    // SAFETY: addr is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    })?;
    Ok(())
}

/// `listen()`.
pub(crate) fn listen(sock: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    cvt(unsafe { libc::listen(sock.as_raw_fd(), backlog) })?;
    Ok(())
}

/// `accept4()` with `SOCK_NONBLOCK | SOCK_CLOEXEC`; `Ok(None)` when nobody waits.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    loop {
        // SAFETY: null address pointers are allowed by accept4.
        let ret = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                ptr::null_mut(),
                ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        match cvt(ret) {
            // SAFETY: accept4 returned a new descriptor that we now own.
            Ok(fd) => return Ok(Some(unsafe { owned(fd) })),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            // The connection was reset before we accepted it: try the next one.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: counter mode, like QEMU's
/// `event_notifier_init()`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked and owned below.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { owned(fd) })
}

/// Adds `count` to an eventfd counter (8 bytes, native endian).
pub(crate) fn eventfd_write(fd: BorrowedFd<'_>, count: u64) -> io::Result<()> {
    let buf = count.to_ne_bytes();
    loop {
        // SAFETY: buf is 8 valid bytes.
        let ret = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match cvt_size(ret) {
            Ok(8) => return Ok(()),
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short write of {n} bytes to an eventfd"),
                ))
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads and clears an eventfd counter without blocking; 0 when it was 0.
/// Works whether or not the fd has `O_NONBLOCK` (QEMU toggles that flag on
/// the shared file description): it only reads after `poll()` says readable.
pub(crate) fn eventfd_read(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    loop {
        let mut pfd = [pollfd(fd.as_raw_fd(), libc::POLLIN)];
        if poll(&mut pfd, Some(Duration::ZERO))? == 0 || pfd[0].revents & libc::POLLIN == 0 {
            return Ok(0);
        }
        // SAFETY: buf has room for 8 bytes.
        let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(ret) {
            Ok(8) => return Ok(u64::from_ne_bytes(buf)),
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("short read of {n} bytes from an eventfd"),
                ))
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

/// Sets `O_NONBLOCK` on a descriptor (on its open file description).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a valid descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// `fstat()`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data and fstat fills it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `lstat()`; `Ok(None)` if the path does not exist.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<libc::stat>> {
    let c = cstring(path)?;
    // SAFETY: stat is plain old data and lstat fills it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: c is NUL-terminated and st a valid out pointer.
    match cvt(unsafe { libc::lstat(c.as_ptr(), &mut st) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends one protocol frame (the bytes of an int64, or what is left of them)
/// with at most one descriptor, never blocking and never raising `SIGPIPE`.
/// Returns the number of bytes the kernel took.
pub(crate) fn send_frame(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let mut ctl = CmsgBuf { buf: [0; 128] };
    if let Some(fd) = fd {
        // SAFETY: CMSG_* are pure arithmetic on the buffer we own; the buffer
        // (128 bytes) is larger than CMSG_SPACE(4) (24 bytes).
        unsafe {
            msg.msg_control = ctl.buf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as _;
            ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: msg points at iov/ctl which outlive the call.
        let ret = unsafe {
            libc::sendmsg(
                sock.as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        match cvt_size(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// What one `recvmsg` returned.
pub(crate) struct Received {
    /// Bytes read; 0 means end of stream.
    pub n: usize,
    /// Descriptors that came with them (already owned, close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// The kernel dropped descriptors (`MSG_CTRUNC`), e.g. at RLIMIT_NOFILE.
    pub truncated: bool,
}

/// Non-blocking `recvmsg` into `buf`, collecting `SCM_RIGHTS` descriptors.
pub(crate) fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut ctl = CmsgBuf { buf: [0; 128] };
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: union field access of a byte array.
    msg.msg_control = unsafe { ctl.buf.as_mut_ptr().cast() };
    // SAFETY: pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE((MAX_RECV_FDS * mem::size_of::<libc::c_int>()) as u32) };
    debug_assert!(space as usize <= 128);
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at iov/ctl which outlive the call.
        let ret = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        match cvt_size(ret) {
            Ok(n) => break n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR and
    // CMSG_NXTHDR only walk inside that buffer, and each SCM_RIGHTS payload
    // holds (cmsg_len - CMSG_LEN(0)) / sizeof(int) descriptors now owned by us.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..payload / mem::size_of::<libc::c_int>() {
                    let fd = ptr::read_unaligned(data.add(i));
                    if fd >= 0 {
                        fds.push(owned(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        n,
        fds,
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// Milliseconds for `poll()` from an optional timeout (rounded up, so a
/// non-zero timeout never turns into a busy loop).
pub(crate) fn poll_timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// `poll()`; `EINTR` is reported as zero ready descriptors.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    // SAFETY: fds is a valid slice of pollfd.
    let ret = unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            poll_timeout_ms(timeout),
        )
    };
    match cvt(ret) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Time left until `deadline` (zero when past).
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A `pollfd` for `fd` with `events`.
pub(crate) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
