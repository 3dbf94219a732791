//! The native stream's work per message, without waiting, for instruction counts.
//!
//! ```text
//! cargo build --release -p rpmsg-app --example stream_cost
//! valgrind --tool=callgrind --toggle-collect='stream_cost::remote_batch' \
//!     target/release/examples/stream_cost 1000
//! ```
//!
//! (likewise `host_batch`, `host_single`, `remote_single`, `bare_send_batch`,
//! `bare_recv_batch`; divide "Collected" by the messages it prints: 16 000 for 1 000
//! batches). One thread, one in-memory region, batches of a ring's worth of 496-byte
//! messages, doorbells deferred and both sides polling, as while both spin:
//!
//! * `host_batch`/`remote_batch`: as `rpmsg-ivshmem bench` streams to its sink — the host
//!   sends with `try_send_each`, the remote takes them with `recv_each`, copying each
//!   payload out;
//! * `host_single`/`remote_single`: the same through the one-message calls (the app's
//!   `try_send_parts`; `recv`, copy out, `release_rx`), for comparison;
//! * `bare_send_batch`/`bare_recv_batch`: the same payloads through a bare ring like the
//!   bench's (`tools/rpmsg-ivshmem/src/baseline.rs`: length word and payload into a slot and
//!   a `Release` store of the head per message, the tail validated once per batch; the
//!   head validated once per batch, the length per message, copy out and a store of the
//!   tail).
//!
//! Each is its own `#[inline(never)]` function, so callgrind counts them separately.

use std::sync::atomic::Ordering;

use rpmsg_app::Sender;
use rpmsg_engine::testing::HeapRegion;
use rpmsg_engine::{Config, Doorbell, Event, Host, Remote, RxBuffer, SharedRegion, TxBuffer};

const SIZE: usize = 64 * 1024;

/// A doorbell that rings nobody (both sides poll).
struct Quiet;

impl Doorbell for Quiet {
    fn ring(&mut self, _peer_id: u16) {}
}

type H<'a> = Host<'a, Quiet>;
type R<'a> = Remote<'a, Quiet>;

#[inline(never)]
fn host_batch(h: &mut H<'_>, ept: u32, data: &[u8]) -> u64 {
    let _ = h.flush_doorbell();
    let _ = h.busy_poll();
    h.defer_doorbells();
    let fill = |buf: &mut TxBuffer<'_>| buf.write(0, data).map(|()| data.len());
    h.try_send_each(ept, usize::MAX, fill).unwrap_or(0) as u64
}

#[inline(never)]
fn remote_batch(r: &mut R<'_>, sink: u32, scratch: &mut [u8]) -> u64 {
    let _ = r.flush_doorbell();
    let _ = r.busy_poll();
    r.defer_doorbells();
    let mut taken = 0;
    let take = |rx: &RxBuffer<'_>| {
        let n = rx.read(0, scratch).unwrap_or(0);
        taken += u64::from(n == rx.len());
        true
    };
    let _ = r.recv_each(sink, usize::MAX, take);
    taken
}

#[inline(never)]
fn host_single(h: &mut H<'_>, ept: u32, data: &[u8]) -> u64 {
    let _ = h.flush_doorbell();
    let _ = h.busy_poll();
    h.defer_doorbells();
    let mut sent = 0;
    while h.try_send_parts(ept, &[data]).is_ok() {
        sent += 1;
    }
    sent
}

#[inline(never)]
fn remote_single(r: &mut R<'_>, scratch: &mut [u8]) -> u64 {
    let _ = r.flush_doorbell();
    let _ = r.busy_poll();
    r.defer_doorbells();
    let mut taken = 0;
    while let Ok(Some(Event::Message(rx))) = r.recv() {
        let n = rx.read(0, scratch).unwrap_or(0);
        taken += u64::from(n == rx.len());
        let _ = r.release_rx(rx);
    }
    taken
}

/// The bench's bare ring (tools/rpmsg-ivshmem/src/baseline.rs) without its waits.
struct Bare<'a> {
    region: SharedRegion<'a>,
    base: usize,
    slots: u64,
    slot: usize,
}

impl Bare<'_> {
    fn slot_at(&self, i: u64) -> usize {
        self.base + 128 + (i % self.slots) as usize * self.slot
    }
}

#[inline(never)]
fn bare_send_batch(b: &Bare<'_>, head: &mut u64, data: &[u8]) -> u64 {
    let tail = b
        .region
        .load_u64(b.base + 64, Ordering::Acquire)
        .unwrap_or(0);
    if tail > *head {
        return 0;
    }
    let mut sent = 0;
    while *head - tail < b.slots {
        let at = b.slot_at(*head);
        let _ = b.region.store_u64(at, data.len() as u64, Ordering::Relaxed);
        let _ = b.region.write_bytes(at + 8, data);
        *head += 1;
        let _ = b.region.store_u64(b.base, *head, Ordering::Release);
        sent += 1;
    }
    sent
}

#[inline(never)]
fn bare_recv_batch(b: &Bare<'_>, tail: &mut u64, scratch: &mut [u8]) -> u64 {
    let head = b.region.load_u64(b.base, Ordering::Acquire).unwrap_or(0);
    if head < *tail || head - *tail > b.slots {
        return 0;
    }
    let max_len = (b.slot - 8).min(scratch.len());
    let mut taken = 0;
    while *tail < head {
        let at = b.slot_at(*tail);
        let len = b.region.load_u64(at, Ordering::Relaxed).unwrap_or(u64::MAX);
        let Some(len) = usize::try_from(len).ok().filter(|l| *l <= max_len) else {
            break;
        };
        let _ = b.region.read_bytes(at + 8, &mut scratch[..len]);
        *tail += 1;
        let _ = b.region.store_u64(b.base + 64, *tail, Ordering::Release);
        taken += 1;
    }
    taken
}

fn main() {
    let batches: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mem = HeapRegion::new(SIZE);
    let mut h = Host::new_host(mem.region(), Config::new(SIZE), Some(1), Quiet).unwrap();
    let mut r = Remote::new_remote(mem.region(), Config::new(SIZE), Some(2), Quiet).unwrap();
    let sink = r.create_endpoint("rpmsg-sink", None, None).unwrap();
    h.start().unwrap();
    let mut ept = None;
    for _ in 0..20 {
        let _ = r.poll();
        if let Ok(Some(Event::NameServiceCreate { name, addr })) = h.recv() {
            ept = Some(h.bind(&name, addr).unwrap());
            break;
        }
    }
    let ept = ept.expect("link up");
    // The sink binds to the host's endpoint with the first message.
    h.try_send(ept, b"x").unwrap();
    if let Ok(Some(Event::Message(rx))) = r.recv() {
        assert_eq!(rx.dst(), sink);
        r.release_rx(rx).unwrap();
    }
    let max = h.max_payload();
    let data = vec![0x5Au8; max];
    let mut scratch = vec![0u8; max];
    let (mut sent, mut taken) = (0, 0);
    for _ in 0..batches {
        sent += host_single(&mut h, ept, &data);
        taken += remote_single(&mut r, &mut scratch);
    }
    println!("one message per call: {sent} sent, {taken} taken");
    let (mut sent, mut taken) = (0, 0);
    for _ in 0..batches {
        sent += host_batch(&mut h, ept, &data);
        taken += remote_batch(&mut r, sink, &mut scratch);
    }
    let layout = *h.layout();
    let slots = u64::from(layout.config().queue_size);
    let start = layout.buffer_offset(2 * usize::from(layout.config().queue_size));
    let bare = Bare {
        region: mem.region(),
        base: start.next_multiple_of(64),
        slots,
        slot: (max + 16).next_multiple_of(64),
    };
    let (mut head, mut tail, mut bare_sent, mut bare_taken) = (0, 0, 0, 0);
    for _ in 0..batches {
        bare_sent += bare_send_batch(&bare, &mut head, &data);
        bare_taken += bare_recv_batch(&bare, &mut tail, &mut scratch);
    }
    println!("stream: {sent} sent, {taken} taken; bare ring: {bare_sent} sent, {bare_taken} taken");
}
