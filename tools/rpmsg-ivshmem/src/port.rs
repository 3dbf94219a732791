//! The native [`Port`] of both roles: the application, a nanosecond clock, and the wait on
//! the doorbell ([`platform::wait_for_peer`]); what differs between the roles (how long
//! to sleep when idle, the host's look after its peers) comes from [`PortRole`].

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rpmsg_app::host::HostApp;
use rpmsg_app::remote::RemoteApp;
use rpmsg_app::Port;
use rpmsg_engine::rpmsg::{HostRole, RemoteRole, Role};
use rpmsg_engine::Rpmsg;

use crate::platform::{self, Ivshmem, Wake};

/// The engine node inside an application ([`HostApp`], [`RemoteApp`]).
pub trait AppNode<'a> {
    /// The node's role.
    type Role: Role<'a>;
    /// The node.
    fn node(&mut self) -> &mut Rpmsg<'a, Self::Role, Ivshmem>;
}

impl<'a> AppNode<'a> for HostApp<'a, Ivshmem> {
    type Role = HostRole<'a>;
    fn node(&mut self) -> &mut Rpmsg<'a, HostRole<'a>, Ivshmem> {
        &mut self.node
    }
}

impl<'a> AppNode<'a> for RemoteApp<'a, Ivshmem> {
    type Role = RemoteRole<'a>;
    fn node(&mut self) -> &mut Rpmsg<'a, RemoteRole<'a>, Ivshmem> {
        &mut self.node
    }
}

/// What a role's port keeps and does besides waiting.
pub trait PortRole<A>: Sized {
    /// Longest sleep between two looks at the link when nothing rings.
    const IDLE_POLL: Duration;

    /// After each wait: look after the peers (nothing by default).
    fn after_wait(_port: &mut NativePort<A, Self>) {}
}

/// An application `A` on this platform, with the role's state `R`: what [`rpmsg_app`]
/// drives through [`Port`].
#[derive(Debug)]
pub struct NativePort<A, R> {
    /// The application (and in it the engine node).
    pub app: A,
    /// What the role keeps besides.
    pub role: R,
    /// How long to spin before blocking on the doorbell.
    pub spin: Duration,
    epoch: Instant,
}

impl<A, R> NativePort<A, R> {
    /// A port for `app`, spinning [`platform::DEFAULT_SPIN`] before it blocks.
    pub fn new(app: A, role: R) -> Self {
        Self {
            app,
            role,
            spin: platform::DEFAULT_SPIN,
            epoch: Instant::now(),
        }
    }

    /// Blocks until something happens or `timeout` passes (spinning first, see
    /// [`platform::wait_for_peer`]), then lets the role look after its peers.
    pub fn wait_for<'a>(&mut self, timeout: Duration, extra: Option<BorrowedFd<'_>>) -> Wake
    where
        A: AppNode<'a>,
        R: PortRole<A>,
    {
        let wake = platform::wait_for_peer(self.app.node(), self.spin, timeout, extra);
        R::after_wait(self);
        wake
    }
}

impl<'a, A: AppNode<'a>, R: PortRole<A>> Port<A> for NativePort<A, R> {
    fn with<T>(&mut self, f: impl FnOnce(&mut A) -> T) -> Option<T> {
        Some(f(&mut self.app))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn ticks_per_sec(&self) -> u64 {
        1_000_000_000
    }

    fn wait(&mut self, deadline: u64) {
        let left = Duration::from_nanos(deadline.saturating_sub(self.now()));
        self.wait_for(left.min(R::IDLE_POLL), None);
    }
}
