//! Whom to ring while the peer publishes no ivshmem id (a C OpenAMP peer).
//!
//! Our nodes publish their ivshmem id in the control area, and a published id always wins
//! ([`crate::Rpmsg::peer_id`]). The OpenAMP `dual_qemu_ivshmem` sample publishes nothing: it
//! assumes adjacent ids (its host rings own id + 1, its remote own id − 1, as `uint16_t`), so
//! a node that cannot ask the ivshmem server for its peer list (Zephyr's ivshmem driver has
//! none) uses the same rule, or a configured id where ids are not adjacent.
//!
//! With the automatic rule a node also rings its *other* neighbour: a C peer that connected
//! to the server before us has the id on that side (the sample's own start order, host
//! first, does not hold then). Ringing an id nobody has is ignored by QEMU, and a C peer
//! looks at its rings only when it is rung, so the extra doorbell is what lets it start.

/// Which side of the link a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The virtio driver side ([`crate::Host`]).
    Host,
    /// The virtio device side ([`crate::Remote`]).
    Remote,
}

/// The configuration value meaning "automatic" (`CONFIG_RPMSG_IVSHMEM_PEER_ID=-1`).
pub const PEER_ID_AUTO: i32 = -1;

/// How the peer's id is chosen while it publishes none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerIdRule {
    /// The OpenAMP sample's rule: the host rings own id + 1, the remote own id − 1 (and
    /// each also its other neighbour, see [`PeerIdRule::also`]).
    Adjacent,
    /// This id, and no other (deployments whose ids are not adjacent).
    Configured(u16),
}

impl PeerIdRule {
    /// The rule for a configuration value: [`PEER_ID_AUTO`] (−1) is [`PeerIdRule::Adjacent`],
    /// 0..=65535 a [`PeerIdRule::Configured`] id; anything else is `None` (invalid).
    pub const fn from_config(value: i32) -> Option<Self> {
        match value {
            PEER_ID_AUTO => Some(Self::Adjacent),
            0..=0xFFFF => Some(Self::Configured(value as u16)),
            _ => None,
        }
    }

    /// The id to ring for a node of `side` whose own id is `own_id`
    /// ([`crate::Config::fallback_peer_id`]).
    pub const fn peer_id(self, side: Side, own_id: u16) -> u16 {
        match (self, side) {
            (Self::Configured(id), _) => id,
            (Self::Adjacent, Side::Host) => own_id.wrapping_add(1),
            (Self::Adjacent, Side::Remote) => own_id.wrapping_sub(1),
        }
    }

    /// The other id to ring as well: with [`PeerIdRule::Adjacent`] the other neighbour (where
    /// a C peer that connected before us sits), else none.
    pub const fn also(self, side: Side, own_id: u16) -> Option<u16> {
        match (self, side) {
            (Self::Configured(_), _) => None,
            (Self::Adjacent, Side::Host) => Some(own_id.wrapping_sub(1)),
            (Self::Adjacent, Side::Remote) => Some(own_id.wrapping_add(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values() {
        assert_eq!(PeerIdRule::from_config(-1), Some(PeerIdRule::Adjacent));
        assert_eq!(PeerIdRule::from_config(0), Some(PeerIdRule::Configured(0)));
        assert_eq!(
            PeerIdRule::from_config(65535),
            Some(PeerIdRule::Configured(65535))
        );
        for bad in [-2, 65536, i32::MIN, i32::MAX] {
            assert_eq!(PeerIdRule::from_config(bad), None, "{bad}");
        }
    }

    #[test]
    fn adjacent_is_the_openamp_sample_rule() {
        let r = PeerIdRule::Adjacent;
        assert_eq!(r.peer_id(Side::Host, 0), 1);
        assert_eq!(r.peer_id(Side::Remote, 1), 0);
        assert_eq!(r.peer_id(Side::Host, 7), 8);
        assert_eq!(r.peer_id(Side::Remote, 8), 7);
        // As the sample's uint16_t arithmetic: a remote with id 0 rings 0xFFFF.
        assert_eq!(r.peer_id(Side::Remote, 0), 0xFFFF);
        assert_eq!(r.peer_id(Side::Host, 0xFFFF), 0);
    }

    #[test]
    fn adjacent_also_rings_the_other_neighbour() {
        let r = PeerIdRule::Adjacent;
        // A C remote that connected before our host (ids 0 and 1).
        assert_eq!(r.also(Side::Host, 1), Some(0));
        // A C host that connected after our remote (ids 1 and 0).
        assert_eq!(r.also(Side::Remote, 0), Some(1));
        assert_eq!(r.also(Side::Host, 0), Some(0xFFFF));
    }

    #[test]
    fn a_configured_id_is_the_only_one() {
        let r = PeerIdRule::Configured(5);
        assert_eq!(r.peer_id(Side::Host, 0), 5);
        assert_eq!(r.peer_id(Side::Remote, 9), 5);
        assert_eq!(r.also(Side::Host, 0), None);
        assert_eq!(r.also(Side::Remote, 9), None);
    }
}
