//! Distribution benchmark, all figures from one run on one machine: the
//! loopback TCP round trip (the floor), `gen_server:call` round trips
//! Erlang→Erlang, Erlang→Rust, Rust→Erlang and Rust→Rust, calls/s with 64
//! concurrent callers, and one-way throughput of small and 1 KiB messages
//! Erlang→Erlang and Rust→Erlang. Prints a Markdown table.
//!
//! ```sh
//! epmd -daemon
//! cargo run --release --example dist_bench --features dist   # DIST_BENCH_N=20000 by default
//! ```
//!
//! Needs `erl` and `erlc` (Debian's `erlang-nox`). The Erlang side is
//! `tests/erlang/dist_peer.erl`, compiled into a temporary folder.

use std::error::Error;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use trellis::BoxError;
use trellis::dist::{self, DistNode, DistOptions, Incoming, Term, ToTerm, atom, tagged, tuple};
use trellis::gen_server::{self, Context, GenServer, Init, Response};

const COOKIE: &str = "dist-bench";
const TIMEOUT: Duration = Duration::from_secs(30);
const CALLERS: u32 = 64;

/// Answers `X` with `{echo, X}`.
struct Echo;

impl GenServer for Echo {
    type Arg = ();
    type Call = Term;
    type Reply = Term;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        x: Term,
        _: &mut Context<Self>,
    ) -> Result<Response<Term>, BoxError> {
        Ok(Response::Reply(tagged("echo", vec![x])))
    }
}

/// One result row: what, how many operations, how long.
struct Row {
    what: String,
    ops: u64,
    elapsed: Duration,
}

impl Row {
    fn print(&self) {
        let per = self.elapsed.as_secs_f64() * 1e6 / self.ops as f64;
        let rate = self.ops as f64 / self.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {per:.1} µs | {rate:.0}/s |",
            self.what, self.ops
        );
    }
}

/// The mean round trip of a 64-byte ping-pong over loopback TCP.
async fn tcp_floor(n: u64) -> Result<Row, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).await.is_ok() {
            s.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut c = TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let start = Instant::now();
    for _ in 0..n {
        c.write_all(&buf).await?;
        c.read_exact(&mut buf).await?;
    }
    let elapsed = start.elapsed();
    drop(c);
    let _ = server.await;
    Ok(Row {
        what: "loopback TCP round trip (floor)".into(),
        ops: n,
        elapsed,
    })
}

fn host() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    host.trim()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_string()
}

/// Starts `erl -sname name` running `eval`, with `env` set; returns the
/// child and its stdout lines.
fn erl(
    beams: &std::path::Path,
    name: &str,
    eval: &str,
    env: &[(&str, &str)],
) -> Result<
    (
        tokio::process::Child,
        tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    ),
    BoxError,
> {
    let mut child = Command::new("erl")
        .args([
            "-sname",
            name,
            "-setcookie",
            COOKIE,
            "-noshell",
            "-hidden",
            "-pa",
        ])
        .arg(beams)
        .args(["-eval", eval])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    Ok((child, BufReader::new(out).lines()))
}

/// Parses `{kind,N,Micros}` as printed by `dist_peer`.
fn erlang_row(line: &str, what: &str) -> Result<Row, BoxError> {
    let inner = line.trim().trim_start_matches('{').trim_end_matches('}');
    let parts: Vec<&str> = inner.split(',').collect();
    let [_, n, micros] = parts.as_slice() else {
        return Err(format!("unexpected line {line}").into());
    };
    Ok(Row {
        what: what.into(),
        ops: n.parse()?,
        elapsed: Duration::from_micros(micros.parse()?),
    })
}

async fn rust_calls(
    node: &DistNode,
    to: (&str, &str),
    n: u64,
    what: &str,
) -> Result<Row, BoxError> {
    for _ in 0..100 {
        let _: Term = node.call(to, atom("x"), TIMEOUT).await?;
    }
    let start = Instant::now();
    for _ in 0..n {
        let _: Term = node.call(to, atom("x"), TIMEOUT).await?;
    }
    Ok(Row {
        what: what.into(),
        ops: n,
        elapsed: start.elapsed(),
    })
}

async fn rust_concurrent(
    node: &DistNode,
    to: (&str, &str),
    n: u64,
    what: &str,
) -> Result<Row, BoxError> {
    let per = n / u64::from(CALLERS);
    let (name, peer) = (Arc::<str>::from(to.0), Arc::<str>::from(to.1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (node, name, peer) = (node.clone(), name.clone(), peer.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let _: Term = node.call((&*name, &*peer), atom("x"), TIMEOUT).await?;
            }
            Ok::<_, dist::DistError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Row {
        what: what.into(),
        ops: per * u64::from(CALLERS),
        elapsed: start.elapsed(),
    })
}

async fn rust_oneway(
    node: &DistNode,
    sink: (&str, &str),
    payload: Term,
    n: u64,
    what: &str,
) -> Result<Row, BoxError> {
    let mut mailbox = node.mailbox()?;
    let message = tuple(vec![atom("m"), payload]);
    let start = Instant::now();
    mailbox
        .send(
            sink,
            tuple(vec![atom("expect"), n.to_term(), mailbox.pid().to_term()]),
        )
        .await?;
    for _ in 0..n {
        mailbox.send(sink, message.clone()).await?;
    }
    loop {
        match tokio::time::timeout(TIMEOUT * 4, mailbox.recv()).await? {
            Some(Incoming::Message { term, .. }) if dist::as_tuple(&term).is_some() => break,
            Some(_) => {}
            None => return Err("node stopped".into()),
        }
    }
    Ok(Row {
        what: what.into(),
        ops: n,
        elapsed: start.elapsed(),
    })
}

async fn bench() -> Result<(), BoxError> {
    let n: u64 = std::env::var("DIST_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let _ = std::process::Command::new("epmd").arg("-daemon").status();
    let beams = std::env::temp_dir().join(format!("trellis_dist_bench_{}", std::process::id()));
    std::fs::create_dir_all(&beams)?;
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/erlang/dist_peer.erl");
    let status = std::process::Command::new("erlc")
        .arg("-o")
        .arg(&beams)
        .arg(src)
        .status()?;
    if !status.success() {
        return Err("erlc failed".into());
    }
    let id = std::process::id();
    let mut rows = vec![tcp_floor(n).await?];

    // Trellis nodes: `r` serves an echo; `r2` calls it.
    let r = dist::start(DistOptions::short(format!("bench_r_{id}")).cookie(COOKIE)).await?;
    let r2 = dist::start(DistOptions::short(format!("bench_r2_{id}")).cookie(COOKIE)).await?;
    let n_sink = (n * 5).to_string();
    trellis::nursery(|nursery| async move {
        let server = gen_server::start(&nursery, Echo).await?;
        r.export("echo", server)?;

        // Erlang node B: an echo server and a sink.
        let b_name = format!("bench_b_{id}");
        let (_b, mut b_lines) = erl(&beams, &b_name, "dist_peer:start(), dist_peer:sink().", &[])?;
        while b_lines.next_line().await?.as_deref() != Some("ready") {}
        let b = format!("{b_name}@{}", host());

        // Erlang node A: Erlang→Erlang and Erlang→Rust.
        let eval = format!(
            "B = list_to_atom(os:getenv(\"B\")), R = list_to_atom(os:getenv(\"R\")), N = {n}, \
             dist_peer:bench_calls({{echo, B}}, N), dist_peer:bench_calls({{echo, R}}, N), \
             dist_peer:bench_concurrent({{echo, B}}, {CALLERS}, N div {CALLERS}), \
             dist_peer:bench_concurrent({{echo, R}}, {CALLERS}, N div {CALLERS}), \
             dist_peer:bench_oneway({{sink, B}}, x, {n_sink}), \
             dist_peer:bench_oneway({{sink, B}}, <<0:8192>>, {n_sink}), halt()."
        );
        let (_a, mut a_lines) = erl(
            &beams,
            &format!("bench_a_{id}"),
            &eval,
            &[("B", b.as_str()), ("R", r.name())],
        )?;
        for what in [
            "call round trip Erlang→Erlang",
            "call round trip Erlang→Rust",
            "calls, 64 concurrent callers, Erlang→Erlang",
            "calls, 64 concurrent callers, Erlang→Rust",
            "one-way small messages Erlang→Erlang",
            "one-way 1 KiB messages Erlang→Erlang",
        ] {
            let line = tokio::time::timeout(TIMEOUT * 4, a_lines.next_line())
                .await??
                .ok_or("erl ended early")?;
            rows.push(erlang_row(&line, what)?);
        }

        // Rust→Erlang and Rust→Rust.
        let to_b = ("echo", b.as_str());
        rows.push(rust_calls(&r2, to_b, n, "call round trip Rust→Erlang").await?);
        rows.push(rust_calls(&r2, ("echo", r.name()), n, "call round trip Rust→Rust").await?);
        rows.push(
            rust_concurrent(&r2, to_b, n, "calls, 64 concurrent callers, Rust→Erlang").await?,
        );
        rows.push(
            rust_concurrent(
                &r2,
                ("echo", r.name()),
                n,
                "calls, 64 concurrent callers, Rust→Rust",
            )
            .await?,
        );
        let sink = ("sink", b.as_str());
        rows.push(
            rust_oneway(
                &r2,
                sink,
                atom("x"),
                n * 5,
                "one-way small messages Rust→Erlang",
            )
            .await?,
        );
        let kib = "a".repeat(1024).to_term();
        rows.push(rust_oneway(&r2, sink, kib, n * 5, "one-way 1 KiB messages Rust→Erlang").await?);

        println!("| measure | ops | per op | rate |");
        println!("|---|---|---|---|");
        for row in &rows {
            row.print();
        }
        nursery.cancel();
        Ok::<_, BoxError>(())
    })
    .await?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // `DIST_BENCH_THREADS=1`: a current-thread runtime; else tokio's
    // multi-thread default.
    match std::env::var("DIST_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        Some(1) => trellis::RunOptions::new().current_thread().run(bench())?,
        Some(n) => trellis::RunOptions::new().worker_threads(n).run(bench())?,
        None => trellis::run(bench()),
    }
}
