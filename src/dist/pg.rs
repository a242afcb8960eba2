//! A [`pg`](crate::pg) scope shared with the cluster: a scope process,
//! registered under the scope's name, that speaks the protocol Erlang's
//! `pg` scopes speak to each other (OTP 23+): `{discover, Peer}`, a
//! `{sync, Peer, Groups}` cast, `{join, Peer, Group, Pids}`,
//! `{leave, Peer, Pids, Groups}`, and a monitor on each peer scope process.
//!
//! Erlang's scopes discover only visible nodes (`net_kernel:monitor_nodes`),
//! and a Trellis node is hidden: this scope process sends `discover` itself
//! to every node it is connected to and to every node that connects later;
//! the Erlang scope answers with its members, monitors this one, and keeps
//! it informed. Groups cross as atoms (a binary from the peer is read as a
//! string too); members as pids: remote ones become remote
//! [`Pid`]s in the local scope, local ones are sent as
//! this node's Erlang pids of those processes.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    DistError, DistMailbox, DistNode, ErlPid, ErlRef, Incoming, Inner, NodeEvent, Term, ToTerm,
    as_atom, as_tuple, atom, remote, tuple,
};
use crate::pg::{PgEvent, Scope};
use crate::process::Pid;

/// A peer scope process and what it announced.
struct Peer {
    monitor: ErlRef,
    groups: HashMap<String, Vec<Pid>>,
}

/// The scope process's state.
struct Shared {
    inner: Arc<Inner>,
    scope: Scope,
    mailbox: DistMailbox,
    /// Local members, as announced to peers (the scope's local listings,
    /// kept in step with its events, so a sync and the joins and leaves
    /// after it never disagree).
    local: HashMap<Arc<str>, Vec<Pid>>,
    peers: HashMap<ErlPid, Peer>,
}

impl DistNode {
    /// Shares `scope` with the cluster's `pg` scopes of the same name (OTP's
    /// `pg:start(Scope)` on this node): Erlang's `pg:get_members(Scope,
    /// Group)` lists the Trellis processes that joined `Group` here, and
    /// members that join on other nodes appear in `scope` as remote
    /// [`Pid`]s (with [`PgEvent`]s to its monitors),
    /// until they leave, end, or their node goes down.
    ///
    /// Groups cross as atoms: a Trellis group `"workers"` is Erlang's
    /// `workers`. A group that is neither an atom nor a UTF-8 binary on the
    /// other side is not shared. The Erlang nodes must run the scope
    /// (`pg:start(Scope)`; OTP starts the default scope `pg` only with
    /// `-kernel start_pg true`). Runs until the node stops.
    ///
    /// # Errors
    ///
    /// [`DistError::NameTaken`] if the scope's name is registered on this
    /// node already (it is shared already, or a mailbox holds the name);
    /// [`DistError::Stopped`].
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::dist::{self, DistOptions};
    /// use trellis::pg;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), trellis::dist::DistError> {
    /// # let _ = std::process::Command::new("epmd").arg("-daemon").status();
    /// let node = dist::start(DistOptions::short("pg_doc").cookie("c")).await?;
    /// let scope = pg::scope("pg_doc_scope");
    /// node.share_pg(&scope)?;
    /// let inbox = trellis::mailbox::create::<()>();
    /// scope.join("workers", inbox.pid()).unwrap();
    /// // A second share of the same scope is refused.
    /// assert!(node.share_pg(&scope).is_err());
    /// # node.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    pub fn share_pg(&self, scope: &Scope) -> Result<(), DistError> {
        let mailbox = self.register(scope.name())?;
        // Events from now on, and the listings now: nothing in between.
        let (events, now) = scope.monitor_scope();
        let mut local: HashMap<Arc<str>, Vec<Pid>> = HashMap::new();
        for (group, pids) in now {
            let pids: Vec<Pid> = pids.into_iter().filter(|p| p.is_local()).collect();
            if !pids.is_empty() {
                local.insert(group, pids);
            }
        }
        let nodes = self.monitor_nodes();
        let connected = self.nodes();
        let shared = Shared {
            inner: self.inner.clone(),
            scope: scope.clone(),
            mailbox,
            local,
            peers: HashMap::new(),
        };
        self.inner.spawn(shared.run(events, nodes, connected));
        Ok(())
    }
}

impl Shared {
    async fn run(
        mut self,
        mut events: crate::pg::PgMonitor,
        mut nodes: super::NodeEvents,
        connected: Vec<String>,
    ) {
        for node in connected {
            self.discover(&node).await;
        }
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => self.local_change(event).await,
                    None => return,
                },
                incoming = self.mailbox.recv() => match incoming {
                    Some(incoming) => self.incoming(incoming).await,
                    None => return,
                },
                event = nodes.recv() => match event {
                    Some(NodeEvent::Up(node)) => self.discover(&node).await,
                    Some(NodeEvent::Down { .. }) => {}
                    None => return,
                },
            }
        }
    }

    /// Asks `node`'s scope of the same name to exchange members (Erlang's
    /// scopes do not discover a hidden node themselves).
    async fn discover(&self, node: &str) {
        let me = self.mailbox.pid().clone();
        let to = (self.scope.name(), node);
        let _ = self
            .mailbox
            .send(to, tuple(vec![atom("discover"), me.to_term()]))
            .await;
    }

    /// Our local members, as `[{Group, [Pid]}]`.
    fn local_groups(&self) -> Term {
        let groups: Vec<Term> = self
            .local
            .iter()
            .map(|(group, pids)| tuple(vec![atom(group), self.erl_pids(pids)]))
            .collect();
        groups.to_term()
    }

    fn erl_pids(&self, pids: &[Pid]) -> Term {
        let pids: Vec<Term> = pids
            .iter()
            .filter_map(|p| remote::to_erl(&self.inner, *p))
            .map(|p| p.to_term())
            .collect();
        pids.to_term()
    }

    async fn broadcast(&self, message: Term) {
        for peer in self.peers.keys() {
            let _ = self.mailbox.send(peer, message.clone()).await;
        }
    }

    /// A local process joined or left: tell every peer.
    async fn local_change(&mut self, event: PgEvent) {
        let me = self.mailbox.pid().to_term();
        match event {
            PgEvent::Join { group, pids } => {
                let pids: Vec<Pid> = pids.into_iter().filter(|p| p.is_local()).collect();
                if pids.is_empty() {
                    return;
                }
                self.local
                    .entry(group.clone())
                    .or_default()
                    .extend(pids.iter().copied());
                let message = tuple(vec![atom("join"), me, atom(&group), self.erl_pids(&pids)]);
                self.broadcast(message).await;
            }
            PgEvent::Leave { group, pids } => {
                let pids: Vec<Pid> = pids.into_iter().filter(|p| p.is_local()).collect();
                if pids.is_empty() {
                    return;
                }
                if let Some(members) = self.local.get_mut(&group) {
                    for pid in &pids {
                        if let Some(at) = members.iter().position(|p| p == pid) {
                            members.remove(at);
                        }
                    }
                    if members.is_empty() {
                        self.local.remove(&group);
                    }
                }
                let message = tuple(vec![
                    atom("leave"),
                    me,
                    self.erl_pids(&pids),
                    vec![atom(&group)].to_term(),
                ]);
                self.broadcast(message).await;
            }
        }
    }

    async fn incoming(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Message { term, .. } => self.message(term).await,
            Incoming::Down { monitor, .. } => {
                let gone = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.monitor == monitor)
                    .map(|(pid, _)| pid.clone());
                if let Some(peer) = gone.and_then(|pid| self.peers.remove(&pid)) {
                    for (group, pids) in peer.groups {
                        self.scope.leave_remote(&group, &pids);
                    }
                }
            }
            Incoming::Exit { .. } => {}
        }
    }

    async fn message(&mut self, term: Term) {
        let Some(items) = as_tuple(&term) else {
            return;
        };
        match (as_atom(&items[0]), items.len()) {
            // `{discover, Peer}`, and the form later OTPs send,
            // `{discover, Peer, Version}`.
            (Some("discover"), 2 | 3) => {
                let Term::Pid(peer) = &items[1] else { return };
                let sync = tuple(vec![
                    atom("sync"),
                    self.mailbox.pid().to_term(),
                    self.local_groups(),
                ]);
                let cast = tuple(vec![atom("$gen_cast"), sync]);
                let _ = self.mailbox.send(peer, cast).await;
                if !self.peers.contains_key(peer) {
                    self.add_peer(peer).await;
                    let me = self.mailbox.pid().to_term();
                    let _ = self
                        .mailbox
                        .send(peer, tuple(vec![atom("discover"), me]))
                        .await;
                }
            }
            (Some("$gen_cast"), 2) => {
                let Some(sync) = as_tuple(&items[1]) else {
                    return;
                };
                if sync.len() != 3 || as_atom(&sync[0]) != Some("sync") {
                    return;
                }
                let Term::Pid(peer) = &sync[1] else { return };
                if !self.peers.contains_key(peer) {
                    self.add_peer(peer).await;
                }
                let mut announced: HashMap<String, Vec<Pid>> = HashMap::new();
                if let Term::List(groups) = &sync[2] {
                    for entry in &groups.elements {
                        let Some([group, pids]) = as_tuple(entry) else {
                            continue;
                        };
                        if let Some(group) = group_name(group) {
                            announced.entry(group).or_default().extend(self.pids(pids));
                        }
                    }
                }
                // Everything the peer said before is replaced.
                if let Some(known) = self.peers.get_mut(peer) {
                    let old = std::mem::take(&mut known.groups);
                    for (group, pids) in old {
                        self.scope.leave_remote(&group, &pids);
                    }
                    for (group, pids) in &announced {
                        self.scope.join_remote(group, pids.clone());
                    }
                    if let Some(known) = self.peers.get_mut(peer) {
                        known.groups = announced;
                    }
                }
            }
            (Some("join"), 4) => {
                let Term::Pid(peer) = &items[1] else { return };
                let (Some(group), pids) = (group_name(&items[2]), self.pids(&items[3])) else {
                    return;
                };
                let Some(known) = self.peers.get_mut(peer) else {
                    return;
                };
                known
                    .groups
                    .entry(group.clone())
                    .or_default()
                    .extend(pids.iter().copied());
                self.scope.join_remote(&group, pids);
            }
            (Some("leave"), 4) => {
                let Term::Pid(peer) = &items[1] else { return };
                let pids = self.pids(&items[2]);
                let groups: Vec<String> = match &items[3] {
                    Term::List(list) => list.elements.iter().filter_map(group_name).collect(),
                    _ => return,
                };
                let Some(known) = self.peers.get_mut(peer) else {
                    return;
                };
                for group in groups {
                    if let Some(members) = known.groups.get_mut(&group) {
                        for pid in &pids {
                            if let Some(at) = members.iter().position(|p| p == pid) {
                                members.remove(at);
                            }
                        }
                        if members.is_empty() {
                            known.groups.remove(&group);
                        }
                    }
                    self.scope.leave_remote(&group, &pids);
                }
            }
            _ => {}
        }
    }

    /// Starts knowing `peer`: its scope is monitored, its members go with
    /// its `DOWN`.
    async fn add_peer(&mut self, peer: &ErlPid) {
        if let Ok(monitor) = self.mailbox.monitor(peer).await {
            self.peers.insert(
                peer.clone(),
                Peer {
                    monitor,
                    groups: HashMap::new(),
                },
            );
        }
    }

    /// A pid or a list of pids, as Trellis pids.
    fn pids(&self, term: &Term) -> Vec<Pid> {
        let one = |t: &Term| match t {
            Term::Pid(p) => remote::to_pid(&self.inner, p),
            _ => None,
        };
        match term {
            Term::List(list) => list.elements.iter().filter_map(one).collect(),
            other => one(other).into_iter().collect(),
        }
    }
}

/// A group's name: an atom's, or a UTF-8 binary's.
fn group_name(term: &Term) -> Option<String> {
    match term {
        Term::Atom(a) => Some(a.name.clone()),
        Term::Binary(b) => String::from_utf8(b.bytes.clone()).ok(),
        _ => None,
    }
}
