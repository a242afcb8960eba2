//! The length-prefixed string server of `examples/len_prefixed.rs`, tested
//! through its own code: with a plain TCP client, with the example's client,
//! and with every split of its input over an in-memory socket.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use trellis::nursery;
use trellis::protocol::create_server;
use trellis::testing::check_protocol;

// The example's code, compiled into this test (its `main` goes unused).
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/len_prefixed.rs"]
mod example;

use example::{LenPrefixedServer, OK_REPLY, frame, send_strings};
use trellis::BoxError;

#[test]
fn the_answer_is_ok_framed_the_same_way() {
    assert_eq!(OK_REPLY, [0x02, 0x00, 0x00, 0x00, 0x6f, 0x6b]);
    assert_eq!(frame(b"ok"), OK_REPLY);
}

#[tokio::test]
async fn a_plain_tcp_client_gets_ok_for_each_string_however_the_bytes_are_split() {
    nursery(|n| async move {
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let factory = move || LenPrefixedServer::reporting_to(seen_tx.clone());
        let server = create_server(&n, factory, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let mut client = TcpStream::connect(addr).await?;
        client.set_nodelay(true)?;

        // One frame split across many writes, byte by byte.
        for byte in frame(b"hello") {
            client.write_all(&[byte]).await?;
        }
        let mut reply = [0; 6];
        client.read_exact(&mut reply).await?;
        assert_eq!(reply, OK_REPLY);
        assert_eq!(seen.recv().await.as_deref(), Some("hello"));

        // Several frames in one write.
        let mut frames = frame(b"one");
        frames.extend(frame(b""));
        frames.extend(frame("trois 🦀".as_bytes()));
        client.write_all(&frames).await?;
        let mut replies = [0; 18];
        client.read_exact(&mut replies).await?;
        assert_eq!(replies, OK_REPLY.repeat(3).as_slice());
        for expected in ["one", "", "trois 🦀"] {
            assert_eq!(seen.recv().await.as_deref(), Some(expected));
        }

        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_example_client_gets_an_answer_per_string() {
    nursery(|n| async move {
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let factory = move || LenPrefixedServer::reporting_to(seen_tx.clone());
        let server = create_server(&n, factory, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].to_string();

        let messages = vec!["hello".to_owned(), "world".to_owned()];
        let replies = send_strings(&n, &addr, messages).await?;
        assert_eq!(replies, ["ok", "ok"]);
        assert_eq!(seen.recv().await.as_deref(), Some("hello"));
        assert_eq!(seen.recv().await.as_deref(), Some("world"));

        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_server_answers_the_same_for_every_split_of_its_input() {
    let mut input = Vec::new();
    for message in ["a", "longer string", "", "x"] {
        input.extend(frame(message.as_bytes()));
    }
    let output = check_protocol(LenPrefixedServer::default, &input).await;
    assert_eq!(output, OK_REPLY.repeat(4));
}

#[tokio::test]
async fn an_oversized_length_prefix_closes_the_connection() {
    nursery(|n| async move {
        let server = create_server(&n, LenPrefixedServer::default, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let mut client = TcpStream::connect(addr).await?;
        client.write_all(&u32::MAX.to_le_bytes()).await?;
        let mut rest = Vec::new();
        // Closed without an answer (a reset is fine too).
        let read = client.read_to_end(&mut rest).await;
        assert!(read.is_err() || rest.is_empty());
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
