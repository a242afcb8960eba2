//! A supervision tree on a node: triotp's supervisor example, a worker loop
//! that crashes at random, restarted by its supervisor, inside an
//! application.
//!
//! Run it with `cargo run --example supervision` (add `RUST_LOG=debug` for
//! more). It prints the restarts as they happen, the live tree once a second,
//! and stops by itself after five seconds (or on Ctrl-C).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use trellis::application::{AppSpec, Restart};
use trellis::logging::{LogFormat, LogLevel};
use trellis::node::{self, NodeOptions};
use trellis::supervisor::{self, ChildSpec, Strategy, SupervisorOptions};
use trellis::{TaskStatus, nursery};

/// A tiny xorshift generator: enough randomness for a demo, no dependency.
fn random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

/// Ticks every 100 ms and crashes with a 1-in-8 chance at each tick.
async fn crashing_loop(name: &'static str) -> Result<(), String> {
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            () = trellis::wait_shutdown() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        ticks += 1;
        if random() % 8 == 0 {
            println!("{name}: crashing after {ticks} ticks");
            return Err(format!("{name} crashed at random"));
        }
    }
}

/// The application: a supervisor of two crashing loops and a quiet worker,
/// watched for five seconds.
async fn demo_app((): (), status: TaskStatus<()>) -> Result<(), String> {
    nursery(|n| async move {
        let children = vec![
            ChildSpec::task("loop-a", || crashing_loop("loop-a")),
            ChildSpec::task("loop-b", || crashing_loop("loop-b")),
            ChildSpec::supervisor(
                "workers",
                vec![ChildSpec::task("quiet", trellis::wait_shutdown)],
                SupervisorOptions::new().name("workers"),
            ),
        ];
        let options = SupervisorOptions::new()
            .name("demo")
            .strategy(Strategy::OneForOne)
            .max_restarts(100)
            .max_seconds(Duration::from_secs(5));
        let sup = supervisor::start(&n, children, options)
            .await
            .map_err(|e| e.to_string())?;
        status.started(());
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!("--- supervision tree ---\n{}", supervisor::tree());
        }
        sup.stop().await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
}

fn main() -> Result<(), node::NodeError> {
    // Temporary: its end is not a termination that fails the node.
    let app = AppSpec::new("demo", demo_app, ()).restart(Restart::Temporary);
    let options = NodeOptions::new()
        .log_level(LogLevel::Info)
        .log_format(LogFormat::Compact);
    // When the app returns after its five seconds, no application is left
    // running and the node returns `Ok`.
    trellis::run(node::run(vec![app], options))
}
