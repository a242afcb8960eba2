//! soak: a chaos soak of a supervision tree, checking Trellis's promises while
//! everything fails around them.
//!
//! ```sh
//! cargo run --release --example soak -- --duration 60 --servers 10000
//! cargo run --release --example soak -- --help
//! ```
//!
//! It builds a tree of gen_servers under all three restart strategies (one
//! supervisor per strategy, each over groups of ten servers), a dynamic
//! supervisor whose workers come and go, and one long-lived `anchor` server
//! that every worker monitors. Callers then hammer the servers by name with
//! calls that go wrong in every way a server can: panics, error exits, normal
//! stops of permanent and transient children, slow handlers, reply handles
//! dropped, replies deferred to other tasks (some of which panic), linked
//! siblings dying together, brutal-kill shutdowns, restart back-off, and
//! bursts of crashes that trip a group's restart intensity so that it
//! escalates to its parent.
//!
//! While it runs it checks that no call outlives its timeout by more than
//! `--slack-ms`, that no unbounded call hangs, and that every reply is the
//! one asked for. When the chaos stops it checks the settled tree: every
//! permanent child back and running, the process table, `which_children`,
//! `count_children` and the registry agreeing, and the anchor holding
//! exactly one monitor per live worker (a watcher's monitors go away with
//! it). After shutdown it checks that no process, name or task is left and
//! that the live heap, counted by a counting global allocator, is back to
//! what an identical warm-up round left. It exits non-zero on any violation.
//!
//! RELIABILITY.md gives the figures of the last long run;
//! `tests/example_soak.rs` runs a short one in CI.

use std::alloc::System;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::time::Instant;
use trellis::gen_server::{
    self, Context, GenServer, GenServerError, GenServerOptions, INFINITY, Init, Response, Server,
};
use trellis::process::{self, Down, ExitReason};
use trellis::supervisor::{
    self, Backoff, ChildInfo, ChildSpec, ChildState, Restart, Shutdown, Strategy, Supervisor,
    SupervisorInfo, SupervisorOptions,
};
use trellis::{BoxError, dynamic_supervisor, nursery, registry};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, over the whole process.
fn live_heap() -> i64 {
    // Growth and shrinking in place are already counted in these two.
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

const HELP: &str = "\
soak: a chaos soak of a Trellis supervision tree

USAGE:
    cargo run --release --example soak -- [OPTIONS]

OPTIONS:
    --duration SECONDS   how long the chaos runs [default: 20]
    --servers N          supervised gen_servers [default: 2000]
    --callers N          concurrent callers [default: 64]
    --chaos RATE         fraction of calls that make their server fail [default: 0.01]
    --timeout-ms MS      timeout of the bounded calls [default: 50]
    --slack-ms MS        how late a timed-out call may return [default: 10]
    --trip-every-ms MS   how often a burst of crashes trips a group's intensity [default: 2000]
    --seed N             seed of the chaos [default: 1]
    -h, --help           print this help
";

/// What one run is asked to do.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    duration: Duration,
    servers: usize,
    callers: usize,
    chaos: f64,
    timeout: Duration,
    slack: Duration,
    trip_every: Duration,
    seed: u64,
}

/// Servers per group supervisor.
const GROUP: usize = 10;
/// How long an unbounded (`INFINITY`) call may take before it counts as hung.
const HANG_LIMIT: Duration = Duration::from_secs(5);
/// How long the tree may take to settle once the chaos stops.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// The configuration the flags ask for; `None` for `--help`.
pub(crate) fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        duration: Duration::from_secs(20),
        servers: 2000,
        callers: 64,
        chaos: 0.01,
        timeout: Duration::from_millis(50),
        slack: Duration::from_millis(10),
        trip_every: Duration::from_millis(2000),
        seed: 1,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a whole number"))
        };
        match flag.as_str() {
            "--duration" => config.duration = Duration::from_secs(number()?),
            "--servers" => config.servers = number()?.max(GROUP as u64 * 3) as usize,
            "--callers" => config.callers = number()?.max(1) as usize,
            "--timeout-ms" => config.timeout = Duration::from_millis(number()?.max(1)),
            "--slack-ms" => config.slack = Duration::from_millis(number()?),
            "--trip-every-ms" => config.trip_every = Duration::from_millis(number()?.max(10)),
            "--seed" => config.seed = number()?,
            "--chaos" => {
                config.chaos = value
                    .parse::<f64>()
                    .ok()
                    .filter(|rate| (0.0..=1.0).contains(rate))
                    .ok_or_else(|| format!("--chaos: {value:?} is not a rate in 0..=1"))?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(Some(config))
}

/// A small xorshift generator: the chaos needs speed and a seed, not quality.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `true` with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

// ---------------------------------------------------------------------------
// The servers

/// A request, named by what it makes the server do.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// Reply with `(index, x)`.
    Echo(u64),
    /// Sleep this long in the handler, then echo.
    Slow(Duration, u64),
    /// Defer the reply to a separate task, which replies, or panics with the
    /// reply handle.
    Defer { x: u64, panic: bool },
    /// Defer the reply and drop the handle: the caller gets `NoReply`.
    DropReply,
    /// Panic in the handler.
    Panic,
    /// Return an error from the handler.
    Fail,
    /// Reply, then stop normally (a transient child stays stopped).
    StopNormal,
}

impl Call {
    /// Whether a successful reply to this request would be a violation.
    fn must_fail(self) -> bool {
        matches!(
            self,
            Call::Panic | Call::Fail | Call::DropReply | Call::Defer { panic: true, .. }
        )
    }

    /// The reply a success must carry, if the request asks for one.
    fn expected(self, index: usize) -> Option<(usize, u64)> {
        match self {
            Call::Echo(x) | Call::Slow(_, x) | Call::Defer { x, panic: false } => Some((index, x)),
            _ => None,
        }
    }
}

/// One supervised worker. It monitors the anchor and, in a one-for-all
/// group, links to its predecessor, so that siblings die together.
struct Worker {
    index: usize,
    link_to: Option<String>,
}

impl GenServer for Worker {
    type Arg = ();
    type Call = Call;
    type Reply = (usize, u64);
    /// A cast that makes the server panic: the intensity tripper's tool.
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        let anchor = registry::whereis("anchor").ok_or("the anchor is not running")?;
        ctx.monitor(anchor);
        if let Some(pid) = self.link_to.as_deref().and_then(registry::whereis) {
            ctx.link(pid);
        }
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        call: Call,
        ctx: &mut Context<Self>,
    ) -> Result<Response<(usize, u64)>, BoxError> {
        let index = self.index;
        match call {
            Call::Echo(x) => Ok(Response::Reply((index, x))),
            Call::Slow(delay, x) => {
                tokio::time::sleep(delay).await;
                Ok(Response::Reply((index, x)))
            }
            Call::Defer { x, panic } => {
                let reply = ctx.defer().ok_or("not in a call")?;
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    assert!(!panic, "chaos: a task holding a reply handle panicked");
                    let _ = reply.reply((index, x));
                });
                Ok(Response::NoReply)
            }
            Call::DropReply => {
                drop(ctx.defer());
                Ok(Response::NoReply)
            }
            Call::Panic => panic!("chaos: a handler panicked"),
            Call::Fail => Err("chaos: a handler failed".into()),
            Call::StopNormal => Ok(Response::ReplyAndStop((index, 0), ExitReason::Normal)),
        }
    }

    async fn handle_cast(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<gen_server::Flow, BoxError> {
        panic!("chaos: crashed on request");
    }

    async fn handle_down(
        &mut self,
        down: Down,
        _: &mut Context<Self>,
    ) -> Result<gen_server::Flow, BoxError> {
        Err(format!("the anchor went down: {down:?}").into())
    }
}

/// The long-lived process every worker monitors. It never fails, so its
/// count of monitors must always equal the number of live workers.
struct Anchor;

impl GenServer for Anchor {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<()>, BoxError> {
        Ok(Response::Reply(()))
    }
}

// ---------------------------------------------------------------------------
// The tree

fn server_name(index: usize) -> String {
    format!("s{index}")
}

/// The groups' layout: `(group index, strategy, first server, servers)`.
fn groups(config: &Config) -> Vec<(usize, Strategy, usize, usize)> {
    let strategies = [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ];
    let per_tier = config.servers / strategies.len();
    let mut layout = Vec::new();
    let mut first = 0;
    for (tier, strategy) in strategies.into_iter().enumerate() {
        let end = if tier + 1 == strategies.len() {
            config.servers
        } else {
            first + per_tier
        };
        while first < end {
            let size = GROUP.min(end - first);
            layout.push((layout.len(), strategy, first, size));
            first += size;
        }
    }
    layout
}

fn worker_spec(index: usize, link_to: Option<String>, group: usize) -> ChildSpec {
    // One server in ten is transient: a normal stop leaves it stopped, until
    // its group restarts (OTP restarts every non-temporary child then).
    let restart = if index % 10 == 9 {
        Restart::Transient
    } else {
        Restart::Permanent
    };
    // Half of the groups kill their children outright on shutdown.
    let shutdown = if group % 2 == 0 {
        Shutdown::BrutalKill
    } else {
        Shutdown::Timeout(Duration::from_millis(200))
    };
    ChildSpec::gen_server(
        server_name(index),
        move || Worker {
            index,
            link_to: link_to.clone(),
        },
        (),
        server_name(index).as_str(),
    )
    .restart(restart)
    .shutdown(shutdown)
}

fn root_children(config: &Config) -> Vec<ChildSpec> {
    let mut tiers: BTreeMap<&'static str, Vec<ChildSpec>> = BTreeMap::new();
    for (group, strategy, first, size) in groups(config) {
        let workers = (first..first + size)
            .map(|index| {
                let link = (strategy == Strategy::OneForAll && index > first)
                    .then(|| server_name(index - 1));
                worker_spec(index, link, group)
            })
            .collect();
        let mut options = SupervisorOptions::new()
            .name(format!("g{group}"))
            .register(true)
            .strategy(strategy)
            .max_restarts(20)
            .max_seconds(Duration::from_secs(1));
        if strategy == Strategy::OneForOne {
            options = options.backoff(Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(20),
            });
        }
        tiers
            .entry(tier_name(strategy))
            .or_default()
            .push(ChildSpec::supervisor(format!("g{group}"), workers, options));
    }
    let mut children = vec![ChildSpec::gen_server("anchor", || Anchor, (), "anchor")];
    for (name, groups) in tiers {
        let options = SupervisorOptions::new()
            .name(name)
            .max_restarts(10_000)
            .max_seconds(Duration::from_secs(1));
        children.push(ChildSpec::supervisor(name, groups, options));
    }
    let dynamic = dynamic_supervisor::DynamicSupervisorOptions::new()
        .name("dynamic")
        .max_children(config.servers / 10 + 1)
        .max_restarts(10_000)
        .max_seconds(Duration::from_secs(1));
    children.push(ChildSpec::new("dynamic", move |status| {
        dynamic_supervisor::serve(dynamic.clone(), status)
    }));
    children
}

fn tier_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        _ => "rest_for_one",
    }
}

// ---------------------------------------------------------------------------
// What a run observes

/// Counters shared by the chaos tasks, and the violations found.
#[derive(Default)]
struct Observed {
    calls: AtomicU64,
    ok: AtomicU64,
    timed_out: AtomicU64,
    unbounded: AtomicU64,
    max_late_us: AtomicU64,
    trips: AtomicU64,
    dynamic_started: AtomicU64,
    dynamic_stopped: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    violations: Mutex<Vec<String>>,
}

impl Observed {
    fn violation(&self, what: String) {
        let mut violations = self.violations.lock().unwrap();
        if violations.len() < 1000 {
            violations.push(what);
        }
    }

    fn error(&self, error: &GenServerError) {
        let kind = match error {
            GenServerError::Exited { .. } => "exited",
            GenServerError::NoReply { .. } => "no_reply",
            GenServerError::Timeout { .. } => "timeout",
            GenServerError::NameNotFound { .. } => "name_not_found",
            GenServerError::ProcessNotFound { .. } => "process_not_found",
            _ => "other",
        };
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// Panics the chaos causes on purpose are counted, not printed; any other
/// panic is a bug of the soak or of Trellis and is reported.
static CHAOS_PANICS: AtomicU64 = AtomicU64::new(0);
static OTHER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Counts the chaos's own panics quietly; any other panic is kept for the
/// report.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if message.starts_with("chaos:") {
            CHAOS_PANICS.fetch_add(1, Relaxed);
        } else {
            OTHER_PANICS.lock().unwrap().push(format!("{info}"));
        }
    }));
}

/// One caller: calls random servers by name until told to stop, checking
/// each reply and how long it took.
async fn caller(id: usize, config: Arc<Config>, stop: Arc<AtomicBool>, seen: Arc<Observed>) {
    let mut rng = Rng::new(config.seed ^ (id as u64 + 1) << 32);
    let timeout = config.timeout;
    while !stop.load(Relaxed) {
        let index = rng.below(config.servers);
        let x = rng.next();
        let call = if rng.chance(config.chaos) {
            match rng.below(6) {
                0 => Call::Panic,
                1 => Call::Fail,
                2 => Call::StopNormal,
                3 => Call::DropReply,
                4 => Call::Defer { x, panic: true },
                _ => Call::Slow(timeout * 2, x),
            }
        } else {
            match rng.below(20) {
                0 => Call::Defer { x, panic: false },
                1 => Call::Slow(timeout / 10, x),
                _ => Call::Echo(x),
            }
        };
        // One call in twenty has no timeout: the no-hang guarantees must
        // hold without a timer.
        let bounded = rng.below(20) != 0;
        let limit = if bounded { timeout } else { INFINITY };
        let started = Instant::now();
        let result = gen_server::call::<Worker>(server_name(index), call, limit).await;
        let took = started.elapsed();
        seen.calls.fetch_add(1, Relaxed);
        if bounded {
            let late = took.saturating_sub(timeout);
            seen.max_late_us.fetch_max(late.as_micros() as u64, Relaxed);
            if late > config.slack {
                seen.violation(format!(
                    "{call:?} to s{index} returned {late:?} after its timeout"
                ));
            }
        } else {
            seen.unbounded.fetch_add(1, Relaxed);
            if took > HANG_LIMIT {
                seen.violation(format!("unbounded {call:?} to s{index} took {took:?}"));
            }
        }
        match result {
            Ok(reply) => {
                seen.ok.fetch_add(1, Relaxed);
                if call.must_fail() {
                    seen.violation(format!("{call:?} to s{index} succeeded with {reply:?}"));
                } else if let Some(expected) = call.expected(index)
                    && reply != expected
                {
                    seen.violation(format!(
                        "{call:?} to s{index}: reply {reply:?}, expected {expected:?}"
                    ));
                }
            }
            Err(error) => {
                if matches!(error, GenServerError::Timeout { .. }) {
                    seen.timed_out.fetch_add(1, Relaxed);
                }
                seen.error(&error);
            }
        }
    }
}

/// Every `trip_every`, crashes every server of one random group again and
/// again until the group exceeds its intensity and its parent restarts it.
async fn tripper(config: Arc<Config>, stop: Arc<AtomicBool>, seen: Arc<Observed>) {
    let layout = groups(&config);
    let mut rng = Rng::new(config.seed ^ 0x7219);
    let mut next = Instant::now();
    while !stop.load(Relaxed) {
        next += config.trip_every;
        while Instant::now() < next && !stop.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (group, _, first, size) = layout[rng.below(layout.len())];
        let name = format!("g{group}");
        let Some(before) = registry::whereis(&name) else {
            continue;
        };
        let give_up = Instant::now() + Duration::from_secs(2);
        while Instant::now() < give_up && !stop.load(Relaxed) {
            if registry::whereis(&name).is_some_and(|pid| pid != before) {
                seen.trips.fetch_add(1, Relaxed);
                break;
            }
            for index in first..first + size {
                if let Ok(server) = registry::lookup::<Server<Worker>>(server_name(index)) {
                    let _ = server.try_cast(());
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Starts workers under the dynamic supervisor and terminates them, at
/// random, and calls them in between through the pid `which_children`
/// reports, checking that it leads to the right worker.
async fn dynamic_churn(config: Arc<Config>, stop: Arc<AtomicBool>, seen: Arc<Observed>) {
    let mut rng = Rng::new(config.seed ^ 0xd1a);
    // (key, index): dynamic workers get indexes from the top of the range,
    // apart from the static servers'.
    let mut running = Vec::new();
    let mut next_index = usize::MAX;
    let cap = config.servers / 10;
    while !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let roll = rng.below(10);
        if roll < 5 && running.len() < cap {
            let restart =
                [Restart::Permanent, Restart::Transient, Restart::Temporary][rng.below(3)];
            let index = next_index;
            next_index -= 1;
            let shutdown = if rng.chance(0.5) {
                Shutdown::BrutalKill
            } else {
                Shutdown::Timeout(Duration::from_millis(200))
            };
            let worker = move || Worker {
                index,
                link_to: None,
            };
            let spec = ChildSpec::gen_server("worker", worker, (), GenServerOptions::new())
                .restart(restart)
                .shutdown(shutdown);
            match dynamic_supervisor::start_child("dynamic", spec).await {
                Ok(started) => {
                    seen.dynamic_started.fetch_add(1, Relaxed);
                    running.push((started.id, index));
                }
                Err(error) => seen.violation(format!("dynamic start_child failed: {error}")),
            }
        } else if roll < 8 && !running.is_empty() {
            let (key, index) = running[rng.below(running.len())];
            let Ok(children) = dynamic_supervisor::which_children("dynamic") else {
                continue;
            };
            let Some(pid) = children.iter().find(|c| c.key == key).and_then(|c| c.pid) else {
                continue;
            };
            let x = rng.next();
            let reply = match registry::lookup_pid::<Server<Worker>>(pid) {
                Ok(server) => server.call(Call::Echo(x), config.timeout).await,
                Err(_) => continue,
            };
            seen.calls.fetch_add(1, Relaxed);
            match reply {
                Ok(reply) if reply == (index, x) => {
                    seen.ok.fetch_add(1, Relaxed);
                }
                Ok(reply) => seen.violation(format!(
                    "dynamic worker {index} at {pid} answered {reply:?}"
                )),
                Err(error) => seen.error(&error),
            }
        } else if !running.is_empty() {
            let (key, _) = running.swap_remove(rng.below(running.len()));
            // A temporary child may have ended already: not found is fine.
            if dynamic_supervisor::terminate_child("dynamic", key)
                .await
                .is_ok()
            {
                seen.dynamic_stopped.fetch_add(1, Relaxed);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The settled tree

/// Walks a supervisor snapshot and its nested supervisors.
fn walk(info: &SupervisorInfo, visit: &mut impl FnMut(&SupervisorInfo)) {
    visit(info);
    for child in &info.children {
        if let Some(nested) = &child.supervisor {
            walk(nested, visit);
        }
    }
}

fn is_up(child: &ChildInfo) -> bool {
    matches!(child.state, ChildState::Running | ChildState::Starting)
}

/// What the tree must look like once the chaos has stopped and restarts
/// are done; each violation found, in words.
fn settled_violations(root: &Supervisor) -> Vec<String> {
    let mut problems = Vec::new();
    let info = root.info();
    // The root is a process too; each running child is one more.
    let mut processes = 1;
    let mut workers = 0;
    walk(&info, &mut |sup| {
        let up = sup.children.iter().filter(|c| is_up(c)).count();
        match supervisor::resolve(sup.pid) {
            Ok(handle) if handle.count_children().active == up => {}
            Ok(handle) => problems.push(format!(
                "{}: count_children says {} active, which_children {up}",
                sup.name,
                handle.count_children().active
            )),
            Err(error) => problems.push(format!("{}: not found by its pid: {error}", sup.name)),
        }
        for child in &sup.children {
            let named = child
                .id
                .starts_with('s')
                .then(|| registry::whereis(&child.id));
            if !is_up(child) {
                if child.restart == Restart::Permanent {
                    problems.push(format!(
                        "{}/{}: permanent child is {}",
                        sup.name, child.id, child.state
                    ));
                }
                if let Some(Some(pid)) = named {
                    problems.push(format!(
                        "{}/{}: stopped, yet its name points at {pid}",
                        sup.name, child.id
                    ));
                }
                continue;
            }
            processes += 1;
            if child.supervisor.is_none() && child.id != "anchor" {
                workers += 1;
            }
            match child.pid {
                Some(pid) if process::is_alive(pid) => {
                    if let Some(found) = named
                        && found != Some(pid)
                    {
                        problems.push(format!(
                            "{}/{}: runs as {pid}, its name points at {found:?}",
                            sup.name, child.id
                        ));
                    }
                }
                pid => problems.push(format!(
                    "{}/{}: running, but its pid {pid:?} is not alive",
                    sup.name, child.id
                )),
            }
        }
    });
    if process::count() != processes {
        problems.push(format!(
            "the process table holds {} processes, the tree {processes}",
            process::count()
        ));
        let mut in_tree = std::collections::HashSet::new();
        in_tree.insert(info.pid);
        walk(&info, &mut |sup| {
            in_tree.insert(sup.pid);
            in_tree.extend(sup.children.iter().filter_map(|c| c.pid));
        });
        for pid in process::list()
            .into_iter()
            .filter(|p| !in_tree.contains(p))
            .take(5)
        {
            let what = match registry::lookup_pid::<Server<Worker>>(pid) {
                Ok(_) => "a worker".to_string(),
                Err(_) => match supervisor::resolve(pid) {
                    Ok(sup) => format!("supervisor {:?}", sup.info().name),
                    Err(_) => "not a worker nor a supervisor".into(),
                },
            };
            problems.push(format!(
                "{pid} is alive but not in the tree: {what}, {:?}",
                process::stats(pid)
            ));
        }
    }
    match registry::whereis("anchor").and_then(process::stats) {
        Some(stats) if stats.monitored_by == workers => {}
        Some(stats) => problems.push(format!(
            "the anchor is monitored {} times by {workers} live workers",
            stats.monitored_by
        )),
        None => problems.push("the anchor is not running".into()),
    }
    for (name, pid) in registry::registered() {
        if !process::is_alive(pid) {
            problems.push(format!("name {name:?} points at {pid}, which is not alive"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// A round

/// What one round measured.
struct Report {
    calls: u64,
    ok: u64,
    timed_out: u64,
    unbounded: u64,
    max_late: Duration,
    errors: BTreeMap<&'static str, u64>,
    restarts: u64,
    trips: u64,
    dynamic: (u64, u64),
    settle: Duration,
    peak_heap: i64,
    heap_during: Vec<i64>,
    heap_after: i64,
    tasks_after: usize,
    violations: Vec<String>,
}

fn restarts(info: &SupervisorInfo) -> u64 {
    let mut total = 0;
    walk(info, &mut |sup| {
        total += sup.children.iter().map(|c| c.restarts).sum::<u64>()
    });
    total
}

/// Builds the tree, runs the chaos for `duration`, checks the settled tree,
/// shuts everything down and checks what is left.
async fn round(config: Arc<Config>, duration: Duration) -> Report {
    let seen = Arc::new(Observed::default());
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let tasks_before = runtime.metrics().num_alive_tasks();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let peak = Arc::new(AtomicU64::new(0));
    let settle = Arc::new(Mutex::new(Duration::ZERO));
    let restart_count = Arc::new(AtomicU64::new(0));

    let outcome = nursery({
        let (seen, stop, samples, peak, settle, restart_count) = (
            seen.clone(),
            stop.clone(),
            samples.clone(),
            peak.clone(),
            settle.clone(),
            restart_count.clone(),
        );
        move |n| async move {
            let options = SupervisorOptions::new()
                .name("soak")
                .register(true)
                .max_restarts(100)
                .max_seconds(Duration::from_secs(1));
            let root = supervisor::start(&n, root_children(&config), options).await?;
            let mut chaos = Vec::new();
            for id in 0..config.callers {
                chaos.push(n.spawn(caller(id, config.clone(), stop.clone(), seen.clone())));
            }
            chaos.push(n.spawn(tripper(config.clone(), stop.clone(), seen.clone())));
            chaos.push(n.spawn(dynamic_churn(config.clone(), stop.clone(), seen.clone())));

            let end = Instant::now() + duration;
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
                let heap = live_heap();
                peak.fetch_max(heap.max(0) as u64, Relaxed);
                samples.lock().unwrap().push(heap);
            }
            stop.store(true, Relaxed);
            let chaos_done = Instant::now();
            // Callers are in calls bounded by HANG_LIMIT; the tripper ends
            // its burst within two seconds.
            let budget = HANG_LIMIT + Duration::from_secs(3);
            for task in chaos {
                if tokio::time::timeout_at(chaos_done + budget, task)
                    .await
                    .is_err()
                {
                    seen.violation(
                        "a chaos task (a caller, most likely in a call) did not finish".into(),
                    );
                }
            }

            let mut problems = settled_violations(&root);
            while !problems.is_empty() && chaos_done.elapsed() < SETTLE_LIMIT {
                tokio::time::sleep(Duration::from_millis(20)).await;
                problems = settled_violations(&root);
            }
            *settle.lock().unwrap() = chaos_done.elapsed();
            for problem in problems.into_iter().take(20) {
                seen.violation(format!("not settled after {SETTLE_LIMIT:?}: {problem}"));
            }
            restart_count.store(restarts(&root.info()), Relaxed);

            match tokio::time::timeout(Duration::from_secs(30), root.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => seen.violation(format!("stopping the tree failed: {error}")),
                Err(_) => seen.violation("stopping the tree took over 30 s".into()),
            }
            Ok::<_, BoxError>(())
        }
    })
    .await;
    if let Err(error) = outcome {
        seen.violation(format!("the soak's nursery failed: {error}"));
    }

    if process::count() != 0 {
        seen.violation(format!(
            "{} processes left after shutdown",
            process::count()
        ));
    }
    let names = registry::registered();
    if !names.is_empty() {
        seen.violation(format!(
            "{} names left after shutdown: {:?}",
            names.len(),
            &names[..names.len().min(5)]
        ));
    }
    // Deferred-reply tasks may still be finishing their last poll.
    let deadline = Instant::now() + Duration::from_secs(2);
    while runtime.metrics().num_alive_tasks() > tasks_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tasks_after = runtime.metrics().num_alive_tasks();
    if tasks_after > tasks_before {
        seen.violation(format!(
            "{} tasks left after shutdown",
            tasks_after - tasks_before
        ));
    }

    let violations = std::mem::take(&mut *seen.violations.lock().unwrap());
    let errors = std::mem::take(&mut *seen.errors.lock().unwrap());
    let heap_during = std::mem::take(&mut *samples.lock().unwrap());
    Report {
        calls: seen.calls.load(Relaxed),
        ok: seen.ok.load(Relaxed),
        timed_out: seen.timed_out.load(Relaxed),
        unbounded: seen.unbounded.load(Relaxed),
        max_late: Duration::from_micros(seen.max_late_us.load(Relaxed)),
        errors,
        restarts: restart_count.load(Relaxed),
        trips: seen.trips.load(Relaxed),
        dynamic: (
            seen.dynamic_started.load(Relaxed),
            seen.dynamic_stopped.load(Relaxed),
        ),
        settle: *settle.lock().unwrap(),
        peak_heap: peak.load(Relaxed) as i64,
        heap_during,
        heap_after: live_heap(),
        tasks_after: tasks_after.saturating_sub(tasks_before),
        violations,
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// How much more live heap the main round may leave than the warm-up
/// round: capacity that grew further (hash tables, the timer wheel,
/// tokio's task slabs) but nothing that scales with the work done.
const HEAP_SLACK: i64 = 2 * 1024 * 1024;

/// Runs a warm-up round and the soak itself; every violation found, in words.
pub(crate) async fn soak(config: Config) -> Vec<String> {
    let config = Arc::new(config);
    let heap_start = live_heap();
    println!(
        "soak: {} servers in {} groups, {} callers, chaos {}, timeout {:?} (slack {:?}), {:?}",
        config.servers,
        groups(&config).len(),
        config.callers,
        config.chaos,
        config.timeout,
        config.slack,
        config.duration
    );
    let warm_up = round(config.clone(), Duration::from_secs(2)).await;
    println!(
        "warm-up round: {} calls, heap after {}",
        warm_up.calls,
        mib(warm_up.heap_after - heap_start)
    );
    let report = round(config.clone(), config.duration).await;
    let mut violations = warm_up.violations;
    violations.extend(report.violations.iter().cloned());

    let seconds = config.duration.as_secs_f64();
    println!(
        "calls: {} ({:.0}/s), ok {}, timed out {}, unbounded {}; latest return after a timeout: {:?}",
        report.calls,
        report.calls as f64 / seconds,
        report.ok,
        report.timed_out,
        report.unbounded,
        report.max_late
    );
    println!("errors by kind: {:?}", report.errors);
    println!(
        "panics caused: {}; restarts: {}; intensity trips: {}; dynamic children started {}, terminated {}",
        CHAOS_PANICS.load(Relaxed),
        report.restarts,
        report.trips,
        report.dynamic.0,
        report.dynamic.1
    );
    println!("settled {:?} after the chaos stopped", report.settle);
    let quarter = report.heap_during.len() / 4;
    if let (Some(early), Some(late)) = (report.heap_during.get(quarter), report.heap_during.last())
    {
        println!(
            "live heap during the run: {} at 1/4, {} at the end, peak {}",
            mib(early - heap_start),
            mib(late - heap_start),
            mib(report.peak_heap - heap_start)
        );
    }
    println!(
        "after shutdown: heap {} (warm-up left {}), tasks left {}",
        mib(report.heap_after - heap_start),
        mib(warm_up.heap_after - heap_start),
        report.tasks_after
    );
    if report.heap_after > warm_up.heap_after + HEAP_SLACK {
        violations.push(format!(
            "the live heap after shutdown is {} above the warm-up round's",
            mib(report.heap_after - warm_up.heap_after)
        ));
    }
    if report.calls == 0 {
        violations.push("no call completed".into());
    }
    violations.extend(
        OTHER_PANICS
            .lock()
            .unwrap()
            .drain(..)
            .map(|p| format!("unexpected panic: {p}")),
    );
    violations
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("soak: {error}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("soak: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let violations = runtime.block_on(soak(config));
    if violations.is_empty() {
        println!("soak: no violation");
        ExitCode::SUCCESS
    } else {
        println!("soak: {} violations", violations.len());
        for violation in violations.iter().take(50) {
            println!("  {violation}");
        }
        ExitCode::FAILURE
    }
}
