//! Profiling driver for `TaskStats`: 30 rounds of 10k tasks yielding 10 times
//! each, in a plain nursery (`disabled`, the default) or an instrumented one
//! (`enabled`). Compare the two under `perf stat`, which counts CPU time and
//! instructions rather than wall time on a shared machine:
//!
//! `cargo build --release -p trellis-benches --example prof_task_stats`, then
//! `perf stat -e task-clock,instructions target/release/examples/prof_task_stats enabled`.

use trellis::util::TaskStats;
use trellis::{NurseryOptions, nursery_with};

fn main() {
    let enabled = std::env::args().nth(1).as_deref() == Some("enabled");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..30 {
            let stats = TaskStats::new();
            let options = if enabled {
                stats.instrument(NurseryOptions::new())
            } else {
                NurseryOptions::new()
            };
            nursery_with(options, |n| async move {
                for i in 0..10_000u64 {
                    n.spawn(async move {
                        for _ in 0..10 {
                            tokio::task::yield_now().await;
                        }
                        std::hint::black_box(i);
                    });
                }
            })
            .await
            .unwrap();
        }
    });
}
