//! The IVSHMEM device: shared region, ids, doorbell.
//!
//! QEMU's ivshmem-doorbell: BAR2 is the shared memory; writing `(peer << 16) |
//! vector` to the doorbell register raises MSI-X `vector` in guest `peer`. Zephyr's
//! driver turns an incoming MSI-X into a k_poll signal; the C shim owns one
//! signal per vector and [`Ivshmem::wait_doorbell`] waits on all enabled ones.

use crate::{check, ffi, Errno};

/// The one IVSHMEM device of the image (devicetree `qemu,ivshmem` node).
#[derive(Clone, Copy, Debug)]
pub struct Ivshmem {
    base: *mut u8,
    size: usize,
    id: u32,
    vectors: u16,
}

// SAFETY: the handle only carries the address of a mapping that lives as long as the
// image, and numbers; it never dereferences the pointer itself (the region is accessed
// only through the engine's `SharedRegion`, with atomics), and the driver calls it makes
// are thread-safe kernel calls. Moving it to another thread is therefore sound.
unsafe impl Send for Ivshmem {}
// SAFETY: as above: `&Ivshmem` allows only reading its numbers and thread-safe driver calls.
unsafe impl Sync for Ivshmem {}

/// Why [`Ivshmem::open`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The driver did not initialise (no device on the PCIe bus, no ivshmem server).
    NotReady,
    /// The shared region is not mapped (size 0).
    NoMemory,
}

impl Ivshmem {
    /// Get the device, its mapped shared region, own ivshmem id and vector count.
    pub fn open() -> Result<Self, OpenError> {
        // SAFETY: plain calls into the C shim; `addr` is a valid out-pointer.
        unsafe {
            if !ffi::rpmsg_glue_ivshmem_is_ready() {
                return Err(OpenError::NotReady);
            }
            let mut addr: usize = 0;
            let size = ffi::rpmsg_glue_ivshmem_get_mem(&mut addr);
            if size == 0 || addr == 0 {
                return Err(OpenError::NoMemory);
            }
            Ok(Self {
                base: addr as *mut u8,
                size,
                id: ffi::rpmsg_glue_ivshmem_get_id(),
                vectors: ffi::rpmsg_glue_ivshmem_get_vectors(),
            })
        }
    }

    /// Address at which this guest maps the shared region (same in every guest of
    /// one image configuration: 0xafa00000 on qemu_cortex_a53 with our overlay).
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Size of the shared region in bytes (what the server's `-l` gave, a power of two).
    pub fn size(&self) -> usize {
        self.size
    }

    /// This guest's ivshmem peer id (assigned by the server, never reused until wrap).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Number of MSI-X vectors the device has (QEMU `vectors=`).
    pub fn vectors(&self) -> u16 {
        self.vectors
    }

    /// Ring `vector` of guest `peer_id`. An unknown peer or vector is silently
    /// ignored by QEMU, so this only fails on a local error.
    pub fn notify(&self, peer_id: u32, vector: u16) -> Result<(), Errno> {
        // SAFETY: plain call into the C shim.
        check(unsafe { ffi::rpmsg_glue_ivshmem_int_peer(peer_id, vector) })
    }

    /// Route doorbells on `vector` to [`Ivshmem::wait_doorbell`]. Idempotent.
    pub fn enable_doorbell(&self, vector: u16) -> Result<(), Errno> {
        // SAFETY: plain call into the C shim.
        check(unsafe { ffi::rpmsg_glue_ivshmem_register_handler(vector) })
    }

    /// Raises again the doorbells of `mask` (as [`Ivshmem::wait_doorbell`] returned it), so
    /// that the next wait returns at once: a thread that took doorbells meant for another
    /// waiter hands them on.
    pub fn raise_again(&self, mask: u32) {
        // SAFETY: plain call into the C shim.
        unsafe { ffi::rpmsg_glue_doorbell_raise(mask) }
    }

    /// Routes doorbells on `vector` (one not given to [`Ivshmem::enable_doorbell`]) to
    /// [`Ivshmem::wait_own_doorbell`] alone: [`Ivshmem::wait_doorbell`] never takes them.
    /// For one vector (the host's bare doorbell ping-pong); idempotent.
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    pub fn own_doorbell(&self, vector: u16) -> Result<(), Errno> {
        // SAFETY: plain call into the C shim.
        check(unsafe { ffi::rpmsg_glue_doorbell_own(vector) })
    }

    /// Waits up to `timeout_ms` (0: only checks) for a doorbell on the vector of
    /// [`Ivshmem::own_doorbell`]: `Ok(true)` if it rang (several rings before one wait give
    /// one), `Ok(false)` on timeout.
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    pub fn wait_own_doorbell(&self, timeout_ms: u32) -> Result<bool, Errno> {
        let t = timeout_ms.min(i32::MAX as u32) as i32;
        // SAFETY: plain call into the C shim.
        match unsafe { ffi::rpmsg_glue_doorbell_own_wait(t) } {
            0 => Ok(true),
            -11 /* EAGAIN */ => Ok(false),
            r => Err(Errno(r)),
        }
    }

    /// Wait for a doorbell on any enabled vector. `timeout_ms`: `None` waits
    /// forever, `Some(0)` only checks. Returns the bit mask of the vectors that
    /// rang, or `None` on timeout. Several rings before one wait give one wake-up.
    pub fn wait_doorbell(&self, timeout_ms: Option<u32>) -> Result<Option<u32>, Errno> {
        let t = match timeout_ms {
            None => -1,
            Some(ms) => ms.min(i32::MAX as u32) as i32,
        };
        // SAFETY: plain call into the C shim.
        let ret = unsafe { ffi::rpmsg_glue_doorbell_wait(t) };
        match ret {
            r if r > 0 => Ok(Some(r as u32)),
            -11 /* EAGAIN */ => Ok(None),
            r => Err(Errno(r)),
        }
    }
}
