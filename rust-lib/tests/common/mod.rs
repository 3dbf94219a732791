//! Fixtures shared by the engine's integration tests: both roles over one in-memory
//! region, the link brought up, a remote that echoes, a host that reads the echo.
#![allow(dead_code)] // each test file uses its part

use rpmsg_engine::rpmsg::Role;
use rpmsg_engine::testing::{Bell, BellDoorbell, HeapRegion};
use rpmsg_engine::{Config, Error, Event, Host, Remote, Rpmsg, RxBuffer};

/// The region size most tests use (the default layout).
pub const SIZE: usize = 64 * 1024;
/// The host's ivshmem id.
pub const HOST_ID: u16 = 4;
/// The remote's ivshmem id.
pub const REMOTE_ID: u16 = 11;

pub type H<'a> = Host<'a, BellDoorbell>;
pub type R<'a> = Remote<'a, BellDoorbell>;

/// A host with `id` over `mem`, ringing `peer`.
pub fn host_over(mem: &HeapRegion, cfg: Config, id: u16, peer: Bell) -> H<'_> {
    Host::new_host(mem.region(), cfg, Some(id), BellDoorbell::new(peer)).unwrap()
}

/// A remote with `id` over `mem`, ringing `peer`, with its endpoint "k" at 1024.
pub fn remote_over(mem: &HeapRegion, cfg: Config, id: u16, peer: Bell) -> R<'_> {
    let mut r = Remote::new_remote(mem.region(), cfg, Some(id), BellDoorbell::new(peer)).unwrap();
    assert_eq!(r.create_endpoint("k", None, None), Ok(1024));
    r
}

/// The default host (not started).
pub fn host(mem: &HeapRegion) -> H<'_> {
    host_over(mem, Config::new(SIZE), HOST_ID, Bell::new())
}

/// A default remote with ivshmem id `id`.
pub fn remote_with(mem: &HeapRegion, id: u16) -> R<'_> {
    remote_over(mem, Config::new(SIZE), id, Bell::new())
}

/// The default remote.
pub fn remote(mem: &HeapRegion) -> R<'_> {
    remote_with(mem, REMOTE_ID)
}

/// Runs both sides until the host has bound "k"; returns the host's endpoint.
pub fn bring_up(h: &mut H<'_>, r: &mut R<'_>) -> u32 {
    for _ in 0..10 {
        let _ = r.poll();
        if let Some(Event::NameServiceCreate { name, addr }) = h.recv().unwrap() {
            assert_eq!(name.as_str(), "k");
            return h.bind(&name, addr).unwrap();
        }
    }
    panic!(
        "link did not come up: host {:?}, remote {:?}",
        h.link_state(),
        r.link_state()
    );
}

/// The default host started, the default remote, the link up: the host's endpoint.
pub fn linked(mem: &HeapRegion) -> (H<'_>, R<'_>, u32) {
    let mut h = started_host(mem);
    let mut r = remote(mem);
    let ept = bring_up(&mut h, &mut r);
    (h, r, ept)
}

/// The payload of `rx`, copied out.
pub fn payload(rx: &RxBuffer<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; rx.len()];
    rx.read(0, &mut buf).unwrap();
    buf
}

/// Remote side: receive one message and echo it; returns the payload.
pub fn echo_one(r: &mut R<'_>) -> Option<Vec<u8>> {
    let Some(Event::Message(rx)) = r.recv().unwrap() else {
        return None;
    };
    let buf = payload(&rx);
    r.release_rx(rx).unwrap();
    r.try_send(1024, &buf).unwrap();
    Some(buf)
}

/// Host side: the next message's payload (its buffer released); panics on another event.
pub fn recv_payload(h: &mut H<'_>) -> Option<Vec<u8>> {
    match h.recv().unwrap()? {
        Event::Message(rx) => {
            let buf = payload(&rx);
            h.release_rx(rx).unwrap();
            Some(buf)
        }
        other => panic!("host got {other:?}"),
    }
}

/// The next event of `node`, which must be a message.
pub fn next_message<'a, T: Role<'a>>(node: &mut Rpmsg<'a, T, BellDoorbell>) -> RxBuffer<'a> {
    match node.recv().unwrap() {
        Some(Event::Message(rx)) => rx,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Takes the next message of `node` and returns its buffer unread.
pub fn consume_one<'a, T: Role<'a>>(node: &mut Rpmsg<'a, T, BellDoorbell>) {
    let rx = next_message(node);
    node.release_rx(rx).unwrap();
}

/// Sends `msg` from the host's `ept`, has the remote echo it and the host read the echo;
/// asserts both saw `msg`.
pub fn round_trip(h: &mut H<'_>, r: &mut R<'_>, ept: u32, msg: &[u8]) {
    h.try_send(ept, msg).unwrap();
    assert_eq!(echo_one(r).as_deref(), Some(msg), "at the remote");
    assert_eq!(recv_payload(h).as_deref(), Some(msg), "at the host");
}

/// The default host, started (waiting for a remote).
pub fn started_host(mem: &HeapRegion) -> H<'_> {
    let mut h = host(mem);
    h.start().unwrap();
    h
}

/// Sends one-byte messages (0, 1, ...) from `ept` until no transmit buffer is left; returns
/// how many went.
pub fn exhaust_tx<'a, T: Role<'a>>(node: &mut Rpmsg<'a, T, BellDoorbell>, ept: u32) -> usize {
    for i in 0..=u8::MAX {
        match node.try_send(ept, &[i]) {
            Ok(()) => {}
            Err(Error::NoTxBuffer) => return usize::from(i),
            Err(e) => panic!("send {i}: {e:?}"),
        }
    }
    panic!("transmit buffers never ran out");
}
