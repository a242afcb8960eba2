//! Profiling driver: 30 rounds of spawning 100k trivial tasks in a nursery.
//!
//! `CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release -p trellis-benches --example prof_spawn`
//! then `perf record -g target/release/examples/prof_spawn`.

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..30 {
            trellis::nursery(|n| async move {
                for i in 0..100_000u64 {
                    n.spawn(async move {
                        std::hint::black_box(i);
                    });
                }
            })
            .await
            .unwrap();
        }
    });
}
