//! What the kvstore's stored values keep alive: a small value or key must
//! not pin the (large) request buffer it was parsed from. One test in its
//! own binary, so that the process's resident memory is its own.

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

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::{config, encode, read_replies, request, with_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_keys_stored_beside_deleted_large_values_do_not_keep_them_alive() {
    with_server(config("memory_pinning", 2), |addr| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let big = vec![b'b'; 256 * 1024];
        // Warm up, then measure from here.
        request(&mut stream, &[b"SET", b"big", &big]).await;
        request(&mut stream, &[b"DEL", b"big"]).await;
        let before = commands::resident_bytes();
        // Each read carries a 256 KiB value (deleted at once) and a 1-byte
        // key that stays: were the key a slice of the read, every one of
        // them would keep its 256 KiB buffer (1,000 x 256 KiB = 250 MiB).
        for i in 0..1000 {
            let key = format!("k{i}");
            let wire = [
                encode(&[b"SET", b"big", &big]),
                encode(&[b"SET", key.as_bytes(), b"x"]),
                encode(&[b"DEL", b"big"]),
            ]
            .concat();
            stream.write_all(&wire).await.unwrap();
            read_replies(&mut stream, &mut Vec::new(), 3).await;
        }
        let grown = commands::resident_bytes().saturating_sub(before);
        assert_eq!(request(&mut stream, &[b"DBSIZE"]).await, b":1000\r\n");
        assert!(grown < 32 * 1024 * 1024, "grew by {} MiB", grown >> 20);
    })
    .await;
}
