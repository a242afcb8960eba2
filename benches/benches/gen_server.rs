//! The gen_server against its floor and its peers: `trellis::gen_server`,
//! a raw tokio task on an `mpsc` receiver, `ractor` and `kameo`, all running
//! the same counter process (`trellis_benches::otp` describes each one).
//!
//! - `call_round_trip_{multi,current}_thread`: one caller task makes calls
//!   one after another (raw tokio: an `mpsc` send and a `oneshot` reply), on
//!   the 2-worker multi-thread runtime and on a current-thread runtime.
//!   `trellis`, `ractor` and `kameo` call without a timeout (Trellis:
//!   `gen_server::INFINITY`); `trellis_with_timeout` uses the default 5 s
//!   and `tokio_with_timeout` is its floor (`tokio::time::timeout`).
//! - `cast_throughput`: one sender task casts 10k messages to one process,
//!   then makes one call so that every cast has been handled before the
//!   clock stops.
//! - `start_100k`: one task starts 100k processes one after another, each
//!   time waiting for its start handshake (Trellis: `init` ran; raw tokio: a
//!   `oneshot` sent by the new task). Stopping them is not timed.
//!
//! Every measured loop runs in a plain tokio task, the same for all
//! contenders; Trellis servers live in a nursery around it.
//!
//! Run: `cargo bench -p trellis-benches --bench gen_server -- --warm-up-time 1 --measurement-time 3`
//! (filter a group by adding its name, e.g. `call_round_trip`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use trellis_benches::otp::{
    Contender, Kameo, Ractor, Tokio, TokioTimeout, Trellis, TrellisTimeout, in_nursery,
};

const CASTS: u64 = 10_000;
const STARTS: u64 = 100_000;

/// `iters` calls from one caller task.
fn call_round_trip<C: Contender>(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(in_nursery(|n| async move {
        let server = C::start(&n).await;
        let caller = server.clone();
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(C::call(&caller).await);
            }
            start.elapsed()
        })
        .await
        .expect("caller panicked");
        C::stop(server).await;
        elapsed
    }))
}

/// `iters` batches of `CASTS` casts, each batch closed by one call.
fn cast_throughput<C: Contender>(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(in_nursery(|n| async move {
        let server = C::start(&n).await;
        let sender = server.clone();
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..CASTS {
                    C::cast(&sender, i).await;
                }
                black_box(C::call(&sender).await);
            }
            start.elapsed()
        })
        .await
        .expect("sender panicked");
        let count = C::call(&server).await;
        assert_eq!(count, iters * CASTS * (CASTS - 1) / 2, "casts lost");
        C::stop(server).await;
        elapsed
    }))
}

/// `iters` rounds of starting `STARTS` processes one after another; only
/// the starts are timed.
fn start_many<C: Contender>(rt: &Runtime, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += rt.block_on(in_nursery(|n| async move {
            let (elapsed, servers) = tokio::spawn(async move {
                let mut servers = Vec::with_capacity(STARTS as usize);
                let start = Instant::now();
                for _ in 0..STARTS {
                    servers.push(C::start(&n).await);
                }
                (start.elapsed(), servers)
            })
            .await
            .expect("starter panicked");
            futures::future::join_all(servers.into_iter().map(C::stop)).await;
            elapsed
        }));
    }
    total
}

type Workload = fn(&Runtime, u64) -> Duration;

/// One group: the same workload through every contender.
fn group(
    c: &mut Criterion,
    name: &str,
    rt: &Runtime,
    elements: u64,
    samples: usize,
    workloads: &[(&str, Workload)],
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(elements));
    group.sample_size(samples);
    for &(contender, workload) in workloads {
        group.bench_function(BenchmarkId::from_parameter(contender), |b| {
            b.iter_custom(|iters| workload(rt, iters));
        });
    }
    group.finish();
}

fn calls(c: &mut Criterion) {
    let contenders: [(&str, Workload); 6] = [
        (Trellis::NAME, call_round_trip::<Trellis>),
        (Tokio::NAME, call_round_trip::<Tokio>),
        (TrellisTimeout::NAME, call_round_trip::<TrellisTimeout>),
        (TokioTimeout::NAME, call_round_trip::<TokioTimeout>),
        (Ractor::NAME, call_round_trip::<Ractor>),
        (Kameo::NAME, call_round_trip::<Kameo>),
    ];
    let multi = trellis_benches::runtime();
    group(
        c,
        "call_round_trip_multi_thread",
        &multi,
        1,
        50,
        &contenders,
    );
    let single = trellis_benches::current_thread_runtime();
    group(
        c,
        "call_round_trip_current_thread",
        &single,
        1,
        50,
        &contenders,
    );
}

fn casts(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    group(
        c,
        "cast_throughput",
        &rt,
        CASTS,
        30,
        &[
            (Trellis::NAME, cast_throughput::<Trellis> as Workload),
            (Tokio::NAME, cast_throughput::<Tokio>),
            (Ractor::NAME, cast_throughput::<Ractor>),
            (Kameo::NAME, cast_throughput::<Kameo>),
        ],
    );
}

fn starts(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    group(
        c,
        "start_100k",
        &rt,
        STARTS,
        10,
        &[
            (Trellis::NAME, start_many::<Trellis> as Workload),
            (Tokio::NAME, start_many::<Tokio>),
            (Ractor::NAME, start_many::<Ractor>),
            (Kameo::NAME, start_many::<Kameo>),
        ],
    );
}

criterion_group!(benches, calls, casts, starts);
criterion_main!(benches);
