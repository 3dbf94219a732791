//! The remote's application: endpoints `"k"` (echo, then print what came) and `"bench"`
//! (echo silently), and the banner once per host session.

use rpmsg_engine::{Doorbell, Error, Event, LinkState, Remote, RxBuffer};

use crate::{text, Console, ErrorOnce, Part, Port, Sender, BENCH_ENDPOINT, ECHO_ENDPOINT};

/// The remote node and what the application keeps next to it.
#[derive(Debug)]
pub struct RemoteApp<'a, D: Doorbell> {
    /// The engine's node.
    pub node: Remote<'a, D>,
    /// Endpoint "k".
    pub echo: u32,
    /// Endpoint "bench", if offered.
    pub bench: Option<u32>,
    /// Print nothing per message (the native `--quiet`).
    pub quiet: bool,
    /// Messages echoed on "k" (bench traffic not included).
    pub echoed: u64,
    /// The session the banner was printed for.
    pub greeted: Option<u32>,
}

/// What [`receive`] found that the platform may want to handle itself.
#[derive(Debug)]
pub enum Received<'a> {
    /// Nothing pending.
    Idle,
    /// Handled (echoed, or an announcement logged).
    Handled,
    /// A message for an endpoint of the platform's own (not "k" or "bench").
    Other(RxBuffer<'a>),
    /// Receiving failed (logged once).
    Failed(Error),
}

impl<'a, D: Doorbell> RemoteApp<'a, D> {
    /// Creates "k" and then, with `bench`, "bench" on `node` ("k" first: it is announced
    /// first, so a host binds it first, to address 1024). Without "bench" the remote
    /// announces only what the OpenAMP sample's does (its C host binds every announcement
    /// to the same endpoint).
    pub fn new(node: Remote<'a, D>, bench: bool) -> Result<Self, Error> {
        let mut app = Self::unstarted(node);
        app.create_endpoints(bench)?;
        Ok(app)
    }

    /// The application over `node` with no endpoint yet: for a platform that builds it in
    /// place (e.g. in a static) and then calls [`Self::create_endpoints`], so that the
    /// node, a few KiB, is not moved again.
    #[inline]
    pub fn unstarted(node: Remote<'a, D>) -> Self {
        Self {
            node,
            echo: 0,
            bench: None,
            quiet: false,
            echoed: 0,
            greeted: None,
        }
    }

    /// Creates endpoint "k" and, with `bench`, "bench".
    pub fn create_endpoints(&mut self, bench: bool) -> Result<(), Error> {
        self.echo = self.node.create_endpoint(ECHO_ENDPOINT, None, None)?;
        if bench {
            self.bench = Some(self.node.create_endpoint(BENCH_ENDPOINT, None, None)?);
        }
        Ok(())
    }

    /// The session to greet, if the link is up in one not greeted yet (a host restart is a
    /// new session number, possibly without the link ever being seen down).
    pub fn to_greet(&self) -> Option<u32> {
        let session = self.node.session();
        (self.node.link_state() == LinkState::Up && self.greeted != Some(session))
            .then_some(session)
    }
}

/// Prints the banner on `board` if the link is up in a session not greeted yet; true if
/// it did.
pub fn greet<'a, D, P>(port: &mut P, out: &mut impl Console, board: &str) -> bool
where
    D: Doorbell + 'a,
    P: Port<RemoteApp<'a, D>>,
{
    let Some((session, peer)) = port
        .with(|a| {
            let session = a.to_greet()?;
            a.greeted = Some(session);
            Some((session, a.node.peer_id()))
        })
        .flatten()
    else {
        return false;
    };
    crate::link_up(
        out,
        "remote: attached to the host",
        session,
        peer,
        board,
        "Remote",
    );
    true
}

/// Receives one message or announcement and handles it: a message on "k" or "bench" is
/// echoed (waiting up to [`crate::REPLY_TIMEOUT_MS`] for a transmit buffer), and one on
/// "k" then printed (after the banner, if this session has not had it yet); the echo goes
/// out before the print, so the host goes on meanwhile.
pub fn receive<'a, D, P>(
    port: &mut P,
    out: &mut impl Console,
    board: &str,
    errors: &mut ErrorOnce,
) -> Received<'a>
where
    D: Doorbell + 'a,
    P: Port<RemoteApp<'a, D>>,
{
    match port.with(|a| a.node.recv()) {
        None | Some(Ok(None)) => Received::Idle,
        Some(Ok(Some(Event::Message(rx)))) => on_message(port, out, board, errors, rx),
        Some(Ok(Some(Event::NameServiceCreate { name, addr }))) => {
            out.diag(&[
                Part::Str("remote: the host announced endpoint \""),
                Part::Str(&name),
                Part::Str("\" (address "),
                Part::Num(u64::from(addr)),
                Part::Str("): not used"),
            ]);
            Received::Handled
        }
        Some(Ok(Some(Event::NameServiceDestroy { .. }))) => Received::Handled,
        Some(Err(e)) => {
            errors.report(out, "remote", "receive", e);
            Received::Failed(e)
        }
    }
}

fn on_message<'a, D, P>(
    port: &mut P,
    out: &mut impl Console,
    board: &str,
    errors: &mut ErrorOnce,
    rx: RxBuffer<'a>,
) -> Received<'a>
where
    D: Doorbell + 'a,
    P: Port<RemoteApp<'a, D>>,
{
    let Some((echo, bench, quiet)) = port.with(|a| (a.echo, a.bench, a.quiet)) else {
        return Received::Idle;
    };
    let dst = rx.dst();
    if dst != echo && Some(dst) != bench {
        return Received::Other(rx);
    }
    // Echo exactly what came (for "k": the string and its NUL).
    let deadline = port.now().saturating_add(port.ms(crate::REPLY_TIMEOUT_MS));
    match crate::send_blocking(port, |a| a.node.try_echo(dst, &rx), deadline) {
        Err(e) => errors.report(out, "remote", "echo", e),
        Ok(()) if dst == echo => {
            port.with(|a| a.echoed += 1);
        }
        Ok(()) => {}
    }
    if dst == echo && !quiet {
        // The host hears about the echo before we spend time printing.
        port.with(|a| a.node.flush_doorbell());
        greet(port, out, board);
        text::received_start(out);
        crate::put_c_string(out, &rx);
        text::received_end(out);
        out.end();
        port.with(|a| a.node.defer_doorbells());
    }
    port.with(|a| a.node.release_rx(rx));
    Received::Handled
}
