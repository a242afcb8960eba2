//! The echo server of `examples/echo.rs`, tested through its own code: its
//! per-connection logic over real TCP, and its idle timeout on the paused
//! clock.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio::net::TcpStream;
use tokio::time::Instant;
use trellis::net::serve_tcp;
use trellis::{NurseryError, nursery};

// The example's code, compiled into this test: what is tested here is what
// `cargo run --example echo` runs (its `main` goes unused).
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/echo.rs"]
mod example;

use example::{IDLE_TIMEOUT, echo, on_connection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn round_trip(client: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    client.write_all(message).await?;
    let mut reply = vec![0; message.len()];
    client.read_exact(&mut reply).await?;
    Ok(reply)
}

#[tokio::test]
async fn the_echo_server_sends_back_what_a_client_writes() {
    nursery(|n| async move {
        let addrs = n
            .start(|s| serve_tcp(on_connection, "127.0.0.1:0", s))
            .await?;
        let mut client = TcpStream::connect(addrs[0]).await?;
        assert_eq!(round_trip(&mut client, b"hello").await?, b"hello");
        assert_eq!(round_trip(&mut client, b"and again").await?, b"and again");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_echo_server_closes_a_connection_when_the_client_closes_its_side() {
    nursery(|n| async move {
        let addrs = n
            .start(|s| serve_tcp(on_connection, "127.0.0.1:0", s))
            .await?;
        let mut client = TcpStream::connect(addrs[0]).await?;
        client.write_all(b"last words").await?;
        client.shutdown().await?; // no more to send
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await?; // returns once the server closes
        assert_eq!(rest, b"last words");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

/// Real sockets on the paused clock are safe here because nothing is in
/// flight while the idle timer is armed: the client sends nothing and only
/// waits for the end of the stream (see `trellis::testing`).
#[tokio::test(start_paused = true)]
async fn the_echo_server_closes_a_silent_tcp_connection_after_the_idle_timeout() {
    nursery(|n| async move {
        let addrs = n
            .start(|s| serve_tcp(on_connection, "127.0.0.1:0", s))
            .await?;
        let start = Instant::now();
        let mut client = TcpStream::connect(addrs[0]).await?;
        let read = client.read(&mut [0; 16]).await?;
        assert_eq!(read, 0, "the server closed the connection");
        assert_eq!(start.elapsed(), IDLE_TIMEOUT);
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_exactly_after_the_idle_timeout() {
    let (mut client, server) = duplex(64);
    nursery(|n| async move {
        n.spawn(echo(server));
        client.write_all(b"ping").await?;
        let mut reply = [0; 4];
        client.read_exact(&mut reply).await?;
        assert_eq!(&reply, b"ping");

        let silent_since = Instant::now();
        assert_eq!(client.read(&mut [0; 4]).await?, 0, "closed by the server");
        assert_eq!(silent_since.elapsed(), IDLE_TIMEOUT);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn traffic_keeps_a_connection_open_past_the_idle_timeout() {
    let (mut client, server) = duplex(64);
    nursery(|n| async move {
        n.spawn(echo(server));
        let start = Instant::now();
        let pause = IDLE_TIMEOUT - Duration::from_secs(1);
        for round in 0u8..4 {
            tokio::time::sleep(pause).await; // quiet, but not for long enough
            client.write_all(&[round]).await?;
            let mut reply = [0; 1];
            client.read_exact(&mut reply).await?;
            assert_eq!(reply, [round]);
        }
        assert!(start.elapsed() > IDLE_TIMEOUT * 3);
        drop(client); // hang up: the echo task ends
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_echo_connection_ends_without_error_when_the_client_hangs_up() {
    let (client, server) = duplex(64);
    drop(client);
    let ended = nursery(|n| async move {
        n.spawn(async move {
            echo(server).await?;
            Ok::<_, std::io::Error>(())
        });
        Ok::<_, NurseryError>(Instant::now())
    })
    .await
    .unwrap();
    assert_eq!(ended.elapsed(), Duration::ZERO, "no timeout was needed");
}
