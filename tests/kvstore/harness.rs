//! What the kvstore test files share: an in-process server, a
//! `redis-server` started for a test, and a raw RESP client that reads
//! replies whole (a reply parser that knows where each reply ends).
//!
//! A file uses it with the example's modules declared at its root:
//!
//! ```text
//! #[path = "../examples/kvstore/commands.rs"] mod commands;  (and the others)
//! #[path = "kvstore/harness.rs"] mod harness;
//! ```
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis::{TaskStatus, nursery};

use crate::resp::Limits;
use crate::server::{Config, kvstore_app};

/// Whether `tool --version` runs. Without it, a test is skipped with a note
/// — unless `TRELLIS_REQUIRE_REDIS_TOOLS` is set (`.ci/run` sets it), where
/// a missing tool is a failure.
pub(crate) fn tool_present(tool: &str) -> bool {
    let present = std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !present {
        assert!(
            std::env::var_os("TRELLIS_REQUIRE_REDIS_TOOLS").is_none(),
            "{tool} is required (Debian: apt-get install redis-server redis-tools)"
        );
        eprintln!("skipped: {tool} not found (Debian: redis-server / redis-tools)");
    }
    present
}

/// A server configuration for tests: `shards` shards, a free port.
pub(crate) fn config(name: &str, shards: usize) -> Config {
    Config {
        name: name.into(),
        addr: "127.0.0.1:0".into(),
        shards,
        limits: Limits::default(),
        max_connections: 1000,
        debug_command: true,
        reserved_fds: 32,
    }
}

/// Runs `body` against a fresh in-process server; stops it after.
pub(crate) async fn with_server<F, Fut>(config: Config, body: F)
where
    F: FnOnce(SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let bound = Arc::new(Mutex::new(None));
    let seen = bound.clone();
    let run = nursery(|n| async move {
        n.start(|status: TaskStatus<()>| kvstore_app(config, status, Some(seen)))
            .await
            .unwrap();
        let addr = bound.lock().unwrap().expect("bound before started");
        body(addr).await;
        n.shutdown(Duration::from_secs(3600));
    });
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the server did not stop on shutdown")
        .unwrap();
}

/// A `redis-server` on a free port, persistence off, one database (so that
/// `SELECT 1` is refused as kvstore refuses it); killed on drop.
pub(crate) struct RedisServer {
    child: std::process::Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`.
    pub(crate) async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--databases", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        for _ in 0..200 {
            if let Ok(mut stream) = TcpStream::connect(server.addr).await {
                if request(&mut stream, &[b"PING"]).await == b"+PONG\r\n" {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on {}", server.addr);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Encodes a request as a RESP array of bulk strings.
pub(crate) fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The length of the first whole reply in `buf`, if it has come.
pub(crate) fn reply_len(buf: &[u8]) -> Option<usize> {
    let line = memchr::memmem::find(buf, b"\r\n")?;
    let head = std::str::from_utf8(&buf[1..line]).ok();
    match buf.first()? {
        b'+' | b'-' | b':' => Some(line + 2),
        b'$' => {
            let n: i64 = head?.parse().ok()?;
            if n < 0 {
                return Some(line + 2);
            }
            let end = line + 2 + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head?.parse().ok()?;
            let mut at = line + 2;
            for _ in 0..n.max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        other => panic!("not a reply: {:?}", *other as char),
    }
}

/// Reads `count` whole replies from `stream` (with whatever was left in
/// `pending` from before); returns each reply's bytes.
pub(crate) async fn read_replies(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    count: usize,
) -> Vec<Vec<u8>> {
    let mut replies = Vec::with_capacity(count);
    let mut chunk = vec![0; 64 * 1024];
    while replies.len() < count {
        if let Some(len) = reply_len(pending) {
            replies.push(pending.drain(..len).collect());
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a reply within 10 s")
            .expect("the connection stays up");
        assert!(n > 0, "the server closed the connection");
        pending.extend_from_slice(&chunk[..n]);
    }
    replies
}

/// Sends one request and returns its reply.
pub(crate) async fn request(stream: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    stream.write_all(&encode(args)).await.unwrap();
    let mut pending = Vec::new();
    read_replies(stream, &mut pending, 1).await.remove(0)
}

/// Connects and checks the server answers `PING` on a fresh connection.
pub(crate) async fn ping_fresh(addr: SocketAddr) {
    let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .expect("connect within 10 s")
        .expect("the server accepts");
    assert_eq!(request(&mut stream, &[b"PING"]).await, b"+PONG\r\n");
}

/// A small deterministic random source (xorshift), so that a failing
/// stream can be replayed from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    /// A source from `seed` (not 0).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
