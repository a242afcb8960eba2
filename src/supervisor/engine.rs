//! The supervisor loop shared by static and dynamic supervisors.
//!
//! One task owns all the state: the children in start order, the restart
//! window and a queue of exit reports. Each child incarnation runs in its own
//! tokio task (held by an abort-on-drop handle, so none outlives the loop)
//! inside its own cancel scope; a guard in that task reports how it ended on
//! an unbounded channel, from `Drop`, so even an aborted child reports.
//! While the loop waits for one particular child (to start, or to stop) it
//! sets other children's reports aside and handles them afterwards, in
//! order.
//!
//! The supervisor itself is a process of the node: it is published in the
//! process table under its pid (offering its [`Supervisor`] handle to
//! lookups) and, if it registers, under its name, from before its first
//! child starts until it ends; a guard records its end however it ends.
//!
//! Logging: children of a dynamic supervisor (one per connection, per job)
//! start, exit normally and stop at `DEBUG`; a static supervisor's at
//! `INFO`. Abnormal exits, restarts after them, kills after a shutdown
//! timeout, start failures and intensity trips are `ERROR` for both (the
//! fields are listed in the module docs of `supervisor`).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::CatchUnwind;
use pin_project_lite::pin_project;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::intensity::Intensity;
use super::tree::{PARENT, Row, Shared, lock};
use super::{
    ChildId, ChildSpec, ChildState, Command, Shutdown, StartedChild, StartedValue, Strategy,
    Supervisor, SupervisorError, SupervisorOptions,
};
use crate::cancel::{CancelScope, Scoped, WaitShutdown, wait_shutdown};
use crate::nursery::TaskStatus;
use crate::observer::bus::{self, Event, EventKind};
use crate::process::{CHILD_PID, Entry, ExitReason, Pid, claimed_pid};
use crate::registry::{self, RegistryError};

/// Logs a child's start, exit or stop: `DEBUG` under a dynamic supervisor,
/// where children come and go all the time, `INFO` under a static one.
macro_rules! lifecycle {
    ($dynamic:expr, $($event:tt)*) => {
        if $dynamic {
            tracing::debug!($($event)*)
        } else {
            tracing::info!($($event)*)
        }
    };
}

use crate::BoxError;

/// A child's pid in a log event: OTP's `undefined` when it has none.
#[derive(Clone, Copy)]
struct ShowPid(Option<Pid>);

impl fmt::Display for ShowPid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pid) => pid.fmt(f),
            None => f.write_str("undefined"),
        }
    }
}

/// Logs a child's end as the supervisor saw it: abnormal, OTP's crash
/// report and `child_terminated` supervisor report (`ERROR`); normal, a
/// lifecycle event. (Written by the supervisor, or by a child's task that
/// restarts it in place.)
fn log_exit(
    supervisor: &str,
    dynamic: bool,
    child: &str,
    pid: ShowPid,
    reason: &Ended,
    restart: super::Restart,
) {
    if reason.is_abnormal() {
        tracing::error!(supervisor = %supervisor, child = %child, %pid, %reason, ?restart, "child terminated abnormally");
    } else {
        lifecycle!(dynamic, supervisor = %supervisor, child = %child, %pid, %reason, "child exited");
    }
}

/// Logs a restart once the new incarnation has started.
fn log_restart(supervisor: &str, child: &str, pid: ShowPid, restarts: u64, abnormal: bool) {
    if abnormal {
        tracing::error!(supervisor = %supervisor, child = %child, %pid, restarts, "child restarted after an abnormal exit");
    } else {
        tracing::info!(supervisor = %supervisor, child = %child, %pid, restarts, "child restarted");
    }
}

/// How one child incarnation ended.
struct Exit {
    key: ChildId,
    incarnation: u64,
    reason: Ended,
    /// Its task restarted it in place before, and this incarnation ended
    /// before it reported started (see [`restart_in_place`]).
    unstarted: bool,
    /// Its task already recorded this exit in the restart window, which
    /// was full: the supervisor gives up without recording it again.
    tripped: bool,
}

/// Why a child incarnation ended, as its task saw it. An error stays the
/// error it returned until something needs its text (an error value, an
/// enabled log line, which formats it as [`ExitReason`] would): a restart
/// after an `Err` formats nothing. (Also a child's last exit in its
/// [`Row`], made an [`ExitReason`] only when the tree is read.)
pub(super) enum Ended {
    Reason(ExitReason),
    Error(BoxError),
}

impl Ended {
    pub(super) fn is_abnormal(&self) -> bool {
        match self {
            Ended::Reason(reason) => reason.is_abnormal(),
            Ended::Error(_) => true,
        }
    }

    /// Where it counts in the supervisor's exits by reason.
    fn index(&self) -> usize {
        match self {
            Ended::Reason(reason) => super::tree::reason_index(reason),
            // As `ExitReason::Error`, without making one.
            Ended::Error(_) => super::tree::ERROR_INDEX,
        }
    }

    pub(super) fn into_reason(self) -> ExitReason {
        match self {
            Ended::Reason(reason) => reason,
            Ended::Error(error) => ExitReason::error(error),
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Reason(reason) => reason.fmt(f),
            // As `ExitReason::Error`'s text.
            Ended::Error(error) => write!(f, "error: {error}"),
        }
    }
}

/// Sends the child's exit report when the child task ends, however it ends.
struct Reporter {
    tx: mpsc::UnboundedSender<Exit>,
    key: ChildId,
    incarnation: u64,
    /// The slot's [`Slot::stopping`].
    stopping: Arc<AtomicU64>,
    reason: Option<Ended>,
    unstarted: bool,
    tripped: bool,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let reason = self
            .reason
            .take()
            .unwrap_or(Ended::Reason(ExitReason::Killed));
        let _ = self.tx.send(Exit {
            key: self.key,
            incarnation: self.incarnation,
            reason,
            unstarted: self.unstarted,
            tripped: self.tripped,
        });
    }
}

/// What the supervisor gives a child's start function for one start: what
/// the child's task runs in (its scope, its exit report, and the supervisor
/// and row it belongs to).
pub(crate) struct Launch {
    scope: CancelScope,
    report: Reporter,
    parent: (std::sync::Weak<Shared>, ChildId),
    /// Where the child's own process records its pid.
    own: Arc<AtomicU64>,
    handshake: bool,
}

impl Launch {
    /// Spawns the child's whole task: `first` inside its scope, reporting
    /// how it ended; `again` makes the incarnations the task restarts by
    /// itself (see [`restart_in_place`]). Spawned here, where the child's
    /// type is known: the task holds the child's future inline (no box of
    /// its own), and the (large) future is moved once, not at every step of
    /// `spawn`.
    ///
    /// An incarnation's output says whether it reported started (always
    /// `true` for a child without a handshake). One that `again` made
    /// (restarted in place) calls [`restarted_started`] when it reports
    /// started.
    pub(crate) fn spawn<F, M>(self, first: F, again: M) -> AbortOnDropHandle<()>
    where
        F: Future<Output = (Result<(), BoxError>, bool)> + Send + 'static,
        M: FnMut() -> F + Send + 'static,
    {
        let incarnations = Incarnations {
            current: AssertUnwindSafe(first).catch_unwind(),
            again,
            handshake: self.handshake,
            restarted: false,
        };
        let child = RunChild {
            child: self.scope.run(incarnations),
            report: self.report,
        };
        AbortOnDropHandle::new(tokio::spawn(
            PARENT.scope(self.parent, CHILD_PID.scope(self.own, child)),
        ))
    }
}

/// A child restarted in place has started: its row says so, and the
/// restart is logged (with the new incarnation's pid), as the supervisor
/// logs a restart once the new incarnation's handshake is answered.
pub(crate) fn restarted_started() {
    let Some((shared, key)) = parent() else {
        return;
    };
    update_row(&shared, key, |row| {
        if row.state == ChildState::Starting {
            row.state = ChildState::Running;
        }
        let pid = ShowPid(row.own.as_deref().and_then(claimed_pid));
        log_restart(
            &shared.name,
            &row.id,
            pid,
            row.restarts,
            row.restarted_after_abnormal,
        );
    });
}

/// The supervisor and row of the running child task.
fn parent() -> Option<(Arc<Shared>, ChildId)> {
    PARENT
        .try_with(|(shared, key)| shared.upgrade().map(|shared| (shared, *key)))
        .ok()
        .flatten()
}

/// Where child `key` sits in `items` (slots or rows: both in key order,
/// keys given out in increasing order, removals keeping the order). A
/// child sits at most at its key's number, and exactly there until one
/// before it was removed: looked up there first, so a static supervisor's
/// lookups touch one item, not a binary search's worth of cache lines.
fn position<T>(items: &[T], key: ChildId, key_of: impl Fn(&T) -> ChildId) -> Option<usize> {
    let at = usize::try_from(key.0).unwrap_or(usize::MAX);
    if items.get(at).is_some_and(|item| key_of(item) == key) {
        return Some(at);
    }
    let before = &items[..at.min(items.len())];
    before.binary_search_by_key(&key, key_of).ok()
}

/// Updates row `key` of `shared`, if it is still there.
fn update_row<R>(shared: &Shared, key: ChildId, update: impl FnOnce(&mut Row) -> R) -> Option<R> {
    let mut rows = lock(&shared.rows);
    // Rows stay in key order, as slots do.
    let at = position(&rows, key, |r| r.key)?;
    Some(update(&mut rows[at]))
}

/// Restarts a child in its own task, without a word to the supervisor, when
/// the supervisor would only start it again: a one-for-one (or dynamic)
/// supervisor without backoff that is not stopping, a running child whose
/// [`Restart`](super::Restart) type restarts it after `reason`, room in the
/// restart window, and nobody subscribed to the observer's events. Records
/// what the supervisor would record (the restart window under its lock, the
/// counters, the child's row, the log line); the caller then runs the next
/// incarnation in the same task and scope: no exit report, no wake-up of
/// the supervisor, no new task.
///
/// Otherwise gives the reason back, with whether the restart window was
/// full, for the supervisor to handle as it always does.
fn restart_in_place(reason: Ended, handshake: bool) -> Result<(), (Ended, bool)> {
    let abnormal = reason.is_abnormal();
    let Some((shared, key)) = parent() else {
        return Err((reason, false));
    };
    if !shared.restarts_in_place
        || shared.closing.load(Ordering::Acquire)
        || bus::subscribed()
        || crate::cancel::current_is_stopping()
    {
        return Err((reason, false));
    }
    let observed = bus::enabled();
    let mut reason = Some(reason);
    // One lock of the rows for the check and the record (the window's
    // lock is taken inside it; nothing takes them the other way round).
    let outcome = update_row(&shared, key, |row| {
        // The supervisor marks a child `Stopping` before it stops it.
        if row.state != ChildState::Running || !row.restart.restarts_if(abnormal) {
            return Err(false);
        }
        if !lock(&shared.intensity).record(Instant::now()) {
            return Err(true);
        }
        if let Some(ended) = &reason {
            let counters = &shared.counters;
            counters.exits[ended.index()].fetch_add(1, Ordering::Relaxed);
            counters.restarts.fetch_add(1, Ordering::Relaxed);
            let pid = ShowPid(row.own.as_deref().and_then(claimed_pid));
            log_exit(
                &shared.name,
                shared.dynamic,
                &row.id,
                pid,
                ended,
                row.restart,
            );
        }
        if let Some(own) = &row.own {
            own.store(0, Ordering::Release);
        }
        row.restarts += 1;
        row.restarted_after_abnormal = abnormal;
        row.state = if handshake {
            ChildState::Starting
        } else {
            ChildState::Running
        };
        row.nested = None;
        // Kept only while observed, as the supervisor keeps it.
        if observed {
            row.last_exit = reason.take();
            row.since = Some(Instant::now());
        }
        Ok(())
    });
    match (outcome, reason) {
        // (The reason is taken only by a restart.)
        (Some(Ok(())), _) | (_, None) => Ok(()),
        (refused, Some(reason)) => Err((reason, refused == Some(Err(true)))),
    }
}

pin_project! {
    /// A child's incarnations, one after the other in one task: the
    /// current one, its panics caught, and what makes the next;
    /// `restarted`: the current one was restarted in place.
    struct Incarnations<F, M> {
        #[pin]
        current: CatchUnwind<AssertUnwindSafe<F>>,
        again: M,
        handshake: bool,
        restarted: bool,
    }
}

/// How a child's task ended, for its exit report.
struct Ending {
    reason: Ended,
    /// Restarted in place, it ended before it reported started.
    unstarted: bool,
    /// Its end was counted in a full restart window.
    tripped: bool,
}

impl<F, M> Future for Incarnations<F, M>
where
    F: Future<Output = (Result<(), BoxError>, bool)>,
    M: FnMut() -> F,
{
    type Output = Ending;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ending> {
        let mut this = self.project();
        loop {
            let (reason, started) = match std::task::ready!(this.current.as_mut().poll(cx)) {
                Ok((Ok(()), started)) => (Ended::Reason(ExitReason::Normal), started),
                Ok((Err(error), started)) => (Ended::Error(error), started),
                Err(payload) => (
                    Ended::Reason(ExitReason::Panic(
                        crate::cancel::panic_message(&*payload).into(),
                    )),
                    // Unknown; a panic is abnormal either way.
                    true,
                ),
            };
            if !started {
                // The first incarnation's start is the supervisor's own
                // wait; a restarted one's goes to it as a failed start.
                return Poll::Ready(Ending {
                    reason,
                    unstarted: *this.restarted,
                    tripped: false,
                });
            }
            if let Err((reason, tripped)) = restart_in_place(reason, *this.handshake) {
                return Poll::Ready(Ending {
                    reason,
                    unstarted: false,
                    tripped,
                });
            }
            *this.restarted = true;
            if !*this.handshake {
                restarted_started();
            }
            let next = (this.again)();
            this.current.set(AssertUnwindSafe(next).catch_unwind());
            // A child that fails at once would otherwise restart for ever
            // in one poll: each restart spends the task's budget, as a
            // message would.
            std::task::ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
        }
    }
}

pin_project! {
    /// The body of a child's tokio task: its incarnations in its scope.
    /// The exit report is a field after them, so it is dropped (and sends)
    /// after them, however the task ends. (A struct, not an `async fn`,
    /// which would keep the child's future twice in the task for its
    /// whole life.)
    struct RunChild<F, M> {
        #[pin]
        child: Scoped<Incarnations<F, M>>,
        report: Reporter,
    }
}

impl<F, M> Future for RunChild<F, M>
where
    F: Future<Output = (Result<(), BoxError>, bool)>,
    M: FnMut() -> F,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let ending = std::task::ready!(this.child.poll(cx));
        let report = this.report;
        let Some(ending) = ending else {
            report.reason = Some(Ended::Reason(ExitReason::Killed));
            return Poll::Ready(());
        };
        let stopped = report.stopping.load(Ordering::Acquire) == report.incarnation;
        report.reason = Some(match ending.reason {
            // It returned `Ok` as asked to.
            Ended::Reason(ExitReason::Normal) if stopped => Ended::Reason(ExitReason::Shutdown),
            reason => reason,
        });
        report.unstarted = ending.unstarted;
        report.tripped = ending.tripped;
        Poll::Ready(())
    }
}

struct Running {
    incarnation: u64,
    scope: CancelScope,
    handle: AbortOnDropHandle<()>,
    /// When it started; read only to reset the backoff streak, so taken only
    /// when the supervisor has a backoff.
    since: Option<Instant>,
}

struct Slot {
    key: ChildId,
    spec: ChildSpec,
    running: Option<Running>,
    /// The incarnation being stopped (`u64::MAX`: none): one that then
    /// returns `Ok` reports `Shutdown`. One per slot, shared by its
    /// incarnations' reporters, so a restart allocates no flag.
    stopping: Arc<AtomicU64>,
    /// A restart is owed: start it when the loop gets to it.
    wanted: bool,
    /// The running incarnation's own pid (0: none yet), reset at each
    /// start; shared with its row and its task.
    own: Arc<AtomicU64>,
    /// Consecutive restarts, for the backoff.
    streak: u32,
}

/// Why a child did not start.
enum StartFailure {
    /// It ended first, with this reason.
    Exited(ExitReason),
    /// The supervisor was asked to shut down meanwhile.
    Shutdown,
}

/// What the loop does after handling an event.
enum Flow {
    Continue,
    Stop,
}

struct Engine {
    shared: Arc<Shared>,
    options: SupervisorOptions,
    dynamic: bool,
    slots: Vec<Slot>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: mpsc::UnboundedReceiver<Exit>,
    pending: VecDeque<Exit>,
    next_key: u64,
    next_incarnation: u64,
    /// The supervisor's own shutdown request, awaited by every wait of the
    /// loop. Kept across waits, so its waker stays registered: re-polling it
    /// touches no lock.
    shutdown: WaitShutdown,
}

/// Records the supervisor's end in the process table (releasing its name)
/// when it is dropped: `Killed` if it was cancelled, `Panic` while
/// unwinding, else the reason [`run`] set.
struct ProcessGuard {
    entry: Arc<Entry>,
    reason: Option<ExitReason>,
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let reason = self.reason.take().unwrap_or_else(|| {
            if std::thread::panicking() {
                ExitReason::Panic("supervisor panicked".into())
            } else {
                ExitReason::Killed
            }
        });
        self.entry.exit(reason, registry::release);
    }
}

/// The handle a running supervisor offers lookups: its [`Supervisor`].
fn supervisor_view(base: &Arc<dyn Any + Send + Sync>, out: &mut dyn Any) {
    if let (Some(handle), Some(out)) = (
        base.downcast_ref::<Supervisor>(),
        out.downcast_mut::<Option<Supervisor>>(),
    ) {
        *out = Some(handle.clone());
    }
}

pub(crate) async fn run(
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
    dynamic: bool,
    status: TaskStatus<Supervisor>,
) -> Result<(), SupervisorError> {
    if options.max_seconds.is_zero() {
        return Err(SupervisorError::InvalidOptions(
            "max_seconds must not be zero",
        ));
    }
    let mut ids = std::collections::HashSet::with_capacity(children.len());
    for child in &children {
        if !ids.insert(&child.id) {
            return Err(SupervisorError::DuplicateChild {
                supervisor: options.name.to_string(),
                child: child.id.to_string(),
            });
        }
    }
    drop(ids);
    let entry = Entry::new(None);
    let shared = Arc::new(Shared {
        name: options.name.clone(),
        pid: entry.pid(),
        strategy: options.strategy,
        rows: Mutex::new(Vec::with_capacity(children.len())),
        intensity: Mutex::new(Intensity::new(options.max_restarts, options.max_seconds)),
        max_restarts: options.max_restarts,
        max_seconds: options.max_seconds,
        started: Instant::now(),
        counters: bus::supervisor_counters(&options.name),
        dynamic,
        restarts_in_place: (dynamic || options.strategy == Strategy::OneForOne)
            && options.backoff.is_none(),
        closing: AtomicBool::new(false),
    });
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let handle = Supervisor {
        shared: Arc::clone(&shared),
        commands: commands_tx,
    };
    entry.publish(Arc::new(handle.clone()), supervisor_view);
    let mut guard = ProcessGuard {
        entry,
        reason: None,
    };
    if options.register {
        registry::register(&*options.name, shared.pid).map_err(|error| match error {
            RegistryError::NameAlreadyExists { .. } => SupervisorError::NameTaken {
                name: options.name.to_string(),
            },
            // Unreachable: the entry was published above and has not ended.
            _ => SupervisorError::NotRunning {
                supervisor: options.name.to_string(),
            },
        })?;
    }
    shared.link();
    let result = supervise(children, options, dynamic, shared, handle, commands, status).await;
    guard.reason = Some(match &result {
        Ok(()) => ExitReason::Normal,
        Err(error) => ExitReason::error(error.to_string()),
    });
    result
}

/// The body of [`run`], once the supervisor is a process.
async fn supervise(
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
    dynamic: bool,
    shared: Arc<Shared>,
    handle: Supervisor,
    mut commands: mpsc::UnboundedReceiver<Command>,
    status: TaskStatus<Supervisor>,
) -> Result<(), SupervisorError> {
    let (exits_tx, exits_rx) = mpsc::unbounded_channel();
    let mut engine = Engine {
        shared: Arc::clone(&shared),
        options,
        dynamic,
        slots: Vec::with_capacity(children.len()),
        exits_tx,
        exits_rx,
        pending: VecDeque::new(),
        next_key: 0,
        next_incarnation: 0,
        shutdown: wait_shutdown(),
    };
    for spec in children {
        engine.add_slot(spec);
    }
    tracing::debug!(supervisor = %engine.shared.name, pid = %engine.shared.pid, "supervisor starting");
    for i in 0..engine.slots.len() {
        let key = engine.slots[i].key;
        match engine.start_slot(key).await {
            Ok(_) => {}
            Err(StartFailure::Shutdown) => {
                engine.stop_all().await;
                return Ok(());
            }
            Err(StartFailure::Exited(reason)) => {
                let child = engine.slots[i].spec.id.to_string();
                tracing::error!(supervisor = %engine.shared.name, child = %child, pid = %ShowPid(None), %reason, "child failed to start");
                engine.stop_all().await;
                return Err(SupervisorError::StartFailed {
                    supervisor: engine.shared.name.to_string(),
                    child,
                    reason,
                });
            }
        }
    }
    status.started(handle);
    let mut commands_open = true;
    loop {
        if !engine.dynamic
            && engine
                .slots
                .iter()
                .all(|s| s.running.is_none() && !s.wanted)
        {
            tracing::debug!(supervisor = %engine.shared.name, "no child left to supervise");
            return Ok(());
        }
        enum Event {
            Exit(Exit),
            Command(Option<Command>),
            Shutdown,
        }
        let event = if let Some(exit) = engine.pending.pop_front() {
            Event::Exit(exit)
        } else {
            tokio::select! {
                biased;
                () = &mut engine.shutdown => Event::Shutdown,
                Some(exit) = engine.exits_rx.recv() => Event::Exit(exit),
                command = commands.recv(), if commands_open => Event::Command(command),
            }
        };
        let flow = match event {
            Event::Shutdown => Flow::Stop,
            Event::Exit(exit) => engine.on_exit(exit).await?,
            Event::Command(None) => {
                commands_open = false;
                Flow::Continue
            }
            Event::Command(Some(command)) => engine.on_command(command).await,
        };
        if let Flow::Stop = flow {
            engine.stop_all().await;
            // Answer stop requests queued meanwhile, then go.
            commands.close();
            while let Ok(command) = commands.try_recv() {
                if let Command::Stop(reply) = command {
                    let _ = reply.send(());
                }
            }
            return Ok(());
        }
    }
}

impl Engine {
    fn name(&self) -> String {
        self.shared.name.to_string()
    }

    /// Slots stay in key order (keys grow, removals keep the order).
    fn index(&self, key: ChildId) -> Option<usize> {
        position(&self.slots, key, |s| s.key)
    }

    fn add_slot(&mut self, spec: ChildSpec) -> ChildId {
        let key = ChildId(self.next_key);
        self.next_key += 1;
        lock(&self.shared.rows).push(Row {
            key,
            id: spec.id.clone(),
            own: None,
            restart: spec.restart,
            state: ChildState::Stopped,
            restarts: 0,
            nested: None,
            last_exit: None,
            since: None,
            restarted_after_abnormal: false,
        });
        self.slots.push(Slot {
            key,
            spec,
            running: None,
            stopping: Arc::new(AtomicU64::new(u64::MAX)),
            own: Arc::new(AtomicU64::new(0)),
            wanted: true,
            streak: 0,
        });
        key
    }

    fn remove_slot(&mut self, key: ChildId) {
        if let Some(i) = self.index(key) {
            self.slots.remove(i);
        }
        lock(&self.shared.rows).retain(|r| r.key != key);
    }

    /// Publishes a lifecycle event about child `id` to the observer, if one
    /// runs (nothing is built otherwise).
    fn publish(
        &self,
        kind: EventKind,
        id: &str,
        pid: Option<Pid>,
        reason: Option<&ExitReason>,
        restarts: u64,
    ) {
        bus::publish(|| {
            let mut event = Event::new(kind);
            event.supervisor = Some(self.shared.name.to_string());
            event.supervisor_pid = Some(self.shared.pid);
            event.child = Some(id.to_owned());
            event.pid = pid;
            event.reason = reason.map(ToString::to_string);
            event.restarts = restarts;
            event
        });
    }

    /// Counts a stopped child's exit and records it as its last.
    fn record_exit(&self, key: ChildId, reason: &ExitReason) {
        self.shared.counters.exits[super::tree::reason_index(reason)]
            .fetch_add(1, Ordering::Relaxed);
        self.set_row(key, |row| {
            row.last_exit = Some(Ended::Reason(reason.clone()))
        });
    }

    /// The child's restarts so far (kept in its row, which its task
    /// updates when it restarts the child in place).
    fn restarts(&self, key: ChildId) -> u64 {
        update_row(&self.shared, key, |row| row.restarts).unwrap_or(0)
    }

    fn set_row(&self, key: ChildId, update: impl FnOnce(&mut Row)) {
        update_row(&self.shared, key, update);
    }

    /// Spawns a new incarnation of the child and waits for its handshake;
    /// `None`: the child ignored its start (it returned `Ok` without
    /// reporting `started`, OTP's `ignore`) and is recorded as ignored.
    async fn start_slot(&mut self, key: ChildId) -> Result<Option<StartedValue>, StartFailure> {
        let Some(i) = self.index(key) else {
            return Err(StartFailure::Exited(ExitReason::Killed));
        };
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let slot = &mut self.slots[i];
        slot.wanted = false;
        slot.own.store(0, Ordering::Release);
        let own = Arc::clone(&slot.own);
        let started = {
            let scope = CancelScope::new();
            // The row is reset before the task exists: a nested supervisor
            // hooks itself into it as it starts, which on a multi-thread
            // runtime can happen on another worker before `spawn` returns.
            {
                let mut rows = lock(&self.shared.rows);
                if let Some(at) = position(&rows, key, |r| r.key) {
                    let row = &mut rows[at];
                    row.own = Some(Arc::clone(&own));
                    row.nested = None;
                    row.since = bus::enabled().then(Instant::now);
                    // Without a handshake, a child counts as started once
                    // spawned.
                    row.state = if slot.spec.handshake {
                        ChildState::Starting
                    } else {
                        ChildState::Running
                    };
                }
            }
            let inc = (slot.spec.start)(Launch {
                scope: scope.clone(),
                report: Reporter {
                    tx: self.exits_tx.clone(),
                    key,
                    incarnation,
                    stopping: Arc::clone(&slot.stopping),
                    reason: None,
                    unstarted: false,
                    tripped: false,
                },
                parent: (Arc::downgrade(&self.shared), key),
                own: Arc::clone(&own),
                handshake: slot.spec.handshake,
            });
            slot.running = Some(Running {
                incarnation,
                scope,
                handle: inc.task,
                since: self.options.backoff.map(|_| Instant::now()),
            });
            inc.started
        };
        let Some(started) = started else {
            // No handshake: started once spawned (its row says so already).
            // Its body may not have run yet: its pid, if it makes a process,
            // comes later.
            lifecycle!(self.dynamic, supervisor = %self.shared.name, child = %self.slots[i].spec.id, pid = %ShowPid(None), "child started");
            if bus::subscribed() {
                let restarts = self.restarts(key);
                self.publish(
                    EventKind::ChildStarted,
                    &self.slots[i].spec.id,
                    None,
                    None,
                    restarts,
                );
            }
            return Ok(Some(Box::new(())));
        };
        enum Outcome {
            Started(Option<StartedValue>),
            Shutdown,
        }
        let outcome = tokio::select! {
            biased;
            value = started => Outcome::Started(value),
            () = &mut self.shutdown => Outcome::Shutdown,
        };
        match outcome {
            Outcome::Started(Some(value)) => {
                self.set_row(key, |row| row.state = ChildState::Running);
                lifecycle!(self.dynamic, supervisor = %self.shared.name, child = %self.slots[i].spec.id, pid = %ShowPid(claimed_pid(&own)), "child started");
                if bus::subscribed() {
                    let restarts = self.restarts(key);
                    self.publish(
                        EventKind::ChildStarted,
                        &self.slots[i].spec.id,
                        claimed_pid(&own),
                        None,
                        restarts,
                    );
                }
                Ok(Some(value))
            }
            Outcome::Started(None) => {
                // The handshake fails only once the task has ended.
                let reason = self.wait_exit(key, incarnation).await;
                self.slots[i].running = None;
                if reason == ExitReason::Normal {
                    // OTP's `ignore`: kept, not running, not restarted.
                    self.set_row(key, |row| {
                        row.state = ChildState::Ignored;
                        row.own = None;
                    });
                    lifecycle!(self.dynamic, supervisor = %self.shared.name, child = %self.slots[i].spec.id, "child ignored its start");
                    return Ok(None);
                }
                self.set_row(key, |row| {
                    row.state = ChildState::Stopped;
                    row.own = None;
                });
                Err(StartFailure::Exited(match reason {
                    ExitReason::Shutdown => {
                        ExitReason::error("returned before it reported started")
                    }
                    other => other,
                }))
            }
            Outcome::Shutdown => {
                self.stop_slot(key, Some(Shutdown::BrutalKill)).await;
                Err(StartFailure::Shutdown)
            }
        }
    }

    /// Waits for the exit report of one incarnation, setting others aside.
    async fn wait_exit(&mut self, key: ChildId, incarnation: u64) -> ExitReason {
        if let Some(pos) = self
            .pending
            .iter()
            .position(|e| e.key == key && e.incarnation == incarnation)
        {
            if let Some(exit) = self.pending.remove(pos) {
                return exit.reason.into_reason();
            }
        }
        while let Some(exit) = self.exits_rx.recv().await {
            if exit.key == key && exit.incarnation == incarnation {
                return exit.reason.into_reason();
            }
            self.pending.push_back(exit);
        }
        // Unreachable: the engine holds a sender.
        ExitReason::Killed
    }

    /// Stops the child's running incarnation, if any, and waits until it has
    /// ended. `policy` overrides the child's own.
    async fn stop_slot(&mut self, key: ChildId, policy: Option<Shutdown>) -> Option<ExitReason> {
        let i = self.index(key)?;
        let slot = &mut self.slots[i];
        let running = slot.running.take()?;
        let policy = policy.unwrap_or(slot.spec.shutdown);
        let id = slot.spec.id.clone();
        let pid = ShowPid(claimed_pid(&slot.own));
        slot.stopping.store(running.incarnation, Ordering::Release);
        self.set_row(key, |row| row.state = ChildState::Stopping);
        let reason = match policy {
            Shutdown::BrutalKill => {
                running.handle.abort();
                self.wait_exit(key, running.incarnation).await
            }
            Shutdown::Infinity => {
                running.scope.shutdown(Duration::MAX);
                self.wait_exit(key, running.incarnation).await
            }
            Shutdown::Timeout(grace) => {
                running.scope.shutdown(grace);
                let deadline = Instant::now() + grace;
                let incarnation = running.incarnation;
                let reason =
                    match tokio::time::timeout_at(deadline, self.wait_exit(key, incarnation)).await
                    {
                        Ok(reason) => reason,
                        Err(_) => {
                            // Shields or a busy loop kept it alive: no more waiting.
                            running.handle.abort();
                            self.wait_exit(key, incarnation).await
                        }
                    };
                if reason == ExitReason::Killed {
                    // Its scope's grace ran out, or the abort above: as
                    // OTP's `shutdown_error` report, with reason `killed`.
                    tracing::error!(
                        supervisor = %self.shared.name,
                        child = %id,
                        %pid,
                        %reason,
                        shutdown = ?grace,
                        "child did not stop within its shutdown time; killed"
                    );
                }
                reason
            }
        };
        drop(running);
        self.set_row(key, |row| {
            row.state = ChildState::Stopped;
            row.own = None;
        });
        lifecycle!(self.dynamic, supervisor = %self.shared.name, child = %id, %pid, %reason, "child stopped");
        self.record_exit(key, &reason);
        if bus::subscribed() {
            let restarts = self.restarts(key);
            self.publish(EventKind::ChildStopped, &id, pid.0, Some(&reason), restarts);
        }
        Some(reason)
    }

    /// Stops every running child in reverse start order.
    async fn stop_all(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        let keys: Vec<ChildId> = self.slots.iter().rev().map(|s| s.key).collect();
        for key in keys {
            self.stop_slot(key, None).await;
        }
        tracing::debug!(supervisor = %self.shared.name, "supervisor stopped");
    }

    async fn on_exit(&mut self, exit: Exit) -> Result<Flow, SupervisorError> {
        let Some(i) = self.index(exit.key) else {
            return Ok(Flow::Continue);
        };
        match &self.slots[i].running {
            Some(r) if r.incarnation == exit.incarnation => {}
            _ => return Ok(Flow::Continue), // a report from an incarnation we stopped
        }
        let running = self.slots[i].running.take();
        if exit.unstarted && !exit.reason.is_abnormal() {
            // Restarted in place, it returned before it reported started:
            // OTP's `ignore` on a restart, as `start_slot` records it.
            self.set_row(exit.key, |row| {
                row.state = ChildState::Ignored;
                row.own = None;
            });
            lifecycle!(self.dynamic, supervisor = %self.shared.name, child = %self.slots[i].spec.id, "child ignored its start");
            return Ok(Flow::Continue);
        }
        let ran_for = running.and_then(|r| r.since).map(|since| since.elapsed());
        self.on_down(exit.key, exit.reason, ran_for, exit.tripped)
            .await
    }

    /// Reacts to a child that ended on its own (or failed to restart).
    /// `tripped`: its task found the restart window full (see
    /// [`restart_in_place`]).
    async fn on_down(
        &mut self,
        key: ChildId,
        reason: Ended,
        ran_for: Option<Duration>,
        tripped: bool,
    ) -> Result<Flow, SupervisorError> {
        let mut next = Some((key, reason, ran_for, tripped));
        while let Some((key, reason, ran_for, tripped)) = next.take() {
            let Some(i) = self.index(key) else {
                continue;
            };
            let spec = &self.slots[i].spec;
            let id = spec.id.clone();
            let restart = spec.restart;
            let pid = ShowPid(claimed_pid(&self.slots[i].own));
            let abnormal = reason.is_abnormal();
            log_exit(&self.shared.name, self.dynamic, &id, pid, &reason, restart);
            self.shared.counters.exits[reason.index()].fetch_add(1, Ordering::Relaxed);
            // Observed: the reason is kept as the child's last, in the same
            // row update as the exit. Streamed, it is published too (the
            // error becomes an `ExitReason` once, here); otherwise it moves
            // into the row as it is, made an `ExitReason` only if the tree
            // is read (or the supervisor gives up, below).
            let (reason, mut last) = if bus::subscribed() {
                let reason = reason.into_reason();
                let restarts = self.restarts(key);
                self.publish(EventKind::ChildExited, &id, pid.0, Some(&reason), restarts);
                let last = Ended::Reason(reason.clone());
                (Some(Ended::Reason(reason)), Some(last))
            } else if bus::enabled() {
                (None, Some(reason))
            } else {
                (Some(reason), None)
            };
            let stopped = |row: &mut Row, last: Option<Ended>| {
                row.state = ChildState::Stopped;
                row.own = None;
                if last.is_some() {
                    row.last_exit = last;
                }
            };
            if !restart.restarts_if(abnormal) {
                self.set_row(key, |row| stopped(row, last));
                if self.dynamic || restart == super::Restart::Temporary {
                    self.remove_slot(key);
                }
                continue;
            }
            if tripped || !lock(&self.shared.intensity).record(Instant::now()) {
                // The reason is needed again: made one `ExitReason` here.
                let reason = match reason.or_else(|| last.take()) {
                    Some(reason) => reason.into_reason(),
                    None => ExitReason::Killed,
                };
                let kept = bus::enabled().then(|| Ended::Reason(reason.clone()));
                self.set_row(key, |row| stopped(row, kept));
                let reason = Ended::Reason(reason);
                bus::record_trip(&self.shared.name);
                if let Ended::Reason(reason) = &reason {
                    // Always a reason when observed (see above).
                    let restarts = self.restarts(key);
                    self.publish(
                        EventKind::IntensityExceeded,
                        &id,
                        pid.0,
                        Some(reason),
                        restarts,
                    );
                }
                tracing::error!(
                    supervisor = %self.shared.name,
                    child = %id,
                    %pid,
                    %reason,
                    max_restarts = self.options.max_restarts,
                    max_seconds = ?self.options.max_seconds,
                    "restart intensity exceeded, shutting down"
                );
                self.stop_all().await;
                return Err(SupervisorError::IntensityExceeded {
                    supervisor: self.name(),
                    child: id.to_string(),
                    reason: reason.into_reason(),
                    max_restarts: self.options.max_restarts,
                    max_seconds: self.options.max_seconds,
                });
            }
            let slot = &mut self.slots[i];
            slot.wanted = true;
            self.shared
                .counters
                .restarts
                .fetch_add(1, Ordering::Relaxed);
            let reset_after = self.options.backoff.map(|b| b.max);
            if ran_for
                .zip(reset_after)
                .is_some_and(|(ran, max)| ran >= max)
            {
                slot.streak = 0;
            }
            slot.streak = slot.streak.saturating_add(1);
            let streak = slot.streak;
            // One update for the exit and the restart count: nothing waits
            // between them.
            let mut restarts = 0;
            self.set_row(key, |row| {
                stopped(row, last);
                row.restarts += 1;
                restarts = row.restarts;
            });
            // Siblings to take down with it, in reverse start order.
            let siblings: Vec<ChildId> = match self.options.strategy {
                Strategy::OneForOne => Vec::new(),
                Strategy::OneForAll => self.slots.iter().rev().map(|s| s.key).collect(),
                Strategy::RestForOne => self.slots[i + 1..].iter().rev().map(|s| s.key).collect(),
            };
            // Every non-temporary child of the group is started again, as in
            // OTP: also one that was not running (a transient child that had
            // exited normally, an ignored one).
            for sibling in siblings {
                let was_running = self.stop_slot(sibling, None).await.is_some();
                let Some(j) = self.index(sibling) else {
                    continue;
                };
                if self.slots[j].spec.restart != super::Restart::Temporary {
                    self.slots[j].wanted = true;
                } else if was_running {
                    self.remove_slot(sibling);
                }
            }
            if let Some(backoff) = self.options.backoff {
                let delay = backoff.delay(streak);
                tracing::debug!(supervisor = %self.shared.name, child = %id, ?delay, "restart backoff");
                tokio::select! {
                    biased;
                    () = &mut self.shutdown => return Ok(Flow::Stop),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            // Start every owed child, in start order (keys grow with it;
            // starting one removes none).
            let mut after = None;
            while let Some(owed_key) = self
                .slots
                .iter()
                .filter(|s| after.is_none_or(|a| s.key > a))
                .find(|s| s.wanted && s.running.is_none())
                .map(|s| s.key)
            {
                after = Some(owed_key);
                let restarted = owed_key == key;
                match self.start_slot(owed_key).await {
                    Ok(None) => {} // ignored: recorded, not restarted again
                    Ok(Some(_)) => {
                        if restarted {
                            let pid = self
                                .index(owed_key)
                                .and_then(|j| claimed_pid(&self.slots[j].own));
                            log_restart(&self.shared.name, &id, ShowPid(pid), restarts, abnormal);
                            self.publish(EventKind::ChildRestarted, &id, pid, None, restarts);
                        }
                    }
                    Err(StartFailure::Shutdown) => return Ok(Flow::Stop),
                    Err(StartFailure::Exited(reason)) => {
                        // A failed restart counts as another exit.
                        next = Some((owed_key, Ended::Reason(reason), None, false));
                        break;
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_command(&mut self, command: Command) -> Flow {
        match command {
            Command::Stop(reply) => {
                self.stop_all().await;
                let _ = reply.send(());
                Flow::Stop
            }
            Command::RestartChild(key, reply) => {
                let Some(i) = self.index(key) else {
                    let _ = reply.send(Err(SupervisorError::ChildNotFound {
                        supervisor: self.name(),
                        child: key,
                    }));
                    return Flow::Continue;
                };
                // Asked for, not a failure: no intensity is used.
                self.stop_slot(key, None).await;
                let id = self.slots[i].spec.id.clone();
                self.shared
                    .counters
                    .restarts
                    .fetch_add(1, Ordering::Relaxed);
                let mut restarts = 0;
                self.set_row(key, |row| {
                    row.restarts += 1;
                    restarts = row.restarts;
                });
                match self.start_slot(key).await {
                    Ok(_) => {
                        let pid = claimed_pid(&self.slots[i].own);
                        self.publish(EventKind::ChildRestarted, &id, pid, None, restarts);
                        let _ = reply.send(Ok(()));
                        Flow::Continue
                    }
                    Err(StartFailure::Shutdown) => {
                        let _ = reply.send(Err(SupervisorError::NotRunning {
                            supervisor: self.name(),
                        }));
                        Flow::Stop
                    }
                    Err(StartFailure::Exited(reason)) => {
                        let _ = reply.send(Err(SupervisorError::StartFailed {
                            supervisor: self.name(),
                            child: id.to_string(),
                            reason: reason.clone(),
                        }));
                        // As any failed restart: handled as an exit.
                        match self.on_down(key, Ended::Reason(reason), None, false).await {
                            Ok(flow) => flow,
                            Err(_) => Flow::Stop,
                        }
                    }
                }
            }
            Command::TerminateChild(key, reply) => {
                if self.index(key).is_none() {
                    let _ = reply.send(Err(SupervisorError::ChildNotFound {
                        supervisor: self.name(),
                        child: key,
                    }));
                    return Flow::Continue;
                }
                self.stop_slot(key, None).await;
                self.remove_slot(key);
                let _ = reply.send(Ok(()));
                Flow::Continue
            }
            Command::StartChild(spec, reply) => {
                if let Some(max) = self.options.max_children {
                    if self.slots.len() >= max {
                        let _ = reply.send(Err(SupervisorError::MaxChildren {
                            supervisor: self.name(),
                            max,
                        }));
                        return Flow::Continue;
                    }
                }
                if !self.dynamic && self.slots.iter().any(|s| s.spec.id == spec.id) {
                    let _ = reply.send(Err(SupervisorError::DuplicateChild {
                        supervisor: self.name(),
                        child: spec.id.to_string(),
                    }));
                    return Flow::Continue;
                }
                let id = spec.id.to_string();
                let key = self.add_slot(spec);
                match self.start_slot(key).await {
                    Ok(value) => {
                        if value.is_none() && self.dynamic {
                            // A dynamic supervisor keeps no ignored child
                            // (as Elixir's `DynamicSupervisor`).
                            self.remove_slot(key);
                        }
                        let _ = reply.send(Ok(StartedChild { id: key, value }));
                        Flow::Continue
                    }
                    Err(failure) => {
                        self.remove_slot(key);
                        let reason = match failure {
                            StartFailure::Exited(reason) => reason,
                            StartFailure::Shutdown => ExitReason::Shutdown,
                        };
                        let stop = matches!(reason, ExitReason::Shutdown);
                        if !stop {
                            tracing::error!(supervisor = %self.shared.name, child = %id, pid = %ShowPid(None), %reason, "child failed to start");
                        }
                        let _ = reply.send(Err(SupervisorError::StartFailed {
                            supervisor: self.name(),
                            child: id,
                            reason,
                        }));
                        if stop { Flow::Stop } else { Flow::Continue }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ChildId, position};

    #[test]
    fn a_child_is_found_at_its_key_and_after_removals_before_it() {
        let keys: Vec<ChildId> = (0..10).map(ChildId).collect();
        assert_eq!(position(&keys, ChildId(7), |k| *k), Some(7));
        let removed: Vec<ChildId> = keys.iter().copied().filter(|k| k.0 % 3 != 0).collect();
        for (at, key) in removed.iter().enumerate() {
            assert_eq!(position(&removed, *key, |k| *k), Some(at));
        }
        assert_eq!(position(&removed, ChildId(3), |k| *k), None);
        assert_eq!(position(&removed, ChildId(42), |k| *k), None);
        assert_eq!(position(&[] as &[ChildId], ChildId(0), |k| *k), None);
    }
}
