//! Multi-key commands and transactions of the kvstore are atomic across
//! shards: concurrent writers and readers never see a mix.

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

use crate::harness::{config, encode, read_replies, request, with_server};

/// Keys that land on every one of 4 shards (16 of them).
fn keys() -> Vec<Vec<u8>> {
    (0..16).map(|i| format!("key{i}").into_bytes()).collect()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// The bulk strings of an array reply.
fn bulks(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    let mut at = memchr::memmem::find(reply, b"\r\n").unwrap() + 2;
    while at < reply.len() {
        let len = harness::reply_len(&reply[at..]).unwrap();
        items.push(reply[at..at + len].to_vec());
        at += len;
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_half_an_mset_and_writers_never_leave_a_mix() {
    with_server(config("atomic_mset", 4), |addr| async move {
        let keys = keys();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let keys = keys.clone();
                tokio::spawn(async move {
                    let mut stream = connect(addr).await;
                    for round in 0..150 {
                        let value = format!("w{w}r{round}").into_bytes();
                        let mut args: Vec<&[u8]> = vec![b"MSET"];
                        for key in &keys {
                            args.push(key);
                            args.push(&value);
                        }
                        // Some pipelined two at a time.
                        let wire = if round % 3 == 0 {
                            [encode(&args), encode(&args)].concat()
                        } else {
                            encode(&args)
                        };
                        let count = if round % 3 == 0 { 2 } else { 1 };
                        stream.write_all(&wire).await.unwrap();
                        for reply in read_replies(&mut stream, &mut Vec::new(), count).await {
                            assert_eq!(reply, b"+OK\r\n");
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..4)
            .map(|r| {
                let keys = keys.clone();
                tokio::spawn(async move {
                    let mut stream = connect(addr).await;
                    let mut args: Vec<&[u8]> = vec![b"MGET"];
                    args.extend(keys.iter().map(|k| &k[..]));
                    let mut seen_values = 0;
                    for _ in 0..300 {
                        let reply = if r == 0 {
                            // A transaction reads as one, too.
                            stream
                                .write_all(
                                    &[encode(&[b"MULTI"]), encode(&args), encode(&[b"EXEC"])]
                                        .concat(),
                                )
                                .await
                                .unwrap();
                            let replies = read_replies(&mut stream, &mut Vec::new(), 3).await;
                            let exec = &replies[2];
                            let inner = memchr::memmem::find(exec, b"\r\n").unwrap() + 2;
                            exec[inner..].to_vec()
                        } else {
                            request(&mut stream, &args).await
                        };
                        let values = bulks(&reply);
                        assert_eq!(values.len(), 16);
                        assert!(
                            values.iter().all(|v| *v == values[0]),
                            "a mix: {:?}",
                            values
                                .iter()
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .collect::<Vec<_>>()
                        );
                        seen_values += usize::from(values[0] != b"$-1\r\n");
                    }
                    seen_values
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        for reader in readers {
            reader.await.unwrap();
        }
        // What the writers left: one writer's value everywhere.
        let mut stream = connect(addr).await;
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| &k[..]));
        let values = bulks(&request(&mut stream, &args).await);
        assert_ne!(values[0], b"$-1\r\n");
        assert!(values.iter().all(|v| *v == values[0]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msetnx_sets_all_or_none_under_contention() {
    with_server(config("atomic_msetnx", 4), |addr| async move {
        // Each round, three clients race to claim the same 8 keys with
        // MSETNX: exactly one wins, and the keys all hold its name.
        for round in 0..40 {
            let claims: Vec<_> = (0..3)
                .map(|c| {
                    tokio::spawn(async move {
                        let mut stream = connect(addr).await;
                        let keys: Vec<Vec<u8>> = (0..8)
                            .map(|i| format!("r{round}k{i}").into_bytes())
                            .collect();
                        let name = format!("c{c}").into_bytes();
                        let mut args: Vec<&[u8]> = vec![b"MSETNX"];
                        for key in &keys {
                            args.push(key);
                            args.push(&name);
                        }
                        request(&mut stream, &args).await == b":1\r\n"
                    })
                })
                .collect();
            let mut winners = 0;
            for claim in claims {
                winners += usize::from(claim.await.unwrap());
            }
            assert_eq!(winners, 1);
            let mut stream = connect(addr).await;
            let keys: Vec<Vec<u8>> = (0..8)
                .map(|i| format!("r{round}k{i}").into_bytes())
                .collect();
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(keys.iter().map(|k| &k[..]));
            let values = bulks(&request(&mut stream, &args).await);
            assert!(
                values
                    .iter()
                    .all(|v| *v == values[0] && v.starts_with(b"$2\r\nc"))
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_multi_exec_check_and_set_loses_no_increment() {
    with_server(config("atomic_watch", 4), |addr| async move {
        // The optimistic-locking loop of Redis's documentation, from four
        // clients at once: read, compute, write only if nobody else did.
        let clients: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async move {
                    let mut stream = connect(addr).await;
                    let mut retries = 0;
                    for _ in 0..50 {
                        loop {
                            request(&mut stream, &[b"WATCH", b"counter", b"other"]).await;
                            let current = request(&mut stream, &[b"GET", b"counter"]).await;
                            let n: i64 = if current == b"$-1\r\n" {
                                0
                            } else {
                                let text = String::from_utf8_lossy(&current).into_owned();
                                text.lines().nth(1).unwrap().parse().unwrap()
                            };
                            let next = (n + 1).to_string();
                            let wire = [
                                encode(&[b"MULTI"]),
                                encode(&[b"SET", b"counter", next.as_bytes()]),
                                encode(&[b"SET", b"other", next.as_bytes()]),
                                encode(&[b"EXEC"]),
                            ]
                            .concat();
                            stream.write_all(&wire).await.unwrap();
                            let replies = read_replies(&mut stream, &mut Vec::new(), 4).await;
                            if replies[3] == b"*2\r\n+OK\r\n+OK\r\n" {
                                break;
                            }
                            assert_eq!(replies[3], b"*-1\r\n");
                            retries += 1;
                        }
                    }
                    retries
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        let mut stream = connect(addr).await;
        assert_eq!(
            request(&mut stream, &[b"MGET", b"counter", b"other"]).await,
            b"*2\r\n$3\r\n200\r\n$3\r\n200\r\n"
        );
    })
    .await;
}
