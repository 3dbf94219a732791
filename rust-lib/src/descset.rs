//! A set of descriptor ids: local bookkeeping (which buffers are in flight, held, free);
//! it never touches shared memory.

/// A set of descriptor ids (0..256), used for "in flight" and "held" bookkeeping.
///
/// The size is kept alongside the bits: it is asked for on every received buffer, and
/// counting bits is a dozen instructions per word on x86-64 targets without `popcnt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescSet {
    bits: [u64; 4],
    len: u16,
}

impl DescSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            bits: [0; 4],
            len: 0,
        }
    }
    /// Whether `id` is in the set.
    pub const fn contains(&self, id: u16) -> bool {
        let id = id as usize;
        id < 256 && self.bits[id / 64] & (1 << (id % 64)) != 0
    }
    /// Adds `id`; returns false if it was already there (or out of range).
    pub fn insert(&mut self, id: u16) -> bool {
        let Some(word) = self.bits.get_mut(id as usize / 64) else {
            return false;
        };
        let bit = 1 << (id % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.len += 1;
        true
    }
    /// Removes `id`; returns false if it was not there.
    pub fn remove(&mut self, id: u16) -> bool {
        let Some(word) = self.bits.get_mut(id as usize / 64) else {
            return false;
        };
        let bit = 1 << (id % 64);
        if *word & bit == 0 {
            return false;
        }
        *word &= !bit;
        self.len -= 1;
        true
    }
    /// Number of ids in the set.
    pub const fn len(&self) -> u32 {
        self.len as u32
    }
    /// True when empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The smallest id in the set.
    pub fn first(&self) -> Option<u16> {
        self.bits
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| (i * 64 + w.trailing_zeros() as usize) as u16)
    }
}
