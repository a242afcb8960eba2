//! What the observer costs the observed program, in one run: the gen_server
//! call round trip and supervisor restarts, each measured three ways —
//! `off` (no observer: the hooks' atomic check only), `idle` (an observer
//! serving, no client connected) and `streaming` (a client reading
//! `/api/events` all along).
//!
//! The call bench starts its server inside each measurement, so with an
//! observer running the server keeps its statistics: with nobody connected
//! (`idle`) it counts messages (one relaxed load and two single-writer
//! stores per message) and times nothing; with a client streaming events
//! the node is watched and each message is also timed (two clock reads and
//! the histogram). Calls publish no events. Each restart publishes three
//! events (exit, start, restart), which the streaming client receives as
//! JSON.
//!
//! Run: `cargo bench -p trellis-benches --bench observer -- --warm-up-time 1 --measurement-time 3`
//!
//! On a busy machine, where minutes apart mean different machines, run the
//! interleaved form instead: `OBSERVER_ROUNDS=15 cargo bench -p
//! trellis-benches --bench observer` measures 20k calls and 5k restarts in
//! every mode in each round (the order rotating), and prints each mode's
//! median per operation and the median of its per-round ratios to `off`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, oneshot};
use trellis::observer::{self, ObserverOptions};
use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
use trellis_benches::otp::{Contender, Trellis, in_nursery};

/// An observer (and maybe a streaming client) on the bench's runtime.
struct Watching {
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    client: Option<tokio::task::JoinHandle<u64>>,
}

fn watch(rt: &Runtime, stream: bool) -> Watching {
    let (addr_tx, addr_rx) = oneshot::channel::<SocketAddr>();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = rt.spawn(async move {
        trellis::nursery(|n| async move {
            let options = ObserverOptions::new("127.0.0.1:0".parse().unwrap());
            let obs = observer::start(&n, options).await.expect("observer starts");
            let _ = addr_tx.send(obs.local_addr());
            let _ = stopped.await;
            n.cancel();
        })
        .await
        .expect("observer nursery");
    });
    let addr = rt.block_on(addr_rx).expect("observer address");
    let client = stream.then(|| {
        let (ready_tx, ready) = oneshot::channel();
        let client = rt.spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.write_all(b"GET /api/events HTTP/1.1\r\nhost: bench\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut ready_tx = Some(ready_tx);
            let mut total = 0u64;
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => {
                        total += n as u64;
                        // The opening comment: subscribed.
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
        rt.block_on(ready).expect("event stream opens");
        client
    });
    Watching {
        stop,
        server,
        client,
    }
}

fn unwatch(rt: &Runtime, watching: Watching) {
    let _ = watching.stop.send(());
    rt.block_on(watching.server).unwrap();
    if let Some(client) = watching.client {
        client.abort();
    }
}

/// `iters` calls from one caller task to a server started for them.
fn call_round_trip(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(in_nursery(|n| async move {
        let server = Trellis::start(&n).await;
        let caller = server.clone();
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(Trellis::call(&caller).await);
            }
            start.elapsed()
        })
        .await
        .expect("caller panicked");
        Trellis::stop(server).await;
        elapsed
    }))
}

/// Restarts a child that fails at once `iters` times.
async fn restarts(iters: u64) -> Duration {
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
            Err::<(), _>("crash")
        }
    });
    let options = SupervisorOptions::new()
        .name("bench")
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
        Ok::<_, trellis::BoxError>(elapsed)
    })
    .await
    .unwrap()
}

const MODES: [(&str, Option<bool>); 3] = [
    ("off", None),
    ("idle", Some(false)),
    ("streaming", Some(true)),
];

fn calls(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("observer_call_round_trip");
    group.throughput(Throughput::Elements(1));
    for (mode, stream) in MODES {
        let watching = stream.map(|s| watch(&rt, s));
        group.bench_function(BenchmarkId::from_parameter(mode), |b| {
            b.iter_custom(|iters| call_round_trip(&rt, iters));
        });
        if let Some(w) = watching {
            unwatch(&rt, w);
        }
    }
    group.finish();
}

fn restart(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("observer_restart");
    group.throughput(Throughput::Elements(1));
    for (mode, stream) in MODES {
        let watching = stream.map(|s| watch(&rt, s));
        group.bench_function(BenchmarkId::from_parameter(mode), |b| {
            b.iter_custom(|iters| rt.block_on(restarts(iters)));
        });
        if let Some(w) = watching {
            unwatch(&rt, w);
        }
    }
    group.finish();
}

criterion_group!(benches, calls, restart);

/// The interleaved form (see the module docs).
fn rounds(rounds: usize) {
    let rt = trellis_benches::runtime();
    let (calls, restarts_per_round) = (20_000u64, 5_000u64);
    // [mode][round] nanoseconds per operation, for calls and restarts.
    let mut call_ns = vec![Vec::new(); MODES.len()];
    let mut restart_ns = vec![Vec::new(); MODES.len()];
    // Warm the runtime up once.
    call_round_trip(&rt, calls);
    rt.block_on(restarts(restarts_per_round));
    for round in 0..rounds {
        for k in 0..MODES.len() {
            let m = (round + k) % MODES.len();
            let watching = MODES[m].1.map(|s| watch(&rt, s));
            let call = call_round_trip(&rt, calls);
            let restart = rt.block_on(restarts(restarts_per_round));
            if let Some(w) = watching {
                unwatch(&rt, w);
            }
            call_ns[m].push(call.as_nanos() as f64 / calls as f64);
            restart_ns[m].push(restart.as_nanos() as f64 / restarts_per_round as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (what, table) in [("call round trip", &call_ns), ("restart", &restart_ns)] {
        for (m, (mode, _)) in MODES.iter().enumerate() {
            let mut ratios: Vec<f64> = table[m]
                .iter()
                .zip(&table[0])
                .map(|(x, off)| x / off)
                .collect();
            let mut times = table[m].clone();
            println!(
                "{what:16} {mode:10} median {:8.0} ns/op   median ratio to off {:.3}",
                median(&mut times),
                median(&mut ratios)
            );
        }
    }
}

fn main() {
    match std::env::var("OBSERVER_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(n) => rounds(n),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
