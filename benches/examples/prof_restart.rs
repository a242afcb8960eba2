//! One long run of the supervisor restart workload, for profilers:
//! `cargo run --release -p trellis-benches --example prof_restart [N] [MODE] [FAILURE]`,
//! where `MODE` is `both` (default), `trellis` or `floor` (one side alone,
//! e.g. under `perf stat -e task-clock`) and `FAILURE` is `err` (default)
//! or `panic` (with a silent panic hook).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use trellis::supervisor::{self, ChildSpec, SupervisorOptions};

/// Fails by `Err`, or by panic if `panic`.
fn fail(panic: bool) -> Result<(), &'static str> {
    if panic {
        panic!("crash");
    }
    Err("crash")
}

/// Restarts a failing child `iters` times under a supervisor.
async fn trellis_restarts(iters: u64, panic: bool) -> Duration {
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
            fail(panic)
        }
    });
    let options = SupervisorOptions::new()
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
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(elapsed)
    })
    .await
    .unwrap()
}

/// The floor: a hand-written respawn loop in a runtime task.
async fn tokio_respawns(iters: u64, panic: bool) -> Duration {
    tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            let _ = tokio::spawn(async move { fail(panic) }).await;
        }
        start.elapsed()
    })
    .await
    .unwrap()
}

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    let panic = std::env::args().nth(3).is_some_and(|f| f == "panic");
    if panic {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate = |d: Duration| iters as f64 / d.as_secs_f64();
    for _ in 0..3 {
        match mode.as_str() {
            "trellis" => println!(
                "trellis {:.0}/s",
                rate(rt.block_on(trellis_restarts(iters, panic)))
            ),
            "floor" => println!(
                "tokio respawn {:.0}/s",
                rate(rt.block_on(tokio_respawns(iters, panic)))
            ),
            _ => {
                let elapsed = rt.block_on(trellis_restarts(iters, panic));
                let floor = rt.block_on(tokio_respawns(iters, panic));
                println!(
                    "trellis {:.0}/s, tokio respawn {:.0}/s, ratio {:.2}",
                    rate(elapsed),
                    rate(floor),
                    floor.as_secs_f64() / elapsed.as_secs_f64()
                );
            }
        }
    }
}
