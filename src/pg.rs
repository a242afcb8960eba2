//! Process groups: OTP's `pg`. Named groups of processes, for
//! publish/subscribe and worker pools.
//!
//! A *scope* holds groups; a *group* is a name with a list of member
//! [`Pid`]s. Any process may [`join`](Scope::join) any group, several times
//! if it likes (it is then listed as many times, and must
//! [`leave`](Scope::leave) as many times); a process that ends leaves every
//! group at once, before anyone can see its `Down`. Members can be watched
//! ([`monitor`](Scope::monitor), [`monitor_scope`](Scope::monitor_scope)),
//! and messages dispatched to a group: to every member, to one at random,
//! or round-robin.
//!
//! | you call | what happens |
//! |---|---|
//! | [`scope`]`(name)` / [`default_scope`] | the scope of that name, made on first use (OTP's `pg:start_link(Scope)`; the default scope is OTP's `pg`) |
//! | [`Scope::join`]`(group, pid)` | `pid` is listed once more in `group`; monitors get [`PgEvent::Join`] |
//! | [`Scope::leave`]`(group, pid)` | one listing of `pid` is removed; monitors get [`PgEvent::Leave`]; [`PgError::NotJoined`] if it had none |
//! | a member ends (any reason) | every listing of it is removed; monitors get one [`PgEvent::Leave`] per group |
//! | [`Scope::get_members`] / [`Scope::get_local_members`] | the members, in join order, with repeats |
//! | [`Scope::which_groups`] | the groups with at least one member |
//! | [`Scope::monitor`]`(group)` / [`Scope::monitor_scope`] | the members now, and a [`PgMonitor`] that receives every later change |
//! | [`Scope::send_all`] / [`Scope::send_random`] / [`Scope::send_round_robin`] | a message of type `M` to the members' mailboxes of type `M` (a gen_server's `handle_info`) |
//! | [`Scope::pick_random`] / [`Scope::pick_round_robin`] | a member's pid, to call it yourself |
//!
//! # Distribution
//!
//! Members are [`Pid`]s, which name their node: the data model holds
//! remote members as well as local ones ([`Scope::get_local_members`]
//! filters on [`Pid::is_local`]). Joining is local, as in OTP (a process
//! joins for itself, or a local process is joined). With the `dist`
//! feature, `DistNode::share_pg(&scope)` shares a scope with the Erlang
//! (or Trellis) nodes of a cluster that run a `pg` scope of the same name:
//! local members are listed there, and theirs appear here as remote pids,
//! with the same [`PgEvent`]s, until they leave, end, or their node goes
//! down.
//!
//! # Where Trellis differs from OTP
//!
//! | OTP | Trellis | why |
//! |---|---|---|
//! | a scope is a process, started under a supervisor | a scope is a node-wide table made on first use; membership changes are synchronous; a scope process for other nodes runs only once shared (`DistNode::share_pg`) | nothing to supervise while groups are local; a join is visible as soon as it returns |
//! | scopes find each other through `net_kernel:monitor_nodes` (visible nodes) | a shared scope sends `discover` itself to every node it connects to | a Trellis node is hidden: Erlang's scopes would never discover it |
//! | groups are any term | groups are strings; across nodes, atoms (a UTF-8 binary is read too; other terms are not shared) | a name every node can read |
//! | `monitor` sends `{Ref, join \| leave, Group, Pids}` to the caller's mailbox | a [`PgMonitor`] to receive [`PgEvent`]s from (forward them to a gen_server with [`Context::spawn`](crate::gen_server::Context::spawn) if needed); dropping it demonitors | a typed event stream; no untyped mailbox |
//! | `join` of a dead pid is a no-op that is cleaned up later | [`PgError::ProcessNotFound`] | errors are values |
//! | no dispatch helpers (users pick from `get_members`) | `send_all`/`send_random`/`send_round_robin`, `pick_*` | the three dispatches every pool writes |
//!
//! # Examples
//!
//! ```
//! use trellis::{mailbox, pg};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let news = pg::scope("pg-doc-news");
//! let mut alice = mailbox::create::<String>();
//! let mut bob = mailbox::create::<String>();
//! news.join("sport", alice.pid()).unwrap();
//! news.join("sport", bob.pid()).unwrap();
//! assert_eq!(news.send_all("sport", "goal!".to_string()), 2);
//! assert_eq!(alice.receive().await.unwrap(), "goal!");
//! assert_eq!(bob.receive().await.unwrap(), "goal!");
//!
//! // A process that ends leaves its groups.
//! mailbox::destroy(alice);
//! assert_eq!(news.get_members("sport"), [bob.pid()]);
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::loom::lock;
use crate::mailbox::{self, MailboxError};
use crate::process::{Entry, Pid};

/// What went wrong with a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The process is not a member of the group (OTP's `not_joined`).
    #[error("{pid} is not a member of group {group:?}")]
    #[doc(alias = "not_joined")]
    NotJoined {
        /// The group.
        group: Arc<str>,
        /// The process.
        pid: Pid,
    },
    /// No live local process has the pid.
    #[error("process {pid} does not exist")]
    ProcessNotFound {
        /// The pid.
        pid: Pid,
    },
    /// The group has no member to send to.
    #[error("group {group:?} has no members")]
    NoMembers {
        /// The group.
        group: Arc<str>,
    },
    /// The member chosen could not be sent to (it ended, or takes no
    /// message of this type); the message is dropped.
    #[error("sending to member {pid} failed: {error}")]
    SendFailed {
        /// The member.
        pid: Pid,
        /// Why.
        error: MailboxError,
    },
}

/// A membership change, as a [`PgMonitor`] receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgEvent {
    /// `pids` joined `group` (OTP's `{Ref, join, Group, Pids}`).
    Join {
        /// The group.
        group: Arc<str>,
        /// Who joined (a pid that joined twice at once is listed twice).
        pids: Vec<Pid>,
    },
    /// `pids` left `group`, by [`Scope::leave`] or by ending (OTP's
    /// `{Ref, leave, Group, Pids}`).
    Leave {
        /// The group.
        group: Arc<str>,
        /// Who left (a process that ends is listed once per time it had
        /// joined).
        pids: Vec<Pid>,
    },
}

impl PgEvent {
    /// The group the event is about.
    pub fn group(&self) -> &str {
        match self {
            PgEvent::Join { group, .. } | PgEvent::Leave { group, .. } => group,
        }
    }
}

/// Receives the [`PgEvent`]s of a group ([`Scope::monitor`]) or of a whole
/// scope ([`Scope::monitor_scope`]), in the order the changes happened.
/// Dropping it ends the monitor.
#[derive(Debug)]
pub struct PgMonitor {
    events: mpsc::UnboundedReceiver<PgEvent>,
}

impl PgMonitor {
    /// The next change; waits for one.
    ///
    /// Returns `None` only if the scope is gone (never for named scopes,
    /// which live as long as the node).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event not returned stays queued.
    pub async fn next(&mut self) -> Option<PgEvent> {
        self.events.recv().await
    }

    /// The next change if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<PgEvent> {
        self.events.try_recv().ok()
    }
}

/// Who is watching: one group, or the whole scope.
struct Watcher {
    group: Option<Arc<str>>,
    to: mpsc::UnboundedSender<PgEvent>,
}

#[derive(Default)]
struct Table {
    /// Members of each group, in join order, with repeats.
    groups: HashMap<Arc<str>, Vec<Pid>>,
    /// Local processes with an exit hook installed.
    hooked: HashSet<Pid>,
    watchers: Vec<Watcher>,
    /// Round-robin positions.
    cursors: HashMap<Arc<str>, usize>,
    /// xorshift state for `random`.
    seed: u64,
}

impl Table {
    fn notify(&mut self, event: &PgEvent) {
        let group = event.group();
        self.watchers.retain(|w| {
            if w.group.as_deref().is_some_and(|g| g != group) {
                return !w.to.is_closed();
            }
            w.to.send(event.clone()).is_ok()
        });
    }

    /// Removes every listing of `pid` (it ended).
    fn remove_all(&mut self, pid: Pid) {
        self.hooked.remove(&pid);
        let mut left = Vec::new();
        self.groups.retain(|group, members| {
            let before = members.len();
            members.retain(|p| *p != pid);
            let gone = before - members.len();
            if gone > 0 {
                left.push((group.clone(), gone));
            }
            !members.is_empty()
        });
        left.sort_by(|a, b| a.0.cmp(&b.0));
        for (group, times) in left {
            self.notify(&PgEvent::Leave {
                group,
                pids: vec![pid; times],
            });
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for spreading load.
        let mut x = self.seed;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A scope of process groups (OTP's `pg` scope). Cheap to clone; every
/// clone, and every [`scope`] call with the same name, is the same scope.
#[derive(Clone)]
pub struct Scope {
    name: Arc<str>,
    table: Arc<Mutex<Table>>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The name of OTP's default scope.
pub const DEFAULT_SCOPE: &str = "pg";

/// The scope named `name`, made on first use.
///
/// # Examples
///
/// ```
/// use trellis::pg;
///
/// let a = pg::scope("pg-doc-scope");
/// let b = pg::scope("pg-doc-scope");
/// let inbox = trellis::mailbox::create::<()>();
/// a.join("g", inbox.pid()).unwrap();
/// assert_eq!(b.get_members("g"), [inbox.pid()]);
/// assert_eq!(b.name(), "pg-doc-scope");
/// ```
pub fn scope(name: impl AsRef<str>) -> Scope {
    static SCOPES: OnceLock<DashMap<Arc<str>, Scope>> = OnceLock::new();
    let scopes = SCOPES.get_or_init(DashMap::new);
    let name = name.as_ref();
    if let Some(scope) = scopes.get(name) {
        return scope.clone();
    }
    scopes
        .entry(name.into())
        .or_insert_with(|| {
            // Seeded from the name with fixed keys: the picks spread load,
            // and a run can be replayed.
            let seed = BuildHasherDefault::<DefaultHasher>::default().hash_one(name) | 1;
            Scope {
                name: name.into(),
                table: Arc::new(Mutex::new(Table {
                    seed,
                    ..Table::default()
                })),
            }
        })
        .clone()
}

/// The default scope, [`DEFAULT_SCOPE`] (OTP's `pg`).
pub fn default_scope() -> Scope {
    scope(DEFAULT_SCOPE)
}

impl Scope {
    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lists `pid` once more as a member of `group`. A process may join a
    /// group several times; it is then listed as many times (and gets as
    /// large a share of [`send_round_robin`](Self::send_round_robin)).
    ///
    /// # Errors
    ///
    /// [`PgError::ProcessNotFound`] if `pid` is not a live local process.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg;
    ///
    /// let scope = pg::scope("pg-doc-join");
    /// let inbox = trellis::mailbox::create::<()>();
    /// scope.join("g", inbox.pid()).unwrap();
    /// scope.join("g", inbox.pid()).unwrap();
    /// assert_eq!(scope.get_members("g"), [inbox.pid(), inbox.pid()]);
    /// scope.leave("g", inbox.pid()).unwrap();
    /// assert_eq!(scope.get_members("g"), [inbox.pid()]);
    /// ```
    pub fn join(&self, group: impl AsRef<str>, pid: Pid) -> Result<(), PgError> {
        let entry = Entry::find(pid).ok_or(PgError::ProcessNotFound { pid })?;
        let group: Arc<str> = group.as_ref().into();
        let mut table = lock(&self.table);
        if table.hooked.insert(pid) {
            let weak: Weak<Mutex<Table>> = Arc::downgrade(&self.table);
            let hook = Box::new(move |pid: Pid| {
                if let Some(table) = weak.upgrade() {
                    lock(&table).remove_all(pid);
                }
            });
            if !entry.on_exit(hook) {
                table.hooked.remove(&pid);
                return Err(PgError::ProcessNotFound { pid });
            }
        }
        table.groups.entry(group.clone()).or_default().push(pid);
        table.notify(&PgEvent::Join {
            group,
            pids: vec![pid],
        });
        Ok(())
    }

    /// Removes one listing of `pid` from `group` (it must leave as many
    /// times as it joined).
    ///
    /// # Errors
    ///
    /// [`PgError::NotJoined`] if `pid` is not a member of `group`.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg::{self, PgError};
    ///
    /// let scope = pg::scope("pg-doc-leave");
    /// let inbox = trellis::mailbox::create::<()>();
    /// scope.join("g", inbox.pid()).unwrap();
    /// scope.leave("g", inbox.pid()).unwrap();
    /// assert!(matches!(scope.leave("g", inbox.pid()), Err(PgError::NotJoined { .. })));
    /// ```
    pub fn leave(&self, group: impl AsRef<str>, pid: Pid) -> Result<(), PgError> {
        let group = group.as_ref();
        let mut table = lock(&self.table);
        let Some(members) = table.groups.get_mut(group) else {
            return Err(PgError::NotJoined {
                group: group.into(),
                pid,
            });
        };
        let Some(at) = members.iter().position(|p| *p == pid) else {
            return Err(PgError::NotJoined {
                group: group.into(),
                pid,
            });
        };
        members.remove(at);
        let (group, empty) = match table.groups.get_key_value(group) {
            Some((key, members)) => (key.clone(), members.is_empty()),
            None => (group.into(), true),
        };
        if empty {
            table.groups.remove(&group);
        }
        table.notify(&PgEvent::Leave {
            group,
            pids: vec![pid],
        });
        Ok(())
    }

    /// The members of `group`, in join order, a process listed once per
    /// join; empty for an unknown group.
    pub fn get_members(&self, group: impl AsRef<str>) -> Vec<Pid> {
        lock(&self.table)
            .groups
            .get(group.as_ref())
            .cloned()
            .unwrap_or_default()
    }

    /// The members of `group` on this node.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg;
    ///
    /// let scope = pg::scope("pg-doc-local");
    /// let a = trellis::mailbox::create::<()>();
    /// scope.join("g", a.pid()).unwrap();
    /// assert_eq!(scope.get_local_members("g"), scope.get_members("g"));
    /// ```
    pub fn get_local_members(&self, group: impl AsRef<str>) -> Vec<Pid> {
        let mut members = self.get_members(group);
        members.retain(|pid| pid.is_local());
        members
    }

    /// The groups with at least one member, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg;
    ///
    /// let scope = pg::scope("pg-doc-which");
    /// let inbox = trellis::mailbox::create::<()>();
    /// scope.join("b", inbox.pid()).unwrap();
    /// scope.join("a", inbox.pid()).unwrap();
    /// assert_eq!(scope.which_groups(), ["a".into(), "b".into()]);
    /// ```
    pub fn which_groups(&self) -> Vec<Arc<str>> {
        let mut groups: Vec<_> = lock(&self.table).groups.keys().cloned().collect();
        groups.sort();
        groups
    }

    /// Watches `group`: returns its members now and a [`PgMonitor`] that
    /// receives every later join and leave, in order (OTP's `pg:monitor`).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::{mailbox, pg};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = pg::scope("pg-doc-monitor");
    /// let (mut monitor, now) = scope.monitor("workers");
    /// assert!(now.is_empty());
    /// let worker = mailbox::create::<()>();
    /// let pid = worker.pid();
    /// scope.join("workers", pid).unwrap();
    /// mailbox::destroy(worker);
    /// assert_eq!(monitor.next().await, Some(pg::PgEvent::Join { group: "workers".into(), pids: vec![pid] }));
    /// assert_eq!(monitor.next().await, Some(pg::PgEvent::Leave { group: "workers".into(), pids: vec![pid] }));
    /// # }
    /// ```
    pub fn monitor(&self, group: impl AsRef<str>) -> (PgMonitor, Vec<Pid>) {
        let group: Arc<str> = group.as_ref().into();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut table = lock(&self.table);
        let members = table.groups.get(&group).cloned().unwrap_or_default();
        table.watchers.push(Watcher {
            group: Some(group),
            to: tx,
        });
        (PgMonitor { events: rx }, members)
    }

    /// Watches every group of the scope: returns the groups and their
    /// members now, and a [`PgMonitor`] for every later change (OTP's
    /// `pg:monitor_scope`).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg::{self, PgEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = pg::scope("pg-doc-monitor-scope");
    /// let (mut monitor, groups) = scope.monitor_scope();
    /// assert!(groups.is_empty());
    /// let inbox = trellis::mailbox::create::<()>();
    /// scope.join("any", inbox.pid()).unwrap();
    /// let event = monitor.next().await.unwrap();
    /// assert_eq!(event.group(), "any");
    /// assert!(matches!(event, PgEvent::Join { .. }));
    /// # }
    /// ```
    pub fn monitor_scope(&self) -> (PgMonitor, HashMap<Arc<str>, Vec<Pid>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut table = lock(&self.table);
        let groups = table.groups.clone();
        table.watchers.push(Watcher {
            group: None,
            to: tx,
        });
        (PgMonitor { events: rx }, groups)
    }

    /// A member of `group` picked at random, or `None` if it has none.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg;
    ///
    /// let scope = pg::scope("pg-doc-random");
    /// assert_eq!(scope.pick_random("g"), None);
    /// let a = trellis::mailbox::create::<()>();
    /// scope.join("g", a.pid()).unwrap();
    /// assert_eq!(scope.pick_random("g"), Some(a.pid()));
    /// ```
    pub fn pick_random(&self, group: impl AsRef<str>) -> Option<Pid> {
        let mut table = lock(&self.table);
        let len = table.groups.get(group.as_ref())?.len();
        let at = (table.next_random() % len as u64) as usize;
        table.groups.get(group.as_ref()).map(|m| m[at])
    }

    /// The next member of `group` in turn, or `None` if it has none. The
    /// turn is kept per group; as members come and go it goes on from its
    /// position, modulo the group's size.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::pg;
    ///
    /// let scope = pg::scope("pg-doc-rr");
    /// let a = trellis::mailbox::create::<()>();
    /// let b = trellis::mailbox::create::<()>();
    /// scope.join("g", a.pid()).unwrap();
    /// scope.join("g", b.pid()).unwrap();
    /// let turns: Vec<_> = (0..3).map(|_| scope.pick_round_robin("g").unwrap()).collect();
    /// assert_eq!(turns, [a.pid(), b.pid(), a.pid()]);
    /// ```
    pub fn pick_round_robin(&self, group: impl AsRef<str>) -> Option<Pid> {
        let group = group.as_ref();
        let mut table = lock(&self.table);
        let len = table.groups.get(group)?.len();
        let cursor = match table.cursors.get_mut(group) {
            Some(cursor) => cursor,
            None => table.cursors.entry(group.into()).or_insert(0),
        };
        let at = *cursor % len;
        *cursor = at + 1;
        table.groups.get(group).map(|m| m[at])
    }

    /// Sends a clone of `message` to every member's mailbox of type `M`
    /// (for a gen_server member, its `handle_info`); returns how many took
    /// it. A process joined twice gets it twice. Members that ended or take
    /// no `M` are skipped.
    pub fn send_all<M: Clone + Send + 'static>(&self, group: impl AsRef<str>, message: M) -> usize {
        self.get_members(group)
            .into_iter()
            .filter(|pid| mailbox::try_send(*pid, message.clone()).is_ok())
            .count()
    }

    /// Sends `message` to one member picked at random; returns its pid.
    ///
    /// # Errors
    ///
    /// [`PgError::NoMembers`], or [`PgError::SendFailed`] if that member
    /// could not take it.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::{mailbox, pg};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = pg::scope("pg-doc-send-random");
    /// let mut worker = mailbox::create::<u32>();
    /// scope.join("workers", worker.pid()).unwrap();
    /// assert_eq!(scope.send_random("workers", 5_u32).unwrap(), worker.pid());
    /// assert_eq!(worker.receive().await.unwrap(), 5);
    /// # }
    /// ```
    pub fn send_random<M: Send + 'static>(
        &self,
        group: impl AsRef<str>,
        message: M,
    ) -> Result<Pid, PgError> {
        let group = group.as_ref();
        let pid = self.pick_random(group).ok_or_else(|| PgError::NoMembers {
            group: group.into(),
        })?;
        send_to(pid, message)
    }

    /// Sends `message` to the next member in turn; returns its pid.
    ///
    /// # Errors
    ///
    /// As [`send_random`](Self::send_random).
    pub fn send_round_robin<M: Send + 'static>(
        &self,
        group: impl AsRef<str>,
        message: M,
    ) -> Result<Pid, PgError> {
        let group = group.as_ref();
        let pid = self
            .pick_round_robin(group)
            .ok_or_else(|| PgError::NoMembers {
                group: group.into(),
            })?;
        send_to(pid, message)
    }
}

fn send_to<M: Send + 'static>(pid: Pid, message: M) -> Result<Pid, PgError> {
    mailbox::try_send(pid, message)
        .map(|()| pid)
        .map_err(|error| PgError::SendFailed {
            pid,
            error: error.into_parts().0,
        })
}

impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }
}

impl Eq for Scope {}

/// Joins `pid` to `group` in the [`default_scope`].
///
/// # Errors
///
/// As [`Scope::join`].
pub fn join(group: impl AsRef<str>, pid: Pid) -> Result<(), PgError> {
    default_scope().join(group, pid)
}

/// Removes one listing of `pid` from `group` in the [`default_scope`].
///
/// # Errors
///
/// As [`Scope::leave`].
pub fn leave(group: impl AsRef<str>, pid: Pid) -> Result<(), PgError> {
    default_scope().leave(group, pid)
}

/// The members of `group` in the [`default_scope`].
pub fn get_members(group: impl AsRef<str>) -> Vec<Pid> {
    default_scope().get_members(group)
}

/// The local members of `group` in the [`default_scope`].
pub fn get_local_members(group: impl AsRef<str>) -> Vec<Pid> {
    default_scope().get_local_members(group)
}

/// The groups of the [`default_scope`].
pub fn which_groups() -> Vec<Arc<str>> {
    default_scope().which_groups()
}

/// Members other nodes announce, for the distribution layer's scope
/// process ([`DistNode::share_pg`](crate::dist::DistNode::share_pg)): listed
/// and removed without the local exit hook (their node's scope reports
/// their end, or the node's loss removes them).
#[cfg(feature = "dist")]
impl Scope {
    /// Lists the remote `pids` in `group` once more each.
    pub(crate) fn join_remote(&self, group: &str, pids: Vec<Pid>) {
        if pids.is_empty() {
            return;
        }
        let mut table = lock(&self.table);
        let group = match table.groups.get_key_value(group) {
            Some((key, _)) => key.clone(),
            None => group.into(),
        };
        table
            .groups
            .entry(group.clone())
            .or_default()
            .extend(pids.iter().copied());
        table.notify(&PgEvent::Join { group, pids });
    }

    /// Removes one listing of each of `pids` from `group`, where listed.
    pub(crate) fn leave_remote(&self, group: &str, pids: &[Pid]) {
        let mut table = lock(&self.table);
        let Some((group, members)) = table
            .groups
            .get_key_value(group)
            .map(|(k, m)| (k.clone(), m.clone()))
        else {
            return;
        };
        let mut members = members;
        let mut gone = Vec::new();
        for pid in pids {
            if let Some(at) = members.iter().position(|p| p == pid) {
                members.remove(at);
                gone.push(*pid);
            }
        }
        if gone.is_empty() {
            return;
        }
        if members.is_empty() {
            table.groups.remove(&group);
        } else {
            table.groups.insert(group.clone(), members);
        }
        table.notify(&PgEvent::Leave { group, pids: gone });
    }
}
