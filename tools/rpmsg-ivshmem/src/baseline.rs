//! The bench's bare shared-memory stream: the least a one-way stream of messages through
//! the region can cost between the same two processes. A single-producer single-consumer
//! ring of `slots` slots of `slot` bytes in the part of the region that neither RPMsg side
//! uses (no descriptors, no addresses, no endpoints): the host writes a message's length
//! and copies its payload into the next slot, and publishes a head counter; the remote
//! copies it out and publishes a tail counter. Each side publishes its counter once per
//! message, as the RPMsg nodes publish their ring indices, and validates what it reads of
//! the other side's as a receiver of untrusted memory must (as the nodes do): the head
//! and the tail may not pass each other or run more than the ring ahead, a length may not
//! exceed the slot. Both copy with the engine's word copies and wait as the nodes do
//! (look, yield the CPU, look again), so the difference to the RPMsg stream is the
//! protocol's cost.
//!
//! Layout at the window's start: head (u64) at +0, tail (u64) at +64, slots from +128; a
//! slot holds the payload length (u64) and the payload after it.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rpmsg_engine::{Layout, SharedRegion};

const HEAD: usize = 0;
const TAIL: usize = 64;
const SLOTS: usize = 128;
/// The length word at the start of each slot, before the payload.
const LEN: usize = 8;

/// The bytes of the region that neither side uses: after the last buffer, before the
/// rings (cache-line aligned).
pub fn unused_window(layout: &Layout, region_len: usize) -> Range<usize> {
    let n = 2 * usize::from(layout.config().queue_size);
    let start = layout.buffer_offset(n).next_multiple_of(64);
    let end = (layout.pool_end() & !63).min(region_len);
    start..end.max(start)
}

/// A bare ring in `window` of `region`.
#[derive(Debug, Clone, Copy)]
pub struct BareRing<'a> {
    region: SharedRegion<'a>,
    base: usize,
    slots: u64,
    slot: usize,
}

impl<'a> BareRing<'a> {
    /// A ring of `slots` slots of `slot` bytes, if it fits `window`.
    pub fn new(
        region: SharedRegion<'a>,
        window: &Range<usize>,
        slots: u16,
        slot: usize,
    ) -> Option<Self> {
        let slot = slot.next_multiple_of(64);
        let need = SLOTS + usize::from(slots) * slot;
        (slots > 0 && window.len() >= need).then_some(Self {
            region,
            base: window.start,
            slots: u64::from(slots),
            slot,
        })
    }

    fn load(&self, at: usize) -> u64 {
        self.region
            .load_u64(self.base + at, Ordering::Acquire)
            .unwrap_or(0)
    }

    fn store(&self, at: usize, v: u64) {
        let _ = self.region.store_u64(self.base + at, v, Ordering::Release);
    }

    fn slot_at(&self, i: u64) -> usize {
        self.base + SLOTS + (i % self.slots) as usize * self.slot
    }

    /// Head and tail to zero (the host, before it asks the remote to take part).
    pub fn reset(&self) {
        self.store(HEAD, 0);
        self.store(TAIL, 0);
    }

    /// Host: sends `count` copies of `payload`, waits until the remote took the last one;
    /// false if it stops taking them for `idle`, or publishes an impossible tail.
    pub fn send(&self, payload: &[u8], count: u64, idle: Duration) -> bool {
        let payload = &payload[..payload.len().min(self.slot - LEN)];
        let mut tail = 0;
        for i in 0..count {
            if i - tail >= self.slots {
                // The remote's tail, validated: never past our head.
                let room = |t: &u64| *t > i || i - t < self.slots;
                match wait_for(|| Some(self.load(TAIL)).filter(room), idle) {
                    Some(t) if t <= i => tail = t,
                    _ => return false,
                }
            }
            let at = self.slot_at(i);
            let _ = self
                .region
                .store_u64(at, payload.len() as u64, Ordering::Relaxed);
            let _ = self.region.write_bytes(at + LEN, payload);
            self.store(HEAD, i + 1);
        }
        wait_for(|| (self.load(TAIL) == count).then_some(()), idle).is_some()
    }

    /// Remote: takes `count` payloads of at most `max_len` bytes into `scratch`; returns
    /// how many it took before the host stopped sending for `idle` or published an
    /// impossible head or length.
    pub fn receive(&self, count: u64, max_len: usize, scratch: &mut [u8], idle: Duration) -> u64 {
        let max_len = max_len.min(self.slot - LEN).min(scratch.len());
        let mut head = 0;
        let mut taken = 0;
        while taken < count {
            if taken == head {
                // The host's head, validated: at most a ring ahead of our tail.
                match wait_for(|| Some(self.load(HEAD)).filter(|h| *h > taken), idle) {
                    Some(h) if h - taken <= self.slots => head = h.min(count),
                    _ => break,
                }
            }
            let at = self.slot_at(taken);
            let len = self
                .region
                .load_u64(at, Ordering::Relaxed)
                .unwrap_or(u64::MAX);
            let Some(len) = usize::try_from(len).ok().filter(|l| *l <= max_len) else {
                break;
            };
            let _ = self.region.read_bytes(at + LEN, &mut scratch[..len]);
            taken += 1;
            self.store(TAIL, taken);
        }
        taken
    }
}

/// Looks at `ready` until it gives a value, as the nodes do while they spin
/// ([`crate::platform::spin_until`]); `None` after `idle`.
fn wait_for<T>(mut ready: impl FnMut() -> Option<T>, idle: Duration) -> Option<T> {
    let mut found = None;
    crate::platform::spin_until(
        || {
            found = ready();
            found.is_some()
        },
        idle,
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpmsg_engine::testing::HeapRegion;

    const IDLE: Duration = Duration::from_millis(200);

    fn ring(mem: &HeapRegion) -> BareRing<'_> {
        BareRing::new(mem.region(), &(0..mem.region().len()), 4, 64).unwrap()
    }

    #[test]
    fn payloads_go_through_whole() {
        let mem = HeapRegion::new(4096);
        let r = ring(&mem);
        r.reset();
        let payload: Vec<u8> = (0..56).collect();
        std::thread::scope(|s| {
            let receiver = s.spawn(|| {
                let mut scratch = [0u8; 64];
                let taken = r.receive(10, 56, &mut scratch, IDLE);
                (taken, scratch)
            });
            assert!(r.send(&payload, 10, IDLE));
            let (taken, scratch) = receiver.join().unwrap();
            assert_eq!(taken, 10);
            assert_eq!(&scratch[..56], &payload[..]);
        });
    }

    /// A head more than a ring ahead of the tail, or a length beyond the slot, is refused:
    /// the receiver stops at once instead of copying what is not there.
    #[test]
    fn a_receiver_refuses_an_impossible_head_or_length() {
        let mem = HeapRegion::new(4096);
        let r = ring(&mem);
        let region = mem.region();
        let mut scratch = [0u8; 64];
        r.reset();
        region.store_u64(HEAD, 5, Ordering::Release).unwrap();
        assert_eq!(r.receive(10, 56, &mut scratch, IDLE), 0);
        r.reset();
        region.store_u64(SLOTS, 57, Ordering::Relaxed).unwrap();
        region.store_u64(HEAD, 1, Ordering::Release).unwrap();
        assert_eq!(r.receive(10, 56, &mut scratch, IDLE), 0);
        region.store_u64(SLOTS, 56, Ordering::Relaxed).unwrap();
        assert_eq!(r.receive(1, 56, &mut scratch, IDLE), 1);
    }

    /// A tail past the head is refused by the sender.
    #[test]
    fn a_sender_refuses_an_impossible_tail() {
        let mem = HeapRegion::new(4096);
        let r = ring(&mem);
        r.reset();
        mem.region()
            .store_u64(TAIL, 1000, Ordering::Release)
            .unwrap();
        assert!(!r.send(&[1; 8], 10, IDLE));
    }
}
