//! Liveness: while linked, each of our nodes bumps its heartbeat word in the control area
//! (no doorbell); a peer whose word moved at least once in this session and then stays
//! still for [`SILENCE_US`], with no message from it meanwhile, is taken as gone. (A
//! message proves life too: under QEMU's icount a guest that busy-polls sees its clock run
//! ahead of its peer's, and a long exchange must not look like silence.) A peer that never bumps it (a C OpenAMP
//! node, or one of ours from before heartbeats) is never judged by it.

use super::{LinkState, Role, Rpmsg};
use crate::error::Result;
use crate::platform::Doorbell;

/// How often a linked node bumps its heartbeat, in microseconds.
pub const BEAT_PERIOD_US: u64 = 400_000;
/// How long a peer's heartbeat may stand still before the peer is taken as gone, in
/// microseconds.
pub const SILENCE_US: u64 = 1_000_000;

/// One node's view of the heartbeats of the current session.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Liveness {
    session: u32,
    last_call_us: u64,
    next_beat_us: u64,
    own: u32,
    peer_last: u32,
    peer_seen_us: u64,
    peer_beats: bool,
    /// [`super::Stats::rx_messages`] at the last call.
    rx_seen: u64,
}

impl Liveness {
    fn new(session: u32, now_us: u64) -> Self {
        Self {
            session,
            last_call_us: now_us,
            next_beat_us: now_us,
            peer_seen_us: now_us,
            ..Self::default()
        }
    }

    /// Notes the peer's word and whether a message came from it (`heard`) since the last
    /// call; true if the word has stood still for too long with nothing heard.
    fn peer_silent(&mut self, peer: u32, heard: bool, now_us: u64) -> bool {
        // After a long gap between our own calls we cannot tell whether the peer stopped.
        let gap = now_us.saturating_sub(self.last_call_us);
        self.last_call_us = now_us;
        if peer != self.peer_last || heard || gap >= SILENCE_US / 2 {
            self.peer_beats |= peer != self.peer_last && peer != 0;
            self.peer_last = peer;
            self.peer_seen_us = now_us;
            return false;
        }
        self.peer_beats && now_us.saturating_sub(self.peer_seen_us) >= SILENCE_US
    }
}

impl<'a, R: Role<'a>, D: Doorbell> Rpmsg<'a, R, D> {
    /// Keeps the link alive: bumps our heartbeat every [`BEAT_PERIOD_US`] while the link is
    /// up, and takes a peer whose heartbeat stood still for [`SILENCE_US`] as gone — the host
    /// starts a fresh session for the next remote, a remote asks for one and waits for a
    /// host. Call it with [`crate::Clock::now_us`] at least every few hundred
    /// milliseconds (e.g. whenever the node waits; no call is needed more often). Returns
    /// false when it found the peer gone (and counted it in [`super::Stats::silent_peers`]).
    pub fn keep_alive(&mut self, now_us: u64) -> Result<bool> {
        if self.link != LinkState::Up || !self.session_current() {
            self.liveness = Liveness::default();
            return Ok(true);
        }
        if self.liveness.session != self.session {
            self.liveness = Liveness::new(self.session, now_us);
            self.liveness.rx_seen = self.stats.rx_messages;
        }
        let host = R::HOST;
        if now_us >= self.liveness.next_beat_us {
            let own = self.liveness.own.wrapping_add(1).max(1);
            self.liveness.own = own;
            self.liveness.next_beat_us = now_us.saturating_add(BEAT_PERIOD_US);
            self.control.set_heartbeat(host, own)?;
        }
        let peer = self.control.heartbeat(!host)?;
        let rx = self.stats.rx_messages;
        let heard = core::mem::replace(&mut self.liveness.rx_seen, rx) != rx;
        if !self.liveness.peer_silent(peer, heard, now_us) {
            return Ok(true);
        }
        self.stats.silent_peers += 1;
        self.liveness = Liveness::default();
        R::peer_gone(self)?;
        Ok(false)
    }

    /// When [`Rpmsg::keep_alive`] wants to be called next (in its `now_us` time base): the
    /// next heartbeat of ours while the link is up, `None` otherwise (then nothing is due).
    /// A node that sleeps until then loses nothing: the peer's silence is judged only
    /// over [`SILENCE_US`], four periods.
    pub fn next_keep_alive_us(&self) -> Option<u64> {
        let current = self.link == LinkState::Up
            && self.session_current()
            && self.liveness.session == self.session;
        current.then_some(self.liveness.next_beat_us)
    }

    /// Whether the peer's heartbeat moved in this session: then a peer that stops is
    /// noticed [`SILENCE_US`] after we last saw its word move, at our next call (calls
    /// every [`BEAT_PERIOD_US`]: at most `SILENCE_US + 2 * BEAT_PERIOD_US` after it stopped,
    /// 1.8 s). False for a peer that never beats (a C OpenAMP node),
    /// and for ours until its first beat.
    pub fn peer_heartbeat(&self) -> bool {
        self.link == LinkState::Up
            && self.liveness.session == self.session
            && self.liveness.peer_beats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_without_heartbeat_is_never_silent() {
        let mut l = Liveness::new(1, 0);
        for t in 1..100 {
            assert!(!l.peer_silent(0, false, t * 100_000));
        }
    }

    #[test]
    fn a_heartbeat_that_stops_is_silent_after_a_second() {
        let mut l = Liveness::new(1, 0);
        assert!(!l.peer_silent(1, false, 100_000));
        for t in [300_000, 500_000, 700_000, 900_000, 1_000_000] {
            assert!(!l.peer_silent(1, false, t), "{t}");
        }
        assert!(l.peer_silent(1, false, 1_100_000));
    }

    #[test]
    fn messages_from_a_peer_whose_heartbeat_stands_still_keep_it_alive() {
        let mut l = Liveness::new(1, 0);
        assert!(!l.peer_silent(1, false, 100_000));
        for t in (3..=30).map(|i| i * 100_000) {
            assert!(!l.peer_silent(1, true, t), "{t}");
        }
        assert!(!l.peer_silent(1, false, 3_400_000));
        assert!(!l.peer_silent(1, false, 3_800_000));
        assert!(l.peer_silent(1, false, 4_100_000));
    }

    #[test]
    fn our_own_long_pause_is_not_taken_for_the_peers() {
        let mut l = Liveness::new(1, 0);
        assert!(!l.peer_silent(1, false, 100_000));
        // We did not look for 5 s: start counting again.
        assert!(!l.peer_silent(1, false, 5_000_000));
        assert!(!l.peer_silent(1, false, 5_400_000));
        assert!(!l.peer_silent(1, false, 5_800_000));
        assert!(l.peer_silent(1, false, 6_000_000));
    }
}
