//! The live supervision tree as data: what [`tree`](super::tree) and
//! [`Supervisor::info`](super::Supervisor::info) return.
//!
//! Every running supervisor keeps a table of its children (one row per child,
//! updated by the supervisor itself on every start, exit and stop) behind a
//! lock that only it writes and introspection reads. A supervisor started as
//! the child of another links itself into its parent's row, so a snapshot
//! walks the whole tree from the roots; roots are kept in a process-wide list
//! of weak references, pruned as supervisors end.

pub(crate) use crate::loom::lock;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::observer::bus::{EXIT_LABELS, SupervisorCounters};
use crate::process::{ExitReason, Pid, claimed_pid};

use super::engine::Ended;
use super::intensity::Intensity;

use super::{ChildId, Restart, Strategy};

/// What a supervisor tells introspection about itself and its children.
pub(crate) struct Shared {
    pub(crate) name: Cow<'static, str>,
    pub(crate) pid: Pid,
    pub(crate) strategy: Strategy,
    pub(crate) rows: Mutex<Vec<Row>>,
    /// The restart window: locked once per restart, and by snapshots.
    pub(crate) intensity: Mutex<Intensity>,
    pub(crate) max_restarts: u32,
    pub(crate) max_seconds: Duration,
    pub(crate) started: Instant,
    /// Restarts and exits so far, by reason (indexed by [`reason_index`]);
    /// relaxed, for introspection only. Shared with the observer, which
    /// keeps them by the supervisor's name once it has ended.
    pub(crate) counters: Arc<SupervisorCounters>,
    /// Whether it is a dynamic supervisor (its children's starts and
    /// normal exits log at `DEBUG`).
    pub(crate) dynamic: bool,
    /// Whether a child's task may restart its child by itself (one-for-one
    /// or dynamic, without backoff; see the engine's `restart_in_place`).
    pub(crate) restarts_in_place: bool,
    /// Set once the supervisor stops all its children (it is ending): a
    /// child's task then restarts nothing in place.
    pub(crate) closing: AtomicBool,
}

/// The labels of exit reasons, as the observer's metrics name them.
pub(crate) const REASONS: [&str; 6] = EXIT_LABELS;

/// Where an error reason counts in [`Shared::exits`].
pub(crate) const ERROR_INDEX: usize = 3;

/// Where `reason` counts in [`Shared::exits`].
pub(crate) fn reason_index(reason: &ExitReason) -> usize {
    match reason {
        ExitReason::Normal => 0,
        ExitReason::Shutdown => 1,
        ExitReason::Killed => 2,
        ExitReason::Error(_) => ERROR_INDEX,
        ExitReason::Panic(_) => 4,
        ExitReason::NoProcess => 5,
    }
}

/// One child, as the supervisor last recorded it.
pub(crate) struct Row {
    pub(crate) key: ChildId,
    pub(crate) id: Cow<'static, str>,
    /// While an incarnation runs: the cell its own process's pid lands in
    /// (see [`CHILD_PID`](crate::process::CHILD_PID)).
    pub(crate) own: Option<Arc<AtomicU64>>,
    pub(crate) restart: Restart,
    pub(crate) state: ChildState,
    pub(crate) restarts: u64,
    pub(crate) nested: Option<Weak<Shared>>,
    /// Why its last incarnation ended (kept while observed).
    pub(crate) last_exit: Option<Ended>,
    /// When its running incarnation started (taken only while observed).
    pub(crate) since: Option<Instant>,
    /// Its task restarted it after an abnormal exit: how the restart is
    /// logged once the new incarnation has started.
    pub(crate) restarted_after_abnormal: bool,
}

/// Supervisors that are not the child of another supervisor.
static ROOTS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

tokio::task_local! {
    /// Set around every child task: which supervisor row the task fills.
    pub(crate) static PARENT: (Weak<Shared>, ChildId);
}

impl Shared {
    /// Hooks a new supervisor into the tree: into its parent's row when it
    /// runs as a supervised child, else into the list of roots.
    pub(crate) fn link(self: &Arc<Self>) {
        let parent = PARENT.try_with(|(parent, key)| (parent.clone(), *key)).ok();
        if let Some((parent, key)) = parent {
            if let Some(parent) = parent.upgrade() {
                let mut rows = lock(&parent.rows);
                if let Some(row) = rows.iter_mut().find(|r| r.key == key) {
                    row.nested = Some(Arc::downgrade(self));
                    return;
                }
            }
        }
        let mut roots = lock(&ROOTS);
        roots.retain(|r| r.strong_count() > 0);
        roots.push(Arc::downgrade(self));
    }

    pub(crate) fn snapshot(&self) -> SupervisorInfo {
        let now = Instant::now();
        let intensity_used = lock(&self.intensity).used(now);
        let mut rows = lock(&self.rows);
        let children = rows
            .iter_mut()
            .map(|row| ChildInfo {
                key: row.key,
                id: row.id.to_string(),
                pid: row.own.as_deref().and_then(claimed_pid),
                restart: row.restart,
                state: row.state,
                restarts: row.restarts,
                last_exit: last_exit(&mut row.last_exit),
                uptime: row
                    .since
                    .filter(|_| row.state == ChildState::Running)
                    .map(|since| now.saturating_duration_since(since)),
                supervisor: row
                    .nested
                    .as_ref()
                    .and_then(Weak::upgrade)
                    .filter(|_| row.state != ChildState::Stopped)
                    .map(|nested| Box::new(nested.snapshot())),
            })
            .collect();
        SupervisorInfo {
            name: self.name.to_string(),
            pid: self.pid,
            strategy: self.strategy,
            children,
            max_restarts: self.max_restarts,
            max_seconds: self.max_seconds,
            intensity_used,
            uptime: now.saturating_duration_since(self.started),
            restarts: self.counters.restarts.load(Ordering::Relaxed),
            exits: REASONS
                .iter()
                .zip(&self.counters.exits)
                .map(|(label, n)| (*label, n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// A row's last exit as an [`ExitReason`], made one (once) if the child's
/// error was kept as it came.
fn last_exit(kept: &mut Option<Ended>) -> Option<ExitReason> {
    let reason = kept.take()?.into_reason();
    *kept = Some(Ended::Reason(reason.clone()));
    Some(reason)
}

/// A snapshot of every live supervision tree in the process, roots first.
///
/// Supervisors started as children of another supervisor appear inside their
/// parent, not as roots. Its `Display` form prints the trees indented.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
///
/// trellis::nursery(|n| async move {
///     let children = vec![ChildSpec::task("worker", || std::future::pending::<()>())];
///     let sup = supervisor::start(&n, children, SupervisorOptions::new().name("tree-demo")).await?;
///     let trees = supervisor::tree();
///     assert!(trees.iter().any(|t| t.name == "tree-demo" && t.children.len() == 1));
///     assert!(supervisor::tree().to_string().contains("worker"));
///     sup.stop().await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Tree(pub Vec<SupervisorInfo>);

impl std::ops::Deref for Tree {
    type Target = [SupervisorInfo];

    fn deref(&self) -> &[SupervisorInfo] {
        &self.0
    }
}

/// Snapshots every live supervision tree (see [`Tree`]).
#[doc(alias = "observer")]
pub fn tree() -> Tree {
    let roots: Vec<Arc<Shared>> = {
        let mut roots = lock(&ROOTS);
        roots.retain(|r| r.strong_count() > 0);
        roots.iter().filter_map(Weak::upgrade).collect()
    };
    Tree(roots.iter().map(|r| r.snapshot()).collect())
}

/// One supervisor in a snapshot of the tree.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SupervisorInfo {
    /// The supervisor's name ([`SupervisorOptions::name`](super::SupervisorOptions::name)).
    pub name: String,
    /// The supervisor's own process id.
    pub pid: Pid,
    /// Its restart strategy.
    pub strategy: Strategy,
    /// Its children in start order.
    pub children: Vec<ChildInfo>,
    /// Its restart intensity: at most this many restarts…
    pub max_restarts: u32,
    /// …within any window this long.
    pub max_seconds: Duration,
    /// Restarts inside the current window: how much of
    /// [`max_restarts`](Self::max_restarts) is used (one more than
    /// `max_restarts` trips it).
    pub intensity_used: usize,
    /// How long it has run.
    pub uptime: Duration,
    /// Restarts of its children since it started.
    pub restarts: u64,
    /// Its children's exits since it started, by reason (`"normal"`,
    /// `"shutdown"`, `"killed"`, `"error"`, `"panic"`, `"noproc"`); reasons
    /// never seen are left out.
    pub exits: Vec<(&'static str, u64)>,
}

/// One child in a snapshot of the tree.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The key the supervisor knows the child by, stable across restarts.
    pub key: ChildId,
    /// The id from its [`ChildSpec`](super::ChildSpec).
    pub id: String,
    /// The child's own pid, as OTP's `which_children` gives it: the pid
    /// of the process the current incarnation runs as — a gen_server's, a
    /// supervisor's, or the first process (mailbox) a [`ChildSpec::new`](super::ChildSpec::new)
    /// or [`ChildSpec::task`](super::ChildSpec::task) child creates in its
    /// own task — so [`process::is_alive`](crate::process::is_alive) and
    /// [`registry::lookup_pid`](crate::registry::lookup_pid) work on it.
    ///
    /// `None` when no incarnation runs (stopped, waiting for a restart,
    /// [ignored](ChildState::Ignored)), before the child has created its
    /// process, and for a plain task that creates none: such a task is not
    /// a process (nothing can send to it or look it up), so Trellis shows
    /// no pid rather than invent one that no lookup could find; its
    /// [`key`](Self::key) names it instead.
    pub pid: Option<Pid>,
    /// Its restart type.
    pub restart: Restart,
    /// What it is doing.
    pub state: ChildState,
    /// How many times it has been restarted.
    pub restarts: u64,
    /// Why its last incarnation ended (`None` before any ended).
    pub last_exit: Option<ExitReason>,
    /// How long its running incarnation has run: `None` when it is not
    /// running, or when it started while nothing observed the node (the
    /// start instant is only taken for an observer).
    pub uptime: Option<Duration>,
    /// If the child is itself a supervisor: its own snapshot.
    pub supervisor: Option<Box<SupervisorInfo>>,
}

/// What a supervised child is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChildState {
    /// Spawned, the start handshake not yet done.
    Starting,
    /// Started and running.
    Running,
    /// Being stopped by its supervisor.
    Stopping,
    /// Not running (it ended and is not to be restarted), or waiting to be
    /// restarted.
    Stopped,
    /// Its start function returned `Ok` without reporting
    /// [`started`](crate::TaskStatus::started) (OTP's `ignore`): not
    /// running, no pid, never restarted.
    Ignored,
}

impl fmt::Display for ChildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Stopping => "stopping",
            ChildState::Stopped => "stopped",
            ChildState::Ignored => "ignored",
        })
    }
}

impl SupervisorInfo {
    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        writeln!(
            f,
            "{pad}{} {} (supervisor, {:?})",
            self.name, self.pid, self.strategy
        )?;
        for child in &self.children {
            match &child.supervisor {
                Some(nested) => nested.write(f, depth + 1)?,
                None => {
                    let pid = child.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
                    writeln!(
                        f,
                        "{pad}  {} {pid} ({:?}, {}, restarts: {})",
                        child.id, child.restart, child.state, child.restarts
                    )?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for SupervisorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for root in &self.0 {
            root.write(f, 0)?;
        }
        Ok(())
    }
}
