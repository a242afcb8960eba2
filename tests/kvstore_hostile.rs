//! The kvstore under hostile and careless clients: overflowing numbers,
//! replies smuggled in error texts, malformed frames, slow readers,
//! trickled requests, connection storms, and running out of file
//! descriptors (in a child process with a lowered `ulimit -n`). Throughout,
//! a fresh connection gets `PONG` and the other connections keep their data.

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

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{
    Rng, config, encode, ping_fresh, read_replies, reply_len, request, with_server,
};

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Fills every shard with keys `key0..key{n}`; returns a connection.
async fn fill(addr: SocketAddr, n: usize) -> TcpStream {
    let mut stream = connect(addr).await;
    let wire: Vec<u8> = (0..n)
        .flat_map(|i| encode(&[b"SET", format!("key{i}").as_bytes(), b"kept"]))
        .collect();
    stream.write_all(&wire).await.unwrap();
    let replies = read_replies(&mut stream, &mut Vec::new(), n).await;
    assert!(replies.iter().all(|r| r == b"+OK\r\n"));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_expiry_and_counters_are_errors_and_no_shard_loses_its_keys() {
    with_server(config("hostile_overflow", 4), |addr| async move {
        let mut stream = fill(addr, 200).await;
        // Each of these once crashed the shard owning the key; 1,000 of
        // them in a burst made the whole process exit.
        let attacks: [&[&[u8]]; 6] = [
            &[b"SET", b"key1", b"v", b"EX", b"9223372036854775807"],
            &[b"SET", b"key2", b"v", b"PX", b"9223372036854775807"],
            &[b"SET", b"key3", b"v", b"EX", b"9223372036854775"],
            &[b"EXPIRE", b"key4", b"9223372036854775807"],
            &[b"PEXPIRE", b"key5", b"9223372036854775807"],
            &[b"GETEX", b"key6", b"EX", b"9223372036854775807"],
        ];
        let mut wire = Vec::new();
        for i in 0..1000 {
            wire.extend(encode(attacks[i % attacks.len()]));
        }
        stream.write_all(&wire).await.unwrap();
        let replies = read_replies(&mut stream, &mut Vec::new(), 1000).await;
        for (i, reply) in replies.iter().enumerate() {
            let command = ["set", "set", "set", "expire", "pexpire", "getex"][i % 6];
            assert_eq!(
                String::from_utf8_lossy(reply),
                format!("-ERR invalid expire time in '{command}' command\r\n")
            );
        }
        assert_eq!(request(&mut stream, &[b"DBSIZE"]).await, b":200\r\n");
        assert_eq!(
            request(&mut stream, &[b"GET", b"key1"]).await,
            b"$4\r\nkept\r\n"
        );
        assert_eq!(request(&mut stream, &[b"TTL", b"key4"]).await, b":-1\r\n");
        // Counters: an error, never a wrapped value.
        request(&mut stream, &[b"SET", b"n", b"1"]).await;
        assert_eq!(
            request(&mut stream, &[b"DECRBY", b"n", b"-9223372036854775808"]).await,
            b"-ERR decrement would overflow\r\n"
        );
        assert_eq!(
            request(&mut stream, &[b"INCRBY", b"n", b"9223372036854775807"]).await,
            b"-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(request(&mut stream, &[b"GET", b"n"]).await, b"$1\r\n1\r\n");
        assert_eq!(
            request(&mut stream, &[b"SETRANGE", b"n", b"536870911", b"xy"]).await,
            b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        );
        ping_fresh(addr).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reply_cannot_smuggle_a_reply_into_the_stream() {
    with_server(config("hostile_injection", 2), |addr| async move {
        let mut stream = connect(addr).await;
        request(&mut stream, &[b"SET", b"real", b"value"]).await;
        // An unknown command whose name and arguments carry a whole reply.
        let mut wire = encode(&[b"FOO\r\n$8\r\nsmuggled", b"x\r\n$8\r\nsmuggled\r\n"]);
        wire.extend(encode(&[b"GET", b"real"]));
        stream.write_all(&wire).await.unwrap();
        let replies = read_replies(&mut stream, &mut Vec::new(), 2).await;
        assert!(replies[0].starts_with(b"-ERR unknown command 'FOO  $8  smuggled'"));
        assert_eq!(replies[1], b"$5\r\nvalue\r\n");
    })
    .await;
}

/// Whether `reply` is framed: its lines (outside bulk payloads) carry no
/// CR or LF but their own terminator.
fn well_framed(reply: &[u8]) -> bool {
    let line_end = memchr::memmem::find(reply, b"\r\n").unwrap();
    if reply[..line_end].iter().any(|&b| b == b'\r' || b == b'\n') {
        return false;
    }
    match reply[0] {
        b'+' | b'-' | b':' => line_end + 2 == reply.len(),
        b'$' => true,
        b'*' => {
            let mut at = line_end + 2;
            while at < reply.len() {
                let len = reply_len(&reply[at..]).unwrap();
                if !well_framed(&reply[at..at + len]) {
                    return false;
                }
                at += len;
            }
            true
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reply_ever_carries_a_bare_cr_or_lf_outside_bulk_payloads() {
    // A property over random requests: names and arguments from a pool
    // rich in CR, LF, quotes and NULs, for known and unknown commands.
    with_server(config("hostile_framing", 2), |addr| async move {
        let mut rng = Rng::new(0x5eed);
        let names: [&[u8]; 14] = [
            b"GET",
            b"SET",
            b"CLIENT",
            b"HELLO",
            b"EXPIRE",
            b"SCAN",
            b"CONFIG",
            b"SELECT",
            b"NOPE\r\n",
            b"\n",
            b"X\rY",
            b"INCRBY",
            b"GETEX",
            b"OBJECT",
        ];
        let pieces: [&[u8]; 8] = [b"\r\n", b"\n", b"\r", b"'", b"\0", b"+OK", b"-ERR", b"a b"];
        let mut stream = connect(addr).await;
        for _ in 0..300 {
            let mut args: Vec<Vec<u8>> = vec![rng.pick(&names).to_vec()];
            for _ in 0..rng.below(4) {
                let mut arg = Vec::new();
                for _ in 0..rng.below(5) {
                    arg.extend_from_slice(rng.pick(&pieces));
                }
                args.push(arg);
            }
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let reply = request(&mut stream, &refs).await;
            assert!(
                well_framed(&reply),
                "{args:?} -> {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
        // The stream is still in step: one request, one reply.
        assert_eq!(request(&mut stream, &[b"PING"]).await, b"+PONG\r\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_own_connection() {
    with_server(config("hostile_frames", 2), |addr| async move {
        let mut bystander = connect(addr).await;
        request(&mut bystander, &[b"SET", b"kept", b"yes"]).await;
        let frames: [(&[u8], &[u8]); 6] = [
            (
                b"*01\r\n$4\r\nPING\r\n",
                b"-ERR Protocol error: invalid multibulk length\r\n",
            ),
            (
                b"*+1\r\n$4\r\nPING\r\n",
                b"-ERR Protocol error: invalid multibulk length\r\n",
            ),
            (
                b"*1\r\n$+4\r\nPING\r\n",
                b"-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n$-0\r\n\r\n",
                b"-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n$007\r\nPINGPON\r\n",
                b"-ERR Protocol error: invalid bulk length\r\n",
            ),
            (
                b"*1\r\n+PING\r\n",
                b"-ERR Protocol error: expected '$', got '+'\r\n",
            ),
        ];
        for (frame, expected) in frames {
            let mut stream = connect(addr).await;
            stream.write_all(frame).await.unwrap();
            let mut reply = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
                .await
                .expect("closed within 10 s")
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&reply),
                String::from_utf8_lossy(expected)
            );
        }
        assert_eq!(
            request(&mut bystander, &[b"GET", b"kept"]).await,
            b"$3\r\nyes\r\n"
        );
        ping_fresh(addr).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_of_large_values_holds_a_bounded_number_of_bytes() {
    with_server(config("hostile_slow_reader", 2), |addr| async move {
        let value = vec![b'v'; 1024 * 1024];
        let mut writer = connect(addr).await;
        request(&mut writer, &[b"SET", b"big", &value]).await;
        let before = commands::resident_bytes();
        // 1,000 replies of 1 MiB asked for, none read for now.
        let mut slow = connect(addr).await;
        let wire: Vec<u8> = (0..1000).flat_map(|_| encode(&[b"GET", b"big"])).collect();
        slow.write_all(&wire).await.unwrap();
        // Meanwhile everyone else is served, and the server's memory
        // never grows by the GiB asked for.
        let mut peak = 0;
        for i in 0..200 {
            let key = format!("k{i}");
            request(&mut writer, &[b"SET", key.as_bytes(), b"x"]).await;
            assert_eq!(
                request(&mut writer, &[b"GET", key.as_bytes()]).await,
                b"$1\r\nx\r\n"
            );
            peak = peak.max(commands::resident_bytes().saturating_sub(before));
        }
        ping_fresh(addr).await;
        assert!(peak < 32 * 1024 * 1024, "grew by {peak} bytes");
        // The slow reader gets every byte when it reads.
        let replies = read_replies(&mut slow, &mut Vec::new(), 1000).await;
        assert!(replies.iter().all(|r| r.len() == value.len() + 12));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_trickled_in_small_pieces_is_answered_whole() {
    with_server(config("hostile_trickle", 2), |addr| async move {
        // MSET of 20,000 pairs (about 400 KB) in 1,400-byte pieces.
        let keys: Vec<String> = (0..20_000).map(|i| format!("t{i}")).collect();
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for key in &keys {
            args.push(key.as_bytes());
            args.push(b"value");
        }
        let wire = encode(&args);
        let mut slow = connect(addr).await;
        for (i, piece) in wire.chunks(1400).enumerate() {
            slow.write_all(piece).await.unwrap();
            if i % 50 == 0 {
                // Others are served between the pieces.
                ping_fresh(addr).await;
            }
        }
        assert_eq!(
            read_replies(&mut slow, &mut Vec::new(), 1).await[0],
            b"+OK\r\n"
        );
        assert_eq!(request(&mut slow, &[b"DBSIZE"]).await, b":20000\r\n");
        assert_eq!(
            request(&mut slow, &[b"GET", b"t19999"]).await,
            b"$5\r\nvalue\r\n"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_storm_is_served_and_leaves_the_server_answering() {
    with_server(config("hostile_storm", 2), |addr| async move {
        let mut keeper = fill(addr, 50).await;
        for _ in 0..3 {
            let storm: Vec<_> = (0..200)
                .map(|i| {
                    tokio::spawn(async move {
                        let mut stream = connect(addr).await;
                        let key = format!("storm{i}");
                        request(&mut stream, &[b"SET", key.as_bytes(), b"1"]).await;
                        assert_eq!(
                            request(&mut stream, &[b"INCR", key.as_bytes()]).await,
                            b":2\r\n"
                        );
                        // Half of them leave without a word, mid-request.
                        if i % 2 == 0 {
                            stream.write_all(b"*2\r\n$3\r\nGET").await.unwrap();
                        }
                    })
                })
                .collect();
            for task in storm {
                task.await.unwrap();
            }
            ping_fresh(addr).await;
        }
        assert_eq!(
            request(&mut keeper, &[b"GET", b"key49"]).await,
            b"$4\r\nkept\r\n"
        );
    })
    .await;
}

/// Starts this test binary as a kvstore server under `ulimit -n <fds>`,
/// with `reserved` descriptors kept out of `maxclients`; returns the child
/// and its address.
fn child_server(fds: usize, reserved: usize) -> (std::process::Child, SocketAddr) {
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n {fds} && exec \"$0\" --exact serve_as_a_child_process --ignored --nocapture --test-threads=1"
        ))
        .arg(exe)
        .env("KVSTORE_CHILD_RESERVED_FDS", reserved.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the child prints its address").unwrap();
        // The test harness may have written its own words first.
        if let Some(at) = line.find("KVSTORE LISTENING ") {
            break line[at + "KVSTORE LISTENING ".len()..]
                .trim()
                .parse()
                .unwrap();
        }
    };
    // The rest of its output is read (and dropped), so that its last words
    // do not fail on a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// Not a test of its own: the server that the descriptor tests run in a
/// child process (they start this binary with `--ignored --exact`). It
/// serves until its stdin closes.
#[test]
#[ignore = "run by the file-descriptor tests in a child process"]
fn serve_as_a_child_process() {
    let reserved: usize = std::env::var("KVSTORE_CHILD_RESERVED_FDS")
        .expect("started by a descriptor test")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut config = config("child", 2);
        config.reserved_fds = reserved;
        config.max_connections = 10_000;
        with_server(config, |addr| async move {
            println!("KVSTORE LISTENING {addr}");
            // Until the parent closes our stdin.
            tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await
            .unwrap();
        })
        .await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_past_maxclients_are_refused_with_redis_error_and_the_rest_served() {
    // 64 descriptors, 32 reserved: maxclients is 32.
    let (mut child, addr) = child_server(64, 32);
    let mut first = connect(addr).await;
    request(&mut first, &[b"SET", b"kept", b"yes"]).await;
    let info = request(&mut first, &[b"INFO", b"clients"]).await;
    assert!(
        String::from_utf8_lossy(&info).contains("maxclients:32\r\n"),
        "{info:?}"
    );
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut stream = connect(addr).await;
        stream.write_all(&encode(&[b"PING"])).await.unwrap();
        let mut reply = vec![0; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut reply))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        match &reply[..n] {
            b"+PONG\r\n" => open.push(stream),
            b"-ERR max number of clients reached\r\n" => refused += 1,
            other => panic!("unexpected {:?}", String::from_utf8_lossy(other)),
        }
    }
    assert_eq!(open.len(), 31, "32 clients with the first");
    assert_eq!(refused, 29);
    drop(open);
    assert_eq!(
        request(&mut first, &[b"GET", b"kept"]).await,
        b"$3\r\nyes\r\n"
    );
    // Once the others left, newcomers are served again (the count of
    // connected clients goes down as they close: poll for it).
    let mut served = false;
    for _ in 0..500 {
        let mut stream = connect(addr).await;
        stream.write_all(&encode(&[b"PING"])).await.unwrap();
        let mut reply = vec![0; 64];
        let n = stream.read(&mut reply).await.unwrap_or(0);
        if &reply[..n] == b"+PONG\r\n" {
            served = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_pauses_accepting_and_drops_no_client() {
    // No reserve: accepting hits EMFILE before maxclients.
    let (mut child, addr) = child_server(48, 0);
    let mut first = connect(addr).await;
    request(&mut first, &[b"SET", b"kept", b"yes"]).await;
    // More connections than descriptors: the kernel queues what the
    // server cannot accept.
    let mut crowd = Vec::new();
    for _ in 0..80 {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => crowd.push(stream),
            _ => break,
        }
    }
    // The first client is served all along.
    for i in 0..20 {
        let value = format!("v{i}");
        request(&mut first, &[b"SET", b"kept", value.as_bytes()]).await;
        assert_eq!(
            request(&mut first, &[b"GET", b"kept"]).await,
            format!("${}\r\n{value}\r\n", value.len()).into_bytes()
        );
    }
    drop(crowd);
    // With the crowd gone, a fresh connection is accepted and answered
    // (the listener retries every 100 ms).
    ping_fresh(addr).await;
    assert_eq!(
        request(&mut first, &[b"GET", b"kept"]).await,
        b"$3\r\nv19\r\n"
    );
    drop(child.stdin.take());
    assert!(
        child.wait().unwrap().success(),
        "the server did not exit on EMFILE"
    );
}
