//! What a received buffer holds: the RPMsg header and, for the name service, its record,
//! read from shared memory and validated.

use core::sync::atomic::Ordering;

use super::region::SharedRegion;
use super::BufferRef;
use crate::error::{Error, PeerFault, Result};
use crate::wire::{
    NsMessage, RpmsgHeader, RPMSG_ADDR_ANY, RPMSG_NAME_SIZE, RPMSG_NS_CREATE, RPMSG_NS_DESTROY,
};

/// A validated RPMsg header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Source address (never `RPMSG_ADDR_ANY`).
    pub src: u32,
    /// Destination address (never `RPMSG_ADDR_ANY`).
    pub dst: u32,
    /// Payload length; header plus payload fit the buffer.
    pub len: u16,
}

/// A validated name-service record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsRecord {
    /// The name (at most 31 bytes of printable ASCII, no NUL).
    pub name: heapless::String<31>,
    /// The announced endpoint address (never `RPMSG_ADDR_ANY`).
    pub addr: u32,
    /// True for destroy, false for create.
    pub destroy: bool,
}

/// Reads a validated RPMsg header from a received buffer whose first `written` bytes are
/// valid: the payload must fit both `written` and the buffer.
#[inline]
pub fn read_message_header(
    region: &SharedRegion<'_>,
    buf: BufferRef,
    written: u32,
) -> Result<MessageHeader> {
    let written = written.min(buf.len);
    if (written as usize) < RpmsgHeader::SIZE {
        return Err(Error::Peer(PeerFault::BadMessageLength));
    }
    let (src, dst, len) = read_header_fields(region, buf.offset)?;
    if RpmsgHeader::SIZE + len as usize > written as usize {
        return Err(Error::Peer(PeerFault::BadMessageLength));
    }
    if src == RPMSG_ADDR_ANY || dst == RPMSG_ADDR_ANY {
        return Err(Error::Peer(PeerFault::BadMessageAddress));
    }
    Ok(MessageHeader { src, dst, len })
}

/// Source, destination and payload length of the header at `offset`: two word loads
/// where 8-aligned (every buffer of our layout is), byte loads otherwise.
#[inline]
fn read_header_fields(region: &SharedRegion<'_>, offset: usize) -> Result<(u32, u32, u16)> {
    if offset % 8 != 0 {
        let mut raw = [0u8; RpmsgHeader::SIZE];
        region.read_bytes(offset, &mut raw)?;
        let h = RpmsgHeader::from_bytes(&raw);
        return Ok((h.src.get(), h.dst.get(), h.len.get()));
    }
    // Little-endian: src in bytes 0..4, dst in 4..8, reserved in 8..12, len in 12..14.
    const _: () = assert!(
        core::mem::offset_of!(RpmsgHeader, src) == 0
            && core::mem::offset_of!(RpmsgHeader, dst) == 4
            && core::mem::offset_of!(RpmsgHeader, len) == 12
    );
    region.check_span(offset, RpmsgHeader::SIZE)?;
    // SAFETY: both words lie in the span just checked, and `offset` is 8-aligned.
    let (first, second) = unsafe {
        (
            region.load_u64_in(offset, Ordering::Relaxed),
            region.load_u64_in(offset + 8, Ordering::Relaxed),
        )
    };
    Ok((first as u32, (first >> 32) as u32, (second >> 32) as u16))
}

/// Writes `header` at the start of the buffer at `offset` (relaxed: published with the
/// ring index that follows), as two word stores where 8-aligned, like
/// [`read_message_header`] reads it.
#[inline(always)]
pub fn write_message_header(
    region: &SharedRegion<'_>,
    offset: usize,
    header: &RpmsgHeader,
) -> Result<()> {
    if offset % 8 != 0 {
        return region.write_bytes(offset, &header.to_bytes());
    }
    // Both words are checked before either is written: no half-written header.
    region.check_span(offset, RpmsgHeader::SIZE)?;
    // Little-endian words, as `read_header_fields` takes them apart.
    let first = u64::from(header.src.get()) | u64::from(header.dst.get()) << 32;
    let second = u64::from(header.reserved.get())
        | u64::from(header.len.get()) << 32
        | u64::from(header.flags.get()) << 48;
    // SAFETY: both words lie in the span just checked, and `offset` is 8-aligned.
    unsafe {
        region.store_u64_in(offset, first, Ordering::Relaxed);
        region.store_u64_in(offset + 8, second, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads and validates a name-service record from the payload of `buf` (`len` bytes).
pub fn read_ns_record(region: &SharedRegion<'_>, buf: BufferRef, len: u16) -> Result<NsRecord> {
    if len as usize != NsMessage::SIZE {
        return Err(Error::Peer(PeerFault::BadNameService));
    }
    let mut raw = [0u8; NsMessage::SIZE];
    region.read_bytes(buf.offset + RpmsgHeader::SIZE, &mut raw)?;
    let m = NsMessage::from_bytes(&raw);
    // Linux forces byte 31 to NUL; we require a NUL within the 32 bytes instead.
    let name_len = m
        .name
        .iter()
        .position(|b| *b == 0)
        .ok_or(Error::Peer(PeerFault::BadNameService))?;
    debug_assert!(name_len < RPMSG_NAME_SIZE);
    // Printable ASCII, as the names Linux and OpenAMP use: checked byte by byte (no UTF-8
    // decoder and its tables in the firmware), and no control characters from the peer
    // in the log lines that quote a name.
    let mut name = heapless::String::new();
    for &b in &m.name[..name_len] {
        if !(b' '..=b'~').contains(&b) {
            return Err(Error::Peer(PeerFault::BadNameService));
        }
        name.push(char::from(b))
            .map_err(|_| Error::Peer(PeerFault::BadNameService))?;
    }
    let addr = m.addr.get();
    if addr == RPMSG_ADDR_ANY {
        return Err(Error::Peer(PeerFault::BadNameService));
    }
    let destroy = match m.flags.get() {
        RPMSG_NS_CREATE => false,
        RPMSG_NS_DESTROY => true,
        _ => return Err(Error::Peer(PeerFault::BadNameService)),
    };
    Ok(NsRecord {
        name,
        addr,
        destroy,
    })
}
