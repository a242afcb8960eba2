//! Memory per idle process: starts N processes of one kind (default 100k)
//! that wait on their mailboxes, and prints the growth of the resident set
//! divided by N.
//!
//! One kind per run, so that the allocator state one kind leaves behind
//! does not count for another. The kinds are the contenders of
//! `trellis_benches::otp`: `trellis` (a gen_server in a nursery), `tokio` (a
//! task waiting on an unbounded `mpsc` receiver), `ractor`, `kameo`; and
//! `supervised`: one supervisor of N idle gen_servers, its child specs
//! made after the first reading (the supervisor keeps them). Every
//! process has finished its start handshake before the second reading; the
//! handles the starter keeps (one per process) are counted, as a real
//! program keeps them too.
//!
//! Run one kind:
//! `cargo run --release -p trellis-benches --example memory_per_process -- trellis 100000`
//! or every kind, 5 runs each, with `benches/memory_per_process.sh`.

use std::time::Duration;

use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
use trellis_benches::otp::{Contender, Idle, Kameo, Ractor, Tokio, Trellis, in_nursery};

/// The resident set size in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// Starts `count` processes of `C` and returns bytes of RSS per process.
fn measure<C: Contender>(count: usize) -> f64 {
    let rt = trellis_benches::runtime();
    rt.block_on(in_nursery(|n| async move {
        tokio::spawn(async move {
            // Warm up: thread-locals, lazy statics and allocator arenas of
            // this kind exist before the first reading.
            let warm: Vec<_> = {
                let mut v = Vec::with_capacity(1_000);
                for _ in 0..1_000 {
                    v.push(C::start(&n).await);
                }
                v
            };
            futures::future::join_all(warm.into_iter().map(C::stop)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;

            let mut handles = Vec::with_capacity(count);
            let before = rss();
            for _ in 0..count {
                handles.push(C::start(&n).await);
            }
            // Let every process reach its idle wait.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = rss();
            let per_process = after.saturating_sub(before) as f64 / count as f64;
            futures::future::join_all(handles.into_iter().map(C::stop)).await;
            per_process
        })
        .await
        .expect("starter panicked")
    }))
}

/// Starts a supervisor of `count` idle gen_servers (their specs made here)
/// in `nursery`.
async fn start_supervisor(nursery: &trellis::Nursery, count: usize) -> supervisor::Supervisor {
    let children: Vec<ChildSpec> = (0..count)
        .map(|i| ChildSpec::gen_server(format!("s{i}"), || Idle, (), ()))
        .collect();
    nursery
        .start(|status| supervisor::serve(children, SupervisorOptions::new(), status))
        .await
        .expect("supervisor")
}

/// Starts a supervisor of `count` idle gen_servers and returns bytes of RSS
/// per child.
fn measure_supervised(count: usize) -> f64 {
    let rt = trellis_benches::runtime();
    rt.block_on(in_nursery(|n| async move {
        tokio::spawn(async move {
            // Warm up, as `measure` does.
            let warm = start_supervisor(&n, 1_000).await;
            warm.stop().await.expect("warm-up supervisor stops");
            tokio::time::sleep(Duration::from_millis(100)).await;

            let before = rss();
            let sup = start_supervisor(&n, count).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = rss();
            sup.stop().await.expect("supervisor stops");
            after.saturating_sub(before) as f64 / count as f64
        })
        .await
        .expect("starter panicked")
    }))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "trellis".to_string());
    let count: usize = match args.next().map(|n| n.parse()) {
        None => 100_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!(
                "usage: memory_per_process [trellis|tokio|ractor|kameo|supervised] [count > 0]"
            );
            std::process::exit(2);
        }
    };
    let per_process = match kind.as_str() {
        "trellis" => measure::<Trellis>(count),
        "tokio" => measure::<Tokio>(count),
        "ractor" => measure::<Ractor>(count),
        "kameo" => measure::<Kameo>(count),
        "supervised" => measure_supervised(count),
        other => {
            eprintln!("unknown kind {other:?}: use trellis, tokio, ractor, kameo or supervised");
            std::process::exit(2);
        }
    };
    println!("{kind} {count} {per_process:.0} bytes/process");
}
