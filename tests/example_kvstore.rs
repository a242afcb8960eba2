//! End-to-end tests of `examples/kvstore` with the real `redis-cli` and
//! `redis-benchmark` (Debian's `redis-tools`; `.ci/run` installs them).
//!
//! Without the tools the tests are skipped with a note, unless
//! `TRELLIS_REQUIRE_REDIS_TOOLS` is set, as `.ci/run` does.
//!
//! The server runs in this process, on a free port, exactly as the example
//! builds it (the application's supervision tree) minus the node.

#![allow(unreachable_pub, dead_code)]

#[path = "../examples/kvstore/commands.rs"]
mod commands;
#[path = "../examples/kvstore/connection.rs"]
mod connection;
#[path = "../examples/kvstore/resp.rs"]
mod resp;
#[path = "../examples/kvstore/server.rs"]
mod server;
#[path = "../examples/kvstore/shard.rs"]
mod shard;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use trellis::{TaskStatus, nursery};

use crate::resp::Limits;
use crate::server::{Config, kvstore_app};

/// Whether `redis-cli` and `redis-benchmark` can run. Without them these
/// tests are skipped with a note, so that `cargo test` works on a fresh
/// machine, unless `TRELLIS_REQUIRE_REDIS_TOOLS` is set (`.ci/run` sets it:
/// there a missing tool is a failure).
fn redis_tools_present() -> bool {
    let present = ["redis-cli", "redis-benchmark"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if !present {
        assert!(
            std::env::var_os("TRELLIS_REQUIRE_REDIS_TOOLS").is_none(),
            "redis-cli and redis-benchmark are required (Debian: apt-get install redis-tools)"
        );
        eprintln!("skipped: redis-cli / redis-benchmark not found (Debian: redis-tools)");
    }
    present
}

/// Runs `body` against a fresh server with `shards` shards and `DEBUG PANIC`
/// enabled; stops it after.
async fn with_server<F, Fut>(name: &str, shards: usize, limits: Limits, body: F)
where
    F: FnOnce(SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    with_server_debug(name, shards, limits, true, body).await;
}

/// [`with_server`], choosing whether `DEBUG PANIC` is served.
async fn with_server_debug<F, Fut>(name: &str, shards: usize, limits: Limits, debug: bool, body: F)
where
    F: FnOnce(SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if !redis_tools_present() {
        return;
    }
    let bound = Arc::new(Mutex::new(None));
    let config = Config {
        name: name.into(),
        addr: "127.0.0.1:0".into(),
        shards,
        limits,
        max_connections: 1000,
        debug_command: debug,
        reserved_fds: 32,
    };
    let seen = bound.clone();
    let run = nursery(|n| async move {
        n.start(|status: TaskStatus<()>| kvstore_app(config, status, Some(seen)))
            .await
            .unwrap();
        let addr = bound.lock().unwrap().expect("bound before started");
        body(addr).await;
        // Every part of the server honours a graceful stop: an hour of grace
        // is never waited for.
        n.shutdown(Duration::from_secs(3600));
    });
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the server did not stop on shutdown")
        .unwrap();
}

/// `redis-cli -p PORT args…`, its stdout (replies, one per line; an error
/// reply is followed by an empty line).
async fn cli(addr: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-h")
        .arg(addr.ip().to_string())
        .arg("-p")
        .arg(addr.port().to_string())
        .args(args)
        .output()
        .await
        .expect("redis-cli is installed (Debian: redis-tools; .ci/run installs it)");
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Sends raw bytes on one connection and reads until `expected` bytes came.
async fn raw(stream: &mut TcpStream, request: &[u8], expected: usize) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    let mut reply = vec![0; expected];
    stream.read_exact(&mut reply).await.unwrap();
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_speaks_every_command() {
    with_server(
        "redis_cli_speaks_every_command",
        2,
        Limits::default(),
        |addr| async move {
            let cases: &[(&[&str], &str)] = &[
                (&["PING"], "PONG\n"),
                (&["PING", "hi"], "hi\n"),
                (&["ECHO", "hello world"], "hello world\n"),
                (&["SET", "k", "v"], "OK\n"),
                (&["GET", "k"], "v\n"),
                (&["GET", "missing"], "\n"),
                (&["SET", "k", "w", "NX"], "\n"),
                (&["SET", "k", "w", "XX"], "OK\n"),
                (&["SET", "fresh", "x", "XX"], "\n"),
                (
                    &["SET", "k", "v", "EX", "0"],
                    "ERR invalid expire time in 'set' command\n\n",
                ),
                (&["INCR", "n"], "1\n"),
                (&["INCRBY", "n", "41"], "42\n"),
                (&["DECR", "n"], "41\n"),
                (&["DECRBY", "n", "1"], "40\n"),
                (
                    &["INCR", "k"],
                    "ERR value is not an integer or out of range\n\n",
                ),
                (&["MSET", "a", "1", "b", "2", "c", "3"], "OK\n"),
                (&["MGET", "a", "b", "nope", "c"], "1\n2\n\n3\n"),
                (&["EXISTS", "a", "b", "nope"], "2\n"),
                (&["DEL", "a", "nope"], "1\n"),
                (&["DBSIZE"], "4\n"),
                (&["CONFIG", "GET", "save"], "save\n\n"),
                (&["COMMAND"], "\n"),
                (
                    &["NOSUCH", "x"],
                    "ERR unknown command 'NOSUCH', with args beginning with: 'x' \n\n",
                ),
                (
                    &["GET"],
                    "ERR wrong number of arguments for 'get' command\n\n",
                ),
                (&["FLUSHDB"], "OK\n"),
                (&["DBSIZE"], "0\n"),
            ];
            for (args, expected) in cases {
                assert_eq!(cli(addr, args).await, *expected, "{args:?}");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_after_px() {
    with_server(
        "keys_expire_after_px",
        2,
        Limits::default(),
        |addr| async move {
            assert_eq!(
                cli(addr, &["SET", "short", "lived", "PX", "50"]).await,
                "OK\n"
            );
            assert_eq!(cli(addr, &["GET", "short"]).await, "lived\n");
            // Real time: the server runs on the wall clock like any server. Poll
            // until it expires rather than sleep a guessed time.
            let mut tries = 0;
            while cli(addr, &["GET", "short"]).await != "\n" {
                tries += 1;
                assert!(tries < 200, "the key never expired");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_even_split_anywhere() {
    with_server(
        "pipelined_requests_are_answered_in_order_even_split_anywhere",
        3,
        Limits::default(),
        |addr| async move {
            let mut request = Vec::new();
            let mut expected = Vec::new();
            for i in 0..200 {
                let key = format!("key{i}");
                let value = format!("value{i}");
                request.extend_from_slice(
                    format!(
                        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                        key.len(),
                        value.len()
                    )
                    .as_bytes(),
                );
                expected.extend_from_slice(b"+OK\r\n");
                request.extend_from_slice(
                    format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
                );
                expected.extend_from_slice(format!("${}\r\n{value}\r\n", value.len()).as_bytes());
                request.extend_from_slice(b"INCR counter\r\n");
                expected.extend_from_slice(format!(":{}\r\n", i + 1).as_bytes());
            }
            // All at once, then byte-split in odd chunks.
            let mut stream = TcpStream::connect(addr).await.unwrap();
            assert_eq!(raw(&mut stream, &request, expected.len()).await, expected);
            let mut stream = TcpStream::connect(addr).await.unwrap();
            assert_eq!(raw(&mut stream, b"FLUSHDB\r\n", 5).await, b"+OK\r\n");
            for chunk in request.chunks(7) {
                stream.write_all(chunk).await.unwrap();
            }
            let mut reply = vec![0; expected.len()];
            stream.read_exact(&mut reply).await.unwrap();
            assert_eq!(reply, expected);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_closes_only_its_connection() {
    with_server(
        "a_malformed_request_closes_only_its_connection",
        2,
        Limits::default(),
        |addr| async move {
            let mut good = TcpStream::connect(addr).await.unwrap();
            assert_eq!(raw(&mut good, b"SET a 1\r\n", 5).await, b"+OK\r\n");

            let mut bad = TcpStream::connect(addr).await.unwrap();
            bad.write_all(b"PING\r\n*1\r\n+oops\r\n").await.unwrap();
            let mut reply = Vec::new();
            bad.read_to_end(&mut reply).await.unwrap();
            let reply = String::from_utf8(reply).unwrap();
            assert!(
                reply.starts_with("+PONG\r\n-ERR Protocol error"),
                "{reply:?}"
            );

            // Oversize bulk announced: refused before any of it is buffered.
            let mut huge = TcpStream::connect(addr).await.unwrap();
            huge.write_all(b"*2\r\n$3\r\nGET\r\n$999999999999\r\n")
                .await
                .unwrap();
            let mut reply = Vec::new();
            huge.read_to_end(&mut reply).await.unwrap();
            assert!(String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error"));

            // A client gone mid-frame.
            let mut gone = TcpStream::connect(addr).await.unwrap();
            gone.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nz").await.unwrap();
            drop(gone);

            assert_eq!(raw(&mut good, b"GET a\r\n", 7).await, b"$1\r\n1\r\n");
            assert_eq!(cli(addr, &["GET", "z"]).await, "\n");
        },
    )
    .await;
}

/// Reads one reply line (`+OK\r\n`, `-ERR …\r\n`, `:1\r\n`) byte by byte.
async fn reply_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

/// Asks `args` with redis-cli until the answer is not a shard-unavailable
/// error (a restarted shard registers its name again within moments).
async fn cli_once_shard_is_back(addr: SocketAddr, args: &[&str]) -> String {
    let retry = async {
        loop {
            let answer = cli(addr, args).await;
            if !answer.contains("shard unavailable") {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), retry)
        .await
        .expect("the shard never came back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_shard_is_restarted_and_traffic_goes_on() {
    with_server(
        "a_crashed_shard_is_restarted_and_traffic_goes_on",
        2,
        Limits::default(),
        |addr| async move {
            assert_eq!(cli(addr, &["SET", "victim", "1"]).await, "OK\n");
            // Traffic on its own connection, before, during and after the
            // crash: it reports when it is flowing, then goes on until it
            // has seen 100 more successes after the crash.
            let (flowing_tx, flowing) = tokio::sync::oneshot::channel();
            let (crashed, mut crashed_rx) = tokio::sync::watch::channel(false);
            let traffic = tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let (mut ok_before, mut ok_after, mut errors) = (0, 0, Vec::new());
                let mut flowing_tx = Some(flowing_tx);
                for i in 0.. {
                    stream
                        .write_all(format!("SET t{i} {i}\r\n").as_bytes())
                        .await
                        .unwrap();
                    let line = reply_line(&mut stream).await;
                    let after = *crashed_rx.borrow_and_update();
                    match (line.as_str(), after) {
                        ("+OK\r\n", false) => ok_before += 1,
                        ("+OK\r\n", true) => ok_after += 1,
                        _ => errors.push(line),
                    }
                    if ok_before == 100 {
                        flowing_tx.take().map(|tx| tx.send(()));
                    }
                    if ok_after == 100 {
                        break;
                    }
                }
                errors
            });
            flowing.await.unwrap();
            let crash = cli(addr, &["DEBUG", "PANIC", "victim"]).await;
            assert_eq!(crash.trim_end(), "ERR shard unavailable, try again");
            crashed.send(true).unwrap();
            // The connection survived; the only errors it saw name the crash.
            let errors = traffic.await.unwrap();
            assert!(
                errors
                    .iter()
                    .all(|e| e.starts_with("-ERR shard unavailable")),
                "{errors:?}"
            );
            // The shard is back under its name, empty: memory only.
            assert_eq!(cli_once_shard_is_back(addr, &["GET", "victim"]).await, "\n");
            assert_eq!(cli(addr, &["SET", "victim", "2"]).await, "OK\n");
            assert_eq!(cli(addr, &["GET", "victim"]).await, "2\n");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commands_and_quit_end_the_connection_after_answering() {
    with_server(
        "inline_commands_and_quit_end_the_connection_after_answering",
        1,
        Limits::default(),
        |addr| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"SET  spaced  \"two words\"\r\nGET spaced\r\nQUIT\r\nPING\r\n")
                .await
                .unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.unwrap();
            // The PING after QUIT is never answered: the server closed.
            assert_eq!(reply, b"+OK\r\n$9\r\ntwo words\r\n+OK\r\n");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_closes_its_open_connections() {
    if !redis_tools_present() {
        return;
    }
    let idle = Arc::new(Mutex::new(None));
    let kept = idle.clone();
    with_server(
        "a_stopping_server_closes_its_open_connections",
        1,
        Limits::default(),
        |addr| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            assert_eq!(raw(&mut stream, b"PING\r\n", 7).await, b"+PONG\r\n");
            *kept.lock().unwrap() = Some(stream);
        },
    )
    .await;
    // The server has stopped with the client still connected: it sees EOF.
    let mut stream = idle.lock().unwrap().take().unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_panic_is_refused_unless_enabled() {
    with_server_debug(
        "debug_panic_is_refused_unless_enabled",
        1,
        Limits::default(),
        false,
        |addr| async move {
            assert_eq!(cli(addr, &["SET", "k", "v"]).await, "OK\n");
            let refused = cli(addr, &["DEBUG", "PANIC", "k"]).await;
            assert!(
                refused.starts_with("ERR DEBUG command not allowed"),
                "{refused}"
            );
            // Nothing crashed: the key is still there.
            assert_eq!(cli(addr, &["GET", "k"]).await, "v\n");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_back_only_itself() {
    with_server(
        "a_slow_reader_holds_back_only_itself",
        2,
        Limits::default(),
        |addr| async move {
            let big = "x".repeat(16 * 1024);
            assert_eq!(cli(addr, &["SET", "big", &big]).await, "OK\n");
            // 2,000 GETs of 16 KiB (32 MiB of replies, far past the socket
            // buffers and the transport's high-water mark) that nobody
            // reads for now: the server stops reading this client once its
            // replies back up.
            let mut slow = TcpStream::connect(addr).await.unwrap();
            let (mut slow_read, mut slow_write) = slow.split();
            let requests = b"GET big\r\n".repeat(2000);
            slow_write.write_all(&requests).await.unwrap();
            // Meanwhile everybody else is served.
            for i in 0..20 {
                let key = format!("other{i}");
                assert_eq!(cli(addr, &["SET", &key, "1"]).await, "OK\n");
                assert_eq!(cli(addr, &["GET", &key]).await, "1\n");
            }
            // Now the slow client reads: every reply arrives, whole and in
            // order.
            let expected = format!("${}\r\n{big}\r\n", big.len());
            let mut reply = vec![0; expected.len()];
            for _ in 0..2000 {
                slow_read.read_exact(&mut reply).await.unwrap();
                assert!(reply == expected.as_bytes());
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_clean_plain_and_pipelined() {
    with_server(
        "redis_benchmark_runs_clean_plain_and_pipelined",
        2,
        Limits::default(),
        |addr| async move {
            for pipeline in ["1", "16"] {
                let output = Command::new("redis-benchmark")
                    .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
                    .args([
                        "-q",
                        "-t",
                        "ping,set,get,incr,mset",
                        "-n",
                        "2000",
                        "-c",
                        "10",
                        "-P",
                        pipeline,
                    ])
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .expect("redis-benchmark is installed (Debian: redis-tools)");
                assert!(output.status.success(), "{output:?}");
                let text = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
                for test in ["PING_INLINE", "SET", "GET", "INCR", "MSET"] {
                    assert!(
                        text.lines()
                            .any(|l| l.starts_with(test) && l.contains("requests per second")),
                        "{test} missing with -P {pipeline}:\n{text}"
                    );
                }
            }
            // INCR ran 2 × 2000 times on one key.
            assert_eq!(cli(addr, &["GET", "counter:__rand_int__"]).await, "4000\n");
        },
    )
    .await;
}
