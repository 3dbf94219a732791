//! `rpmsg-ivshmem status`: what the shared control area and the server say about the link,
//! read without disturbing it (we attach as one more peer and only read).

use std::fmt::Write as _;

use rpmsg_engine::layout::{STATUS_DRIVER_OK, STATUS_READY};
use rpmsg_engine::shm::ControlView;

use crate::cli::Common;
use crate::error::{Error, Result};
use crate::node;

/// Builds the status text, one `key: value` a line.
pub fn run(common: &Common) -> Result<String> {
    let attached = node::attach(common)?;
    let region = node::region(&attached.mapping)?;
    let ivshmem = &attached.ivshmem;
    let control = ControlView::new(region).map_err(|e| Error::runtime(e.to_string()))?;
    let alive = |id: Option<u16>| match id {
        Some(id) if ivshmem.is_connected(id) => format!("{id} (connected)"),
        Some(id) => format!("{id} (not connected)"),
        None => "none".to_string(),
    };
    let mut out = String::new();
    let peers: Vec<String> = ivshmem.peer_ids().iter().map(u16::to_string).collect();
    let _ = writeln!(out, "server: {}", common.socket.display());
    let _ = writeln!(out, "shared memory: {} bytes", ivshmem.shm_size());
    let _ = writeln!(out, "own id: {}", ivshmem.id());
    let _ = writeln!(out, "other peers: {}", peers.join(", "));
    let status = control.status().unwrap_or(0);
    let _ = writeln!(
        out,
        "virtio status: {status:#04x}{}",
        if status & STATUS_DRIVER_OK != 0 {
            " (DRIVER_OK)"
        } else {
            ""
        }
    );
    match control.published() {
        Ok(Some(p)) => {
            let (remote, attached_session) = control.remote().unwrap_or((None, 0));
            let _ = writeln!(out, "host id: {}", alive(p.host_id));
            let _ = writeln!(out, "session: {}", p.host_session);
            let _ = writeln!(
                out,
                "layout: {} buffers of {} bytes per direction, vring align {}",
                p.queue_size, p.buf_size, p.align
            );
            let _ = writeln!(out, "remote id: {}", alive(remote));
            let _ = writeln!(out, "remote session: {attached_session}");
            let host_alive = p.host_id.is_some_and(|h| ivshmem.is_connected(h));
            let remote_alive = remote.is_some_and(|r| ivshmem.is_connected(r));
            let link = if status != STATUS_READY && host_alive {
                "down (the host is (re)initialising the shared memory)"
            } else if status != STATUS_READY {
                "down (the host stopped; waiting for a host)"
            } else if !host_alive {
                "down (the host that initialised the shared memory is gone)"
            } else if attached_session == p.host_session && remote_alive {
                "up"
            } else if remote_alive && attached_session == 0 {
                "waiting (the remote asked the host for a new session)"
            } else {
                "waiting for a remote"
            };
            let _ = writeln!(out, "link: {link}");
        }
        Ok(None) if status & STATUS_DRIVER_OK != 0 => {
            let _ = writeln!(
                out,
                "host id: unknown (no control block: an OpenAMP C host?)\nlink: unknown"
            );
        }
        Ok(None) => {
            let _ = writeln!(
                out,
                "link: down (no host has initialised the shared memory)"
            );
        }
        Err(e) => {
            let _ = writeln!(out, "link: unknown (control block unreadable: {e})");
        }
    }
    Ok(out)
}
