//! One long run of the supervisor restart workload, for profilers:
//! `cargo run --release -p trellis-benches --example prof_restart [N]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use trellis::supervisor::{self, ChildSpec, Options};

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..3 {
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
        let options = Options::new()
            .max_restarts(u32::MAX)
            .max_seconds(Duration::from_secs(3600));
        let elapsed = rt.block_on(async move {
            let start = Instant::now();
            trellis::nursery(|n| async move {
                let sup = n
                    .start(|s| supervisor::start(vec![child], options, s))
                    .await?;
                done.notified().await;
                let elapsed = start.elapsed();
                sup.stop().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(elapsed)
            })
            .await
            .unwrap()
        });
        let floor = rt.block_on(async {
            tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = tokio::spawn(async { Err::<(), _>("crash") }).await;
                }
                start.elapsed()
            })
            .await
            .unwrap()
        });
        println!(
            "trellis {:.0}/s, tokio respawn {:.0}/s, ratio {:.2}",
            iters as f64 / elapsed.as_secs_f64(),
            iters as f64 / floor.as_secs_f64(),
            floor.as_secs_f64() / elapsed.as_secs_f64()
        );
    }
}
