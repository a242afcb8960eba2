//! Calls across nodes: [`DistNode::call`] (`gen:call`'s protocol, on a fast
//! path for remote destinations) and [`DistNode::export`] (a Trellis
//! gen_server answering `gen_server:call` from the cluster).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use tokio::sync::mpsc;

use super::reason_to_term;
use super::term::{self, ErlPid, ErlRef, FromTerm, Term, TermError, ToTerm};
use super::{
    Atom, Dest, DistError, DistNode, Incoming, Inner, Watch, as_atom, atom, tagged, tuple,
};
use crate::gen_server::{GenServer, Server};

/// Answers one `gen_server:call` to an exported server: `(caller, tag,
/// request)`.
pub(super) type Exported = Arc<dyn Fn(ErlPid, Term, Term) + Send + Sync>;

impl Inner {
    /// Sends `{Tag, Reply}` from `me` to the `caller` of a
    /// `gen_server:call` (dropped if its node is gone).
    pub(super) fn reply(&self, me: ErlPid, caller: ErlPid, tag: Term, reply: Term) {
        let node = caller.node.name.clone();
        let answer = term::wire_safe(tuple(vec![tag, reply]));
        if node == self.name {
            // A call from this node's own mailbox.
            self.deliver(
                caller.id,
                Incoming::Message {
                    from: Some(me),
                    term: answer,
                },
            );
            return;
        }
        self.send_to(&node, Message::send_sender(me, caller, answer));
    }

    /// One `gen:call` to a process of another node, on the fast path: the
    /// `MONITOR_P` and the request leave in one write, the reply comes
    /// straight to this task's queue, and the `DEMONITOR_P` rides with the
    /// next frame to that node (or its next tick).
    ///
    /// Cancel safe: dropped, it forgets the call (a late reply is dropped).
    pub(super) async fn call_remote(
        self: &Arc<Self>,
        to: &Dest,
        request: Term,
    ) -> Result<Term, DistError> {
        let node = to.node();
        self.ensure_connected(node).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let me = self.pid(id);
        let reference = self.make_ref();
        let tag = reference.to_term();
        let target = match to {
            Dest::Pid(pid) => PidOrAtom::Pid(pid.clone()),
            Dest::Name { name, .. } => PidOrAtom::Atom(Atom::from(name.as_str())),
            Dest::Process(_) => return Err(DistError::NoProcess { to: to.to_string() }),
        };
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![me.to_term(), tag.clone()]),
            term::wire_safe(request),
        ]);
        let monitor = Message::monitor_p(me.clone(), target.clone(), reference.clone());
        let send = match to {
            Dest::Name { name, .. } => {
                Message::reg_send(me.clone(), Atom::from(name.as_str()), call)
            }
            Dest::Pid(pid) => Message::send_sender(me.clone(), pid.clone(), call),
            Dest::Process(_) => unreachable!("rejected above"),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let conn = {
            let mut state = self.state();
            if state.stopped {
                return Err(DistError::Stopped);
            }
            state.mailboxes.insert(id, tx);
            state.watching.insert(
                reference.id.clone(),
                Watch {
                    mailbox: id,
                    node: node.to_string(),
                    process: to.as_term(),
                },
            );
            state.conns.get(node).map(|c| c.out.clone())
        };
        let _forget = PendingCall {
            inner: self,
            id,
            me,
            target,
            reference: reference.clone(),
            node,
        };
        // Both frames in one write, encoded under the connection's lock
        // (with the peer's atom cache if it takes it).
        match conn.map(|out| out.send_messages([monitor, send])) {
            Some(Ok(true)) => {}
            Some(Err(_)) => {
                return Err(DistError::Term(TermError {
                    expected: "a request the external term format encodes",
                    got: "one it does not".into(),
                }));
            }
            Some(Ok(false)) | None => {
                return Err(DistError::NodeDown {
                    node: node.to_string(),
                    reason: "not connected".into(),
                });
            }
        }
        loop {
            let Some(inbound) = rx.recv().await else {
                return Err(DistError::Stopped);
            };
            match inbound.into_incoming() {
                Some(Incoming::Message {
                    term: Term::Tuple(t),
                    ..
                }) if t.elements.len() == 2 && t.elements[0] == tag => {
                    let mut elements = t.elements;
                    return Ok(elements.pop().unwrap_or_else(|| atom("undefined")));
                }
                Some(Incoming::Down {
                    monitor: m, reason, ..
                }) if m == reference => return Err(call_down(to, &reason)),
                _ => {}
            }
        }
    }
}

impl DistNode {
    /// Calls the gen_server `to` as `gen_server:call` does: monitors it,
    /// sends `{'$gen_call', {Self, Ref}, Request}`, and waits for the reply,
    /// its `DOWN` or the timeout, whichever comes first. `to` is a
    /// `(name, node)` pair, an [`ErlPid`], or a Trellis
    /// [`Pid`](crate::process::Pid) of a remote process
    /// ([`DistNode::to_pid`]).
    ///
    /// To another node, the monitor and the request leave in one write and
    /// the `DEMONITOR_P` goes with the next frame to that node (or its next
    /// tick, a quarter of `net_ticktime`), so the server may see the
    /// finished call's monitor that long.
    ///
    /// # Errors
    ///
    /// [`DistError::NoProcess`] at once for an unknown name or dead pid,
    /// [`DistError::NodeDown`] if the node goes down or silent meanwhile,
    /// [`DistError::Exited`] if the server ends, [`DistError::Timeout`],
    /// [`DistError::Term`] if the reply does not convert, and the
    /// connection errors of [`DistNode::connect`].
    ///
    /// # Cancel safety
    ///
    /// Dropped before the reply, the call is abandoned: a late reply is
    /// discarded with its mailbox.
    pub async fn call<R: FromTerm>(
        &self,
        to: impl Into<Dest>,
        request: impl ToTerm,
        timeout: Duration,
    ) -> Result<R, DistError> {
        let to = to.into().resolve(&self.inner)?;
        let request = request.to_term();
        let outcome = if to.node() == self.inner.name {
            let mut mailbox = self.mailbox()?;
            tokio::time::timeout(timeout, mailbox.call(&to, request)).await
        } else {
            tokio::time::timeout(timeout, self.inner.call_remote(&to, request)).await
        };
        let reply = match outcome {
            Ok(reply) => reply?,
            Err(_) => {
                return Err(DistError::Timeout {
                    to: to.to_string(),
                    timeout,
                });
            }
        };
        Ok(R::from_term(reply)?)
    }

    /// Makes the Trellis gen_server `server` answer `gen_server:call({name,
    /// Node}, Request)` from the cluster: requests convert with
    /// [`FromTerm`] into `S::Call`, replies with [`ToTerm`]. A request that
    /// does not convert is answered `{error, badarg}` and logged.
    ///
    /// Runs until the node stops or `server` ends: then the name is
    /// released and remote monitors of it (`erlang:monitor(process, {Name,
    /// Node})`) get `DOWN` with the server's reason ([`reason_to_term`]).
    ///
    /// # Errors
    ///
    /// [`DistError::NameTaken`], [`DistError::Stopped`].
    pub fn export<S>(&self, name: &str, server: Server<S>) -> Result<(), DistError>
    where
        S: GenServer,
        S::Call: FromTerm,
        S::Reply: ToTerm,
    {
        let mut mailbox = self.register(name)?;
        // The server's end releases the name, and remote monitors of it get
        // its reason.
        if let Some(entry) = crate::process::Entry::find(server.pid()) {
            let weak = Arc::downgrade(&self.inner);
            let id = mailbox.id;
            let server_entry = Arc::downgrade(&entry);
            let watching = entry.on_exit(Box::new(move |_| {
                let reason = server_entry
                    .upgrade()
                    .and_then(|e| e.exit_reason())
                    .map_or_else(|| atom("normal"), |r| reason_to_term(&r));
                if let Some(inner) = weak.upgrade() {
                    inner.close_mailbox(id, reason);
                }
            }));
            if !watching {
                let reason = server
                    .exit_reason()
                    .map_or_else(|| atom("noproc"), |r| reason_to_term(&r));
                self.inner.close_mailbox(id, reason);
            }
        }
        // Calls go from the connection's reader straight to a task that
        // calls the server and writes the reply (no hop through the
        // mailbox); anything else reaches the mailbox and is dropped. No
        // timeout of our own, as Erlang's server side has none: the caller
        // has its own, and a server that ends fails the call at once.
        let me = mailbox.pid.clone();
        let weak = Arc::downgrade(&self.inner);
        let handler: Exported = Arc::new(move |caller: ErlPid, tag: Term, request: Term| {
            let (server, me, weak) = (server.clone(), me.clone(), weak.clone());
            tokio::spawn(async move {
                let reply = match S::Call::from_term(request) {
                    Ok(request) => match server.call(request, crate::gen_server::INFINITY).await {
                        Ok(reply) => reply.to_term(),
                        Err(error) => {
                            tracing::warn!(%error, "exported gen_server call failed");
                            tagged("error", vec![error.to_string().to_term()])
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "request from the cluster does not convert");
                        tagged("error", vec![atom("badarg")])
                    }
                };
                if let Some(inner) = weak.upgrade() {
                    inner.reply(me, caller, tag, reply);
                }
            });
        });
        self.inner.state().exports.insert(mailbox.id, handler);
        self.inner
            .spawn(async move { while mailbox.recv().await.is_some() {} });
        Ok(())
    }
}

/// A call in flight on [`Inner::call_remote`]'s fast path; dropped (the
/// reply came, or the caller gave up), it removes the call's queue and
/// monitor, and sends the `DEMONITOR_P` if the monitor had not fired.
struct PendingCall<'a> {
    inner: &'a Arc<Inner>,
    id: u32,
    me: ErlPid,
    target: PidOrAtom,
    reference: ErlRef,
    node: &'a str,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        let (watched, out) = {
            let mut state = self.inner.state();
            state.mailboxes.remove(&self.id);
            let watched = state.watching.remove(&self.reference.id).is_some();
            (watched, state.conns.get(self.node).map(|c| c.out.clone()))
        };
        if let (true, Some(out)) = (watched, out) {
            let demonitor =
                Message::demonitor_p(self.me.clone(), self.target.clone(), self.reference.clone());
            if let Some(frame) = out.encode(demonitor) {
                out.send_deferred(frame);
            }
        }
    }
}

/// The error a call's monitor firing with `reason` gives.
pub(super) fn call_down(to: &Dest, reason: &Term) -> DistError {
    match as_atom(reason) {
        Some("noproc") => DistError::NoProcess { to: to.to_string() },
        Some("noconnection") => DistError::NodeDown {
            node: to.node().to_string(),
            reason: "noconnection".into(),
        },
        _ => DistError::Exited {
            to: to.to_string(),
            reason: reason.to_string(),
        },
    }
}

/// Whether `term` is `{'$gen_call', {From, Tag}, Request}`.
pub(super) fn is_gen_call(term: &Term) -> bool {
    matches!(term, Term::Tuple(t) if t.elements.len() == 3 && as_atom(&t.elements[0]) == Some("$gen_call"))
}

/// The parts of `{'$gen_call', {From, Tag}, Request}`.
pub(super) fn gen_call_parts(term: Term) -> Option<(ErlPid, Term, Term)> {
    let Term::Tuple(t) = term else { return None };
    let [kind, from, request]: [Term; 3] = t.elements.try_into().ok()?;
    if as_atom(&kind) != Some("$gen_call") {
        return None;
    }
    let Term::Tuple(from) = from else { return None };
    let [caller, tag]: [Term; 2] = from.elements.try_into().ok()?;
    let Term::Pid(caller) = caller else {
        return None;
    };
    Some((caller, tag, request))
}
