//! Name lookups from two threads at once: `trellis::registry` (a sharded
//! map), a `RwLock<HashMap>` (what raw tokio code writes by hand), ractor's
//! registry and kameo's local registry. Each lookup returns a typed handle
//! the caller can send with (a clone of it).
//!
//! 1,000 processes are registered per contender before measuring.
//!
//! - `registry_lookup_same_name`: both threads look up the same name.
//! - `registry_lookup_distinct_names`: each thread cycles through its own
//!   500 names.
//!
//! Throughput counts the lookups of both threads: criterion's `elem/s` is
//! lookups per second from two threads.
//!
//! Run: `cargo bench -p trellis-benches --bench registry -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::oneshot;
use trellis_benches::otp::{Contender, Kameo, Ractor, Tokio, Trellis, in_nursery};

const NAMES: usize = 1_000;
const THREADS: usize = 2;

fn name<C: Contender>(i: usize) -> String {
    format!("bench-{}-{i}", C::NAME)
}

/// Registers `NAMES` processes of `C` and keeps them alive until the
/// returned sender is dropped.
fn register_all<C: Contender>(
    rt: &tokio::runtime::Runtime,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let running = rt.spawn(in_nursery(|n| async move {
        let mut servers = Vec::with_capacity(NAMES);
        for i in 0..NAMES {
            servers.push(C::start_named(&n, &name::<C>(i)).await);
        }
        let _ = ready_tx.send(());
        let _ = stop_rx.await;
        futures::future::join_all(servers.into_iter().map(C::stop)).await;
    }));
    rt.block_on(ready_rx).expect("registration failed");
    (stop_tx, running)
}

/// `iters` lookups on each of `THREADS` threads; thread `t` uses
/// `names[t]`, cycling.
fn lookups<C: Contender>(names: &[Vec<String>], iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let names = names[t].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut i = 0;
                for _ in 0..iters {
                    black_box(C::lookup(&names[i]).expect("name registered"));
                    i += 1;
                    if i == names.len() {
                        i = 0;
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for thread in threads {
        thread.join().expect("lookup thread panicked");
    }
    start.elapsed()
}

/// Which names each thread looks up.
type Names = fn(&dyn Fn(usize) -> String) -> Vec<Vec<String>>;

fn same_name(name: &dyn Fn(usize) -> String) -> Vec<Vec<String>> {
    vec![vec![name(0)]; THREADS]
}

fn distinct_names(name: &dyn Fn(usize) -> String) -> Vec<Vec<String>> {
    (0..THREADS)
        .map(|t| (0..NAMES).filter(|i| i % THREADS == t).map(name).collect())
        .collect()
}

fn bench<C: Contender>(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    names: Names,
) {
    let (stop, running) = register_all::<C>(rt);
    let names = names(&name::<C>);
    group.bench_function(BenchmarkId::from_parameter(C::NAME), |b| {
        b.iter_custom(|iters| lookups::<C>(&names, iters));
    });
    drop(stop);
    rt.block_on(running).expect("servers panicked");
}

fn registry(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let groups: [(&str, Names); 2] = [
        ("registry_lookup_same_name", same_name),
        ("registry_lookup_distinct_names", distinct_names),
    ];
    for (group_name, names) in groups {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(THREADS as u64));
        bench::<Trellis>(&rt, &mut group, names);
        bench::<Tokio>(&rt, &mut group, names);
        bench::<Ractor>(&rt, &mut group, names);
        bench::<Kameo>(&rt, &mut group, names);
        group.finish();
    }
}

criterion_group!(benches, registry);
criterion_main!(benches);
