//! Spawn and join 100k trivial tasks: a Trellis nursery vs tokio's `JoinSet`
//! (the floor), on a 2-worker multi-thread runtime.
//!
//! Run: `cargo bench -p trellis-benches --bench spawn`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::task::JoinSet;
use trellis::nursery;

const TASKS: u64 = 100_000;

fn spawn_join(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("spawn_join_100k");
    group.throughput(Throughput::Elements(TASKS));
    group.sample_size(20);

    group.bench_function(BenchmarkId::from_parameter("tokio_joinset"), |b| {
        b.to_async(&rt).iter(|| async {
            let mut set = JoinSet::new();
            for i in 0..TASKS {
                set.spawn(async move {
                    std::hint::black_box(i);
                });
            }
            while let Some(res) = set.join_next().await {
                res.expect("task panicked");
            }
        });
    });

    group.bench_function(BenchmarkId::from_parameter("trellis_nursery"), |b| {
        b.to_async(&rt).iter(|| async {
            nursery(|n| async move {
                for i in 0..TASKS {
                    n.spawn(async move {
                        std::hint::black_box(i);
                    });
                }
            })
            .await
            .expect("nursery failed");
        });
    });
    group.finish();
}

criterion_group!(benches, spawn_join);
criterion_main!(benches);
