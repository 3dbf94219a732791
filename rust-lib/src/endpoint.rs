//! RPMsg endpoints and the name service.

use crate::error::{Error, Result};
use crate::wire::{
    Le32, NsMessage, RPMSG_ADDR_ANY, RPMSG_NAME_SIZE, RPMSG_NS_ADDR, RPMSG_NS_CREATE,
    RPMSG_NS_DESTROY, RPMSG_RESERVED_ADDRESSES,
};

/// Maximum number of endpoints per node.
pub const MAX_ENDPOINTS: usize = 8;

/// A local RPMsg endpoint: a name, a local address and (once known) the peer's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    name: heapless::String<31>,
    local: u32,
    dest: u32,
    /// Announced through the name service: named and created without a destination.
    announce: bool,
    announced: bool,
    learned: bool,
}

impl Endpoint {
    /// The endpoint's name (empty for anonymous endpoints).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Local address.
    pub const fn local(&self) -> u32 {
        self.local
    }
    /// The peer's address, once bound (given at creation, bound from a name-service
    /// announcement, or learned from the first message received).
    pub const fn dest(&self) -> Option<u32> {
        if self.dest == RPMSG_ADDR_ANY {
            None
        } else {
            Some(self.dest)
        }
    }
    /// Whether this endpoint announces itself through the name service (it is named and
    /// was created without a destination, as OpenAMP's `rpmsg_create_ept` decides).
    pub const fn announces(&self) -> bool {
        self.announce
    }
}

/// The endpoints of one node.
#[derive(Debug, Default)]
pub struct EndpointTable {
    endpoints: heapless::Vec<Endpoint, MAX_ENDPOINTS>,
    /// False only after [`EndpointTable::note_all_announced`] and until an endpoint is
    /// created or the peer state is reset: then nothing needs announcing, without a look
    /// at every endpoint on each receive.
    maybe_unannounced: bool,
}

impl EndpointTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            endpoints: heapless::Vec::new(),
            maybe_unannounced: false,
        }
    }

    /// Creates an endpoint. `local: None` allocates the lowest free address from 1024;
    /// `dest: None` leaves it unbound.
    pub fn create(&mut self, name: &str, local: Option<u32>, dest: Option<u32>) -> Result<u32> {
        if name.len() >= RPMSG_NAME_SIZE || name.as_bytes().contains(&0) {
            return Err(Error::NameTooLong);
        }
        let local = match local {
            Some(a) if a == RPMSG_ADDR_ANY || a == RPMSG_NS_ADDR || self.get(a).is_some() => {
                return Err(Error::AddressInUse)
            }
            Some(a) => a,
            None => (RPMSG_RESERVED_ADDRESSES..)
                .take(MAX_ENDPOINTS + 1)
                .find(|a| self.get(*a).is_none())
                .ok_or(Error::TooManyEndpoints)?,
        };
        let mut ep_name = heapless::String::new();
        ep_name.push_str(name).map_err(|_| Error::NameTooLong)?;
        let ep = Endpoint {
            name: ep_name,
            local,
            dest: dest.unwrap_or(RPMSG_ADDR_ANY),
            announce: !name.is_empty() && dest.is_none(),
            announced: false,
            learned: false,
        };
        self.endpoints
            .push(ep)
            .map_err(|_| Error::TooManyEndpoints)?;
        self.maybe_unannounced = true;
        Ok(local)
    }

    /// Removes an endpoint, returning it.
    pub fn remove(&mut self, local: u32) -> Result<Endpoint> {
        let i = self
            .endpoints
            .iter()
            .position(|e| e.local == local)
            .ok_or(Error::EndpointNotFound)?;
        Ok(self.endpoints.swap_remove(i))
    }

    /// The endpoint with this local address.
    pub fn get(&self, local: u32) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.local == local)
    }

    /// All endpoints.
    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter()
    }

    /// Binds an unbound endpoint to `src`, the source of the first message it receives.
    /// Returns whether there is an endpoint `local` (one look for each received message).
    #[inline]
    pub fn learn(&mut self, local: u32, src: u32) -> bool {
        let Some(e) = self.endpoints.iter_mut().find(|e| e.local == local) else {
            return false;
        };
        if e.dest == RPMSG_ADDR_ANY {
            e.dest = src;
            e.learned = true;
        }
        true
    }

    /// Whether a name-service record would undo a binding: a destroy of an address one of
    /// our endpoints is bound to, or an announcement of a bound name at another address.
    pub fn undone_by(&self, name: &str, addr: u32, destroy: bool) -> bool {
        self.endpoints.iter().any(|e| match destroy {
            true => e.dest == addr,
            false => e.name == name && e.dest != RPMSG_ADDR_ANY && e.dest != addr,
        })
    }

    /// Unbinds every endpoint bound to `remote` (the peer destroyed it).
    pub fn unbind(&mut self, remote: u32) {
        for e in self.endpoints.iter_mut().filter(|e| e.dest == remote) {
            e.dest = RPMSG_ADDR_ANY;
        }
    }

    /// Binds the endpoint named `name` to `dest` (the peer announced it), creating the
    /// endpoint with a dynamic address if there is none. Returns its local address.
    pub fn bind(&mut self, name: &str, dest: u32) -> Result<u32> {
        match self.endpoints.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.dest = dest;
                e.learned = true;
                Ok(e.local)
            }
            None => {
                let local = self.create(name, None, Some(dest))?;
                self.learn(local, dest);
                if let Some(e) = self.endpoints.iter_mut().find(|e| e.local == local) {
                    e.learned = true;
                }
                Ok(local)
            }
        }
    }

    /// Forgets every binding learned from the peer and marks every endpoint as not
    /// announced: the peer went away, and a new peer knows nothing about us.
    pub fn reset_peer_state(&mut self) {
        self.maybe_unannounced = true;
        for e in self.endpoints.iter_mut() {
            e.announced = false;
            if e.learned {
                e.dest = RPMSG_ADDR_ANY;
                e.learned = false;
            }
        }
    }

    /// The next endpoint that must still be announced.
    pub fn next_unannounced(&self) -> Option<&Endpoint> {
        if !self.maybe_unannounced {
            return None;
        }
        self.endpoints.iter().find(|e| !e.announced && e.announce)
    }

    /// Whether every endpoint that needs it is known to be announced (see
    /// [`EndpointTable::note_all_announced`]); false says only "maybe not".
    #[inline]
    pub const fn all_announced(&self) -> bool {
        !self.maybe_unannounced
    }

    /// Records that [`EndpointTable::next_unannounced`] found nothing: it answers at once
    /// until an endpoint is created or the peer state is reset.
    pub fn note_all_announced(&mut self) {
        self.maybe_unannounced = self.next_unannounced().is_some();
    }

    /// Marks an endpoint as announced.
    pub fn mark_announced(&mut self, local: u32) {
        if let Some(e) = self.endpoints.iter_mut().find(|e| e.local == local) {
            e.announced = true;
        }
    }
}

/// Builds name-service messages.
#[derive(Debug, Clone, Copy)]
pub struct NameService;

impl NameService {
    /// The 40-byte announcement of `ep` (create, or destroy when `destroy`).
    pub fn message(ep: &Endpoint, destroy: bool) -> NsMessage {
        let mut name = [0u8; RPMSG_NAME_SIZE];
        name[..ep.name.len()].copy_from_slice(ep.name.as_bytes());
        NsMessage {
            name,
            addr: Le32::new(ep.local),
            flags: Le32::new(if destroy {
                RPMSG_NS_DESTROY
            } else {
                RPMSG_NS_CREATE
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_addresses_start_at_1024_and_reuse_gaps() {
        let mut t = EndpointTable::new();
        assert_eq!(t.create("a", None, None), Ok(1024));
        assert_eq!(t.create("b", None, None), Ok(1025));
        t.remove(1024).unwrap();
        assert_eq!(t.create("c", None, None), Ok(1024));
    }

    #[test]
    fn reserved_and_duplicate_addresses_rejected() {
        let mut t = EndpointTable::new();
        assert_eq!(t.create("a", Some(53), None), Err(Error::AddressInUse));
        assert_eq!(
            t.create("a", Some(RPMSG_ADDR_ANY), None),
            Err(Error::AddressInUse)
        );
        assert_eq!(t.create("a", Some(7), None), Ok(7));
        assert_eq!(t.create("b", Some(7), None), Err(Error::AddressInUse));
    }

    #[test]
    fn names_are_limited_to_31_bytes() {
        let mut t = EndpointTable::new();
        assert!(t.create(&"x".repeat(31), None, None).is_ok());
        assert_eq!(
            t.create(&"x".repeat(32), None, None),
            Err(Error::NameTooLong)
        );
        assert_eq!(t.create("a\0b", None, None), Err(Error::NameTooLong));
    }

    #[test]
    fn table_full() {
        let mut t = EndpointTable::new();
        for _ in 0..MAX_ENDPOINTS {
            t.create("", None, None).unwrap();
        }
        assert_eq!(t.create("", None, None), Err(Error::TooManyEndpoints));
    }

    #[test]
    fn learning_binds_once_and_unbind_clears() {
        let mut t = EndpointTable::new();
        let a = t.create("k", None, None).unwrap();
        assert_eq!(t.get(a).unwrap().dest(), None);
        t.learn(a, 2000);
        t.learn(a, 3000);
        assert_eq!(t.get(a).unwrap().dest(), Some(2000));
        t.unbind(2000);
        assert_eq!(t.get(a).unwrap().dest(), None);
    }

    #[test]
    fn announcements() {
        let mut t = EndpointTable::new();
        let a = t.create("k", None, None).unwrap();
        let _bound = t.create("bound", None, Some(5)).unwrap();
        let _anon = t.create("", None, None).unwrap();
        assert_eq!(t.next_unannounced().map(|e| e.local()), Some(a));
        let msg = NameService::message(t.get(a).unwrap(), false);
        assert_eq!(&msg.name[..2], b"k\0");
        assert_eq!(msg.addr.get(), 1024);
        t.mark_announced(a);
        assert!(t.next_unannounced().is_none());
        t.learn(a, 77);
        t.reset_peer_state();
        assert_eq!(t.next_unannounced().map(|e| e.local()), Some(a));
        assert_eq!(t.get(a).unwrap().dest(), None, "learned binding forgotten");
        assert_eq!(t.get(_bound).unwrap().dest(), Some(5), "given binding kept");
    }

    #[test]
    fn bind_creates_or_rebinds_by_name() {
        let mut t = EndpointTable::new();
        let a = t.bind("k", 1024).unwrap();
        assert_eq!(t.get(a).unwrap().dest(), Some(1024));
        assert_eq!(t.bind("k", 1030), Ok(a));
        assert_eq!(t.get(a).unwrap().dest(), Some(1030));
        t.reset_peer_state();
        assert_eq!(t.get(a).unwrap().dest(), None);
    }
}
