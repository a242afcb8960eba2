//! The observer's hooks inside the runtime: the lifecycle event bus and the
//! per-gen_server statistics.
//!
//! This is the one part of the observer that lower layers call
//! (`supervisor`, `gen_server`, `application`), so it imports nothing above
//! [`process`](crate::process). Everything here is free when no observer
//! runs: every hook first loads one atomic ([`enabled`]); only when an
//! observer server or a [`subscribe`] handle is alive are events built and
//! published, and do newly started gen_servers count their messages. Their
//! handlers are timed only while someone *watches* ([`watched`]: a request
//! to the observer in flight, an open event stream, or the window after a
//! `/metrics` scrape), so that an observer nobody looks at costs a
//! gen_server one relaxed load and two single-writer counters per message.
//!
//! Counters outlive their processes: a gen_server's statistics are folded
//! into totals kept by its registered name (unnamed servers together) once
//! it has ended, so `_total` series and the call histogram never go back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::loom::lock;
use crate::nursery::Nursery;
use crate::process::Pid;
use crate::sync::Event as Flag;

/// How many observers (servers and [`Subscription`]s) are alive.
static OBSERVERS: AtomicUsize = AtomicUsize::new(0);

/// How many [`Subscription`]s are alive (the event stream's clients).
static SUBSCRIBERS: AtomicUsize = AtomicUsize::new(0);

/// Whether anything observes the node: the hooks' one check.
#[inline]
pub(crate) fn enabled() -> bool {
    OBSERVERS.load(Ordering::Relaxed) != 0
}

/// Whether anything streams events (a [`Subscription`] lives).
#[inline]
pub(crate) fn subscribed() -> bool {
    SUBSCRIBERS.load(Ordering::Relaxed) != 0
}

/// How many observer clients are being served right now: requests in
/// flight, open event streams ([`Subscription`]s), and the scrape window.
static WATCHERS: AtomicUsize = AtomicUsize::new(0);

/// Whether someone looks at the node now: gen_servers time their
/// handlers only then (one relaxed load per message).
#[inline]
pub(crate) fn watched() -> bool {
    WATCHERS.load(Ordering::Relaxed) != 0
}

/// Makes the node [`watched`] while it lives.
#[derive(Debug)]
pub(crate) struct Watching(());

impl Watching {
    pub(crate) fn new() -> Self {
        WATCHERS.fetch_add(1, Ordering::Relaxed);
        Watching(())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        WATCHERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The scrape window: until when timing stays on after the last `/metrics`
/// scrape, and the [`Watching`] that keeps it on meanwhile.
struct ScrapeWindow {
    until: Option<Instant>,
    watching: Option<Watching>,
    /// How many [`close_scrape_windows`] run (observer servers): without
    /// one, a scrape opens no window (nothing would close it).
    closers: usize,
}

fn scrape_window() -> &'static (Mutex<ScrapeWindow>, tokio::sync::Notify) {
    static WINDOW: OnceLock<(Mutex<ScrapeWindow>, tokio::sync::Notify)> = OnceLock::new();
    WINDOW.get_or_init(|| {
        (
            Mutex::new(ScrapeWindow {
                until: None,
                watching: None,
                closers: 0,
            }),
            tokio::sync::Notify::new(),
        )
    })
}

/// A `/metrics` scrape happened: keeps the node [`watched`] from now until
/// `window` has passed (extending an open window), so that the next scrape
/// finds the call latencies of the time in between. Closed by
/// [`close_scrape_windows`], which every observer server runs.
pub(crate) fn scraped(window: Duration) {
    if window.is_zero() {
        return;
    }
    let until = Instant::now() + window;
    let (state, notify) = scrape_window();
    let mut state = lock(state);
    if state.closers == 0 {
        return;
    }
    state.until = Some(state.until.map_or(until, |u| u.max(until)));
    if state.watching.is_none() {
        state.watching = Some(Watching::new());
        notify.notify_one();
    }
}

/// Closes each scrape window when it has passed; runs as long as an
/// observer server does. When it is dropped (the server stops) an open
/// window closes at once.
pub(crate) async fn close_scrape_windows() {
    struct CloseOnDrop;
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            let mut state = lock(&scrape_window().0);
            state.closers -= 1;
            state.until = None;
            state.watching = None;
        }
    }
    let (state, notify) = scrape_window();
    lock(state).closers += 1;
    let _close = CloseOnDrop;
    loop {
        let until = lock(state).until;
        match until {
            None => notify.notified().await,
            Some(until) if Instant::now() >= until => {
                let mut state = lock(state);
                // Not extended meanwhile (under the same lock as `scraped`).
                if state.until.is_some_and(|u| Instant::now() >= u) {
                    state.until = None;
                    state.watching = None;
                }
            }
            Some(until) => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = notify.notified() => {}
                }
            }
        }
    }
}

/// Keeps the hooks on while it lives.
#[derive(Debug)]
pub(crate) struct Enabled(());

impl Enabled {
    pub(crate) fn new() -> Self {
        OBSERVERS.fetch_add(1, Ordering::Relaxed);
        // From now on, nurseries and tasks note when they start (one clock
        // read as each joins the scope tree) for the tree's ages.
        #[cfg(feature = "observer")]
        crate::cancel::keep_ages(true);
        Enabled(())
    }
}

impl Drop for Enabled {
    fn drop(&mut self) {
        // Nursery and task ages stay kept: an observer may start again,
        // and turning them off would race the next one turning them on.
        OBSERVERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What happened, in an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A supervised child started (first start or restart).
    ChildStarted,
    /// A supervised child ended on its own; [`Event::reason`] says why.
    ChildExited,
    /// A supervised child was started again after it ended;
    /// [`Event::restarts`] is its count so far.
    ChildRestarted,
    /// A supervisor stopped one of its children (shutdown, a group restart,
    /// `terminate_child`).
    ChildStopped,
    /// A supervisor gave up: more restarts than its intensity allows.
    IntensityExceeded,
    /// An application started; [`Event::child`] is its name.
    ApplicationStarted,
    /// An application ended or was stopped; [`Event::child`] is its name.
    ApplicationStopped,
}

impl EventKind {
    /// The snake-case name used in the JSON API and the event stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::observer::EventKind;
    ///
    /// assert_eq!(EventKind::ChildRestarted.as_str(), "child_restarted");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ChildStarted => "child_started",
            EventKind::ChildExited => "child_exited",
            EventKind::ChildRestarted => "child_restarted",
            EventKind::ChildStopped => "child_stopped",
            EventKind::IntensityExceeded => "intensity_exceeded",
            EventKind::ApplicationStarted => "application_started",
            EventKind::ApplicationStopped => "application_stopped",
        }
    }
}

/// One lifecycle event of the node, as the observer streams it.
///
/// Events are published only while something observes the node (an
/// observer server or a [`subscribe`] handle), in the order each supervisor
/// acts; `seq` grows by one per event across the node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Event {
    /// Position in the node's event sequence, from 1.
    pub seq: u64,
    /// Time since the first event of the process, on the runtime's clock
    /// (paused-clock tests see exact values). Meaningful within one
    /// runtime: a process that runs several (tests, each on its own paused
    /// clock) measures every event from the first one's clock, and events
    /// of a runtime whose clock is behind it read zero.
    pub at: Duration,
    /// What happened.
    pub kind: EventKind,
    /// The supervisor that acted, if any: its name.
    pub supervisor: Option<String>,
    /// The supervisor's pid.
    pub supervisor_pid: Option<Pid>,
    /// The child's id, or the application's name.
    pub child: Option<String>,
    /// The child's own pid, when it has one.
    pub pid: Option<Pid>,
    /// The exit reason, for exits, stops and intensity trips (its `Display`).
    pub reason: Option<String>,
    /// The child's restart count after this event.
    pub restarts: u64,
}

impl Event {
    /// An event with only its kind set (the hooks fill in the rest).
    pub(crate) fn new(kind: EventKind) -> Self {
        Event {
            seq: 0,
            at: Duration::ZERO,
            kind,
            supervisor: None,
            supervisor_pid: None,
            child: None,
            pid: None,
            reason: None,
            restarts: 0,
        }
    }
}

struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
    seq: AtomicU64,
    epoch: OnceLock<Instant>,
}

fn bus() -> &'static Bus {
    static BUS: OnceLock<Bus> = OnceLock::new();
    BUS.get_or_init(|| Bus {
        tx: broadcast::channel(1024).0,
        seq: AtomicU64::new(0),
        epoch: OnceLock::new(),
    })
}

/// Publishes the event `make` builds, if anything subscribes to events;
/// otherwise `make` is not called (an observer with no client builds none).
#[inline]
pub(crate) fn publish(make: impl FnOnce() -> Event) {
    if subscribed() {
        publish_slow(make());
    }
}

#[cold]
fn publish_slow(mut event: Event) {
    let bus = bus();
    let now = Instant::now();
    let epoch = *bus.epoch.get_or_init(|| now);
    event.at = now.saturating_duration_since(epoch);
    event.seq = bus.seq.fetch_add(1, Ordering::Relaxed) + 1;
    // No receiver: nobody streams events right now.
    let _ = bus.tx.send(Arc::new(event));
}

/// A live feed of the node's lifecycle events; keeps the observer's hooks
/// on while it lives (see [`subscribe`]).
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    _enabled: Enabled,
    _watching: Watching,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        SUBSCRIBERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Subscribes to the node's lifecycle events, from now on.
///
/// While the returned [`Subscription`] lives, supervisors publish their
/// children's starts, exits, restarts and stops, intensity trips and
/// application starts and stops, gen_servers started meanwhile keep
/// their statistics, and every observed gen_server times its handlers
/// (the node counts as watched). This is what the observer's `/api/events` streams.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::observer::{self, EventKind};
/// use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
///
/// let mut events = observer::subscribe();
/// trellis::nursery(|n| async move {
///     let children = vec![ChildSpec::task("worker", trellis::wait_shutdown)];
///     let sup = supervisor::start(&n, children, SupervisorOptions::new().name("events-demo")).await?;
///     sup.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// let first = events.next().await.unwrap();
/// assert_eq!(first.kind, EventKind::ChildStarted);
/// assert_eq!(first.child.as_deref(), Some("worker"));
/// # }
/// ```
pub fn subscribe() -> Subscription {
    let enabled = Enabled::new();
    SUBSCRIBERS.fetch_add(1, Ordering::Relaxed);
    Subscription {
        rx: bus().tx.subscribe(),
        _enabled: enabled,
        _watching: Watching::new(),
    }
}

impl Subscription {
    /// Waits for the next event; `None` never happens while the process
    /// lives (the bus is static).
    ///
    /// A subscriber that falls more than 1024 events behind skips the
    /// oldest ones (see [`Event::seq`] to notice the gap). See [`subscribe`]
    /// for an example.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses no event.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting, without waiting (as
    /// [`next`](Self::next), lagging subscribers skip the oldest).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::observer::{self, EventKind};
    /// use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
    ///
    /// let mut events = observer::subscribe();
    /// trellis::nursery(|n| async move {
    ///     let children = vec![ChildSpec::task("once", || async { Ok::<_, String>(()) })
    ///         .restart(supervisor::Restart::Temporary)];
    ///     supervisor::start(&n, children, SupervisorOptions::new().name("try-next")).await?;
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await
    /// .unwrap();
    /// let mut kinds = Vec::new();
    /// while let Some(event) = events.try_next() {
    ///     if event.supervisor.as_deref() == Some("try-next") {
    ///         kinds.push(event.kind);
    ///     }
    /// }
    /// assert_eq!(kinds, [EventKind::ChildStarted, EventKind::ChildExited]);
    /// # }
    /// ```
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// Upper bounds, in seconds, of the call-duration histogram's buckets.
pub(crate) const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 1.0,
];

/// What one gen_server counts while observed.
///
/// One writer (the server's own task): counters are bumped with a load and
/// a store, no read-modify-write. `handled` and `depth` are exact for the
/// server's life; the time fields count only messages handled while the
/// node was [`watched`].
#[derive(Debug)]
pub(crate) struct ServerStats {
    pub(crate) pid: Pid,
    pub(crate) name: Option<String>,
    /// Messages handled (calls, casts, infos, signals).
    pub(crate) handled: AtomicU64,
    /// Messages queued behind the one last taken.
    pub(crate) depth: AtomicU64,
    /// Time inside callbacks, in nanoseconds (timed messages only).
    pub(crate) busy_nanos: AtomicU64,
    /// Timed calls by handler time: one count per bucket of [`BUCKETS`]
    /// (not cumulative), then the overflow.
    pub(crate) calls: [AtomicU64; BUCKETS.len() + 1],
    /// Time in timed calls, in nanoseconds.
    pub(crate) call_nanos: AtomicU64,
}

/// Bumps a counter that only one task writes.
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

impl ServerStats {
    /// Records one handled message; `timed` is its handler time and
    /// whether it was a call, if it was timed (the node was watched when it
    /// was taken).
    #[inline]
    pub(crate) fn record(&self, timed: Option<(Duration, bool)>, depth: usize) {
        bump(&self.handled, 1);
        self.depth.store(depth as u64, Ordering::Relaxed);
        if let Some((took, call)) = timed {
            self.record_time(took, call);
        }
    }

    fn record_time(&self, took: Duration, call: bool) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        bump(&self.busy_nanos, nanos);
        if call {
            let secs = took.as_secs_f64();
            let bucket = BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(BUCKETS.len());
            bump(&self.calls[bucket], 1);
            bump(&self.call_nanos, nanos);
        }
    }

    /// The counters now, as totals.
    fn totals(&self) -> Totals {
        let mut calls = [0; BUCKETS.len() + 1];
        for (total, count) in calls.iter_mut().zip(&self.calls) {
            *total = count.load(Ordering::Relaxed);
        }
        Totals {
            handled: self.handled.load(Ordering::Relaxed),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
            calls,
            call_nanos: self.call_nanos.load(Ordering::Relaxed),
        }
    }
}

/// The counters of every gen_server of one identity (a registered name,
/// or `""` for every unnamed one), those that ended and those that live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Messages handled.
    pub(crate) handled: u64,
    /// Time in timed callbacks, in nanoseconds.
    pub(crate) busy_nanos: u64,
    /// Timed calls per bucket of [`BUCKETS`] (not cumulative), then the
    /// overflow.
    pub(crate) calls: [u64; BUCKETS.len() + 1],
    /// Time in timed calls, in nanoseconds.
    pub(crate) call_nanos: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.handled += other.handled;
        self.busy_nanos += other.busy_nanos;
        for (a, b) in self.calls.iter_mut().zip(&other.calls) {
            *a += b;
        }
        self.call_nanos += other.call_nanos;
    }
}

/// At most this many names keep totals of their ended processes; the
/// ended processes of further names count under `""` (with the unnamed),
/// so that a program that names processes uniquely (a supervisor per
/// connection) does not grow the totals without bound.
const MAX_ENDED_NAMES: usize = 1000;

/// The totals of ended processes named `name` (see [`MAX_ENDED_NAMES`]).
fn ended_entry<'a, T: Default>(ended: &'a mut HashMap<String, T>, name: &str) -> &'a mut T {
    let name = if ended.contains_key(name) || ended.len() < MAX_ENDED_NAMES {
        name
    } else {
        ""
    };
    ended.entry(name.to_owned()).or_default()
}

/// The observed gen_servers: those alive (and those ended since the last
/// look, whose only holder is this map), and the totals of those ended.
#[derive(Default)]
struct Servers {
    live: HashMap<Pid, Arc<ServerStats>>,
    ended: HashMap<String, Totals>,
}

impl Servers {
    /// Moves the counters of every server that has ended (its loop dropped
    /// its statistics: this map holds the last reference) into `ended`.
    /// Under the map's lock, so a reader sees a server's counts either live
    /// or ended, never both or neither.
    fn fold_ended(&mut self) {
        let ended = &mut self.ended;
        self.live.retain(|_, stats| {
            if Arc::strong_count(stats) > 1 {
                return true;
            }
            let identity = stats.name.as_deref().unwrap_or_default();
            ended_entry(ended, identity).add(&stats.totals());
            false
        });
    }
}

fn servers() -> &'static Mutex<Servers> {
    static SERVERS: OnceLock<Mutex<Servers>> = OnceLock::new();
    SERVERS.get_or_init(Mutex::default)
}

/// Statistics for a gen_server starting now, if the node is observed.
#[inline]
pub(crate) fn server_stats(pid: Pid, name: Option<&str>) -> Option<Arc<ServerStats>> {
    if enabled() {
        Some(register_server(pid, name))
    } else {
        None
    }
}

#[cold]
fn register_server(pid: Pid, name: Option<&str>) -> Arc<ServerStats> {
    let stats = Arc::new(ServerStats {
        pid,
        name: name.map(str::to_owned),
        handled: AtomicU64::new(0),
        busy_nanos: AtomicU64::new(0),
        depth: AtomicU64::new(0),
        calls: Default::default(),
        call_nanos: AtomicU64::new(0),
    });
    let mut servers = lock(servers());
    if servers.live.len() >= 64 && servers.live.len().is_power_of_two() {
        servers.fold_ended();
    }
    servers.live.insert(pid, Arc::clone(&stats));
    stats
}

/// The statistics of every live observed gen_server.
pub(crate) fn live_servers() -> Vec<Arc<ServerStats>> {
    let mut servers = lock(servers());
    servers.fold_ended();
    servers.live.values().cloned().collect()
}

/// The statistics of one live observed gen_server.
pub(crate) fn server(pid: Pid) -> Option<Arc<ServerStats>> {
    let servers = lock(servers());
    servers
        .live
        .get(&pid)
        .filter(|s| Arc::strong_count(s) > 1)
        .cloned()
}

/// The counters of every gen_server identity the observer has seen
/// (registered name, `""` for the unnamed), ended servers included: they
/// only grow, across restarts. Sorted by name.
pub(crate) fn server_totals() -> Vec<(String, Totals)> {
    let mut servers = lock(servers());
    servers.fold_ended();
    let mut totals = servers.ended.clone();
    for stats in servers.live.values() {
        let identity = stats.name.clone().unwrap_or_default();
        totals.entry(identity).or_default().add(&stats.totals());
    }
    let mut totals: Vec<_> = totals.into_iter().collect();
    totals.sort_by(|a, b| a.0.cmp(&b.0));
    totals
}

/// The labels of exit reasons, as supervisors count them and the metrics
/// name them.
pub(crate) const EXIT_LABELS: [&str; 6] =
    ["normal", "shutdown", "killed", "error", "panic", "noproc"];

/// A supervisor's restarts and its children's exits by reason (indexed as
/// [`EXIT_LABELS`]): written by the supervisor, read by introspection.
#[derive(Debug, Default)]
pub(crate) struct SupervisorCounters {
    pub(crate) restarts: AtomicU64,
    pub(crate) exits: [AtomicU64; EXIT_LABELS.len()],
}

/// Restarts and exits by reason, summed over supervisors of one name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SupervisorTotals {
    pub(crate) restarts: u64,
    pub(crate) exits: [u64; EXIT_LABELS.len()],
}

impl SupervisorTotals {
    fn add(&mut self, counters: &SupervisorCounters) {
        self.restarts += counters.restarts.load(Ordering::Relaxed);
        for (total, n) in self.exits.iter_mut().zip(&counters.exits) {
            *total += n.load(Ordering::Relaxed);
        }
    }
}

/// Every supervisor's counters by name: those alive (and those ended since
/// the last look, held only here), and the totals of those ended.
#[derive(Default)]
struct Supervisors {
    live: Vec<(String, Arc<SupervisorCounters>)>,
    ended: HashMap<String, SupervisorTotals>,
}

impl Supervisors {
    /// As [`Servers::fold_ended`]: under the lock, a supervisor's counts
    /// are seen either live or ended.
    fn fold_ended(&mut self) {
        let ended = &mut self.ended;
        self.live.retain(|(name, counters)| {
            if Arc::strong_count(counters) > 1 {
                return true;
            }
            ended_entry(ended, name).add(counters);
            false
        });
    }
}

fn supervisors() -> &'static Mutex<Supervisors> {
    static SUPERVISORS: OnceLock<Mutex<Supervisors>> = OnceLock::new();
    SUPERVISORS.get_or_init(Mutex::default)
}

/// The counters of a supervisor starting now, kept by its name after it
/// ends (always, observed or not: a supervisor starts rarely).
pub(crate) fn supervisor_counters(name: &str) -> Arc<SupervisorCounters> {
    let counters = Arc::new(SupervisorCounters::default());
    let mut supervisors = lock(supervisors());
    if supervisors.live.len() >= 64 && supervisors.live.len().is_power_of_two() {
        supervisors.fold_ended();
    }
    supervisors
        .live
        .push((name.to_owned(), Arc::clone(&counters)));
    counters
}

/// Restarts and exits of every supervisor name seen in the process,
/// ended supervisors included: they only grow. Sorted by name.
pub(crate) fn supervisor_totals() -> Vec<(String, SupervisorTotals)> {
    let mut supervisors = lock(supervisors());
    supervisors.fold_ended();
    let mut totals = supervisors.ended.clone();
    for (name, counters) in &supervisors.live {
        totals.entry(name.clone()).or_default().add(counters);
    }
    let mut totals: Vec<_> = totals.into_iter().collect();
    totals.sort_by(|a, b| a.0.cmp(&b.0));
    totals
}

/// Intensity trips by supervisor name, for the process's life (a
/// supervisor that trips ends, so its own counters go with it).
fn trips() -> &'static Mutex<HashMap<String, u64>> {
    static TRIPS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    TRIPS.get_or_init(Mutex::default)
}

/// Counts an intensity trip of `supervisor` (always: it is rare).
pub(crate) fn record_trip(supervisor: &str) {
    *lock(trips()).entry(supervisor.to_owned()).or_default() += 1;
}

/// Intensity trips so far, by supervisor name.
pub(crate) fn trips_by_supervisor() -> Vec<(String, u64)> {
    let mut all: Vec<_> = lock(trips()).iter().map(|(k, v)| (k.clone(), *v)).collect();
    all.sort();
    all
}

/// A protocol server the observer counts connections of: its addresses,
/// its connections' nursery, and the event set when it has closed.
type ProtocolServer = (String, Nursery, Flag);

fn protocol_servers() -> &'static Mutex<Vec<ProtocolServer>> {
    static SERVERS: OnceLock<Mutex<Vec<ProtocolServer>>> = OnceLock::new();
    SERVERS.get_or_init(Mutex::default)
}

/// Registers a protocol server starting now, if the node is observed.
#[inline]
pub(crate) fn protocol_server(make: impl FnOnce() -> ProtocolServer) {
    if enabled() {
        let mut servers = lock(protocol_servers());
        servers.retain(|(_, _, closed)| !closed.is_set());
        servers.push(make());
    }
}

/// Open connections of every live observed protocol server, by addresses.
pub(crate) fn protocol_connections() -> Vec<(String, usize)> {
    let servers: Vec<ProtocolServer> = {
        let mut servers = lock(protocol_servers());
        servers.retain(|(_, _, closed)| !closed.is_set());
        servers.clone()
    };
    servers
        .into_iter()
        .map(|(addrs, connections, _)| (addrs, connections.child_tasks().len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_processes_beyond_the_name_limit_count_as_unnamed() {
        let mut ended: HashMap<String, u64> = HashMap::new();
        for i in 0..MAX_ENDED_NAMES {
            *ended_entry(&mut ended, &format!("name-{i}")) += 1;
        }
        *ended_entry(&mut ended, "one-too-many") += 5;
        // A name already kept still counts under itself.
        *ended_entry(&mut ended, "name-0") += 1;
        assert_eq!(ended.get(""), Some(&5));
        assert_eq!(ended.get("name-0"), Some(&2));
        assert!(!ended.contains_key("one-too-many"));
    }
}
