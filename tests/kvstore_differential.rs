//! The kvstore against a real `redis-server`: the same random command
//! streams — pipelined, cut into random chunks — go to both, and the
//! replies are compared byte for byte wherever Redis is deterministic.
//!
//! The server under test runs in this process; `redis-server` (Debian's
//! `redis-server` package, which `.ci/run` installs) is started by the test
//! on a free port. Without it the test is skipped with a note, unless
//! `TRELLIS_REQUIRE_REDIS_TOOLS` is set.
//!
//! What is not compared byte for byte, and why: `PTTL` (milliseconds pass
//! between the two servers: only the reply's kind is compared, on its own
//! and inside an `EXEC`'s reply); `KEYS`
//! patterns match one key at most (several come in hash order); absolute
//! deadlines are in the past or invalid (a future one's `TTL` in seconds
//! rounds on the millisecond each server reads it at). Left out of the streams: `RANDOMKEY`,
//! `SCAN`, `INFO`, `CLIENT`, `HELLO` (ids, cursors and texts differ by
//! design), and `INCRBYFLOAT` beyond 2^53 or with non-binary fractions
//! (Redis computes in a long double; halves and quarters of small numbers
//! read the same in both), so it gets a key of its own.

#![allow(unreachable_pub, dead_code)]

#[path = "../examples/kvstore/commands.rs"]
mod commands;
#[path = "../examples/kvstore/connection.rs"]
mod connection;
#[path = "kvstore/harness.rs"]
mod harness;
#[path = "../examples/kvstore/resp.rs"]
mod resp;
#[path = "../examples/kvstore/server.rs"]
mod server;
#[path = "../examples/kvstore/shard.rs"]
mod shard;

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::{RedisServer, Rng, config, encode, read_replies, tool_present, with_server};

const KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "{x}a", "n"];

fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => b"".to_vec(),
        1 => b"0".to_vec(),
        2 => b"-17".to_vec(),
        3 => b"9223372036854775807".to_vec(),
        4 => b"-9223372036854775808".to_vec(),
        5 => b"3.5".to_vec(),
        6 => b"007".to_vec(),
        // Binary, with CR and LF inside.
        7 => (0..rng.below(12)).map(|_| rng.next() as u8).collect(),
        _ => format!("v{}", rng.below(1000)).into_bytes(),
    }
}

fn int(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&[
        "1",
        "-1",
        "0",
        "42",
        "+5",
        "-0",
        "007",
        "x",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "1000",
        "-1000",
    ])
    .as_bytes()
    .to_vec()
}

fn key(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&KEYS).as_bytes().to_vec()
}

/// A time argument: long (no key may expire while the test runs: the two
/// servers would see it at different moments), in the past,
/// sometimes invalid or overflowing.
fn time(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&[
        "100000",
        "500000",
        "1000000",
        "0",
        "-5",
        "9223372036854775807",
        "9223372036854775",
        "x",
        "+100",
    ])
    .as_bytes()
    .to_vec()
}

fn command(rng: &mut Rng) -> Vec<Vec<u8>> {
    let s = |t: &str| t.as_bytes().to_vec();
    let k = key(rng);
    match rng.below(44) {
        0..=3 => vec![s("GET"), k],
        4..=6 => {
            let mut args = vec![s("SET"), k, value(rng)];
            for _ in 0..rng.below(3) {
                match rng.below(9) {
                    0 => args.push(s("NX")),
                    1 => args.push(s("XX")),
                    2 => args.push(s("GET")),
                    3 => args.push(s("KEEPTTL")),
                    4 => args.extend([s("EX"), time(rng)]),
                    5 => args.extend([s("PX"), time(rng)]),
                    // No future absolute deadline: its TTL in seconds rounds
                    // on the millisecond each server reads it at.
                    6 => args.extend([s("EXAT"), s(rng.pick(&["0", "-1", "x"]))]),
                    // Not in the past either: Redis 7.0 keeps such a key
                    // until its sampler finds it, and DBSIZE counts it.
                    7 => args.extend([s("PXAT"), s(rng.pick(&["-7", "0", "x"]))]),
                    _ => args.push(s("BOGUS")),
                }
            }
            args
        }
        7 => vec![s("SETNX"), k, value(rng)],
        8 => vec![s(rng.pick(&["SETEX", "PSETEX"])), k, time(rng), value(rng)],
        9 => vec![s("GETSET"), k, value(rng)],
        10 => vec![s("GETDEL"), k],
        11 => {
            let mut args = vec![s("GETEX"), k];
            match rng.below(4) {
                0 => args.push(s("PERSIST")),
                1 => args.extend([s("EX"), time(rng)]),
                2 => args.extend([s("PXAT"), s(rng.pick(&["0", "100000"]))]),
                _ => {}
            }
            args
        }
        12 => vec![s("APPEND"), k, value(rng)],
        13 => vec![s("STRLEN"), k],
        14 => vec![s("GETRANGE"), k, int(rng), int(rng)],
        15 => vec![s("SETRANGE"), k, int(rng), value(rng)],
        16 => vec![s(rng.pick(&["INCR", "DECR"])), k],
        17 | 18 => vec![s(rng.pick(&["INCRBY", "DECRBY"])), k, int(rng)],
        // A key of its own: Redis's long double and an f64 part ways
        // past 2^53.
        19 => vec![
            s("INCRBYFLOAT"),
            s("f"),
            s(rng.pick(&["1.5", "-0.25", "3", "x", "inf"])),
        ],
        20 => {
            let mut args = vec![s(rng.pick(&["DEL", "EXISTS", "TOUCH", "UNLINK", "MGET"]))];
            for _ in 0..1 + rng.below(4) {
                args.push(key(rng));
            }
            args
        }
        21 | 22 => {
            let mut args = vec![s(rng.pick(&["MSET", "MSETNX"]))];
            for _ in 0..1 + rng.below(3) {
                args.extend([key(rng), value(rng)]);
            }
            if rng.below(8) == 0 {
                args.pop();
            }
            args
        }
        23 | 24 => {
            let name = rng.pick(&["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]);
            let at = match name {
                // No future absolute deadline (see `SET … EXAT`): past,
                // invalid, or overflowing once made milliseconds.
                "EXPIREAT" => {
                    s(rng.pick(&["100000", "0", "-5", "x", "+100", "9223372036854775807"]))
                }
                "PEXPIREAT" => s(rng.pick(&["100000", "0", "-5", "x", "+100"])),
                _ => time(rng),
            };
            let mut args = vec![s(name), k, at];
            if rng.below(2) == 0 {
                args.push(s(rng.pick(&["NX", "XX", "GT", "LT", "BAD"])));
            }
            if rng.below(6) == 0 {
                args.push(s(rng.pick(&["NX", "XX", "GT", "LT"])));
            }
            args
        }
        25 => vec![s("TTL"), k],
        26 => vec![s("PTTL"), k],
        27 => vec![s("PERSIST"), k],
        28 => vec![s("TYPE"), k],
        29 => vec![s(rng.pick(&["RENAME", "RENAMENX"])), k, key(rng)],
        30 => vec![s("DBSIZE")],
        // Patterns matching one key at most: the order of several is the
        // hash table's (inside EXEC too, where the reply is not sorted).
        31 => vec![
            s("KEYS"),
            s(rng.pick(&["k0", "n", "k[1]", "none*", "\\{x}a", "{x}?"])),
        ],
        32 => vec![s("SELECT"), s(rng.pick(&["0", "1", "x", "00"]))],
        33 => vec![s("FLUSHDB"), s(rng.pick(&["bogus", "ASYNC", "SYNC"]))],
        34 => vec![s("ECHO"), value(rng)],
        35 => vec![s("PING")],
        36 => vec![s("NOSUCH"), value(rng), value(rng)],
        37 => vec![s(rng.pick(&["GET", "SET", "MGET", "EXPIRE", "TTL"]))],
        38 => vec![s("MULTI")],
        39 => vec![s("EXEC")],
        40 => vec![s("DISCARD")],
        41 => vec![s("WATCH"), k],
        42 => vec![s("UNWATCH")],
        _ => vec![s("FLUSHDB")],
    }
}

/// Normalises what differs by design: `PTTL`'s milliseconds, `KEYS`'
/// order — also inside an `EXEC`'s reply, whose items answer `queued`.
fn normalise(request: &[Vec<u8>], reply: Vec<u8>, queued: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let name = request[0].to_ascii_uppercase();
    if name == b"PTTL" && reply.starts_with(b":") && !reply.starts_with(b":-") {
        return b":<positive>".to_vec();
    }
    if name == b"KEYS" && reply.starts_with(b"*") {
        let mut items = array_items(&reply).1;
        items.sort();
        return items.concat();
    }
    if name == b"EXEC" && reply.starts_with(b"*") && !reply.starts_with(b"*-") {
        let (head, items) = array_items(&reply);
        assert_eq!(
            items.len(),
            queued.len(),
            "EXEC answers each queued command"
        );
        let mut normalised = head;
        for (request, item) in queued.iter().zip(items) {
            normalised.extend(normalise(request, item, &[]));
        }
        return normalised;
    }
    reply
}

/// An array reply's header line and its items' bytes.
fn array_items(reply: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let head = memchr::memmem::find(reply, b"\r\n").unwrap() + 2;
    let mut items = Vec::new();
    let mut at = head;
    while at < reply.len() {
        let len = harness::reply_len(&reply[at..]).unwrap();
        items.push(reply[at..at + len].to_vec());
        at += len;
    }
    (reply[..head].to_vec(), items)
}

/// Follows a connection's transaction from redis-server's replies: which
/// commands an `EXEC` will answer (`None` outside `MULTI`).
fn track_transaction(queued: &mut Option<Vec<Vec<Vec<u8>>>>, request: &[Vec<u8>], reply: &[u8]) {
    let name = request[0].to_ascii_uppercase();
    match queued {
        None if name == b"MULTI" && reply == b"+OK\r\n" => *queued = Some(Vec::new()),
        Some(_) if name == b"EXEC" || name == b"DISCARD" => *queued = None,
        Some(commands) if reply == b"+QUEUED\r\n" => commands.push(request.to_vec()),
        _ => {}
    }
}

/// Sends `requests` to `addr` in one pipeline, cut where `cuts` say, and
/// returns the replies.
async fn exchange(
    stream: &mut TcpStream,
    wire: &[u8],
    cuts: &[usize],
    count: usize,
) -> Vec<Vec<u8>> {
    let mut from = 0;
    for &cut in cuts {
        stream.write_all(&wire[from..cut]).await.unwrap();
        stream.flush().await.unwrap();
        from = cut;
    }
    stream.write_all(&wire[from..]).await.unwrap();
    let mut pending = Vec::new();
    let replies = read_replies(stream, &mut pending, count).await;
    assert!(pending.is_empty(), "no reply beyond those asked for");
    replies
}

async fn compare_streams(kvstore: SocketAddr, redis: SocketAddr, seed: u64, rounds: usize) {
    let mut rng = Rng::new(seed);
    let mut ours = TcpStream::connect(kvstore).await.unwrap();
    let mut theirs = TcpStream::connect(redis).await.unwrap();
    // Each piece goes out at once (no Nagle delay).
    ours.set_nodelay(true).unwrap();
    theirs.set_nodelay(true).unwrap();
    // The commands queued since `MULTI`, which an `EXEC` answers.
    let mut queued: Option<Vec<Vec<Vec<u8>>>> = None;
    for round in 0..rounds {
        let requests: Vec<Vec<Vec<u8>>> =
            (0..1 + rng.below(12)).map(|_| command(&mut rng)).collect();
        let wire: Vec<u8> = requests
            .iter()
            .flat_map(|r| encode(&r.iter().map(|a| &a[..]).collect::<Vec<_>>()))
            .collect();
        let mut cuts: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(wire.len())).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let expected = exchange(&mut theirs, &wire, &cuts, requests.len()).await;
        let got = exchange(&mut ours, &wire, &cuts, requests.len()).await;
        for ((request, expected), got) in requests.iter().zip(expected).zip(got) {
            let answered = match &queued {
                Some(commands) if request[0].eq_ignore_ascii_case(b"EXEC") => commands.clone(),
                _ => Vec::new(),
            };
            track_transaction(&mut queued, request, &expected);
            let expected = normalise(request, expected, &answered);
            let got = normalise(request, got, &answered);
            assert!(
                expected == got,
                "seed {seed}, round {round}: {:?}\n redis-server: {:?}\n kvstore:      {:?}",
                request
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&got),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_pipelined_streams_get_the_replies_redis_server_gives() {
    if !tool_present("redis-server") {
        return;
    }
    let redis = RedisServer::start().await;
    let redis_addr = redis.addr;
    with_server(config("differential", 3), move |addr| async move {
        for seed in 1..=80 {
            // Both start empty.
            for target in [addr, redis_addr] {
                let mut stream = TcpStream::connect(target).await.unwrap();
                harness::request(&mut stream, &[b"FLUSHDB"]).await;
            }
            compare_streams(addr, redis_addr, seed, 150).await;
        }
    })
    .await;
    drop(redis);
}
