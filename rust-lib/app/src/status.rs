//! The `status` text: ids, link, session, endpoints and counters, one `key: value` a
//! line. The host's ([`write`]) ends with `stray messages`, the remote's
//! ([`write_remote`], from a [`RemoteSnapshot`]) with `echoed messages`.

use rpmsg_engine::rpmsg::{Role, Rpmsg};
use rpmsg_engine::{Doorbell, LinkState, Stats};

use crate::host::HostApp;
use crate::remote::RemoteApp;
use crate::{Text, BENCH_ENDPOINT, ECHO_ENDPOINT};

/// Writes the status of `app`; `extra`: the platform's own counters, shown after
/// `notifications` (the native peer's doorbell counts).
pub fn write<D: Doorbell>(out: &mut impl Text, app: &HostApp<'_, D>, extra: &[(&str, u64)]) {
    let node = &app.node;
    let link: &str = match node.link_state() {
        LinkState::Down => "down",
        LinkState::Waiting => "waiting for a remote",
        LinkState::Up if app.ready().is_some() => "up",
        LinkState::Up => "up, endpoint \"k\" not announced yet",
        LinkState::Broken => "broken (the remote corrupted a ring; a new session follows)",
    };
    let facts = Facts::of(node, app.echo, app.bench_ept);
    let last = [
        ("silent peers", facts.stats.silent_peers),
        ("stray messages", app.stray),
    ];
    facts.write(out, "host", (link, Some(liveness(app))), extra, &last);
}

/// What the remote's `status` shows, copied out of its node in one go: the firmware's
/// receive thread, which owns the node, publishes one after every pass, and its shell
/// prints the last one without touching the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSnapshot {
    facts: Facts,
    link: LinkState,
    echoed: u64,
}

impl RemoteSnapshot {
    /// The status of `app` now.
    pub fn of<D: Doorbell>(app: &RemoteApp<'_, D>) -> Self {
        let node = &app.node;
        Self {
            facts: Facts::of(node, Some(app.echo), app.bench),
            link: node.link_state(),
            echoed: app.echoed,
        }
    }
}

/// Writes the remote's status from `snapshot`.
pub fn write_remote(out: &mut impl Text, snapshot: &RemoteSnapshot) {
    let link: &str = match snapshot.link {
        LinkState::Down => "down (waiting for a host)",
        LinkState::Waiting => "waiting for a new session from the host",
        LinkState::Up => "up",
        LinkState::Broken => "broken (the host corrupted a ring; a new session follows)",
    };
    let echoed = ("echoed messages", snapshot.echoed);
    snapshot
        .facts
        .write(out, "remote", (link, None), &[], &[echoed]);
}

/// The facts both roles show: a local endpoint is `(address, bound destination)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    own_id: Option<u16>,
    peer_id: Option<u16>,
    session: u32,
    echo: Option<(u32, Option<u32>)>,
    bench: Option<(u32, Option<u32>)>,
    stats: Stats,
    errors: u32,
    peer_faults: u32,
}

impl Facts {
    /// The facts of `node`, whose echo and bench endpoints are at `echo` and `bench`.
    fn of<'a, R: Role<'a>, D: Doorbell>(
        node: &Rpmsg<'a, R, D>,
        echo: Option<u32>,
        bench: Option<u32>,
    ) -> Self {
        let ept = |local: Option<u32>| local.map(|l| (l, node.endpoint(l).and_then(|e| e.dest())));
        let counters = node.counters();
        Facts {
            own_id: node.own_id(),
            peer_id: node.peer_id(),
            session: node.session(),
            echo: ept(echo),
            bench: ept(bench),
            stats: *node.stats(),
            errors: counters.total(),
            peer_faults: counters.peer_faults(),
        }
    }

    /// The text of `role`, with its `link` text (and `liveness` line, if given), `extra`
    /// after `notifications` and `last` at the end.
    fn write(
        &self,
        out: &mut impl Text,
        role: &str,
        (link, liveness): (&str, Option<&str>),
        extra: &[(&str, u64)],
        last: &[(&str, u64)],
    ) {
        out.put(b"role: ");
        out.put(role.as_bytes());
        out.put(b"\nown id: ");
        optional(out, self.own_id.map(u64::from));
        out.put(b"\npeer id: ");
        optional(out, self.peer_id.map(u64::from));
        out.put(b"\nlink: ");
        out.put(link.as_bytes());
        if let Some(liveness) = liveness {
            out.put(b"\nliveness: ");
            out.put(liveness.as_bytes());
        }
        out.put(b"\nsession: ");
        out.put_u64(u64::from(self.session));
        out.put(b"\nendpoint: ");
        endpoint(out, ECHO_ENDPOINT, self.echo);
        out.put(b"\nbench endpoint: ");
        endpoint(out, BENCH_ENDPOINT, self.bench);
        let s = &self.stats;
        counters(
            out,
            &[
                ("tx messages", s.tx_messages),
                ("rx messages", s.rx_messages),
                ("notifications", s.notifications),
            ],
        );
        counters(out, extra);
        counters(
            out,
            &[
                ("dropped", s.dropped),
                ("resets", s.resets),
                ("errors", u64::from(self.errors)),
                ("peer faults", u64::from(self.peer_faults)),
            ],
        );
        counters(out, last);
        out.put(b"\n");
    }
}

/// What the host can know of whether its remote still runs: only a remote that beats
/// its heartbeat is watched (a C OpenAMP remote does not: `up` may then outlive it).
fn liveness<D: Doorbell>(app: &HostApp<'_, D>) -> &'static str {
    let node = &app.node;
    if node.link_state() != LinkState::Up {
        "no remote"
    } else if node.peer_heartbeat() {
        "heartbeat (a stopped remote is noticed within 2 s)"
    } else if node.published_peer_id().is_some() {
        "heartbeat not seen yet"
    } else {
        "not watched (the remote has no heartbeat, e.g. a C OpenAMP node: a stopped remote is not noticed)"
    }
}

/// `key: value` lines, each after a newline. (Not inlined: one loop for the four lists.)
#[inline(never)]
fn counters(out: &mut dyn Text, list: &[(&str, u64)]) {
    for (key, value) in list {
        out.put(b"\n");
        out.put(key.as_bytes());
        out.put(b": ");
        out.put_u64(*value);
    }
}

fn optional(out: &mut impl Text, v: Option<u64>) {
    match v {
        Some(v) => out.put_u64(v),
        None => out.put(b"none"),
    }
}

fn endpoint(out: &mut impl Text, name: &str, ept: Option<(u32, Option<u32>)>) {
    let Some((local, dest)) = ept else {
        out.put(b"none");
        return;
    };
    out.put(name.as_bytes());
    out.put(b" ");
    out.put_u64(u64::from(local));
    match dest {
        Some(d) => {
            out.put(b" -> ");
            out.put_u64(u64::from(d));
        }
        None => out.put(b" (unbound)"),
    }
}
