//! Profiling baseline for `prof_spawn`: the same workload on tokio's `JoinSet`.

fn main() {
    let rt = trellis_benches::runtime();
    rt.block_on(async {
        for _ in 0..30 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..100_000u64 {
                set.spawn(async move {
                    std::hint::black_box(i);
                });
            }
            while let Some(res) = set.join_next().await {
                res.expect("task panicked");
            }
        }
    });
}
