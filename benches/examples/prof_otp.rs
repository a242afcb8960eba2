//! The gen_server workloads without criterion around them, for `perf
//! record`: one workload, one contender, one runtime.
//!
//! Run: `cargo build --release -p trellis-benches --example prof_otp` then
//! `perf record -g target/release/examples/prof_otp call trellis current 2000000`
//! (workload: call, cast or start; contender: trellis, trellis_with_timeout,
//! tokio, tokio_with_timeout,
//! ractor, kameo; runtime: current or multi). With `PROF_START_ONLY=1`,
//! `start` exits right after the starts. `start_nowait` spawns the
//! processes without waiting for each to start — Trellis:
//! `Nursery::spawn(gen_server::serve(server, TaskStatus::ignored()))`;
//! tokio: a task looping on its `mpsc` receiver, no `oneshot` — and times
//! until every one has run its start (a shared count): the same work as
//! `start` without a handshake per process. `supervise` (Trellis only)
//! starts one supervisor with that many gen_server children, each started
//! with its handshake in OTP's order, as `supervisor_restart`'s
//! `startup_100k` does; compare with `start tokio` (the same handshakes,
//! one task each) and `start_nowait tokio` (no handshake).
//!
//! `start` and `supervise` in a warm process, as criterion measures them:
//! `PROF_WARM=K` first runs the workload K times (starts and stops), then
//! the measured one. To profile the measured starts alone, give perf a
//! control FIFO and its path in `PROF_PERF_CTL`; the measured starts are
//! bracketed by `enable`/`disable`:
//! `mkfifo /tmp/ctl; PROF_PERF_CTL=/tmp/ctl PROF_WARM=3 perf record -D -1
//! --control fifo:/tmp/ctl -g target/release/examples/prof_otp supervise
//! trellis multi 100000`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Notify;
use trellis::TaskStatus;
use trellis::gen_server::{self, Context, GenServer, Init, Response};
use trellis::supervisor::{self, ChildSpec, SupervisorOptions};

use trellis_benches::otp::{
    Contender, Idle, Kameo, Ractor, Tokio, TokioTimeout, Trellis, TrellisTimeout, in_nursery,
};

fn call<C: Contender>(rt: &tokio::runtime::Runtime, calls: u64) {
    let elapsed = rt.block_on(in_nursery(|n| async move {
        let server = C::start(&n).await;
        let caller = server.clone();
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(C::call(&caller).await);
            }
            start.elapsed()
        })
        .await
        .expect("caller panicked");
        C::stop(server).await;
        elapsed
    }));
    println!(
        "{} call: {:.0} ns/call",
        C::NAME,
        elapsed.as_nanos() as f64 / calls as f64
    );
}

fn cast<C: Contender>(rt: &tokio::runtime::Runtime, casts: u64) {
    let elapsed = rt.block_on(in_nursery(|n| async move {
        let server = C::start(&n).await;
        let sender = server.clone();
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for i in 0..casts {
                C::cast(&sender, i).await;
                if i % 10_000 == 9_999 {
                    black_box(C::call(&sender).await);
                }
            }
            black_box(C::call(&sender).await);
            start.elapsed()
        })
        .await
        .expect("sender panicked");
        C::stop(server).await;
        elapsed
    }));
    println!(
        "{} cast: {:.0} ns/cast",
        C::NAME,
        elapsed.as_nanos() as f64 / casts as f64
    );
}

/// How many unmeasured rounds to run first (`PROF_WARM`).
fn warm_rounds() -> usize {
    std::env::var("PROF_WARM")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

/// Turns perf's recording on or off, if it was given a control FIFO.
fn perf_control(command: &str) {
    if let Some(path) = std::env::var_os("PROF_PERF_CTL") {
        std::fs::write(path, format!("{command}\n")).expect("perf control FIFO");
    }
}

fn start<C: Contender>(rt: &tokio::runtime::Runtime, count: u64) {
    for _ in 0..warm_rounds() {
        start_round::<C>(rt, count, false);
    }
    start_round::<C>(rt, count, true);
}

fn start_round<C: Contender>(rt: &tokio::runtime::Runtime, count: u64, measured: bool) {
    let elapsed = rt.block_on(in_nursery(|n| async move {
        let (elapsed, servers) = tokio::spawn(async move {
            let mut servers = Vec::with_capacity(count as usize);
            if measured {
                perf_control("enable");
            }
            let start = Instant::now();
            for _ in 0..count {
                servers.push(C::start(&n).await);
            }
            let elapsed = start.elapsed();
            if measured {
                perf_control("disable");
            }
            (elapsed, servers)
        })
        .await
        .expect("starter panicked");
        if !measured {
            futures::future::join_all(servers.into_iter().map(C::stop)).await;
            return elapsed;
        }
        if std::env::var_os("PROF_START_ONLY").is_some() {
            // Profile the starts alone: skip the stops.
            println!("{} start: {:?}", C::NAME, elapsed / count as u32);
            std::process::exit(0);
        }
        let stop = Instant::now();
        futures::future::join_all(servers.into_iter().map(C::stop)).await;
        println!(
            "{} stop: {:.0} ns/process",
            C::NAME,
            stop.elapsed().as_nanos() as f64 / count as f64
        );
        elapsed
    }));
    if measured {
        println!(
            "{} start: {:.0} ns/process",
            C::NAME,
            elapsed.as_nanos() as f64 / count as f64
        );
    }
}

/// A counter whose `init` counts itself, and tells when the last has run.
struct Counted {
    inits: Arc<(AtomicU64, Notify)>,
    count: u64,
}

impl GenServer for Counted {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
        if self.inits.0.fetch_add(1, Ordering::AcqRel) + 1 == self.count {
            self.inits.1.notify_one();
        }
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<()>, trellis::BoxError> {
        Ok(Response::Reply(()))
    }
}

fn start_nowait_tokio(rt: &tokio::runtime::Runtime, count: u64) {
    let elapsed = rt.block_on(async move {
        tokio::spawn(async move {
            let inits = Arc::new((AtomicU64::new(0), Notify::new()));
            let mut senders = Vec::with_capacity(count as usize);
            let start = Instant::now();
            for _ in 0..count {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                let inits = Arc::clone(&inits);
                tokio::spawn(async move {
                    if inits.0.fetch_add(1, Ordering::AcqRel) + 1 == count {
                        inits.1.notify_one();
                    }
                    while rx.recv().await.is_some() {}
                });
                senders.push(tx);
            }
            inits.1.notified().await;
            start.elapsed()
        })
        .await
        .expect("starter panicked")
    });
    println!(
        "tokio start_nowait: {:.0} ns/process",
        elapsed.as_nanos() as f64 / count as f64
    );
}

fn start_nowait(rt: &tokio::runtime::Runtime, count: u64) {
    let elapsed = rt.block_on(in_nursery(|n| async move {
        tokio::spawn(async move {
            let inits = Arc::new((AtomicU64::new(0), Notify::new()));
            let start = Instant::now();
            for _ in 0..count {
                let server = Counted {
                    inits: Arc::clone(&inits),
                    count,
                };
                drop(n.spawn(gen_server::serve(server, TaskStatus::ignored())));
            }
            inits.1.notified().await;
            start.elapsed()
        })
        .await
        .expect("starter panicked")
    }));
    println!(
        "trellis start_nowait: {:.0} ns/process",
        elapsed.as_nanos() as f64 / count as f64
    );
}

/// A supervisor with `count` gen_server children: the time until it has
/// started them all.
fn supervise(rt: &tokio::runtime::Runtime, count: u64) {
    for _ in 0..warm_rounds() {
        supervise_round(rt, count, false);
    }
    supervise_round(rt, count, true);
}

fn supervise_round(rt: &tokio::runtime::Runtime, count: u64, measured: bool) {
    let elapsed = rt.block_on(in_nursery(|n| async move {
        let children: Vec<ChildSpec> = (0..count)
            .map(|i| ChildSpec::gen_server(format!("s{i}"), || Idle, (), ()))
            .collect();
        if measured {
            perf_control("enable");
        }
        let start = Instant::now();
        let sup = n
            .start(|status| supervisor::serve(children, SupervisorOptions::new(), status))
            .await
            .expect("supervisor started");
        let elapsed = start.elapsed();
        if measured {
            perf_control("disable");
        }
        if measured && std::env::var_os("PROF_START_ONLY").is_some() {
            println!("trellis supervise: {:?}", elapsed / count as u32);
            std::process::exit(0);
        }
        sup.stop().await.expect("supervisor stopped");
        elapsed
    }));
    if measured {
        println!(
            "trellis supervise: {:.0} ns/child",
            elapsed.as_nanos() as f64 / count as f64
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "call".into());
    let kind = args.next().unwrap_or_else(|| "trellis".into());
    let flavor = args.next().unwrap_or_else(|| "current".into());
    let calls: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rt = match flavor.as_str() {
        "multi" => trellis_benches::runtime(),
        _ => trellis_benches::current_thread_runtime(),
    };
    let run = match (workload.as_str(), kind.as_str()) {
        ("supervise", _) => supervise,
        ("start_nowait", "tokio") => start_nowait_tokio,
        ("start_nowait", _) => start_nowait,
        ("start", "tokio") => start::<Tokio>,
        ("start", "ractor") => start::<Ractor>,
        ("start", "kameo") => start::<Kameo>,
        ("start", _) => start::<Trellis>,
        ("cast", "tokio") => cast::<Tokio>,
        ("cast", "ractor") => cast::<Ractor>,
        ("cast", "kameo") => cast::<Kameo>,
        ("cast", _) => cast::<Trellis>,
        (_, "tokio") => call::<Tokio>,
        (_, "tokio_with_timeout") => call::<TokioTimeout>,
        (_, "trellis_with_timeout") => call::<TrellisTimeout>,
        (_, "ractor") => call::<Ractor>,
        (_, "kameo") => call::<Kameo>,
        _ => call::<Trellis>,
    };
    run(&rt, calls);
}
