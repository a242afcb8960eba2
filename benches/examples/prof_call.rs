//! Profiling aid: a tight loop of gen_server calls vs raw tokio mpsc+oneshot
//! round trips, printing ns per round trip. `cargo run --release -p
//! trellis-benches --example prof_call [rounds] [mt|ct]`.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use trellis::gen_server::{self, BoxError, Context, GenServer, Response};

struct Echo;

impl GenServer for Echo {
    type Arg = ();
    type Call = u64;
    type Reply = u64;
    type Cast = u64;
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<(), BoxError> {
        Ok(())
    }

    async fn handle_call(&mut self, n: u64, _: &mut Context<Self>) -> Response<u64> {
        Response::Reply(n + 1)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = match args.next().as_deref() {
        Some("ct") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .unwrap();
    rt.block_on(async move {
        // Raw tokio.
        let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
        tokio::spawn(async move {
            while let Some((n, reply)) = rx.recv().await {
                let _ = reply.send(n + 1);
            }
        });
        let raw_rounds = if std::env::var("ONLY").is_ok() {
            1
        } else {
            rounds
        };
        let started = Instant::now();
        for i in 0..raw_rounds {
            let (rtx, rrx) = oneshot::channel();
            tx.send((i, rtx)).await.unwrap();
            assert_eq!(rrx.await.unwrap(), i + 1);
        }
        let raw = started.elapsed().as_nanos() as f64 / raw_rounds as f64;

        let trellis_ns = trellis::nursery(|n| async move {
            let server = gen_server::start(&n, Echo, (), ()).await.unwrap();
            let timeout = if std::env::var("NOTIMER").is_ok() {
                gen_server::INFINITY
            } else {
                Duration::from_secs(5)
            };
            let started = Instant::now();
            for i in 0..rounds {
                assert_eq!(server.call(i, timeout).await.unwrap(), i + 1);
            }
            let ns = started.elapsed().as_nanos() as f64 / rounds as f64;
            n.cancel();
            Ok::<_, trellis::NurseryError>(ns)
        })
        .await
        .unwrap();
        println!(
            "raw tokio {raw:.0} ns/call, trellis {trellis_ns:.0} ns/call, ratio {:.2}",
            trellis_ns / raw
        );
    });
}
