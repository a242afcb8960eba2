//! Process identity and exit reasons: what every OTP module shares.
//!
//! In Trellis, as in Erlang, a *process* is a task with an identity: a
//! [`Pid`] that is cheap to copy, unique and never reused within a node. A
//! gen_server, a supervisor and any supervised function are processes. When a
//! process ends it ends with an [`ExitReason`], which monitors receive and
//! links act on, and which supervisors use to decide whether to restart.
//!
//! This is the lowest OTP module: mailbox addresses,
//! registry entries, gen_servers and supervisors all
//! build on it.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::{BoxError, Nursery, NurseryError};

/// The identifier of a process: cheap to copy, unique, never reused within a
/// node.
///
/// A `Pid` is node-qualified: node `0` is this node; with the `dist`
/// feature, a process on another node of an Erlang cluster gets a pid whose
/// node is an index into the distribution's node table
/// (`trellis::dist::DistNode::to_pid`), and monitors and
/// links on it work as on a local one. Its `Display` form follows Erlang's:
/// `<0.42>` for a local pid, `<3.81.0>` (node index, Erlang process number,
/// serial) for a remote one.
///
/// # Examples
///
/// ```
/// use trellis::process::Pid;
///
/// let a = Pid::new();
/// let b = Pid::new();
/// assert_ne!(a, b);
/// assert!(a.is_local());
/// assert_eq!(a.to_string(), format!("<0.{}>", a.id()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    node: u32,
    id: u64,
}

tokio::task_local! {
    /// Set by a supervisor around each child's task: the first process
    /// published while that task runs stores its pid number here — it is
    /// the child's own pid, the one `which_children` reports (0: none yet).
    pub(crate) static CHILD_PID: Arc<AtomicU64>;
}

/// The pid a [`CHILD_PID`] cell holds, if a process claimed it.
pub(crate) fn claimed_pid(cell: &AtomicU64) -> Option<Pid> {
    match cell.load(Ordering::Acquire) {
        0 => None,
        id => Some(Pid { node: 0, id }),
    }
}

/// The local pid numbered `id` (the observer names pids by number).
pub(crate) fn local_pid(id: u64) -> Pid {
    Pid { node: 0, id }
}

/// The pid of a process on another node: `node` indexes the distribution's
/// node table, `id` holds the Erlang serial (high half) and number (low).
#[cfg(feature = "dist")]
pub(crate) fn remote_pid(node: u32, id: u64) -> Pid {
    debug_assert!(node != 0);
    Pid { node, id }
}

/// Carries monitors, links and exits to processes on other nodes (pids with
/// node ≠ 0); installed once by the distribution layer, which also delivers
/// their `Down`s and `Exit`s back ([`Entry::remote_down`],
/// [`Entry::remote_exit`]). Without a reachable node the hook itself
/// delivers `noconnection`, as Erlang does.
#[cfg(feature = "dist")]
pub(crate) trait Remote: Send + Sync {
    /// Starts `monitor`, held by `watcher`, on the remote `target`.
    fn monitor(&self, watcher: &Arc<Entry>, monitor: MonitorRef, target: Pid);
    /// Stops it; returns whether it was active.
    fn demonitor(&self, watcher: Pid, monitor: MonitorRef, target: Pid) -> bool;
    /// Links `from` (already recording `target`) with the remote `target`.
    fn link(&self, from: &Arc<Entry>, target: Pid);
    /// Removes the link between `from` and the remote `target`.
    fn unlink(&self, from: Pid, target: Pid);
    /// `from`, linked with the remote `target`, ended with `reason`.
    fn exit(&self, from: Pid, target: Pid, reason: &ExitReason);
}

/// The distribution layer's [`Remote`], once a node started.
#[cfg(feature = "dist")]
pub(crate) static REMOTE: OnceLock<Box<dyn Remote>> = OnceLock::new();

/// How many consecutive process numbers a thread takes at once: its next
/// pids need no shared counter, and land in one shard of the table.
const BLOCK: u64 = 64;

/// The next block of process numbers to hand out (block `b` holds the
/// numbers `b * BLOCK ..= b * BLOCK + BLOCK - 1`; number 0 is never used).
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The next number of this thread's block, and the end of the block.
    static BLOCK_LEFT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

impl Pid {
    /// Allocates a fresh local pid, never handed out before in this node.
    ///
    /// Each thread takes numbers from a block of its own, so pids made on
    /// one thread increase, while pids made on different threads are not
    /// ordered by the time they were made.
    #[must_use]
    #[allow(clippy::new_without_default)] // a default pid would read as a constant
    pub fn new() -> Self {
        let id = BLOCK_LEFT.with(|left| {
            let (mut next, mut end) = left.get();
            if next == end {
                let block = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
                // The first block starts at 1: 0 means "no pid" in places.
                (next, end) = (block * BLOCK, block * BLOCK + BLOCK);
                next = next.max(1);
            }
            left.set((next + 1, end));
            next
        });
        Pid { node: 0, id }
    }

    /// The process number within its node.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node index (`0` for the local node).
    pub fn node(&self) -> u32 {
        self.node
    }

    /// Whether the process lives on this node.
    pub fn is_local(&self) -> bool {
        self.node == 0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node == 0 {
            write!(f, "<0.{}>", self.id)
        } else {
            // Erlang's `<Node.Number.Serial>`.
            let (serial, number) = (self.id >> 32, self.id & 0xffff_ffff);
            write!(f, "<{}.{number}.{serial}>", self.node)
        }
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a process ended, as monitors, links and supervisors see it.
///
/// | reason | how it happens | abnormal? |
/// |---|---|---|
/// | [`Normal`](ExitReason::Normal) | the process returned successfully | no |
/// | [`Shutdown`](ExitReason::Shutdown) | it was asked to stop gracefully (a supervisor, a node) and did | no |
/// | [`Killed`](ExitReason::Killed) | it was cancelled or dropped without finishing (brutal kill, an outer cancel scope) | yes |
/// | [`Error`](ExitReason::Error) | it returned an error; carries the error value ([`ExitError`]) | yes |
/// | [`Panic`](ExitReason::Panic) | it panicked; carries the panic message | yes |
/// | [`NoProcess`](ExitReason::NoProcess) | it was already gone when monitored or linked | yes |
///
/// An *abnormal* exit stops linked processes that do not trap exits and
/// makes a `Transient` child restart, as in OTP.
///
/// # Examples
///
/// ```
/// use trellis::process::ExitReason;
///
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no config");
/// let reason = ExitReason::error(io);
/// assert!(reason.is_abnormal());
/// assert_eq!(reason.to_string(), "error: no config");
/// // The error value is kept, not only its message.
/// let ExitReason::Error(error) = &reason else { unreachable!() };
/// let io = error.downcast_ref::<std::io::Error>().unwrap();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// The process finished its work.
    Normal,
    /// The process stopped because it was asked to.
    Shutdown,
    /// The process was cancelled before it finished.
    Killed,
    /// The process failed with an error, kept as a value.
    Error(ExitError),
    /// The process panicked; the payload's message.
    Panic(Arc<str>),
    /// The process was not alive when it was monitored or linked (Erlang's
    /// `noproc`): it never existed or had already ended.
    NoProcess,
}

impl ExitReason {
    /// An [`Error`](ExitReason::Error) reason that keeps `error` as a
    /// value: any `std::error::Error + Send + Sync`, a [`BoxError`], or a
    /// `&str`/`String` message.
    ///
    /// ```
    /// use trellis::process::ExitReason;
    ///
    /// assert_eq!(ExitReason::error("boom").to_string(), "error: boom");
    /// ```
    pub fn error(error: impl Into<BoxError>) -> Self {
        ExitReason::Error(ExitError::new(error))
    }

    /// Whether this exit counts as a failure (anything but `Normal` and
    /// `Shutdown`).
    ///
    /// ```
    /// use trellis::process::ExitReason;
    ///
    /// assert!(!ExitReason::Normal.is_abnormal());
    /// assert!(!ExitReason::Shutdown.is_abnormal());
    /// assert!(ExitReason::error("boom").is_abnormal());
    /// ```
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Error(error) => write!(f, "error: {error}"),
            ExitReason::Panic(message) => write!(f, "panic: {message}"),
            ExitReason::NoProcess => f.write_str("no such process"),
        }
    }
}

/// The error a process ended with ([`ExitReason::Error`]): the value
/// itself, shared, so that it can be downcast and its
/// [`source`](std::error::Error::source) chain walked by every monitor,
/// link and supervisor that sees the reason.
///
/// It displays as the error does, and its `source()` is the error's own
/// source. Two `ExitError`s compare (and hash) by their message, which is
/// what an exit reason promises to compare. It derefs to that message (a
/// `str`), as the reason's former `Arc<str>` did.
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use trellis::process::ExitError;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("config unreadable")]
/// struct ConfigError(#[source] std::io::Error);
///
/// let error = ExitError::new(ConfigError(std::io::Error::other("disk gone")));
/// assert_eq!(error.to_string(), "config unreadable");
/// assert!(error.downcast_ref::<ConfigError>().is_some());
/// assert_eq!(error.source().unwrap().to_string(), "disk gone");
/// assert!(error.contains("unreadable"));
/// ```
#[derive(Clone)]
pub struct ExitError {
    /// One shared allocation: the error, and its message once needed.
    inner: Arc<ExitErrorInner>,
}

struct ExitErrorInner {
    error: BoxError,
    /// The error's `Display`, made on first use (comparisons, `Deref`).
    message: OnceLock<Box<str>>,
}

impl ExitError {
    /// Keeps `error` (any error type, a [`BoxError`], or a message).
    pub fn new(error: impl Into<BoxError>) -> Self {
        ExitError {
            inner: Arc::new(ExitErrorInner {
                error: error.into(),
                message: OnceLock::new(),
            }),
        }
    }

    /// The error, to inspect or walk its `source()` chain.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner.error
    }

    /// The error as an `E`, if it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.inner.error.downcast_ref::<E>()
    }

    /// Whether the error is an `E`.
    pub fn is<E: std::error::Error + 'static>(&self) -> bool {
        self.inner.error.is::<E>()
    }

    /// The error's message (its `Display`).
    pub fn message(&self) -> &str {
        self.inner
            .message
            .get_or_init(|| self.inner.error.to_string().into_boxed_str())
    }
}

impl fmt::Display for ExitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.inner.error, f)
    }
}

impl fmt::Debug for ExitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner.error, f)
    }
}

impl std::error::Error for ExitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.error.source()
    }
}

impl PartialEq for ExitError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.message() == other.message()
    }
}

impl Eq for ExitError {}

impl std::hash::Hash for ExitError {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.message().hash(state);
    }
}

impl std::ops::Deref for ExitError {
    type Target = str;

    fn deref(&self) -> &str {
        self.message()
    }
}

impl From<BoxError> for ExitError {
    fn from(error: BoxError) -> Self {
        ExitError::new(error)
    }
}

/// The message a monitor delivers when the process it watches ends
/// (Erlang's `{'DOWN', Ref, process, Pid, Reason}`).
///
/// Delivered exactly once per monitor, at once if the process was already
/// gone (then with [`ExitReason::NoProcess`]), unless the monitor was removed
/// with `demonitor` first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The monitor this message answers.
    pub monitor: MonitorRef,
    /// The process that ended.
    pub pid: Pid,
    /// Why it ended.
    pub reason: ExitReason,
}

/// The message a process that traps exits receives when a linked process
/// ends (Erlang's `{'EXIT', Pid, Reason}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The linked process that ended.
    pub pid: Pid,
    /// Why it ended.
    pub reason: ExitReason,
}

/// Identifies one monitor, to tell its [`Down`] apart and to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MonitorRef(u64);

impl MonitorRef {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        MonitorRef(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A signal waiting for its process: what links and monitors deliver.
#[derive(Clone, Debug)]
pub(crate) enum Signal {
    Down(Down),
    Exit(Exit),
}

/// The node's record of one live process: its typed endpoints, registered
/// names, links, monitors and pending signals.
///
/// Created with the process's mailbox and removed from the table when the
/// process ends ([`Entry::exit`]). Lock order: an entry's `state`, then a
/// registry shard (never the reverse); two entries are never locked at once.
pub(crate) struct Entry {
    pid: Pid,
    /// Set while `state.signals` is non-empty, so receivers check it with
    /// one load.
    has_signals: AtomicBool,
    /// Set when the owner is cancelled, so its end reads `Killed`.
    killed: AtomicBool,
    /// Wakes the owner when a signal arrives (pushes a marker into its
    /// mailbox); `None` for an owner that looks for signals itself. Weak:
    /// the owner's addresses hold the entry, not the reverse.
    waker: Option<Weak<dyn Wake>>,
    state: Mutex<EntryState>,
}

#[derive(Default)]
struct EntryState {
    exit: Option<ExitReason>,
    /// Boxed on first use: most processes have no name, link, monitor,
    /// signal or task, and each process pays for the entry while it lives.
    more: Option<Box<More>>,
}

/// The parts of an entry's state that many processes never use.
#[derive(Default)]
struct More {
    names: Vec<Arc<str>>,
    links: Vec<Pid>,
    /// Monitors others hold on this process.
    monitors: Vec<(MonitorRef, Weak<Entry>)>,
    /// Monitors this process holds on others, removed from them when it
    /// ends (as Erlang does), so that they do not outlive their watcher.
    watching: Vec<(MonitorRef, Pid)>,
    signals: VecDeque<Signal>,
    on_exit: Vec<Box<dyn FnOnce(Pid) + Send>>,
    tasks: Option<TaskGroup>,
}

impl EntryState {
    /// The rare parts, made on first use.
    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// The rare parts, if they were ever made.
    fn more_mut(&mut self) -> Option<&mut More> {
        self.more.as_deref_mut()
    }
}

/// A process's own tasks (a gen_server's `Context::spawn` and timers): a
/// nursery made on first use, whose future the process drives when it ends.
///
/// Kept in the entry (not in the process's future) so that the process's
/// outer future can reach it after dropping its inner one.
pub(crate) struct TaskGroup {
    /// Spawns into the group.
    pub(crate) handle: Nursery,
    /// The group's nursery future: done once its tasks are.
    pub(crate) future: Pin<Box<dyn Future<Output = Result<(), NurseryError>> + Send>>,
}

/// Wakes a process whose entry has received a signal (a mailbox pushes a
/// marker into its channel).
pub(crate) trait Wake: Send + Sync {
    /// Wakes the owner.
    fn wake(&self);
}

/// Builds the typed handle a lookup asks for (`Address<M>`, a gen_server's
/// `Server<S>`, …) from a process's base handle: `out` is an `&mut Option<T>`
/// for the requested `T`, left `None` if the process offers no `T`. One
/// monomorphized function per kind of process, so a process stores one
/// handle and a pointer instead of one boxed handle per type.
pub(crate) type Views = fn(base: &Arc<dyn Any + Send + Sync>, out: &mut dyn Any);

/// A live process as the table and the registry hold it. The base handle is
/// kept here, never in the [`Entry`], so that addresses (which hold the
/// entry) do not form a cycle with it.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) entry: Arc<Entry>,
    base: Arc<dyn Any + Send + Sync>,
    view: Views,
}

impl Registered {
    /// The process's handle of type `T`, if it offers one.
    pub(crate) fn endpoint<T: 'static>(&self) -> Option<T> {
        let mut out: Option<T> = None;
        (self.view)(&self.base, &mut out);
        out
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// Every live process of this node, by pid number: [`SHARDS`] maps, each
/// under its own lock on its own cache lines, the shard chosen by the pid's
/// block ([`BLOCK`]). A thread's pids come from one block at a time and
/// consecutive blocks go to different shards, so the starts made on one
/// thread touch one shard while another thread's touch another: no lock line
/// moves between cores at every start, as the hashed shards of a concurrent
/// map did (each insert landed on any shard). Pid numbers are handed out by
/// this node, never chosen by a peer, so each map hashes them with
/// [`PidHasher`]: a block's pids land in consecutive buckets.
struct Table {
    shards: Box<[Shard]>,
}

/// How many shards the table has: many more than cores, so that the blocks
/// threads are using at a time rarely share one.
const SHARDS: usize = 256;

/// One shard, alone on its cache lines (two 64-byte lines: adjacent-line
/// prefetch pairs them on x86).
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<PidMap>);

/// One shard's map, by pid number.
type PidMap = HashMap<u64, Registered, BuildHasherDefault<PidHasher>>;

/// The hash of a pid number in its shard: the number's rank among the
/// shard's numbers (its block's turn at the shard, then its place in the
/// block) in the low bits, which pick the bucket, and a mix of it in the
/// top seven, which the map compares first. The 64 starts of a block then
/// fill consecutive buckets, on cache lines the last start touched, where a
/// mixing hash scattered them over the shard's whole table (a cache miss at
/// each start once the table outgrows the cache).
#[derive(Default)]
struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        let rank = (self.0 / (BLOCK * SHARDS as u64)) * BLOCK + self.0 % BLOCK;
        rank ^ (rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) & (0x7f << 57))
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; any other input still hashes.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

impl Table {
    /// The shard that holds the local pid numbered `id`.
    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, PidMap> {
        // The block index, wrapped: the remainder fits a `usize`.
        let index = ((id / BLOCK) % SHARDS as u64) as usize;
        crate::loom::lock(&self.shards[index].0)
    }

    fn insert(&self, pid: Pid, registered: Registered) {
        debug_assert!(pid.is_local());
        self.shard(pid.id).insert(pid.id, registered);
    }

    fn remove(&self, pid: Pid) -> Option<Registered> {
        if !pid.is_local() {
            return None;
        }
        self.shard(pid.id).remove(&pid.id)
    }

    /// Reads the live process with this pid, if any.
    fn with<R>(&self, pid: Pid, read: impl FnOnce(&Registered) -> R) -> Option<R> {
        if !pid.is_local() {
            return None;
        }
        self.shard(pid.id).get(&pid.id).map(read)
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| crate::loom::lock(&shard.0).len())
            .sum()
    }

    fn pids(&self) -> Vec<Pid> {
        let mut pids = Vec::new();
        for shard in &self.shards {
            pids.extend(crate::loom::lock(&shard.0).keys().map(|&id| local_pid(id)));
        }
        pids
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        shards: (0..SHARDS).map(|_| Shard::default()).collect(),
    })
}

impl Entry {
    /// A new process with a fresh pid, not yet in the table, woken by
    /// `waker` when a signal arrives.
    pub(crate) fn new(waker: Option<Weak<dyn Wake>>) -> Arc<Entry> {
        Arc::new(Entry {
            pid: Pid::new(),
            has_signals: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            waker,
            state: Mutex::new(EntryState::default()),
        })
    }

    /// Makes the process visible by pid, offering the handles `view` builds
    /// from `base` to lookups.
    pub(crate) fn publish(self: &Arc<Self>, base: Arc<dyn Any + Send + Sync>, view: Views) {
        let registered = Registered {
            entry: self.clone(),
            base,
            view,
        };
        table().insert(self.pid, registered);
        // Inside a supervised child's task, the first process is the child.
        let _ = CHILD_PID.try_with(|cell| {
            let _ = cell.compare_exchange(0, self.pid.id, Ordering::AcqRel, Ordering::Relaxed);
        });
    }

    /// The live process with this pid, if any.
    pub(crate) fn find(pid: Pid) -> Option<Arc<Entry>> {
        table().with(pid, |registered| registered.entry.clone())
    }

    /// The live process with this pid and its endpoints, if any.
    pub(crate) fn find_registered(pid: Pid) -> Option<Registered> {
        table().with(pid, Registered::clone)
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Notes that the owner is being cancelled.
    pub(crate) fn mark_killed(&self) {
        self.killed.store(true, Ordering::Relaxed);
    }

    /// Whether [`mark_killed`](Self::mark_killed) was called.
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Runs `cleanup` when the process ends (at once if it has ended).
    pub(crate) fn on_exit(&self, cleanup: Box<dyn FnOnce(Pid) + Send>) -> bool {
        let mut state = self.lock();
        if state.exit.is_some() {
            return false;
        }
        state.more().on_exit.push(cleanup);
        true
    }

    /// The handle of the process's task group, made by `make` on first use;
    /// `None` once the process has ended (its tasks are being stopped).
    pub(crate) fn tasks(&self, make: impl FnOnce() -> TaskGroup) -> Option<Nursery> {
        {
            let state = self.lock();
            if state.exit.is_some() {
                return None;
            }
            if let Some(group) = state.more.as_ref().and_then(|m| m.tasks.as_ref()) {
                return Some(group.handle.clone());
            }
        }
        // Made outside the lock: `make` enters the scope tree.
        let group = make();
        let mut state = self.lock();
        if state.exit.is_some() {
            drop(state);
            drop(group);
            return None;
        }
        Some(state.more().tasks.get_or_insert(group).handle.clone())
    }

    /// Whether the process has a task group.
    pub(crate) fn has_tasks(&self) -> bool {
        self.lock().more.as_ref().is_some_and(|m| m.tasks.is_some())
    }

    /// Cancels the process's tasks, if it has any.
    pub(crate) fn cancel_tasks(&self) {
        let handle = self
            .lock()
            .more
            .as_ref()
            .and_then(|m| m.tasks.as_ref())
            .map(|g| g.handle.clone());
        if let Some(handle) = handle {
            handle.cancel();
        }
    }

    /// Takes the process's task group, to drive it to its end or drop it.
    pub(crate) fn take_tasks(&self) -> Option<TaskGroup> {
        self.lock().more_mut().and_then(|m| m.tasks.take())
    }

    /// Polls the process's task group (kept in the entry) once, after the
    /// process was cancelled: the group is done once its tasks are.
    pub(crate) fn poll_tasks(&self, cx: &mut std::task::Context<'_>) {
        let Some(mut group) = self.take_tasks() else {
            return;
        };
        // Polled outside the lock. No new group can appear meanwhile: the
        // process has ended, and `tasks` makes none for an ended process.
        let _ = group.future.as_mut().poll(cx);
        self.lock().more().tasks = Some(group);
    }

    /// Why the process ended, or `None` while it runs.
    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        self.lock().exit.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EntryState> {
        crate::loom::lock(&self.state)
    }

    /// Records `name` for this process, unless it has ended. `insert` runs
    /// under the entry's lock so that a name is never added to a process
    /// whose names were already released.
    pub(crate) fn add_name<E>(
        &self,
        name: Arc<str>,
        insert: impl FnOnce() -> Result<(), E>,
        gone: impl FnOnce() -> E,
    ) -> Result<(), E> {
        let mut state = self.lock();
        if state.exit.is_some() {
            return Err(gone());
        }
        insert()?;
        state.more().names.push(name);
        Ok(())
    }

    /// Forgets `name` (already removed from the registry).
    pub(crate) fn remove_name(&self, name: &str) {
        if let Some(more) = self.lock().more_mut() {
            more.names.retain(|n| &**n != name);
        }
    }

    /// Takes every name of the process (to release them from the registry).
    pub(crate) fn take_names(&self) -> Vec<Arc<str>> {
        self.lock()
            .more_mut()
            .map(|m| std::mem::take(&mut m.names))
            .unwrap_or_default()
    }

    /// Takes the next pending signal.
    #[inline]
    pub(crate) fn pop_signal(&self) -> Option<Signal> {
        // Checked before every message: one load, inlined.
        if !self.has_signals.load(Ordering::Acquire) {
            return None;
        }
        self.pop_signal_slow()
    }

    #[cold]
    fn pop_signal_slow(&self) -> Option<Signal> {
        let mut state = self.lock();
        let signals = &mut state.more().signals;
        let signal = signals.pop_front();
        if signals.is_empty() {
            self.has_signals.store(false, Ordering::Release);
        }
        signal
    }

    /// Sends this process an exit signal from `from`, as a linked process's
    /// end would (Erlang's `exit(Pid, Reason)`; the observer's kill action).
    #[cfg_attr(not(feature = "observer"), allow(dead_code))]
    pub(crate) fn send_exit(&self, from: Pid, reason: ExitReason) {
        self.deliver(Signal::Exit(Exit { pid: from, reason }));
    }

    fn deliver(&self, signal: Signal) {
        {
            let mut state = self.lock();
            if state.exit.is_some() {
                return;
            }
            state.more().signals.push_back(signal);
            self.has_signals.store(true, Ordering::Release);
        }
        if let Some(waker) = self.waker.as_ref().and_then(Weak::upgrade) {
            waker.wake();
        }
    }

    /// Starts watching `target` on behalf of this process: a [`Down`] arrives
    /// in this process's signals when `target` ends (at once if it has).
    pub(crate) fn monitor(self: &Arc<Self>, target: Pid) -> MonitorRef {
        let monitor = MonitorRef::new();
        #[cfg(feature = "dist")]
        if !target.is_local() {
            return self.monitor_remote(monitor, target);
        }
        let reason = match Entry::find(target) {
            Some(entry) => {
                let added = {
                    let mut state = entry.lock();
                    match &state.exit {
                        None => {
                            state.more().monitors.push((monitor, Arc::downgrade(self)));
                            Ok(())
                        }
                        Some(reason) => Err(reason.clone()),
                    }
                };
                match added {
                    Ok(()) => {
                        // Our side, so that our end removes it from theirs.
                        let recorded = {
                            let mut state = self.lock();
                            let alive = state.exit.is_none();
                            if alive {
                                state.more().watching.push((monitor, target));
                            }
                            alive
                        };
                        if !recorded {
                            entry.remove_monitor(monitor);
                        }
                        return monitor;
                    }
                    Err(reason) => reason,
                }
            }
            None => ExitReason::NoProcess,
        };
        self.deliver(Signal::Down(Down {
            monitor,
            pid: target,
            reason,
        }));
        monitor
    }

    /// [`Entry::monitor`] of a process on another node, through [`REMOTE`].
    #[cfg(feature = "dist")]
    #[cold]
    fn monitor_remote(self: &Arc<Self>, monitor: MonitorRef, target: Pid) -> MonitorRef {
        {
            let mut state = self.lock();
            if state.exit.is_some() {
                return monitor;
            }
            state.more().watching.push((monitor, target));
        }
        if let Some(remote) = REMOTE.get() {
            remote.monitor(self, monitor, target);
        }
        monitor
    }

    /// Delivers the `Down` of `monitor`, held by this process on the remote
    /// `pid` (the distribution layer calls this).
    #[cfg(feature = "dist")]
    pub(crate) fn remote_down(&self, monitor: MonitorRef, pid: Pid, reason: ExitReason) {
        self.forget_watching(monitor);
        self.deliver(Signal::Down(Down {
            monitor,
            pid,
            reason,
        }));
    }

    /// Delivers an exit signal from the remote `from`: a linked one (its
    /// end; ignored unless linked, and the link goes) or a direct one
    /// (Erlang's `exit(Pid, Reason)`).
    #[cfg(feature = "dist")]
    pub(crate) fn remote_exit(&self, from: Pid, reason: ExitReason, linked: bool) {
        if linked {
            let was_linked = {
                let mut state = self.lock();
                state.more_mut().is_some_and(|more| {
                    let before = more.links.len();
                    more.links.retain(|p| *p != from);
                    more.links.len() != before
                })
            };
            if !was_linked {
                return;
            }
        }
        self.deliver(Signal::Exit(Exit { pid: from, reason }));
    }

    /// Records a link a remote process made with this one; false if this
    /// process has ended.
    #[cfg(feature = "dist")]
    pub(crate) fn add_remote_link(&self, other: Pid) -> bool {
        let mut state = self.lock();
        if state.exit.is_some() {
            return false;
        }
        let links = &mut state.more().links;
        if !links.contains(&other) {
            links.push(other);
        }
        true
    }

    /// Forgets the link with the remote `other` (it unlinked).
    #[cfg(feature = "dist")]
    pub(crate) fn drop_remote_link(&self, other: Pid) {
        entry_unlink(self, other);
    }

    /// Removes the monitor `monitor` that another process holds on this one.
    /// Returns whether it was there.
    fn remove_monitor(&self, monitor: MonitorRef) -> bool {
        let mut state = self.lock();
        let Some(more) = state.more_mut() else {
            return false;
        };
        let before = more.monitors.len();
        more.monitors.retain(|(m, _)| *m != monitor);
        more.monitors.len() != before
    }

    /// Forgets a monitor this process held (its `Down` is being delivered,
    /// or it was removed).
    fn forget_watching(&self, monitor: MonitorRef) {
        if let Some(more) = self.lock().more_mut() {
            more.watching.retain(|(m, _)| *m != monitor);
        }
    }

    /// Stops the monitor `monitor` on `target` and drops its `Down` if it is
    /// already queued. Returns whether the monitor was still active.
    pub(crate) fn demonitor(&self, target: Pid, monitor: MonitorRef) -> bool {
        let removed = Entry::find(target).is_some_and(|entry| entry.remove_monitor(monitor));
        #[cfg(feature = "dist")]
        let removed = removed
            || (!target.is_local()
                && REMOTE
                    .get()
                    .is_some_and(|r| r.demonitor(self.pid, monitor, target)));
        let mut state = self.lock();
        if let Some(more) = state.more_mut() {
            more.watching.retain(|(m, _)| *m != monitor);
            more.signals
                .retain(|s| !matches!(s, Signal::Down(d) if d.monitor == monitor));
            if more.signals.is_empty() {
                self.has_signals.store(false, Ordering::Release);
            }
        }
        removed
    }

    /// What this process holds: monitors both ways, links, names.
    fn stats(&self) -> ProcessStats {
        let state = self.lock();
        match state.more.as_deref() {
            Some(more) => ProcessStats {
                monitors: more.watching.len(),
                monitored_by: more.monitors.len(),
                links: more.links.len(),
                names: more.names.len(),
            },
            None => ProcessStats::default(),
        }
    }

    /// Links this process with `other`, both ways. Linking with a process
    /// that is gone delivers an [`Exit`] with [`ExitReason::NoProcess`] at
    /// once, as Erlang does for a process that traps exits.
    pub(crate) fn link(self: &Arc<Self>, other: Pid) {
        if other == self.pid {
            return;
        }
        // Our side first: if we end before `other` records us, our exit
        // still reaches it through our list.
        {
            let mut state = self.lock();
            if state.exit.is_some() {
                return;
            }
            let links = &mut state.more().links;
            if !links.contains(&other) {
                links.push(other);
            }
        }
        #[cfg(feature = "dist")]
        if !other.is_local() {
            if let Some(remote) = REMOTE.get() {
                remote.link(self, other);
            }
            return;
        }
        let linked = Entry::find(other).is_some_and(|entry| {
            let mut state = entry.lock();
            if state.exit.is_some() {
                return false;
            }
            let links = &mut state.more().links;
            if !links.contains(&self.pid) {
                links.push(self.pid);
            }
            true
        });
        if !linked {
            entry_unlink(self, other);
            self.deliver(Signal::Exit(Exit {
                pid: other,
                reason: ExitReason::NoProcess,
            }));
        }
    }

    /// Removes the link between this process and `other`, both ways.
    pub(crate) fn unlink(&self, other: Pid) {
        entry_unlink(self, other);
        #[cfg(feature = "dist")]
        if !other.is_local() {
            if let Some(remote) = REMOTE.get() {
                remote.unlink(self.pid, other);
            }
            return;
        }
        if let Some(entry) = Entry::find(other) {
            entry_unlink(&entry, self.pid);
        }
    }

    /// Records the end of the process: removes it from the table, releases
    /// its names through `release_name`, sends `Down` to its monitors and
    /// `Exit` to its links. Only the first call has an effect.
    pub(crate) fn exit(&self, reason: ExitReason, mut release_name: impl FnMut(&Arc<str>, Pid)) {
        let (names, links, monitors, watching, on_exit) = {
            let mut state = self.lock();
            if state.exit.is_some() {
                return;
            }
            state.exit = Some(reason.clone());
            self.has_signals.store(false, Ordering::Release);
            match state.more_mut() {
                // The task group stays: the process drives it to its end.
                Some(more) => {
                    more.signals.clear();
                    (
                        std::mem::take(&mut more.names),
                        std::mem::take(&mut more.links),
                        std::mem::take(&mut more.monitors),
                        std::mem::take(&mut more.watching),
                        std::mem::take(&mut more.on_exit),
                    )
                }
                None => Default::default(),
            }
        };
        // Dropped after the shard's lock: the handle may be the last one.
        let registered = table().remove(self.pid);
        drop(registered);
        for cleanup in on_exit {
            cleanup(self.pid);
        }
        for name in &names {
            release_name(name, self.pid);
        }
        // Our monitors on others end with us.
        for (monitor, target) in watching {
            #[cfg(feature = "dist")]
            if !target.is_local() {
                if let Some(remote) = REMOTE.get() {
                    remote.demonitor(self.pid, monitor, target);
                }
                continue;
            }
            if let Some(entry) = Entry::find(target) {
                entry.remove_monitor(monitor);
            }
        }
        for (monitor, watcher) in monitors {
            if let Some(watcher) = watcher.upgrade() {
                watcher.forget_watching(monitor);
                watcher.deliver(Signal::Down(Down {
                    monitor,
                    pid: self.pid,
                    reason: reason.clone(),
                }));
            }
        }
        for pid in links {
            #[cfg(feature = "dist")]
            if !pid.is_local() {
                if let Some(remote) = REMOTE.get() {
                    remote.exit(self.pid, pid, &reason);
                }
                continue;
            }
            if let Some(entry) = Entry::find(pid) {
                entry_unlink(&entry, self.pid);
                entry.deliver(Signal::Exit(Exit {
                    pid: self.pid,
                    reason: reason.clone(),
                }));
            }
        }
    }
}

/// Removes `other` from `entry`'s links.
fn entry_unlink(entry: &Entry, other: Pid) {
    if let Some(more) = entry.lock().more_mut() {
        more.links.retain(|p| *p != other);
    }
}

/// What this thread is polling: the process itself (`current`, so that a
/// wait on itself fails at once instead of hanging) and the process a panic
/// here stops (`owner`: the one being polled, or the owner of the task being
/// polled — a gen_server's own tasks). One cell: entering and leaving are
/// one thread-local access each, on every poll of a server.
#[derive(Clone, Copy)]
struct Polling {
    current: Option<Pid>,
    owner: Option<Pid>,
}

thread_local! {
    static POLLING: std::cell::Cell<Polling> = const {
        std::cell::Cell::new(Polling { current: None, owner: None })
    };
}

/// Marks `pid` as the process being polled on this thread until the guard
/// is dropped (which restores the previous one).
pub(crate) fn enter(pid: Pid) -> Current {
    let now = Polling {
        current: Some(pid),
        owner: Some(pid),
    };
    Current(POLLING.with(|c| c.replace(now)))
}

/// Marks this thread as polling a task of `pid` (whose panic stops `pid`),
/// not `pid` itself, until the guard is dropped.
pub(crate) fn enter_task(pid: Pid) -> Current {
    let now = Polling {
        current: None,
        owner: Some(pid),
    };
    Current(POLLING.with(|c| c.replace(now)))
}

/// Whether this thread is polling the process `pid` (a call to it would
/// wait for itself).
#[inline]
pub(crate) fn is_current(pid: Pid) -> bool {
    POLLING.with(|c| c.get().current == Some(pid))
}

/// Whether a panic on this thread now stops the process `pid` (it is
/// polling `pid` or one of its own tasks).
pub(crate) fn is_owned_by(pid: Pid) -> bool {
    POLLING.with(|c| c.get().owner == Some(pid))
}

/// Restores the previously polled process when dropped.
pub(crate) struct Current(Polling);

impl Drop for Current {
    fn drop(&mut self) {
        POLLING.with(|c| c.set(self.0));
    }
}

/// Whether `pid` names a live process of this node.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mailbox = trellis::mailbox::create::<u32>();
/// let pid = mailbox.pid();
/// assert!(trellis::process::is_alive(pid));
/// trellis::mailbox::destroy(mailbox);
/// assert!(!trellis::process::is_alive(pid));
/// # }
/// ```
pub fn is_alive(pid: Pid) -> bool {
    table().with(pid, |_| ()).is_some()
}

/// What a live process holds, from [`stats`]: a plain snapshot for tests
/// and for a live view of the tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// Monitors this process holds on others.
    pub monitors: usize,
    /// Monitors others hold on this process.
    pub monitored_by: usize,
    /// Processes linked with this one.
    pub links: usize,
    /// Names registered for this process.
    pub names: usize,
}

/// What the live process `pid` holds (monitors both ways, links, names),
/// or `None` if it is not alive.
///
/// As in Erlang, a process's monitors and links go away with it: when a
/// watcher ends, its monitors disappear from the processes it watched.
///
/// ```
/// use trellis::{mailbox, process};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let target = mailbox::create::<()>();
/// let mut watcher = mailbox::create::<process::Down>();
/// watcher.monitor(target.pid());
/// assert_eq!(process::stats(target.pid()).unwrap().monitored_by, 1);
/// assert_eq!(process::stats(watcher.pid()).unwrap().monitors, 1);
/// drop(watcher);
/// assert_eq!(process::stats(target.pid()).unwrap().monitored_by, 0);
/// # }
/// ```
pub fn stats(pid: Pid) -> Option<ProcessStats> {
    Entry::find(pid).map(|entry| entry.stats())
}

/// How many processes are alive on this node: every mailbox, gen_server
/// and supervisor that has not ended yet. For tests (nothing leaked) and
/// for a live view of the tree.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let before = trellis::process::count();
/// let mailbox = trellis::mailbox::create::<u32>();
/// assert!(trellis::process::count() >= before + 1);
/// drop(mailbox);
/// # }
/// ```
pub fn count() -> usize {
    table().len()
}

/// The pids of every live process of this node, in no particular order
/// (Erlang's `processes/0`): a snapshot, for checks that nothing lives
/// that should not, and for a live view of the node.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mailbox = trellis::mailbox::create::<u32>();
/// assert!(trellis::process::list().contains(&mailbox.pid()));
/// let pid = mailbox.pid();
/// drop(mailbox);
/// assert!(!trellis::process::list().contains(&pid));
/// # }
/// ```
#[doc(alias = "processes")]
pub fn list() -> Vec<Pid> {
    table().pids()
}

impl fmt::Debug for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("pid", &self.entry.pid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash(id: u64) -> u64 {
        BuildHasherDefault::<PidHasher>::default().hash_one(id)
    }

    /// The bucket bits of a hash (the map compares the top seven first).
    fn rank(id: u64) -> u64 {
        hash(id) & !(0x7f << 57)
    }

    #[test]
    fn a_shards_pids_take_consecutive_buckets_block_after_block() {
        let step = BLOCK * SHARDS as u64; // the shard's next block
        let shard = 5 * BLOCK;
        let ids = (0..3).flat_map(|turn| (0..BLOCK).map(move |i| turn * step + shard + i));
        for (expected, id) in ids.enumerate() {
            assert_eq!(rank(id), expected as u64, "pid number {id}");
        }
    }

    #[test]
    fn the_table_finds_every_pid_of_many_blocks_and_forgets_removed_ones() {
        let table = Table {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        };
        let entries: Vec<Arc<Entry>> = (0..3 * BLOCK * SHARDS as u64)
            .map(|_| Entry::new(None))
            .collect();
        for entry in &entries {
            table.insert(entry.pid(), registered(entry));
        }
        assert_eq!(table.len(), entries.len());
        for entry in entries.iter().step_by(3) {
            assert!(table.remove(entry.pid()).is_some());
        }
        for (i, entry) in entries.iter().enumerate() {
            let found = table.with(entry.pid(), |r| r.entry.pid());
            assert_eq!(found, (i % 3 != 0).then(|| entry.pid()), "entry {i}");
        }
    }

    fn registered(entry: &Arc<Entry>) -> Registered {
        Registered {
            entry: entry.clone(),
            base: Arc::new(()),
            view: |_, _| {},
        }
    }
}
