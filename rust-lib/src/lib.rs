//! # rpmsg-engine: RPMsg over IVSHMEM shared memory
//!
//! The protocol engine of rpmsg-ivshmem: split virtqueues in both virtio roles, RPMsg
//! (header, endpoints, name service) and the shared-memory layout, `no_std`, without an
//! allocator. The same code runs in the Zephyr images (`host/`, `remote/`), in the native
//! Linux peer (`tools/rpmsg-ivshmem`) and in this crate's tests.
//!
//! * [`Host`] is the virtio **driver** side: it owns every buffer, posts receive buffers on
//!   vring 0 and sends on vring 1.
//! * [`Remote`] is the virtio **device** side: it waits for the host's `DRIVER_OK`, sends in
//!   buffers taken from vring 0 and receives on vring 1.
//! * The platform supplies a [`Doorbell`] (ring the peer: `ivshmem_int_peer`, an eventfd
//!   write, or a test fake) and, for blocking sends, a [`Clock`].
//!
//! ```
//! use rpmsg_engine::{testing::{Bell, BellDoorbell, HeapRegion}, Config, Event, Host, Remote};
//!
//! let mem = HeapRegion::new(64 * 1024);
//! let cfg = Config::new(64 * 1024);
//! let mut host = Host::new_host(mem.region(), cfg, Some(0), BellDoorbell::new(Bell::new()))?;
//! let mut remote = Remote::new_remote(mem.region(), cfg, Some(1), BellDoorbell::new(Bell::new()))?;
//! let k = remote.create_endpoint("k", None, None)?; // announced when the link is up
//! host.start()?;
//! remote.poll()?; // attaches, announces "k"
//! let Some(Event::NameServiceCreate { name, addr }) = host.recv()? else { panic!() };
//! let ept = host.bind(&name, addr)?;
//! host.try_send(ept, b"hello\0")?;
//! let Some(Event::Message(rx)) = remote.recv()? else { panic!() };
//! let mut buf = [0u8; 16];
//! let n = rx.read(0, &mut buf)?;
//! remote.release_rx(rx)?;
//! remote.try_send(k, &buf[..n])?; // "k" learned the host's address from the message
//! # Ok::<(), rpmsg_engine::Error>(())
//! ```
//!
//! ## Trust and validation
//!
//! The shared region is another machine's memory. [`shm`] is the only module that touches
//! it: all accesses are bounds-checked atomics, and every value read from the peer is
//! validated there once — indices, descriptor ids, addresses, lengths, flags, RPMsg
//! headers, name-service records and control-area fields. A bad value becomes an
//! [`Error`], is counted in [`ErrorCounters`], and the offending buffer is skipped; a ring
//! index that moved impossibly far marks the link [`LinkState::Broken`] until a new session.
//! The host never reads back its own descriptor table (a remote could have rewritten it).
//!
//! ## Byte map of the shared region (size `S`, default configuration)
//!
//! Byte-compatible with the OpenAMP `dual_qemu_ivshmem` sample, so that a C OpenAMP node
//! and this engine interoperate. Everything is little-endian.
//!
//! | offset | size | content | written by |
//! |---|---|---|---|
//! | `0x000` | 1 | virtio status: 0 while the host (re)initialises, `0x0F` (incl. `DRIVER_OK` = 4) when rings and receive buffers are ready | host |
//! | `0x001` | 63 | zero | host |
//! | `0x040` | 4 | magic `"RPIV"` ([`wire::CONTROL_MAGIC`]) — absent with a C host | host |
//! | `0x044` | 2 | layout version (1) | host |
//! | `0x046` | 2 | queue size (descriptors per vring, default 16) | host |
//! | `0x048` | 4 | buffer size (default 512) | host |
//! | `0x04C` | 4 | vring align (default 4) | host |
//! | `0x050` | 8 | region size `S` | host |
//! | `0x058` | 8 | descriptor address of byte 0 (default `0xafa00000`, the guests' mapping) | host |
//! | `0x060` | 4 | host ivshmem id (`0xFFFFFFFF` = none) | host |
//! | `0x064` | 4 | host session number (+1 at every host (re)initialisation; never repeats) | host |
//! | `0x068` | 4 | remote ivshmem id (`0xFFFFFFFF` = none) | remote |
//! | `0x06C` | 4 | session the remote attached to; 0 with an id = "give me a fresh session" | remote |
//! | `0x070` | 4 | host heartbeat: bumped every 400 ms while linked (0 = none; see [`Rpmsg::keep_alive`]) | host |
//! | `0x074` | 4 | remote heartbeat, likewise | remote |
//! | `0x078` | 0x388 | unused, zero | — |
//! | `0x400` | 16 × 512 | host receive buffers (posted on vring 0) | remote writes messages |
//! | `0x2400` | 16 × 512 | host transmit buffers (sent on vring 1) | host writes messages |
//! | `0x4400` | … | unused pool space (ends at `S − 0x800`, never overlapping the rings) | — |
//! | `S − 0x800` | 0x400 | vring 0, remote → host: desc table (16 × 16 B) at +0, avail ring (38 B) at +0x100, used ring (134 B) at +0x128 | desc/avail: host; used: remote |
//! | `S − 0x400` | 0x400 | vring 1, host → remote: same layout | desc/avail: host; used: remote |
//!
//! With other settings ([`Config`]): `2 × queue_size` buffers from `0x400`; each vring area
//! is its legacy size rounded up to a multiple of `max(0x400, align)`; vring 1 ends at `S`,
//! vring 0 just below it. [`Layout::new`] rejects a region too small to hold it all
//! ([`Error::RegionTooSmall`]) — the OpenAMP sample hands its pool the whole region and
//! overlaps its own rings.
//!
//! Descriptor addresses are `addr_base + offset`. The remote translates with the base the
//! host published, so a Linux process that maps the region anywhere interoperates with the
//! Zephyr guests (which map it at `0xafa00000`).
//!
//! ## Link protocol (sessions and restarts)
//!
//! * **Host start** ([`Host::start`]): status ← 0; the new session number `s + 1` stored
//!   (where a block is present) before the rest of the control area and the rings are
//!   zeroed, so a host killed half-way leaves it behind and session numbers never repeat;
//!   all receive buffers posted; control block published; status ← `0x0F`. Nothing from
//!   an earlier session survives, so no stale message is delivered.
//! * **Remote attach** ([`Rpmsg::poll`]): once `DRIVER_OK` is set it reads the published
//!   block, then the status and session number again (a host that restarted meanwhile
//!   makes it look again at the next poll), checks the layout ([`Error::LayoutMismatch`]
//!   if it differs), writes `(own id, s)` as one 64-bit store, announces its endpoints and
//!   rings the host's published id (never "own id ± 1"). The host takes the id from the
//!   control area even when the announcement overtook its look at the acknowledgement.
//! * **Remote restart**: a new remote that finds `(id, s)` already acknowledged by a
//!   predecessor writes `(own id, 0)` and rings the host; the host starts session `s + 1`
//!   and rings it back.
//! * **Host restart**: the remote sees the session number change (or `DRIVER_OK` drop),
//!   discards what it held, attaches to the new session and announces again.
//! * **Stale positions**: a remote touches the rings outside [`Rpmsg::poll`]/[`Rpmsg::recv`]
//!   (send, zero-copy send, `release_rx`) only after checking that `DRIVER_OK` is set and
//!   the session is still the one it attached to; otherwise the call fails
//!   ([`Error::NotReady`], [`Error::StaleBuffer`]) and the next `poll` re-attaches. So a
//!   message taken before a host restart and echoed after it never enters the new
//!   session's rings. (The check and the ring write are two steps: a remote stalled between
//!   them for the whole of a host's `start()` could still write one entry at an old
//!   position; a host that has not bound the destination yet drops it.)
//! * **Liveness** ([`Rpmsg::keep_alive`], called whenever a node waits): while linked,
//!   each of our nodes bumps its heartbeat word every 400 ms (a store, no doorbell). A peer
//!   whose word moved in this session and then stands still for 1 s, with no message from
//!   it meanwhile, is gone: the host
//!   starts a fresh session (its `status` says it waits for a remote, `send` answers not
//!   ready, the next remote attaches), a remote writes `(own id, 0)` and waits for a host.
//!   [`Rpmsg::next_keep_alive_us`] says when the next call is due, so a node can sleep on
//!   its doorbell until then instead of polling.
//! * **Name service**: a remote of ours announces each endpoint once per session and never
//!   destroys one; a record from it that undoes a binding of the session (a destroy, or a
//!   bound name at another address) is counted as a peer fault and the host starts a fresh
//!   session, in which the remote announces again. A C remote's records are taken as written.
//! * **Corruption**: the host re-reads its own status byte and session number at every
//!   look; another value there, an impossible remote word, a ring index out of range or a
//!   ring entry it had to reject (a buffer lost to the session) make it start a fresh
//!   session. Our remote asks for one when it had to reject an entry of the host's rings.
//!   Each fault is counted ([`Rpmsg::counters`]).
//! * A C OpenAMP host publishes no control block: the remote then uses its own
//!   configuration and [`Config::fallback_peer_id`], and never asks it for a fresh session.
//!   A C remote never acknowledges: the host brings the link up on its first valid message.
//!   A C node (and one of ours from before heartbeats) never bumps a heartbeat word, so it
//!   is never taken as gone by silence: with it, only a restart or the server's
//!   disconnect notice ends a link, as before.
//!
//! ## Crate features
//!
//! * `std`: the [`testing`] module (heap region, in-process doorbell and clock, the hostile
//!   region driver used by the fuzz target).
#![no_std]
#![deny(
    unsafe_op_in_unsafe_fn,
    missing_docs,
    clippy::undocumented_unsafe_blocks
)]

pub mod descset;
pub mod endpoint;
pub mod error;
pub mod layout;
pub mod peer_id;
pub mod platform;
pub mod rpmsg;
pub mod shared;
pub mod shm;
#[cfg(feature = "std")]
pub mod testing;
pub mod virtqueue;
pub mod wire;

pub use endpoint::{Endpoint, EndpointTable, NameService, MAX_ENDPOINTS};
pub use error::{ConfigRule, Error, ErrorCounters, PeerFault, Result};
pub use layout::{Config, Layout, QueueId};
pub use peer_id::{PeerIdRule, Side};
pub use platform::{Clock, Doorbell, NoDoorbell};
pub use rpmsg::{Event, Host, LinkState, Remote, Rpmsg, RxBuffer, Stats, TxBuffer};
pub use shared::SharedNode;
pub use shm::SharedRegion;
