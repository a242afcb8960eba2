//! A supervision tree on a node: triotp's supervisor example, a worker loop
//! that crashes at random, restarted by its supervisor, inside an
//! application.
//!
//! Run it with `cargo run --example supervision` (add `RUST_LOG=debug` for
//! more). It prints the restarts as they happen, the live tree once a second,
//! and stops by itself after five seconds (or on Ctrl-C).
//!
//! With the observer (`cargo run --features observer --example supervision
//! -- --observer 127.0.0.1:9000`, add `--observer-actions` to allow stopping
//! and restarting from the page), it serves the live tree on that address
//! and runs until Ctrl-C (or for `--seconds N`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use trellis::application::{AppSpec, Restart};
use trellis::gen_server::{self, Context, Flow, GenServer, Init, Response};
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

/// Counts the loops' ticks: a gen_server registered as `tally`, so the
/// observer has a mailbox and handler times to show.
#[derive(Default)]
struct Tally {
    ticks: u64,
}

impl GenServer for Tally {
    type Arg = ();
    type Call = ();
    type Reply = u64;
    type Cast = &'static str;
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<u64>, trellis::BoxError> {
        Ok(Response::Reply(self.ticks))
    }

    async fn handle_cast(
        &mut self,
        _from: &'static str,
        _: &mut Context<Self>,
    ) -> Result<Flow, trellis::BoxError> {
        self.ticks += 1;
        Ok(Flow::Continue)
    }
}

/// Ticks every 100 ms (telling `tally`) and crashes with a 1-in-8 chance at
/// each tick.
async fn crashing_loop(name: &'static str) -> Result<(), String> {
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            () = trellis::wait_shutdown() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        ticks += 1;
        let _ = gen_server::cast::<Tally>("tally", name).await;
        if random() % 8 == 0 {
            println!("{name}: crashing after {ticks} ticks");
            return Err(format!("{name} crashed at random"));
        }
    }
}

/// The application: a supervisor of two crashing loops and a quiet worker,
/// watched for `seconds` seconds.
async fn demo_app(seconds: u64, status: TaskStatus<()>) -> Result<(), String> {
    nursery(|n| async move {
        let children = vec![
            ChildSpec::gen_server("tally", Tally::default, (), "tally"),
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
        for _ in 0..seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!("--- supervision tree ---\n{}", supervisor::tree());
        }
        sup.stop().await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
}

/// `--observer HOST:PORT`, `--observer-actions`, `--seconds N`.
struct Args {
    observer: Option<std::net::SocketAddr>,
    actions: bool,
    seconds: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        observer: None,
        actions: false,
        seconds: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--observer" => {
                let addr = args.next().ok_or("--observer needs HOST:PORT")?;
                parsed.observer = Some(
                    addr.parse()
                        .map_err(|e| format!("--observer {addr}: {e}"))?,
                );
            }
            "--observer-actions" => parsed.actions = true,
            "--seconds" => {
                let n = args.next().ok_or("--seconds needs a number")?;
                parsed.seconds = Some(n.parse().map_err(|e| format!("--seconds {n}: {e}"))?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    // With an observer to look at, run until Ctrl-C.
    let seconds = args
        .seconds
        .unwrap_or(if args.observer.is_some() { u64::MAX } else { 5 });
    // Temporary: its end is not a termination that fails the node.
    let app = AppSpec::new("demo", demo_app, seconds).restart(Restart::Temporary);
    let options = NodeOptions::new()
        .log_level(LogLevel::Info)
        .log_format(LogFormat::Compact);
    let options = match args.observer {
        #[cfg(feature = "observer")]
        Some(addr) => options
            .observer_options(trellis::observer::ObserverOptions::new(addr).actions(args.actions)),
        #[cfg(not(feature = "observer"))]
        Some(_) => return Err("--observer needs the cargo feature `observer`".into()),
        None => options,
    };
    // When the app returns after its five seconds, no application is left
    // running and the node returns `Ok`.
    trellis::run(node::run(vec![app], options))?;
    Ok(())
}
