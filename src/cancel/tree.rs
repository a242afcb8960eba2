//! (private) The scope tree behind cancel scopes, nurseries and tasks.
//!
//! Every [`CancelScope`](crate::CancelScope), every nursery (and fork of one) and
//! every nursery task owns one [`Node`]. A node's parent is the node that was
//! current (see [`current`](super::current::current)) when it was entered, so the tree follows
//! the program's lexical nesting across tasks: a task's node hangs under its
//! nursery's node, which hangs under whatever scope opened the nursery.
//!
//! Cancellation is *pushed* down the tree: cancelling a node marks it and every
//! non-shielded descendant as cancelled and wakes the future that drives each of
//! them (its *driver*: the future returned by `CancelScope::run`, the nursery
//! future, or a task's wrapper). A driver that finds its node cancelled drops
//! its body at once, unless something inside still *holds* it (see below).
//!
//! # Holds
//!
//! A shielded scope, or a nursery that must wait for its children, cannot be
//! dropped half-way. While one is active inside a driver's body it holds every
//! node from its parent up to the task's root node; a cancelled driver whose
//! node is held keeps polling its body until the hold is released. This is
//! what lets a nursery wait for its children after an outer scope is
//! cancelled, and what lets a shield finish its work.
//!
//! # Invariants
//!
//! 1. `CANCELLED` and `OWN` are only ever set, never cleared, and are set while
//!    holding the node's `state` lock.
//! 2. A child is inserted into its parent's `children` under the parent's lock,
//!    and its inherited flags are computed under that same lock: a concurrent
//!    cancellation either finds the child in the list or the child finds the
//!    flag.
//! 3. At most one `state` lock is held at a time: propagation copies the list
//!    of children, releases the lock, then visits them. There is no lock order
//!    to respect.
//! 4. `holds` is changed only by the task that polls the node's driver (inside
//!    its poll or its drop), so a driver that re-reads it after its body
//!    returned `Pending` sees every release that happened during that poll.
//! 5. A node is in its parent's `children` from `register` until `detach`;
//!    drivers detach when they finish or are dropped, so the tree never holds
//!    finished work. Task nodes register lazily (see [`Node::register`]):
//!    until then, their driver checks the parent's flag itself.

// `Arc` stays std's even under loom: `Arc<Node>` is shared with the rest of the
// crate and with the current-node thread-local. So does `OnceLock` (loom has none): `parent` is set
// once, when the node is created or entered, and read only by the task that
// entered it, so it has no interleavings to explore; the models go through the
// `crate::loom` facade for everything that races (the lock and the flags; the
// driver's waker lives under the lock).
use std::sync::{Arc, OnceLock, PoisonError};
use std::task::Waker;

use crate::loom::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use slab::Slab;
use tokio::time::Instant;

const CANCELLED: u8 = 1;
const OWN: u8 = 2;
const SHUTDOWN: u8 = 4;
/// A `CancelScope`'s: it has been run (it runs once).
const ENTERED: u8 = 8;
/// A `CancelScope`'s: its run ended because it was cancelled.
const CAUGHT: u8 = 16;

/// Why a node was cancelled by itself (not inherited from a parent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// `cancel()` was called.
    Explicit,
    /// The deadline passed.
    Deadline,
    /// The grace period of a graceful shutdown ran out.
    Shutdown,
    /// A nursery child failed.
    Failure,
    /// A nursery's master task ended.
    Master,
    /// A nursery's body and awaited tasks are done: background tasks stop.
    Done,
}

/// What a node is the scope of.
pub(crate) enum Kind {
    /// A `CancelScope` (also behind `move_on_*` and `fail_*`).
    Scope,
    /// A nursery or a fork of one; tasks spawned through it hang below.
    /// The payload is the nursery module's (type-erased: the tree never
    /// reads it, and so does not depend on the layer above).
    Group(Arc<dyn GroupPayload>),
    /// The root of one nursery task, with the task's name.
    Task(std::borrow::Cow<'static, str>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Scope => f.write_str("Scope"),
            Kind::Group(_) => f.write_str("Group"),
            Kind::Task(name) => f.debug_tuple("Task").field(name).finish(),
        }
    }
}

/// What a group node carries for the layer above: anything shareable,
/// read back with [`as_any`](GroupPayload::as_any) and a downcast.
/// (`RefUnwindSafe`, so that scopes and nurseries stay unwind safe.)
pub(crate) trait GroupPayload: Send + Sync + std::panic::RefUnwindSafe + 'static {
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: Send + Sync + std::panic::RefUnwindSafe + 'static> GroupPayload for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// What a driver should do with its body, as [`Node::verdict`] decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not cancelled, or held: poll the body.
    Poll,
    /// Cancelled and not held: drop the body now.
    Drop,
    /// Cancelled by an ancestor in this task and not held: return `Pending`
    /// and let that ancestor's driver drop everything.
    Park,
}

#[derive(Debug, Default)]
struct State {
    cause: Option<Cause>,
    deadline: Option<Instant>,
    /// Whether the node has been entered (its relative deadline applied).
    started: bool,
    shutdown_waiters: Waiters,
    /// The driver's waker. Woken by reference, never taken: a driver whose
    /// waker stays the same registers it once (see [`WakerRegistration`]).
    waker: Option<Waker>,
    /// Boxed on first use: most nodes are the leaves of tasks, which never
    /// have children, a grace or a relative deadline, and every node costs
    /// its size for as long as it lives.
    more: Option<Box<More>>,
}

/// The parts of a node's state that most nodes never use.
#[derive(Debug, Default)]
struct More {
    children: Slab<Arc<Node>>,
    grace_deadline: Option<Instant>,
    /// A relative deadline, applied when the scope is entered (Trio's
    /// `relative_deadline`); `None` once applied.
    relative: Option<std::time::Duration>,
    /// A task's cancel grace (traio's `cancel_timeout`): an inherited
    /// cancellation first asks it to shut down, and cancels it only when
    /// this has passed.
    cancel_grace: Option<std::time::Duration>,
}

impl State {
    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_default()
    }

    fn grace_deadline(&self) -> Option<Instant> {
        self.more.as_ref().and_then(|more| more.grace_deadline)
    }

    fn cancel_grace(&self) -> Option<std::time::Duration> {
        self.more.as_ref().and_then(|more| more.cancel_grace)
    }

    fn relative(&self) -> Option<std::time::Duration> {
        self.more.as_ref().and_then(|more| more.relative)
    }
}

/// One scope in the tree. See the module docs.
#[derive(Debug)]
pub(crate) struct Node {
    parent: OnceLock<Arc<Node>>,
    /// This node's key in its parent's `children`, once attached.
    key: AtomicUsize,
    kind: Kind,
    /// Whether the node is a shield: set at creation, changed while a scope
    /// runs only by [`Node::set_shield`] (Trio's `cancel_scope.shield = …`).
    shield: AtomicBool,
    /// Whether this node's driver holds its path for its shield (see
    /// [`Node::sync_shield_hold`]); read and written only by the driver.
    shield_hold: AtomicBool,
    flags: AtomicU8,
    holds: AtomicUsize,
    /// Bumped whenever the deadline or grace deadline changes.
    deadline_generation: AtomicU64,
    /// Set once a task has been spawned to run this node's timer (forks).
    timer_claimed: AtomicBool,
    /// When a task or group node joined the tree, as [`stamp_now`] gives
    /// it; 0 when ages were not kept then (see [`keep_ages`]).
    #[cfg(feature = "observer")]
    born: AtomicU64,
    state: Mutex<State>,
}

/// Whether task and group nodes stamp the time they join the tree (the
/// observer shows their ages): off until an observer first runs in the
/// process, so that spawning reads no clock for it.
#[cfg(feature = "observer")]
static KEEP_AGES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The instant ages count from: the first stamp of the process.
#[cfg(feature = "observer")]
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Turns age stamps on or off (the observer turns them on as it starts).
#[cfg(feature = "observer")]
pub(crate) fn keep_ages(on: bool) {
    KEEP_AGES.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Now as a stamp (nanoseconds since [`EPOCH`], plus one), or 0 when ages
/// are not kept.
#[cfg(feature = "observer")]
fn stamp_now() -> u64 {
    if !KEEP_AGES.load(std::sync::atomic::Ordering::Relaxed) {
        return 0;
    }
    let now = Instant::now();
    let epoch = *EPOCH.get_or_init(|| now);
    u64::try_from(now.saturating_duration_since(epoch).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// Scope-tree roots that are nurseries (a nursery entered with no scope
/// around it: `main`'s, a plain tokio task's): where a walk of every
/// nursery starts. A weak list, pruned as it grows and as it is read.
#[cfg(feature = "observer")]
static ROOTS: std::sync::Mutex<Vec<std::sync::Weak<Node>>> = std::sync::Mutex::new(Vec::new());

/// The live root nurseries' nodes (see [`Node::register_root`]).
#[cfg(feature = "observer")]
pub(crate) fn roots() -> Vec<Arc<Node>> {
    let mut roots = crate::loom::lock(&ROOTS);
    roots.retain(|r| r.strong_count() > 0);
    roots.iter().filter_map(std::sync::Weak::upgrade).collect()
}

const DETACHED: usize = usize::MAX;

impl Node {
    pub(crate) fn new(kind: Kind, shield: bool) -> Arc<Node> {
        Node::with_parent(kind, shield, None)
    }

    /// A node whose parent is known at once (a filled `OnceLock` is made
    /// as it is, where setting an empty one takes its slow path).
    fn with_parent(kind: Kind, shield: bool, parent: Option<Arc<Node>>) -> Arc<Node> {
        Arc::new(Node {
            parent: parent.map_or_else(OnceLock::new, OnceLock::from),
            key: AtomicUsize::new(DETACHED),
            kind,
            shield: AtomicBool::new(shield),
            shield_hold: AtomicBool::new(false),
            flags: AtomicU8::new(0),
            holds: AtomicUsize::new(0),
            deadline_generation: AtomicU64::new(0),
            timer_claimed: AtomicBool::new(false),
            #[cfg(feature = "observer")]
            born: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        })
    }

    /// Creates a node and attaches it under `parent` in one step.
    pub(crate) fn new_child(parent: Option<&Arc<Node>>, kind: Kind, shield: bool) -> Arc<Node> {
        let node = Node::new(kind, shield);
        if let Some(parent) = parent {
            node.attach(parent);
        }
        node
    }

    /// Creates the node of a nursery task under `parent` without registering
    /// it in the parent's children yet: see [`Node::register`].
    pub(crate) fn new_task(
        parent: &Arc<Node>,
        name: std::borrow::Cow<'static, str>,
        cancel_grace: Option<std::time::Duration>,
    ) -> Arc<Node> {
        let node = Node::with_parent(Kind::Task(name), false, Some(Arc::clone(parent)));
        if cancel_grace.is_some() {
            node.lock().more().cancel_grace = cancel_grace;
        }
        node
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover anyway rather than
        // spreading a panic through every task of the tree.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The name of a task's node (`""` for other nodes).
    pub(crate) fn task_name(&self) -> &std::borrow::Cow<'static, str> {
        const NONE: &std::borrow::Cow<'static, str> = &std::borrow::Cow::Borrowed("");
        match &self.kind {
            Kind::Task(name) => name,
            _ => NONE,
        }
    }

    pub(crate) fn is_shield(&self) -> bool {
        self.shield.load(Ordering::SeqCst)
    }

    /// Turns the shield on or off. Turning it on stops cancellations of the
    /// enclosing scopes that come *from now on*; one that has already
    /// reached this node stays (flags are never cleared, invariant 1).
    /// Turning it off lets an enclosing cancellation in: if the parent is
    /// cancelled, this node and its subtree inherit it now. The hold a
    /// running shield keeps on its path is moved by its driver, at its next
    /// poll ([`Node::sync_shield_hold`], invariant 4); the driver is woken.
    pub(crate) fn set_shield(self: &Arc<Node>, shield: bool) {
        if self.shield.swap(shield, Ordering::SeqCst) == shield {
            return;
        }
        // Either a cancellation of the parent that runs now sees the shield
        // off, or this load sees the parent's flag (both `SeqCst`).
        if !shield && self.parent().is_some_and(|p| p.is_cancelled()) {
            self.cancel_inherited();
        }
        self.wake_driver();
    }

    /// Makes the driver's hold on its path (taken while a shield runs) match
    /// the shield flag. Called by the driver only, on entry, at each poll and
    /// on leaving (`running == false` releases it).
    pub(crate) fn sync_shield_hold(&self, running: bool) {
        let want = running && self.is_shield();
        if self.shield_hold.load(Ordering::Relaxed) != want {
            self.shield_hold.store(want, Ordering::Relaxed);
            if want {
                self.acquire_hold();
            } else {
                self.release_hold();
            }
        }
    }

    pub(crate) fn parent(&self) -> Option<&Arc<Node>> {
        self.parent.get()
    }

    /// Hangs this node under `parent`, inheriting its cancellation and
    /// shutdown flags (invariant 2). Called once, when the node is entered.
    pub(crate) fn attach(self: &Arc<Node>, parent: &Arc<Node>) {
        if self.parent.set(Arc::clone(parent)).is_err() {
            return;
        }
        self.register();
    }

    /// Joins the parent's children, inheriting its flags (invariant 2).
    ///
    /// Task nodes call this lazily, the first time their task waits: a task
    /// that finishes in its first poll never touches the parent's lock, and
    /// one that waits inherits at this point any cancellation it missed.
    pub(crate) fn register(self: &Arc<Node>) {
        let Some(parent) = self.parent() else {
            return;
        };
        #[cfg(feature = "observer")]
        if !matches!(self.kind, Kind::Scope) {
            let stamp = stamp_now();
            if stamp != 0 {
                self.born.store(stamp, Ordering::Relaxed);
            }
        }
        let mut state = parent.lock();
        let parent_flags = parent.flags.load(Ordering::Acquire);
        let entry = state.more().children.vacant_entry();
        self.key.store(entry.key(), Ordering::Relaxed);
        entry.insert(Arc::clone(self));
        drop(state);
        if parent_flags & SHUTDOWN != 0 {
            self.request_shutdown();
        }
        if parent_flags & CANCELLED != 0 && !self.is_shield() {
            self.cancel_inherited();
        }
    }

    /// Lists a nursery's node that has no parent among the [`roots`]
    /// (once per root nursery: a lock, no clock unless ages are kept).
    #[cfg(feature = "observer")]
    pub(crate) fn register_root(self: &Arc<Node>) {
        self.born.store(stamp_now(), Ordering::Relaxed);
        let mut roots = crate::loom::lock(&ROOTS);
        if roots.len() >= 16 && roots.len().is_power_of_two() {
            roots.retain(|r| r.strong_count() > 0);
        }
        roots.push(Arc::downgrade(self));
    }

    /// How long ago this task or group node joined the tree, if ages were
    /// kept then.
    #[cfg(feature = "observer")]
    pub(crate) fn age(&self) -> Option<std::time::Duration> {
        let born = self.born.load(Ordering::Relaxed).checked_sub(1)?;
        let epoch = EPOCH.get()?;
        let now = Instant::now().saturating_duration_since(*epoch);
        Some(now.saturating_sub(std::time::Duration::from_nanos(born)))
    }

    /// Removes this node from its parent's children (invariant 5).
    pub(crate) fn detach(&self) {
        let key = self.key.swap(DETACHED, Ordering::Relaxed);
        if key == DETACHED {
            return;
        }
        if let Some(parent) = self.parent() {
            let mut state = parent.lock();
            if let Some(more) = &mut state.more {
                more.children.try_remove(key);
            }
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CANCELLED != 0
    }

    /// Whether this node cancelled itself (as opposed to inheriting it).
    pub(crate) fn is_cancelled_by_itself(&self) -> bool {
        self.flags.load(Ordering::Acquire) & OWN != 0
    }

    /// Marks a scope's node as run; `false` if it already was.
    pub(crate) fn mark_entered(&self) -> bool {
        self.flags.fetch_or(ENTERED, Ordering::AcqRel) & ENTERED == 0
    }

    /// Records that a scope's run ended because it was cancelled.
    pub(crate) fn mark_caught(&self) {
        self.flags.fetch_or(CAUGHT, Ordering::Release);
    }

    pub(crate) fn is_caught(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CAUGHT != 0
    }

    pub(crate) fn is_shutdown_requested(&self) -> bool {
        self.flags.load(Ordering::Acquire) & SHUTDOWN != 0
    }

    /// The reason this node cancelled itself, if it did (not if an ancestor did).
    pub(crate) fn own_cause(&self) -> Option<Cause> {
        if self.flags.load(Ordering::Acquire) & OWN == 0 {
            return None;
        }
        self.lock().cause
    }

    /// Cancels this node for `cause` and everything below it. Returns `false`
    /// if the node was already cancelled (its first cause stays).
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        let (children, waker) = {
            let mut state = self.lock();
            let flags = self.flags.load(Ordering::Acquire);
            if flags & OWN != 0 {
                return false;
            }
            state.cause = Some(cause);
            self.flags.fetch_or(CANCELLED | OWN, Ordering::AcqRel);
            if flags & CANCELLED != 0 {
                // Already cancelled by an ancestor, whose propagation reaches
                // the subtree. Our own driver may be parked, though, and now
                // has to drop its body itself: wake it.
                let waker = state.waker.clone();
                drop(state);
                wake(waker);
                return false;
            }
            (Self::snapshot(&state), state.waker.clone())
        };
        wake(waker);
        for child in children.iter().filter(|child| !child.is_shield()) {
            child.cancel_inherited();
        }
        true
    }

    /// Marks this node and its non-shielded descendants as cancelled by an
    /// ancestor. Iterative, so deep trees cannot overflow the stack.
    fn cancel_inherited(self: &Arc<Node>) {
        let mut stack = vec![Arc::clone(self)];
        while let Some(node) = stack.pop() {
            let (children, waker) = {
                let state = node.lock();
                if let Some(grace) = state.cancel_grace() {
                    drop(state);
                    node.shut_down_within(grace);
                    continue;
                }
                if node.flags.fetch_or(CANCELLED, Ordering::AcqRel) & CANCELLED != 0 {
                    continue;
                }
                (Self::snapshot(&state), state.waker.clone())
            };
            wake(waker);
            stack.extend(children.into_iter().filter(|child| !child.is_shield()));
        }
    }

    /// The nodes below this one, now.
    pub(crate) fn children(&self) -> Vec<Arc<Node>> {
        Self::snapshot(&self.lock())
    }

    fn snapshot(state: &State) -> Vec<Arc<Node>> {
        state.more.as_ref().map_or_else(Vec::new, |more| {
            more.children.iter().map(|(_, c)| Arc::clone(c)).collect()
        })
    }

    /// For a task with a cancel grace: instead of being cancelled, it is
    /// asked to shut down, and cancelled (by its driver's timer) once the
    /// grace has passed. Returns `false` for every other node.
    pub(crate) fn shut_down_gracefully(self: &Arc<Node>) -> bool {
        let Some(grace) = self.lock().cancel_grace() else {
            return false;
        };
        self.shut_down_within(grace);
        true
    }

    /// Asks this node to shut down, and cancels it when `grace` has passed
    /// (its driver's timer fires the cancellation).
    fn shut_down_within(self: &Arc<Node>, grace: std::time::Duration) {
        self.request_shutdown();
        self.set_grace_deadline(super::deadline_after(grace));
    }

    /// Asks this node and everything below it (shields included: the request
    /// only informs) to shut down gracefully, waking every `wait_shutdown`.
    pub(crate) fn request_shutdown(self: &Arc<Node>) {
        let mut stack = vec![Arc::clone(self)];
        while let Some(node) = stack.pop() {
            let (children, waiters) = {
                let mut state = node.lock();
                if node.flags.fetch_or(SHUTDOWN, Ordering::AcqRel) & SHUTDOWN != 0 {
                    continue;
                }
                let waiters = state.shutdown_waiters.drain();
                (Self::snapshot(&state), waiters)
            };
            waiters.for_each(Waker::wake);
            stack.extend(children);
        }
    }

    /// Registers `waker` to be woken on a shutdown request; returns `None` if
    /// one already arrived. `key` is a slot from an earlier registration.
    pub(crate) fn register_shutdown_waiter(
        &self,
        key: Option<usize>,
        waker: &Waker,
    ) -> Option<usize> {
        let mut state = self.lock();
        if self.is_shutdown_requested() {
            return None;
        }
        match key.and_then(|k| state.shutdown_waiters.get_mut(k).map(|w| (k, w))) {
            Some((k, slot)) => {
                slot.clone_from(waker);
                Some(k)
            }
            None => Some(state.shutdown_waiters.insert(waker.clone())),
        }
    }

    pub(crate) fn unregister_shutdown_waiter(&self, key: usize) {
        self.lock().shutdown_waiters.try_remove(key);
    }

    /// Registers the driver's waker: every cancellation, deadline change
    /// and grace deadline from now on wakes it. (Drivers read the verdict
    /// after registering, so nothing set before is missed either.)
    pub(crate) fn register_waker(&self, waker: &Waker) {
        let mut state = self.lock();
        match &mut state.waker {
            Some(registered) => registered.clone_from(waker),
            slot @ None => *slot = Some(waker.clone()),
        }
    }

    /// Wakes the driver, if it has registered.
    fn wake_driver(&self) {
        let waker = self.lock().waker.clone();
        wake(waker);
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    /// The relative deadline waiting to be applied at entry, if any.
    pub(crate) fn relative_deadline(&self) -> Option<std::time::Duration> {
        self.lock().relative()
    }

    /// Sets a relative deadline: kept until entry (see
    /// [`Node::apply_relative`]), or, once entered, counted from now.
    pub(crate) fn set_relative_deadline(&self, relative: Option<std::time::Duration>) {
        let mut state = self.lock();
        if !state.started {
            if relative.is_some() || state.more.is_some() {
                state.more().relative = relative;
            }
            return;
        }
        drop(state);
        self.set_deadline(relative.map(super::deadline_after));
    }

    /// On entry: turns the relative deadline into an absolute one counted
    /// from `now`; the earlier of it and an absolute deadline wins.
    pub(crate) fn apply_relative(&self, now: impl FnOnce() -> Instant) {
        let mut state = self.lock();
        state.started = true;
        let Some(relative) = state.more.as_mut().and_then(|more| more.relative.take()) else {
            // Most scopes have no relative deadline: no clock read.
            return;
        };
        let now = now();
        let at = now
            .checked_add(relative)
            .unwrap_or_else(|| super::far_future(now));
        state.deadline = Some(state.deadline.map_or(at, |d| d.min(at)));
        drop(state);
        self.deadline_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Sets the absolute deadline; a relative one waiting for entry is
    /// dropped (the last one set wins).
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        let mut state = self.lock();
        state.deadline = deadline;
        if let Some(more) = &mut state.more {
            more.relative = None;
        }
        drop(state);
        self.deadline_generation.fetch_add(1, Ordering::AcqRel);
        self.wake_driver();
    }

    /// Sets the grace deadline of a graceful shutdown; an earlier one stays.
    pub(crate) fn set_grace_deadline(&self, at: Instant) {
        {
            let mut state = self.lock();
            if state.grace_deadline().is_some_and(|old| old <= at) {
                return;
            }
            state.more().grace_deadline = Some(at);
        }
        self.deadline_generation.fetch_add(1, Ordering::AcqRel);
        self.wake_driver();
    }

    /// Returns `true` the first time it is called: the caller then runs
    /// this node's timer (for nodes without a driver of their own).
    pub(crate) fn claim_timer(&self) -> bool {
        !self.timer_claimed.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn deadline_generation(&self) -> u64 {
        self.deadline_generation.load(Ordering::Acquire)
    }

    /// The instant the driver's timer must fire, and the cause it fires with.
    pub(crate) fn timer_target(&self) -> Option<(Instant, Cause)> {
        let state = self.lock();
        match (state.deadline, state.grace_deadline()) {
            (Some(d), Some(g)) if g < d => Some((g, Cause::Shutdown)),
            (Some(d), _) => Some((d, Cause::Deadline)),
            (None, Some(g)) => Some((g, Cause::Shutdown)),
            (None, None) => None,
        }
    }

    /// The nearest deadline that applies here: the earliest among this node
    /// and its ancestors up to (and including) the nearest shield.
    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut node = Some(self);
        while let Some(n) = node {
            let state = n.lock();
            for d in [state.deadline, state.grace_deadline()]
                .into_iter()
                .flatten()
            {
                best = Some(best.map_or(d, |b| b.min(d)));
            }
            drop(state);
            if n.is_shield() {
                break;
            }
            node = n.parent().map(|p| &**p);
        }
        best
    }

    /// Whether a cancellation of this node ends its driver's body even when
    /// it was inherited (the body is the whole of the driver's work).
    fn is_boundary(&self) -> bool {
        !matches!(self.kind, Kind::Scope) || self.parent().is_none()
    }

    /// What the driver of this node should do with its body now.
    ///
    /// The outermost cancelled scope of a task catches the cancellation (as
    /// Trio's does): a scope cancelled by itself parks, like one cancelled
    /// by an ancestor, when the scope around it in the same task is
    /// cancelled too. A shield never parks: it hides its parent's
    /// cancellation and holds its parent, which could never drop it; one
    /// cancelled before it became a shield catches that cancellation.
    pub(crate) fn verdict(&self) -> Verdict {
        let flags = self.flags.load(Ordering::Acquire);
        if flags & CANCELLED == 0 || self.holds.load(Ordering::Acquire) > 0 {
            Verdict::Poll
        } else if self.is_boundary()
            || self.is_shield()
            || (flags & OWN != 0 && !self.outer_scope_cancelled())
        {
            Verdict::Drop
        } else {
            Verdict::Park
        }
    }

    /// Whether this scope's parent, in the same task, is cancelled too (and
    /// visible from here: not behind a shield).
    fn outer_scope_cancelled(&self) -> bool {
        !self.is_shield() && self.parent().is_some_and(|parent| parent.is_cancelled())
    }

    /// Holds every node from this node's parent up to the task's root (see
    /// the module docs). Release it with [`Node::release_hold`].
    pub(crate) fn acquire_hold(&self) {
        self.walk_hold_path(|n| {
            n.holds.fetch_add(1, Ordering::AcqRel);
        });
    }

    pub(crate) fn release_hold(&self) {
        self.walk_hold_path(|n| {
            n.holds.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn walk_hold_path(&self, mut f: impl FnMut(&Node)) {
        let mut node = self.parent();
        while let Some(n) = node {
            f(n);
            if matches!(n.kind, Kind::Task(_)) {
                break;
            }
            node = n.parent();
        }
    }
}

/// The wakers of a node's `wait_shutdown` futures, by key. Most nodes have
/// at most one (a server loop's, a supervisor's), kept inline: registering
/// it allocates nothing.
#[derive(Debug, Default)]
struct Waiters {
    /// Key 0.
    first: Option<Waker>,
    /// Key `k + 1` is `rest[k]`.
    rest: Option<Box<Slab<Waker>>>,
}

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        if self.first.is_none() {
            self.first = Some(waker);
            return 0;
        }
        self.rest.get_or_insert_default().insert(waker) + 1
    }

    #[cfg(all(test, trellis_loom))]
    fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.as_ref().is_none_or(|rest| rest.is_empty())
    }

    fn get_mut(&mut self, key: usize) -> Option<&mut Waker> {
        match key {
            0 => self.first.as_mut(),
            k => self.rest.as_mut()?.get_mut(k - 1),
        }
    }

    fn try_remove(&mut self, key: usize) {
        match key {
            0 => self.first = None,
            k => {
                if let Some(rest) = &mut self.rest {
                    rest.try_remove(k - 1);
                }
            }
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = Waker> + use<> {
        let rest = self.rest.take().into_iter().flat_map(|rest| *rest);
        self.first
            .take()
            .into_iter()
            .chain(rest.map(|(_, waker)| waker))
    }
}

/// Wakes a driver's waker taken out of a node's state (outside its lock).
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// What a driver remembers of the waker it stored where others wake it by
/// reference (a node's state, a `TaskStats` probe's slot). A runtime gives
/// a task the same waker for its whole life, so after the first store a
/// poll compares two pointers and touches no lock.
#[derive(Debug, Default)]
pub(crate) struct WakerRegistration(Option<Waker>);

impl WakerRegistration {
    /// Registers `waker` on `node` unless it is the one registered already.
    /// Returns `true` if it registered: the driver must then read the
    /// verdict again before it waits.
    pub(crate) fn update(&mut self, node: &Node, waker: &Waker) -> bool {
        self.update_with(waker, |waker| node.register_waker(waker))
    }

    /// Calls `store` with `waker` unless it is the one stored already;
    /// returns whether it did.
    pub(crate) fn update_with(&mut self, waker: &Waker, store: impl FnOnce(&Waker)) -> bool {
        if self.0.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return false;
        }
        store(waker);
        self.0 = Some(waker.clone());
        true
    }
}

#[cfg(all(test, trellis_loom))]
#[path = "tests/loom_tree.rs"]
mod loom_tree;

#[cfg(all(test, not(trellis_loom)))]
mod tests {
    use super::*;

    /// A waker that counts its wakes.
    fn counting() -> (Waker, Arc<AtomicUsize>) {
        struct Count(Arc<AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(AtomicUsize::new(0));
        (Waker::from(Arc::new(Count(Arc::clone(&count)))), count)
    }

    #[test]
    fn waiters_keep_their_keys_and_drain_wakes_each_once() {
        let mut waiters = Waiters::default();
        let (a, a_wakes) = counting();
        let (b, b_wakes) = counting();
        let (c, c_wakes) = counting();
        let ka = waiters.insert(a);
        let kb = waiters.insert(b);
        assert_eq!((ka, kb), (0, 1));
        waiters.try_remove(ka);
        // The inline slot is free again; the other key still works.
        assert_eq!(waiters.insert(c), 0);
        assert!(waiters.get_mut(kb).is_some());
        waiters.try_remove(kb);
        assert!(waiters.get_mut(kb).is_none());
        waiters.try_remove(kb); // removing twice is harmless
        waiters.drain().for_each(Waker::wake);
        let wakes = |n: &Arc<AtomicUsize>| n.load(Ordering::SeqCst);
        assert_eq!(
            (wakes(&a_wakes), wakes(&b_wakes), wakes(&c_wakes)),
            (0, 0, 1)
        );
        assert!(waiters.first.is_none() && waiters.rest.is_none());
    }
}
