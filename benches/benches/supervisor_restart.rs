//! Supervisor restarts per second, and start-up of a supervisor with 100k
//! gen_server children.
//!
//! `cargo bench -p trellis-benches --bench supervisor_restart`
//!
//! - `restart/err` and `restart/panic`: a child that fails (by `Err` or by
//!   panic) right after it starts, restarted `iters` times by one supervisor,
//!   vs the floor, a hand-written tokio loop that respawns a failing task, and
//!   the peers:
//!   - `trellis`: a `ChildSpec::task` whose body fails at once, under
//!     `supervisor::start` (restart intensity `u32::MAX` per hour).
//!   - `ractor`: a supervisor actor that starts the child with
//!     `Actor::spawn_linked` and spawns it again, the same way, on each
//!     `SupervisionEvent::ActorFailed` (ractor reports panics as failures
//!     too). The child fails in `post_start`, the first hook run once it is
//!     started and linked: a `pre_start` failure is returned to the spawner as
//!     `SpawnErr::StartupFailed` and never reaches the supervisor.
//!   - `kameo`: the child is spawned with `Spawn::supervise` under an idle
//!     supervisor actor (kameo's own restart machinery: `RestartPolicy::Permanent`,
//!     one-for-one, `restart_limit(u32::MAX, 1 h)`, unbounded mailbox) and fails
//!     in `on_start`, which kameo treats as a failure to restart (it has no
//!     hook after start-up; failing on a first message would add a send).
//! - `startup_100k`: a supervisor holding 100k gen_servers (each started with
//!   the handshake) vs 100k raw tokio tasks waiting on an mpsc receiver,
//!   spawned without waiting (`tokio/tasks`) and, the floor of OTP's order,
//!   each waited for before the next is spawned (`tokio/tasks_in_order`: a
//!   oneshot answered by the task's first poll). The RSS delta of each is
//!   printed once, before the timings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::Notify;
use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
use trellis_benches::otp::Idle;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Clone, Copy)]
enum Failure {
    Err,
    Panic,
}

/// What one incarnation of a child does: counts itself and fails, until the
/// `iters`-th restart, which signals `done` and stays up.
struct Run {
    runs: AtomicU64,
    done: Notify,
    iters: u64,
    failure: Failure,
}

impl Run {
    fn new(iters: u64, failure: Failure) -> Arc<Self> {
        Arc::new(Self {
            runs: AtomicU64::new(0),
            done: Notify::new(),
            iters,
            failure,
        })
    }

    /// Fails (by `Err` or panic) unless this incarnation is the last.
    fn incarnation(&self) -> Result<(), &'static str> {
        if self.runs.fetch_add(1, Ordering::Relaxed) >= self.iters {
            self.done.notify_one();
            return Ok(());
        }
        match self.failure {
            Failure::Err => Err("crash"),
            Failure::Panic => panic!("crash"),
        }
    }
}

/// Restarts a failing child `iters` times under a supervisor.
async fn trellis_restarts(iters: u64, failure: Failure) -> Duration {
    let runs = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (r, d) = (runs.clone(), done.clone());
    let child = ChildSpec::task("crasher", move || {
        let (runs, done) = (r.clone(), d.clone());
        async move {
            if runs.fetch_add(1, Ordering::Relaxed) >= iters {
                done.notify_one();
                trellis::wait_shutdown().await;
                return Ok(());
            }
            match failure {
                Failure::Err => Err::<(), _>("crash"),
                Failure::Panic => panic!("crash"),
            }
        }
    });
    let options = SupervisorOptions::new()
        .max_restarts(u32::MAX)
        .max_seconds(Duration::from_secs(3600));
    let start = Instant::now();
    trellis::nursery(|n| async move {
        let sup = n
            .start(|s| supervisor::serve(vec![child], options, s))
            .await?;
        done.notified().await;
        let elapsed = start.elapsed();
        sup.stop().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(elapsed)
    })
    .await
    .unwrap()
}

/// The floor: respawn a failing tokio task `iters` times by hand, from a
/// task on the runtime (as a supervisor runs), not from `block_on`.
async fn tokio_respawns(iters: u64, failure: Failure) -> Duration {
    tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            let handle = tokio::spawn(async move {
                match failure {
                    Failure::Err => Err::<(), _>("crash"),
                    Failure::Panic => panic!("crash"),
                }
            });
            let _ = std::hint::black_box(handle.await);
        }
        start.elapsed()
    })
    .await
    .unwrap()
}

/// The ractor child: fails in `post_start` (see the module docs).
struct RactorCrasher;

impl ractor::Actor for RactorCrasher {
    type Msg = ();
    type State = Arc<Run>;
    type Arguments = Arc<Run>;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        run: Arc<Run>,
    ) -> Result<Arc<Run>, ractor::ActorProcessingErr> {
        Ok(run)
    }

    async fn post_start(
        &self,
        _: ractor::ActorRef<()>,
        run: &mut Arc<Run>,
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(run.incarnation()?)
    }
}

/// The ractor supervisor: respawns its linked child on each failure.
struct RactorSupervisor;

impl ractor::Actor for RactorSupervisor {
    type Msg = ();
    type State = Arc<Run>;
    type Arguments = Arc<Run>;

    async fn pre_start(
        &self,
        myself: ractor::ActorRef<()>,
        run: Arc<Run>,
    ) -> Result<Arc<Run>, ractor::ActorProcessingErr> {
        ractor::Actor::spawn_linked(None, RactorCrasher, run.clone(), myself.get_cell()).await?;
        Ok(run)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ractor::ActorRef<()>,
        event: ractor::SupervisionEvent,
        run: &mut Arc<Run>,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let ractor::SupervisionEvent::ActorFailed(..) = event {
            ractor::Actor::spawn_linked(None, RactorCrasher, run.clone(), myself.get_cell())
                .await?;
        }
        Ok(())
    }
}

async fn ractor_restarts(iters: u64, failure: Failure) -> Duration {
    let run = Run::new(iters, failure);
    let start = Instant::now();
    let (sup, _join) = ractor::Actor::spawn(None, RactorSupervisor, run.clone())
        .await
        .expect("spawn ractor supervisor");
    run.done.notified().await;
    let elapsed = start.elapsed();
    sup.stop_children_and_wait(None, None).await;
    sup.stop_and_wait(None, None)
        .await
        .expect("stop ractor supervisor");
    elapsed
}

/// The kameo supervisor: idle; kameo's links do the restarting.
struct KameoSupervisor;

impl kameo::Actor for KameoSupervisor {
    type Args = ();
    type Error = kameo::error::Infallible;

    async fn on_start(
        (): (),
        _: kameo::actor::ActorRef<Self>,
    ) -> Result<Self, kameo::error::Infallible> {
        Ok(Self)
    }
}

/// The kameo child: fails in `on_start` (see the module docs).
struct KameoCrasher;

impl kameo::Actor for KameoCrasher {
    type Args = Arc<Run>;
    type Error = &'static str;

    async fn on_start(
        run: Arc<Run>,
        _: kameo::actor::ActorRef<Self>,
    ) -> Result<Self, &'static str> {
        run.incarnation().map(|()| Self)
    }
}

async fn kameo_restarts(iters: u64, failure: Failure) -> Duration {
    use kameo::actor::Spawn as _;
    let run = Run::new(iters, failure);
    let start = Instant::now();
    let sup = KameoSupervisor::spawn(());
    let _child = KameoCrasher::supervise(&sup, run.clone())
        .restart_limit(u32::MAX, Duration::from_secs(3600))
        .spawn_with_mailbox(kameo::mailbox::unbounded())
        .await;
    run.done.notified().await;
    let elapsed = start.elapsed();
    let _ = sup.stop_gracefully().await;
    sup.wait_for_shutdown().await;
    elapsed
}

fn restart(c: &mut Criterion) {
    std::panic::set_hook(Box::new(|_| {})); // panics are the workload here
    let rt = runtime();
    let mut group = c.benchmark_group("restart");
    group.throughput(Throughput::Elements(1));
    for (name, failure) in [("err", Failure::Err), ("panic", Failure::Panic)] {
        group.bench_function(BenchmarkId::new("trellis", name), |b| {
            b.iter_custom(|iters| rt.block_on(trellis_restarts(iters, failure)));
        });
        group.bench_function(BenchmarkId::new("tokio_respawn", name), |b| {
            b.iter_custom(|iters| rt.block_on(tokio_respawns(iters, failure)));
        });
        group.bench_function(BenchmarkId::new("ractor", name), |b| {
            b.iter_custom(|iters| rt.block_on(ractor_restarts(iters, failure)));
        });
        group.bench_function(BenchmarkId::new("kameo", name), |b| {
            b.iter_custom(|iters| rt.block_on(kameo_restarts(iters, failure)));
        });
    }
    group.finish();
    let _ = std::panic::take_hook();
}

const CHILDREN: usize = 100_000;

/// Starts a supervisor of `CHILDREN` gen_servers; returns the time to start
/// them all, and stops them (after `hold`, which may measure memory).
async fn supervisor_startup(hold: impl FnOnce()) -> Duration {
    let children: Vec<ChildSpec> = (0..CHILDREN)
        .map(|i| ChildSpec::gen_server(format!("s{i}"), || Idle, (), ()))
        .collect();
    let start = Instant::now();
    trellis::nursery(|n| async move {
        let sup = n
            .start(|s| supervisor::serve(children, SupervisorOptions::new(), s))
            .await?;
        let elapsed = start.elapsed();
        hold();
        sup.stop().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(elapsed)
    })
    .await
    .unwrap()
}

async fn tokio_startup(hold: impl FnOnce()) -> Duration {
    let start = Instant::now();
    let mut senders = Vec::with_capacity(CHILDREN);
    let mut handles = Vec::with_capacity(CHILDREN);
    for _ in 0..CHILDREN {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        senders.push(tx);
        handles.push(tokio::spawn(
            async move { while rx.recv().await.is_some() {} },
        ));
    }
    let elapsed = start.elapsed();
    hold();
    drop(senders);
    for h in handles {
        let _ = h.await;
    }
    elapsed
}

/// 100k raw tasks started one by one, each waited for (a oneshot sent by
/// its first poll) before the next is spawned: a supervisor's start order
/// with nothing else.
async fn tokio_startup_in_order() -> Duration {
    // On a worker, as the supervisor runs: not on `block_on`'s thread.
    tokio::spawn(async {
        let start = Instant::now();
        let mut senders = Vec::with_capacity(CHILDREN);
        let mut handles = Vec::with_capacity(CHILDREN);
        for _ in 0..CHILDREN {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
            senders.push(tx);
            handles.push(tokio::spawn(async move {
                let _ = started_tx.send(());
                while rx.recv().await.is_some() {}
            }));
            let _ = started.await;
        }
        let elapsed = start.elapsed();
        drop(senders);
        for h in handles {
            let _ = h.await;
        }
        elapsed
    })
    .await
    .expect("starter panicked")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

fn startup(c: &mut Criterion) {
    let rt = runtime();
    // Memory once each, tokio first (the allocator keeps what it grew).
    for (name, which) in [("tokio", 0), ("trellis", 1)] {
        let before = rss_kib();
        let mut after = 0;
        let hold = || after = rss_kib();
        let _ = if which == 0 {
            rt.block_on(tokio_startup(hold))
        } else {
            rt.block_on(supervisor_startup(hold))
        };
        let per = (after.saturating_sub(before)) as f64 * 1024.0 / CHILDREN as f64;
        println!("startup_100k memory {name}: {per:.0} bytes per child (RSS delta)");
    }
    let mut group = c.benchmark_group("startup_100k");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("trellis", "gen_servers"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(supervisor_startup(|| {})))
                .sum()
        });
    });
    group.bench_function(BenchmarkId::new("tokio", "tasks"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(tokio_startup(|| {}))).sum());
    });
    group.bench_function(BenchmarkId::new("tokio", "tasks_in_order"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(tokio_startup_in_order()))
                .sum()
        });
    });
    group.finish();
}

criterion_group!(benches, restart, startup);
criterion_main!(benches);
