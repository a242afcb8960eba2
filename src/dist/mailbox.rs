//! [`DistMailbox`]: a Trellis process's address on the cluster.

use std::fmt;
use std::sync::Arc;

use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use tokio::sync::mpsc;

use super::call::call_down;
use super::term::{ErlPid, ErlRef, Term, ToTerm};
use super::{Atom, Dest, DistError, Inbound, Incoming, Inner, Watch, atom, tuple};

/// A Trellis process's address on the cluster: its own Erlang pid, an
/// optional registered name, and a queue of [`Incoming`].
///
/// Dropped (or [`closed`](DistMailbox::close)), it leaves: its name is
/// released, remote monitors get `DOWN` and links `EXIT` (reason `normal`
/// when dropped).
///
/// # Examples
///
/// ```
/// use trellis::dist::{self, DistOptions, Incoming, atom};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), trellis::dist::DistError> {
/// let id = std::process::id();
/// let a = dist::start(DistOptions::short(format!("doc_mb_a_{id}")).cookie("c")).await?;
/// let b = dist::start(DistOptions::short(format!("doc_mb_b_{id}")).cookie("c")).await?;
/// let mut inbox = b.register("inbox")?;
/// let mut outbox = a.mailbox()?;
/// outbox.send(("inbox", b.name()), atom("hello")).await?;
/// let Some(Incoming::Message { from, term }) = inbox.recv().await else { panic!() };
/// assert_eq!((from.as_ref(), term), (Some(outbox.pid()), atom("hello")));
/// // Monitors: `DOWN` when the watched mailbox leaves. (`sync` follows the
/// // monitor on the same connection: once it is in, so is the monitor.)
/// let monitor = outbox.monitor(inbox.pid()).await?;
/// outbox.send(inbox.pid(), atom("sync")).await?;
/// assert!(matches!(inbox.recv().await, Some(Incoming::Message { .. })));
/// inbox.close(atom("done"));
/// let Some(Incoming::Down { monitor: fired, reason, .. }) = outbox.recv().await else { panic!() };
/// assert_eq!((fired, reason), (monitor, atom("done")));
/// # Ok(()) }
/// ```
pub struct DistMailbox {
    pub(super) inner: Arc<Inner>,
    pub(super) id: u32,
    pub(super) pid: ErlPid,
    pub(super) rx: mpsc::UnboundedReceiver<Inbound>,
}

impl fmt::Debug for DistMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistMailbox({})", self.pid)
    }
}

impl DistMailbox {
    /// This mailbox's pid, as Erlang processes see it.
    pub fn pid(&self) -> &ErlPid {
        &self.pid
    }

    /// The next message or signal; `None` once the node stopped.
    ///
    /// A message from another node is checked by its connection's reader
    /// when it arrives, and its term decoded here, by the receiving task (so
    /// that the task that frees the term also made it). Until then it waits
    /// as bytes, in a buffer its connection shares among the messages it
    /// reads (64 KiB at a time).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn recv(&mut self) -> Option<Incoming> {
        loop {
            if let Some(incoming) = self.rx.recv().await?.into_incoming() {
                return Some(incoming);
            }
        }
    }

    /// Sends `message` to `to` (a pid or `{name, node}`), connecting to its
    /// node first if needed. As in Erlang, sending to a process that does
    /// not exist is not an error.
    ///
    /// Like an Erlang process sending on a busy distribution port, the
    /// sender then waits while more than 1 MiB of one-way sends wait for
    /// the connection's writer (a sender faster than the network is held
    /// back, not queued without bound), until the writer takes them or the
    /// connection closes (at the latest when its ticks go unanswered).
    ///
    /// # Errors
    ///
    /// The connection errors of [`DistNode::connect`](super::DistNode::connect).
    ///
    /// # Cancel safety
    ///
    /// Once connected, the message is queued before anything waits:
    /// dropping the future while it is held back still sends it.
    pub async fn send(&self, to: impl Into<Dest>, message: impl ToTerm) -> Result<(), DistError> {
        // A Trellis pid that names no Erlang process (a local one, or one
        // another node made): dropped, as a send to a dead pid is.
        let Ok(to) = to.into().resolve(&self.inner) else {
            return Ok(());
        };
        self.inner.send(&self.pid, &to, message.to_term()).await
    }

    /// Monitors `to`: an [`Incoming::Down`] arrives when it ends (`noproc`
    /// at once if it does not exist, `noconnection` if its node goes down
    /// or silent). Returns the monitor reference.
    ///
    /// A mailbox of this same node can be monitored only for its absence
    /// (`noproc` at once); monitor local Trellis processes with
    /// [`process`](crate::process)'s monitors instead.
    ///
    /// # Errors
    ///
    /// The connection errors of [`DistNode::connect`](super::DistNode::connect).
    pub async fn monitor(&self, to: impl Into<Dest>) -> Result<ErlRef, DistError> {
        let to = to.into().resolve(&self.inner)?;
        let reference = self.inner.make_ref();
        let node = to.node().to_string();
        if node == self.inner.name {
            // A local target: only its absence is reported (no DOWN later).
            let target = match &to {
                Dest::Pid(pid) => PidOrAtom::Pid(pid.clone()),
                Dest::Name { name, .. } => PidOrAtom::Atom(Atom::from(name.as_str())),
                Dest::Process(_) => return Err(DistError::NoProcess { to: to.to_string() }),
            };
            if self.inner.resolve_local(&target).is_none() {
                self.inner.deliver(
                    self.id,
                    Incoming::Down {
                        monitor: reference.clone(),
                        process: to.as_term(),
                        reason: atom("noproc"),
                    },
                );
            }
            return Ok(reference);
        }
        self.inner.ensure_connected(&node).await?;
        let target = match &to {
            Dest::Pid(pid) => PidOrAtom::Pid(pid.clone()),
            Dest::Name { name, .. } => PidOrAtom::Atom(Atom::from(name.as_str())),
            Dest::Process(_) => return Err(DistError::NoProcess { to: to.to_string() }),
        };
        self.inner.state().watching.insert(
            reference.id.clone(),
            Watch {
                mailbox: self.id,
                node: node.clone(),
                process: to.as_term(),
            },
        );
        if !self.inner.send_to(
            &node,
            Message::monitor_p(self.pid.clone(), target, reference.clone()),
        ) {
            self.inner.state().watching.remove(&reference.id);
            self.inner.deliver(
                self.id,
                Incoming::Down {
                    monitor: reference.clone(),
                    process: to.as_term(),
                    reason: atom("noconnection"),
                },
            );
        }
        Ok(reference)
    }

    /// Removes the monitor `monitor` (its `DOWN` will not arrive unless
    /// already queued).
    pub fn demonitor(&self, monitor: &ErlRef) {
        let watch = self.inner.state().watching.remove(&monitor.id);
        if let Some(watch) = watch {
            let target = match watch.process {
                Term::Pid(pid) => PidOrAtom::Pid(pid),
                Term::Tuple(t) => match t.elements.into_iter().next() {
                    Some(Term::Atom(a)) => PidOrAtom::Atom(a),
                    _ => return,
                },
                _ => return,
            };
            self.inner.send_to(
                &watch.node,
                Message::demonitor_p(self.pid.clone(), target, monitor.clone()),
            );
        }
    }

    /// Links this mailbox with the remote process `to`: when either ends,
    /// the other gets an exit signal (here an [`Incoming::Exit`], `noproc`
    /// at once if `to` does not exist, `noconnection` if its node goes down).
    ///
    /// # Errors
    ///
    /// The connection errors of [`DistNode::connect`](super::DistNode::connect).
    pub async fn link(&self, to: &ErlPid) -> Result<(), DistError> {
        let node = to.node.name.clone();
        self.inner.ensure_connected(&node).await?;
        {
            let mut state = self.inner.state();
            let links = state.links.entry(self.id).or_default();
            if !links.contains(to) {
                links.push(to.clone());
            }
        }
        self.inner
            .send_to(&node, Message::link(self.pid.clone(), to.clone()));
        Ok(())
    }

    /// Leaves with `reason`: remote monitors get `DOWN` and links `EXIT`
    /// with it.
    pub fn close(self, reason: Term) {
        self.inner.close_mailbox(self.id, reason);
    }

    /// One `gen:call`: monitor, send, wait for the reply or the `DOWN`.
    pub(super) async fn call(&mut self, to: &Dest, request: Term) -> Result<Term, DistError> {
        let monitor = self.monitor(to.clone()).await?;
        let tag = monitor.to_term();
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![self.pid.to_term(), tag.clone()]),
            request,
        ]);
        self.send(to.clone(), call).await?;
        loop {
            match self.recv().await {
                None => return Err(DistError::Stopped),
                Some(Incoming::Message {
                    term: Term::Tuple(t),
                    ..
                }) if t.elements.len() == 2 && t.elements[0] == tag => {
                    self.demonitor(&monitor);
                    let mut elements = t.elements;
                    return Ok(elements.pop().unwrap_or_else(|| atom("undefined")));
                }
                Some(Incoming::Down {
                    monitor: m, reason, ..
                }) if m == monitor => return Err(call_down(to, &reason)),
                Some(_) => {}
            }
        }
    }
}

impl Drop for DistMailbox {
    fn drop(&mut self) {
        self.inner.close_mailbox(self.id, atom("normal"));
    }
}
