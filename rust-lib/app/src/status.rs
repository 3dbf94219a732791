//! The host's `status` text: ids, link, session, endpoints and counters, one `key: value`
//! a line, ending with `stray messages`.

use rpmsg_engine::{Doorbell, LinkState};

use crate::host::HostApp;
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
    out.put(b"role: host\nown id: ");
    optional(out, node.own_id().map(u64::from));
    out.put(b"\npeer id: ");
    optional(out, node.peer_id().map(u64::from));
    out.put(b"\nlink: ");
    out.put(link.as_bytes());
    out.put(b"\nliveness: ");
    out.put(liveness(app).as_bytes());
    out.put(b"\nsession: ");
    out.put_u64(u64::from(node.session()));
    out.put(b"\nendpoint: ");
    endpoint(out, app, ECHO_ENDPOINT, app.echo);
    out.put(b"\nbench endpoint: ");
    endpoint(out, app, BENCH_ENDPOINT, app.bench_ept);
    let s = node.stats();
    for (key, value) in [
        ("tx messages", s.tx_messages),
        ("rx messages", s.rx_messages),
        ("notifications", s.notifications),
    ]
    .iter()
    .chain(extra)
    {
        counter(out, key, *value);
    }
    let counters = node.counters();
    for (key, value) in [
        ("dropped", s.dropped),
        ("resets", s.resets),
        ("errors", u64::from(counters.total())),
        ("peer faults", u64::from(counters.peer_faults())),
        ("silent peers", s.silent_peers),
        ("stray messages", app.stray),
    ] {
        counter(out, key, value);
    }
    out.put(b"\n");
}

/// What the host can know of whether its remote still runs: only a remote that beats
/// its heartbeat is watched (a C OpenAMP remote does not: `up` may then outlive it).
fn liveness<D: Doorbell>(app: &HostApp<'_, D>) -> &'static str {
    let node = &app.node;
    if node.link_state() != LinkState::Up {
        "no remote"
    } else if node.peer_heartbeat() {
        "heartbeat (a stopped remote is noticed within 1 s)"
    } else if node.published_peer_id().is_some() {
        "heartbeat not seen yet"
    } else {
        "not watched (the remote has no heartbeat, e.g. a C OpenAMP node: a stopped remote is not noticed)"
    }
}

fn counter(out: &mut impl Text, key: &str, value: u64) {
    out.put(b"\n");
    out.put(key.as_bytes());
    out.put(b": ");
    out.put_u64(value);
}

fn optional(out: &mut impl Text, v: Option<u64>) {
    match v {
        Some(v) => out.put_u64(v),
        None => out.put(b"none"),
    }
}

fn endpoint<D: Doorbell>(out: &mut impl Text, app: &HostApp<'_, D>, name: &str, ept: Option<u32>) {
    let Some(local) = ept else {
        out.put(b"none");
        return;
    };
    out.put(name.as_bytes());
    out.put(b" ");
    out.put_u64(u64::from(local));
    match app.node.endpoint(local).and_then(|e| e.dest()) {
        Some(d) => {
            out.put(b" -> ");
            out.put_u64(u64::from(d));
        }
        None => out.put(b" (unbound)"),
    }
}
