//! The cost of `trellis::util::TaskStats`: 10k tasks that each yield 10 times
//! (110k task polls), in a plain nursery (the instrument disabled, the
//! baseline) and in an instrumented one, on a 2-worker multi-thread runtime.
//!
//! Run: `cargo bench -p trellis-benches --bench task_stats`
//!
//! The disabled path's cost is read from the `spawn` benchmark instead (a
//! nursery with the probe field vs tokio's `JoinSet`), since "disabled" is
//! what every nursery pays.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trellis::util::TaskStats;
use trellis::{NurseryOptions, nursery_with};

const TASKS: u64 = 10_000;
const YIELDS: u64 = 10;

async fn workload(options: NurseryOptions) {
    nursery_with(options, |n| async move {
        for i in 0..TASKS {
            n.spawn(async move {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
                std::hint::black_box(i);
            });
        }
    })
    .await
    .expect("nursery failed");
}

fn task_stats(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("task_stats_10k_tasks_x10_yields");
    group.throughput(Throughput::Elements(TASKS * (YIELDS + 1)));
    group.sample_size(20);

    group.bench_function(BenchmarkId::from_parameter("disabled"), |b| {
        b.to_async(&rt).iter(|| workload(NurseryOptions::new()));
    });
    group.bench_function(BenchmarkId::from_parameter("enabled"), |b| {
        b.to_async(&rt).iter(|| {
            let stats = TaskStats::new();
            workload(stats.instrument(NurseryOptions::new()))
        });
    });
    group.finish();
}

criterion_group!(benches, task_stats);
criterion_main!(benches);
