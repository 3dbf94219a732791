//! The Linux system calls the protocol needs, through `rustix`'s safe
//! wrappers: Unix stream sockets with `SCM_RIGHTS`, eventfds and `poll`.
//! The rest of the crate deals in `OwnedFd`s and `io::Result`s.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Most file descriptors a single `recvmsg` accepts; extra ones are discarded
/// by the kernel and reported through `MSG_CTRUNC`.
const MAX_RECV_FDS: usize = 8;

/// A `sockaddr_un` for `path`, refusing paths that do not fit.
fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    const MAX: usize = 107; // sizeof(sun_path) - 1 for the NUL
    let len = path.as_os_str().len();
    if len == 0 || len > MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path must be 1..{MAX} bytes long, {} is {len} bytes",
                path.display()
            ),
        ));
    }
    Ok(SocketAddrUnix::new(path)?)
}

/// Creates a non-blocking, close-on-exec `AF_UNIX` stream socket.
pub(crate) fn unix_stream_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// `connect()` on a Unix socket. Returns the raw `io::Error` so callers can
/// tell `ECONNREFUSED`/`EAGAIN`/`ENOENT` apart.
pub(crate) fn connect_unix(sock: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let addr = unix_addr(path)?;
    retry_on_eintr(|| rustix::net::connect(sock, &addr))
}

/// `bind()` on a Unix socket.
pub(crate) fn bind_unix(sock: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    Ok(rustix::net::bind(sock, &unix_addr(path)?)?)
}

/// `listen()`.
pub(crate) fn listen(sock: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    Ok(rustix::net::listen(sock, backlog)?)
}

/// `accept4()` with `SOCK_NONBLOCK | SOCK_CLOEXEC`; `Ok(None)` when nobody waits.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(None),
            // The connection was reset before we accepted it: try the next one.
            Err(Errno::CONNABORTED) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: counter mode, like QEMU's
/// `event_notifier_init()`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
    )?)
}

/// Adds `count` to an eventfd counter (8 bytes, native endian).
pub(crate) fn eventfd_write(fd: BorrowedFd<'_>, count: u64) -> io::Result<()> {
    let n = retry_on_eintr(|| rustix::io::write(fd, &count.to_ne_bytes()))?;
    if n != 8 {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write of {n} bytes to an eventfd"),
        ));
    }
    Ok(())
}

/// Reads and clears an eventfd counter without blocking; 0 when it was 0.
/// Works whether or not the fd has `O_NONBLOCK` (QEMU toggles that flag on
/// the shared file description): it only reads after `poll()` says readable.
pub(crate) fn eventfd_read(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    loop {
        let mut pfd = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        if poll(&mut pfd, Some(Duration::ZERO))? == 0 || !pfd[0].revents().contains(PollFlags::IN) {
            return Ok(0);
        }
        match rustix::io::read(fd, &mut buf) {
            Ok(8) => return Ok(u64::from_ne_bytes(buf)),
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("short read of {n} bytes from an eventfd"),
                ))
            }
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets `O_NONBLOCK` on a descriptor (on its open file description).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::fs::OFlags;
    let flags = rustix::fs::fcntl_getfl(fd)?;
    if !flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    }
    Ok(())
}

/// `fstat()`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<rustix::fs::Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// `lstat()`; `Ok(None)` if the path does not exist.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
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
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for an SCM_RIGHTS message"));
    }
    let iov = [io::IoSlice::new(bytes)];
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    retry_on_eintr(|| rustix::net::sendmsg(sock, &iov, &mut control, flags))
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
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_RECV_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(buf)];
    let flags = RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC;
    let msg = retry_on_eintr(|| rustix::net::recvmsg(sock, &mut iov, &mut control, flags))?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok(Received {
        n: msg.bytes,
        fds,
        truncated: msg.flags.contains(ReturnFlags::CTRUNC),
    })
}

/// `poll()`; `EINTR` is reported as zero ready descriptors.
pub(crate) fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout = timeout.map(|d| {
        Timespec::try_from(d).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    });
    match rustix::event::poll(fds, timeout.as_ref()) {
        Ok(n) => Ok(n),
        Err(Errno::INTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Polls `fds` for `events` and returns each one's `revents`; `EINTR` gives
/// empty flags. For callers whose descriptors are borrowed from `&mut self`.
pub(crate) fn poll_each<'a>(
    fds: impl IntoIterator<Item = (BorrowedFd<'a>, PollFlags)>,
    timeout: Option<Duration>,
) -> io::Result<Vec<PollFlags>> {
    let mut pfds: Vec<PollFd<'a>> = fds
        .into_iter()
        .map(|(fd, events)| PollFd::from_borrowed_fd(fd, events))
        .collect();
    poll(&mut pfds, timeout)?;
    Ok(pfds.iter().map(|p| p.revents()).collect())
}

/// A `PollFd` for anything that has a descriptor.
pub(crate) fn pollfd<F: AsFd>(fd: &F, events: PollFlags) -> PollFd<'_> {
    PollFd::new(fd, events)
}

/// Time left until `deadline` (zero when past).
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Runs `f` again while it fails with `EINTR`.
fn retry_on_eintr<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}
