//! Distribution benchmark, all figures from one run on one machine: the
//! loopback TCP round trip (the floor), `gen_server:call` round trips,
//! calls/s with 64 concurrent callers, and one-way throughput of small and
//! 1 KiB messages, each between every pair of Erlang (E) and Trellis (R)
//! nodes. Prints a Markdown table.
//!
//! Four OS processes take part, so that no row has two nodes share one
//! runtime: this one (the Trellis caller and sender, `R`), a second Trellis
//! node (`dist_bench --serve`: an exported echo gen_server and sink
//! mailboxes), an Erlang caller/sender node (`A`) and an Erlang echo/sink
//! node (`B`). Every row is started from here, one at a time, and the CPU
//! time each side's process used during the row, and how many times its
//! threads were scheduled in (wake-ups: all its threads, from
//! `/proc/PID/task/*/schedstat`), are printed per operation next to the
//! wall time.
//!
//! ```sh
//! epmd -daemon
//! cargo run --release --example dist_bench --features dist
//! DIST_BENCH_THREADS=1 cargo run --release --example dist_bench --features dist
//! DIST_BENCH_ROWS=call_er,call_rr cargo run --release --example dist_bench --features dist
//! ```
//!
//! Environment: `DIST_BENCH_N` (calls per row, default 20,000; one-way rows
//! send five times as many messages), `DIST_BENCH_THREADS` (1: tokio's
//! current-thread runtime, in both Trellis processes), `DIST_BENCH_ROWS`
//! (a comma-separated list of row keys, as printed in the table's first
//! column; default all), `DIST_BENCH_SINKS` (sink processes per node the
//! one-way rows spread over, round robin; default 1), `DIST_BENCH_ERL_ARGS`
//! (more `erl` flags for both Erlang nodes, e.g. `+sbwt none`).
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
use trellis::dist::{
    self, DistMailbox, DistNode, DistOptions, ErlPid, Incoming, Term, ToTerm, as_tuple, atom, tuple,
};
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
        Ok(Response::Reply(dist::tagged("echo", vec![x])))
    }
}

/// The CPU time all threads of process `pid` have used so far, and how
/// many times they were scheduled in (`/proc/PID/task/*/schedstat`:
/// nanoseconds on a CPU, time slices).
fn cpu(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            let mut fields = s.split_whitespace();
            let ns = fields.next()?.parse::<u64>().ok()?;
            let slices = fields.nth(1)?.parse::<u64>().ok()?;
            Some((ns, slices))
        })
        .fold((0, 0), |(a, b), (ns, slices)| (a + ns, b + slices))
}

/// One result row: its key, what, how many operations, how long, and the
/// CPU time the client's and the server's processes used meanwhile.
struct Row {
    key: String,
    what: String,
    ops: u64,
    elapsed: Duration,
    /// CPU nanoseconds and time slices of the client's and the server's
    /// processes during the row.
    cpu: Option<((u64, u64), (u64, u64))>,
}

impl Row {
    fn print(&self) {
        let per = self.elapsed.as_secs_f64() * 1e6 / self.ops as f64;
        let rate = self.ops as f64 / self.elapsed.as_secs_f64();
        let ops = self.ops as f64;
        let cpu = match self.cpu {
            Some(((client, client_in), (server, server_in))) => format!(
                "{:.2} µs | {:.2} µs | {:.2} | {:.2}",
                client as f64 / 1e3 / ops,
                server as f64 / 1e3 / ops,
                client_in as f64 / ops,
                server_in as f64 / ops,
            ),
            None => " | | | ".into(),
        };
        println!(
            "| {} | {} | {} | {per:.2} µs | {rate:.0}/s | {cpu} |",
            self.key, self.what, self.ops
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
        key: "floor".into(),
        what: "loopback TCP round trip (floor)".into(),
        ops: n,
        elapsed,
        cpu: None,
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

type Lines<R> = tokio::io::Lines<BufReader<R>>;

/// Starts `erl -sname name -hidden` running `eval`; returns the child and
/// its stdout lines.
fn erl(
    beams: &std::path::Path,
    name: &str,
    eval: &str,
) -> Result<(tokio::process::Child, Lines<tokio::process::ChildStdout>), BoxError> {
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
        // `DIST_BENCH_ERL_ARGS`: more emulator flags for both Erlang nodes,
        // e.g. `+sbwt none` (schedulers sleep at once instead of spinning).
        .args(
            std::env::var("DIST_BENCH_ERL_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    Ok((child, BufReader::new(out).lines()))
}

/// Waits for the line `ready` from a child.
async fn ready<R: tokio::io::AsyncRead + Unpin>(lines: &mut Lines<R>) -> Result<(), BoxError> {
    loop {
        let line = tokio::time::timeout(TIMEOUT, lines.next_line())
            .await??
            .ok_or("a child ended before it was ready")?;
        if line == "ready" {
            return Ok(());
        }
    }
}

/// Where a row runs: the two processes (for CPU), and the nodes.
#[derive(Clone)]
struct Side {
    /// `R` (this process) or `E` (the Erlang node `A`).
    rust: bool,
    os_pid: u32,
}

/// Everything a row needs.
struct Bench {
    n: u64,
    sinks: u32,
    /// This process's node: the Rust caller and sender.
    r: DistNode,
    /// Its mailbox, for orders to `A` and for the sinks' answers.
    mailbox: DistMailbox,
    /// The Erlang caller/sender node `A` and its OS pid.
    a: String,
    a_pid: u32,
    /// The Erlang echo/sink node `B`, and the Trellis one (`--serve`).
    b: String,
    b_pid: u32,
    s: String,
    s_pid: u32,
}

impl Bench {
    fn sink_names(&self) -> Vec<String> {
        (1..=self.sinks).map(|i| format!("sink{i}")).collect()
    }

    /// Runs one row from `client` to the server node (`B` if `erlang_server`,
    /// else the `--serve` node), measuring both processes' CPU time.
    async fn row(
        &mut self,
        key: &str,
        what: &str,
        client: &Side,
        erlang_server: bool,
        kind: Kind,
    ) -> Result<Row, BoxError> {
        let (server, server_pid) = if erlang_server {
            (self.b.clone(), self.b_pid)
        } else {
            (self.s.clone(), self.s_pid)
        };
        let before = (cpu(client.os_pid), cpu(server_pid));
        let started = Instant::now();
        let (ops, elapsed) = if client.rust {
            // In a task of its own, as a Trellis process would call or send
            // (the main future runs outside the runtime's workers, and each
            // wake-up of it would cost a thread switch of its own).
            let (node, sinks, n) = (self.r.clone(), self.sink_names(), self.n);
            let kind = match &kind {
                Kind::Calls => Kind::Calls,
                Kind::Concurrent => Kind::Concurrent,
                Kind::OneWay(payload) => Kind::OneWay(payload.clone()),
            };
            let ops = tokio::spawn(async move {
                let to = ("echo", server.as_str());
                match kind {
                    Kind::Calls => rust_calls(&node, to, n).await,
                    Kind::Concurrent => rust_concurrent(&node, to, n).await,
                    Kind::OneWay(payload) => {
                        let mut mailbox = node.mailbox()?;
                        rust_oneway(&mut mailbox, &sinks, &server, &payload, n * 5).await
                    }
                }
            })
            .await??;
            (ops, started.elapsed())
        } else {
            let me = self.mailbox.pid().to_term();
            let echo = tuple(vec![atom("echo"), atom(&server)]);
            let order = match &kind {
                Kind::Calls => tuple(vec![atom("calls"), echo, self.n.to_term(), me]),
                Kind::Concurrent => tuple(vec![
                    atom("concurrent"),
                    echo,
                    CALLERS.to_term(),
                    (self.n / u64::from(CALLERS)).to_term(),
                    me,
                ]),
                Kind::OneWay(payload) => {
                    let sinks: Vec<Term> = self
                        .sink_names()
                        .iter()
                        .map(|s| tuple(vec![atom(s), atom(&server)]))
                        .collect();
                    tuple(vec![
                        atom("oneway"),
                        sinks.to_term(),
                        payload.clone(),
                        (self.n * 5).to_term(),
                        me,
                    ])
                }
            };
            self.mailbox.send(("bench", self.a.as_str()), order).await?;
            let done = self.expect("done").await?;
            let [_, ops, micros] = done.as_slice() else {
                return Err("bad done".into());
            };
            let ops: u64 = dist::FromTerm::from_term(ops.clone())?;
            let micros: u64 = dist::FromTerm::from_term(micros.clone())?;
            (ops, Duration::from_micros(micros))
        };
        let after = (cpu(client.os_pid), cpu(server_pid));
        Ok(Row {
            key: key.into(),
            what: what.into(),
            ops,
            elapsed,
            cpu: Some((
                (after.0.0 - before.0.0, after.0.1 - before.0.1),
                (after.1.0 - before.1.0, after.1.1 - before.1.1),
            )),
        })
    }

    /// The next tuple tagged `tag` in this process's mailbox.
    async fn expect(&mut self, tag: &str) -> Result<Vec<Term>, BoxError> {
        expect(&mut self.mailbox, tag).await
    }
}

async fn expect(mailbox: &mut DistMailbox, tag: &str) -> Result<Vec<Term>, BoxError> {
    loop {
        match tokio::time::timeout(TIMEOUT * 4, mailbox.recv()).await? {
            Some(Incoming::Message { term, .. }) => {
                if let Some(items) = as_tuple(&term)
                    && dist::as_atom(&items[0]) == Some(tag)
                {
                    return Ok(items.to_vec());
                }
            }
            Some(_) => {}
            None => return Err("node stopped".into()),
        }
    }
}

/// One row of the plan: key, what, client side, whether the server is
/// Erlang's, and what it does (given the 1 KiB payload).
type Planned<'a> = (&'a str, &'a str, &'a Side, bool, fn(&Term) -> Kind);

enum Kind {
    Calls,
    Concurrent,
    OneWay(Term),
}

async fn rust_calls(node: &DistNode, to: (&str, &str), n: u64) -> Result<u64, BoxError> {
    for _ in 0..100 {
        let _: Term = node.call(to, atom("x"), TIMEOUT).await?;
    }
    for _ in 0..n {
        let _: Term = node.call(to, atom("x"), TIMEOUT).await?;
    }
    Ok(n)
}

async fn rust_concurrent(node: &DistNode, to: (&str, &str), n: u64) -> Result<u64, BoxError> {
    let per = n / u64::from(CALLERS);
    let (name, peer) = (Arc::<str>::from(to.0), Arc::<str>::from(to.1));
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
    Ok(per * u64::from(CALLERS))
}

async fn rust_oneway(
    mailbox: &mut DistMailbox,
    sinks: &[String],
    node: &str,
    payload: &Term,
    n: u64,
) -> Result<u64, BoxError> {
    let each = n / sinks.len() as u64;
    let message = tuple(vec![atom("m"), payload.clone()]);
    for sink in sinks {
        let expect = tuple(vec![
            atom("expect"),
            each.to_term(),
            mailbox.pid().to_term(),
        ]);
        mailbox.send((sink.as_str(), node), expect).await?;
    }
    for i in 0..each * sinks.len() as u64 {
        let sink = &sinks[(i % sinks.len() as u64) as usize];
        mailbox.send((sink.as_str(), node), message.clone()).await?;
    }
    for _ in sinks {
        expect(mailbox, "drained").await?;
    }
    Ok(each * sinks.len() as u64)
}

/// `--serve NAME SINKS`: a Trellis node with an exported echo gen_server and
/// `SINKS` sink mailboxes; prints `ready`, runs until stdin closes.
async fn serve(name: String, sinks: u32) -> Result<(), BoxError> {
    let node = dist::start(DistOptions::short(name).cookie(COOKIE)).await?;
    trellis::nursery(|nursery| async move {
        let server = gen_server::start(&nursery, Echo).await?;
        node.export("echo", server)?;
        for i in 1..=sinks {
            let mut sink = node.register(&format!("sink{i}"))?;
            nursery.spawn(async move {
                while let Ok(order) = expect(&mut sink, "expect").await {
                    let [_, n, from] = order.as_slice() else {
                        break;
                    };
                    let (Ok(n), Ok(from)) = (
                        <u64 as dist::FromTerm>::from_term(n.clone()),
                        <ErlPid as dist::FromTerm>::from_term(from.clone()),
                    ) else {
                        break;
                    };
                    let mut left = n;
                    while left > 0 {
                        match sink.recv().await {
                            Some(Incoming::Message { .. }) => left -= 1,
                            Some(_) => {}
                            None => return,
                        }
                    }
                    let _ = sink
                        .send(&from, tuple(vec![atom("drained"), n.to_term()]))
                        .await;
                }
            });
        }
        println!("ready");
        // Until the harness goes (stdin closes).
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while stdin.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        nursery.cancel();
        Ok::<_, BoxError>(())
    })
    .await?;
    Ok(())
}

async fn bench() -> Result<(), BoxError> {
    let n: u64 = std::env::var("DIST_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let sinks: u32 = std::env::var("DIST_BENCH_SINKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let only: Option<Vec<String>> = std::env::var("DIST_BENCH_ROWS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |key: &str| only.as_ref().is_none_or(|o| o.iter().any(|k| k == key));
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
    let mut rows = Vec::new();
    if wanted("floor") {
        rows.push(tcp_floor(n).await?);
    }

    // The second Trellis node, its own OS process.
    let s_name = format!("bench_s_{id}");
    let mut s_child = Command::new(std::env::current_exe()?)
        .args(["--serve", &s_name, &sinks.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut s_lines = BufReader::new(s_child.stdout.take().ok_or("no stdout")?).lines();
    ready(&mut s_lines).await?;
    let s_pid = s_child.id().ok_or("serve ended")?;

    // Erlang node B: an echo server and sinks; node A: runs Erlang's rows.
    let b_name = format!("bench_b_{id}");
    let (b_child, mut b_lines) = erl(
        &beams,
        &b_name,
        &format!("dist_peer:start(), dist_peer:sinks({sinks})."),
    )?;
    ready(&mut b_lines).await?;
    let a_name = format!("bench_a_{id}");
    let (a_child, mut a_lines) = erl(&beams, &a_name, "dist_peer:bench_server().")?;
    ready(&mut a_lines).await?;

    let r = dist::start(DistOptions::short(format!("bench_r_{id}")).cookie(COOKIE)).await?;
    let mailbox = r.mailbox()?;
    let mut bench = Bench {
        n,
        sinks,
        mailbox,
        a: format!("{a_name}@{}", host()),
        a_pid: a_child.id().ok_or("A ended")?,
        b: format!("{b_name}@{}", host()),
        b_pid: b_child.id().ok_or("B ended")?,
        s: format!("{s_name}@{}", host()),
        s_pid,
        r,
    };
    let rust = Side {
        rust: true,
        os_pid: id,
    };
    let erlang = Side {
        rust: false,
        os_pid: bench.a_pid,
    };
    let kib = "a".repeat(1024).to_term();
    let plan: Vec<Planned<'_>> = vec![
        (
            "call_ee",
            "call round trip Erlang→Erlang",
            &erlang,
            true,
            |_| Kind::Calls,
        ),
        (
            "call_er",
            "call round trip Erlang→Rust",
            &erlang,
            false,
            |_| Kind::Calls,
        ),
        (
            "call_re",
            "call round trip Rust→Erlang",
            &rust,
            true,
            |_| Kind::Calls,
        ),
        (
            "call_rr",
            "call round trip Rust→Rust",
            &rust,
            false,
            |_| Kind::Calls,
        ),
        (
            "conc_ee",
            "calls, 64 callers, Erlang→Erlang",
            &erlang,
            true,
            |_| Kind::Concurrent,
        ),
        (
            "conc_er",
            "calls, 64 callers, Erlang→Rust",
            &erlang,
            false,
            |_| Kind::Concurrent,
        ),
        (
            "conc_re",
            "calls, 64 callers, Rust→Erlang",
            &rust,
            true,
            |_| Kind::Concurrent,
        ),
        (
            "conc_rr",
            "calls, 64 callers, Rust→Rust",
            &rust,
            false,
            |_| Kind::Concurrent,
        ),
        (
            "small_ee",
            "one-way small Erlang→Erlang",
            &erlang,
            true,
            |_| Kind::OneWay(atom("x")),
        ),
        (
            "small_re",
            "one-way small Rust→Erlang",
            &rust,
            true,
            |_| Kind::OneWay(atom("x")),
        ),
        (
            "small_er",
            "one-way small Erlang→Rust",
            &erlang,
            false,
            |_| Kind::OneWay(atom("x")),
        ),
        (
            "small_rr",
            "one-way small Rust→Rust",
            &rust,
            false,
            |_| Kind::OneWay(atom("x")),
        ),
        (
            "kib_ee",
            "one-way 1 KiB Erlang→Erlang",
            &erlang,
            true,
            |k| Kind::OneWay(k.clone()),
        ),
        ("kib_re", "one-way 1 KiB Rust→Erlang", &rust, true, |k| {
            Kind::OneWay(k.clone())
        }),
        (
            "kib_er",
            "one-way 1 KiB Erlang→Rust",
            &erlang,
            false,
            |k| Kind::OneWay(k.clone()),
        ),
        ("kib_rr", "one-way 1 KiB Rust→Rust", &rust, false, |k| {
            Kind::OneWay(k.clone())
        }),
    ];
    for (key, what, client, erlang_server, kind) in plan {
        if wanted(key) {
            rows.push(
                bench
                    .row(key, what, client, erlang_server, kind(&kib))
                    .await?,
            );
        }
    }

    println!(
        "| key | measure | ops | per op | rate | client CPU/op | server CPU/op | client slices/op | server slices/op |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        row.print();
    }
    drop(s_child.stdin.take());
    let _ = tokio::time::timeout(TIMEOUT, s_child.wait()).await;
    bench.r.shutdown();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let run = |future: std::pin::Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>| {
        // `DIST_BENCH_THREADS=1`: a current-thread runtime; else tokio's
        // multi-thread default.
        match std::env::var("DIST_BENCH_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
        {
            Some(1) => trellis::RunOptions::new().current_thread().run(future)?,
            Some(n) => trellis::RunOptions::new().worker_threads(n).run(future)?,
            None => trellis::run(future),
        }
    };
    if args.get(1).map(String::as_str) == Some("--serve") {
        let name = args.get(2).ok_or("--serve NAME SINKS")?.clone();
        let sinks = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
        return run(Box::pin(serve(name, sinks)));
    }
    run(Box::pin(bench()))
}
