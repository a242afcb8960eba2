//! The observer's hooks inside the runtime: the lifecycle event bus and the
//! per-gen_server statistics.
//!
//! This is the one part of the observer that lower layers call
//! (`supervisor`, `gen_server`, `application`), so it imports nothing above
//! [`process`](crate::process). Everything here is free when no observer
//! runs: every hook first loads one atomic ([`enabled`]); only when an
//! observer server or a [`subscribe`] handle is alive are events built and
//! published, and do newly started gen_servers count their messages and
//! time their handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
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

/// Keeps the hooks on while it lives.
#[derive(Debug)]
pub(crate) struct Enabled(());

impl Enabled {
    pub(crate) fn new() -> Self {
        OBSERVERS.fetch_add(1, Ordering::Relaxed);
        Enabled(())
    }
}

impl Drop for Enabled {
    fn drop(&mut self) {
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
/// application starts and stops, and gen_servers started meanwhile keep
/// their statistics. This is what the observer's `/api/events` streams.
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
#[derive(Debug)]
pub(crate) struct ServerStats {
    pub(crate) pid: Pid,
    pub(crate) name: Option<String>,
    /// Messages handled (calls, casts, infos, signals).
    pub(crate) handled: AtomicU64,
    /// Time inside callbacks, in nanoseconds.
    pub(crate) busy_nanos: AtomicU64,
    /// Messages queued behind the one last taken.
    pub(crate) depth: AtomicU64,
    /// Calls by handler time: one count per bucket of [`BUCKETS`] (not
    /// cumulative), then the overflow.
    pub(crate) calls: [AtomicU64; BUCKETS.len() + 1],
    pub(crate) call_nanos: AtomicU64,
}

impl ServerStats {
    /// Records one handled message.
    pub(crate) fn record(&self, took: Duration, call: bool, depth: usize) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.depth.store(depth as u64, Ordering::Relaxed);
        if call {
            let secs = took.as_secs_f64();
            let bucket = BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(BUCKETS.len());
            self.calls[bucket].fetch_add(1, Ordering::Relaxed);
            self.call_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }
}

fn servers() -> &'static Mutex<HashMap<Pid, Weak<ServerStats>>> {
    static SERVERS: OnceLock<Mutex<HashMap<Pid, Weak<ServerStats>>>> = OnceLock::new();
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
    if servers.len() >= 64 && servers.len().is_power_of_two() {
        servers.retain(|_, s| s.strong_count() > 0);
    }
    servers.insert(pid, Arc::downgrade(&stats));
    stats
}

/// The statistics of every live observed gen_server.
pub(crate) fn live_servers() -> Vec<Arc<ServerStats>> {
    let mut servers = lock(servers());
    servers.retain(|_, s| s.strong_count() > 0);
    servers.values().filter_map(Weak::upgrade).collect()
}

/// The statistics of one live observed gen_server.
pub(crate) fn server(pid: Pid) -> Option<Arc<ServerStats>> {
    lock(servers()).get(&pid).and_then(Weak::upgrade)
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
