//! `net::serve_tcp` and friends over real loopback sockets: bound addresses
//! through `start`, one task per connection, failures that stay with their
//! connection, and how a server stops.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, oneshot};
use trellis::net::{open_tcp_listeners, open_tcp_stream, serve_listeners, serve_tcp};
use trellis::{NurseryError, StartError, nursery, wait_shutdown};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Echoes until the client closes its side.
async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let (mut reader, mut writer) = stream.split();
    tokio::io::copy(&mut reader, &mut writer).await?;
    Ok(())
}

/// Echoes, except that a first byte `e` makes it fail and `p` makes it panic.
async fn fragile_echo(mut stream: TcpStream) -> Result<(), BoxError> {
    let mut first = [0; 1];
    stream.read_exact(&mut first).await?;
    match &first {
        b"e" => return Err("the client asked for an error".into()),
        b"p" => panic!("the client asked for a panic"),
        _ => stream.write_all(&first).await?,
    }
    echo(stream).await?;
    Ok(())
}

/// Writes `message` and reads as many bytes back, both at once (so that a
/// large message cannot fill every buffer on the way and stall).
async fn round_trip(client: &mut TcpStream, message: &[u8]) -> io::Result<Vec<u8>> {
    let (mut reader, mut writer) = client.split();
    let mut reply = vec![0; message.len()];
    let (written, read) = tokio::join!(writer.write_all(message), reader.read_exact(&mut reply));
    written?;
    read?;
    Ok(reply)
}

/// Reads until the end of the stream: `true` if the server closed the
/// connection (end of stream or reset) without sending anything more.
async fn closed_by_server(client: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest).await {
        Ok(_) => rest.is_empty(),
        Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
    }
}

#[tokio::test]
async fn serve_tcp_on_port_zero_reports_the_bound_address_through_start() {
    nursery(|n| async move {
        let addrs = n.start(|s| serve_tcp(echo, "127.0.0.1:0", s)).await?;
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].ip().to_string(), "127.0.0.1");
        assert_ne!(addrs[0].port(), 0);
        TcpStream::connect(addrs[0]).await?; // and it is listening already
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_client_gets_its_bytes_back_from_an_echo_handler() {
    nursery(|n| async move {
        let addrs = n.start(|s| serve_tcp(echo, "127.0.0.1:0", s)).await?;
        let mut client = TcpStream::connect(addrs[0]).await?;
        assert_eq!(round_trip(&mut client, b"hello").await?, b"hello");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(round_trip(&mut client, &big).await?, big);
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_are_served_at_the_same_time() {
    const CLIENTS: usize = 50;
    // Every handler waits at the barrier before echoing: the test can only
    // pass if all the connections are being served at once.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handler = move |stream: TcpStream| {
        let barrier = Arc::clone(&barrier);
        async move {
            barrier.wait().await;
            echo(stream).await
        }
    };
    nursery(|n| async move {
        let addr = n.start(|s| serve_tcp(handler, "127.0.0.1:0", s)).await?[0];
        let clients = nursery(|clients| async move {
            for i in 0..CLIENTS {
                clients.spawn(async move {
                    let mut client = TcpStream::connect(addr).await?;
                    let message = format!("client {i}");
                    let reply = round_trip(&mut client, message.as_bytes()).await?;
                    assert_eq!(reply, message.as_bytes());
                    Ok::<_, io::Error>(())
                });
            }
        })
        .await;
        n.cancel();
        clients?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_handler_that_fails_or_panics_loses_only_its_own_connection() {
    nursery(|n| async move {
        let addrs = n
            .start(|s| serve_tcp(fragile_echo, "127.0.0.1:0", s))
            .await?;
        let mut healthy = TcpStream::connect(addrs[0]).await?;
        assert_eq!(round_trip(&mut healthy, b"ok").await?, b"ok");

        for poison in [b"e", b"p"] {
            let mut doomed = TcpStream::connect(addrs[0]).await?;
            doomed.write_all(poison).await?;
            assert!(closed_by_server(&mut doomed).await);
        }

        // The other connection still works, and the server still accepts.
        assert_eq!(
            round_trip(&mut healthy, b"still here").await?,
            b"still here"
        );
        let mut newcomer = TcpStream::connect(addrs[0]).await?;
        assert_eq!(round_trip(&mut newcomer, b"hi").await?, b"hi");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn cancelling_the_servers_nursery_closes_its_open_connections_and_listeners() {
    let (addr, mut clients) = nursery(|n| async move {
        let addrs = n.start(|s| serve_tcp(echo, "127.0.0.1:0", s)).await?;
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut client = TcpStream::connect(addrs[0]).await?;
            // A round trip: its handler is running.
            assert_eq!(round_trip(&mut client, b"x").await?, b"x");
            clients.push(client);
        }
        n.cancel();
        Ok::<_, BoxError>((addrs[0], clients))
    })
    .await
    .unwrap();

    // The nursery has returned: the server task is gone, and so is everything it held.
    for client in &mut clients {
        assert!(closed_by_server(client).await);
    }
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_graceful_shutdown_stops_accepting_and_lets_connections_say_goodbye() {
    let goodbye = |mut stream: TcpStream| async move {
        stream.write_all(b"hello\n").await?;
        wait_shutdown().await;
        stream.write_all(b"goodbye\n").await
    };
    let (served_tx, served_rx) = oneshot::channel();
    let (addr, mut client) = nursery(|n| async move {
        let addrs = n
            .start(|s| async move {
                let served = serve_tcp(goodbye, "127.0.0.1:0", s).await;
                let _ = served_tx.send(served.is_ok());
                served
            })
            .await?;
        let mut client = TcpStream::connect(addrs[0]).await?;
        let mut hello = [0; 6];
        client.read_exact(&mut hello).await?;
        assert_eq!(&hello, b"hello\n");
        // The grace period only bounds how long a broken server could make
        // this test wait; a working one says goodbye in a few milliseconds.
        n.shutdown(Duration::from_secs(10));
        Ok::<_, BoxError>((addrs[0], client))
    })
    .await
    .unwrap();

    assert_eq!(served_rx.await, Ok(true), "serve_tcp returned Ok(())");
    let mut rest = String::new();
    client.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "goodbye\n");
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn serve_tcp_on_an_address_in_use_fails_to_start_with_the_bind_error() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let started = nursery(|n| async move {
        let result = n.start(|s| serve_tcp(echo, addr, s)).await;
        Ok::<_, NurseryError>(result)
    })
    .await
    .unwrap();

    let error = start_io_error(started);
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn serve_listeners_serves_a_listener_bound_by_the_caller() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    nursery(|n| async move {
        let addrs = n.start(|s| serve_listeners(echo, [listener], s)).await?;
        assert_eq!(addrs, [addr]);
        let mut client = TcpStream::connect(addr).await?;
        assert_eq!(round_trip(&mut client, b"mine").await?, b"mine");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn serve_listeners_without_listeners_fails_to_start() {
    let started = nursery(|n| async move {
        let no_listeners: Vec<TcpListener> = Vec::new();
        Ok::<_, NurseryError>(n.start(|s| serve_listeners(echo, no_listeners, s)).await)
    })
    .await
    .unwrap();
    let error = start_io_error(started);
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[cfg(target_os = "linux")] // where all of 127.0.0.0/8 is loopback
#[tokio::test]
async fn one_server_accepts_on_every_listener_and_port_zero_picks_one_port_for_all() {
    let two: [SocketAddr; 2] = [
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.2:0".parse().unwrap(),
    ];
    let listeners = open_tcp_listeners(&two[..]).await.unwrap();
    assert_eq!(listeners.len(), 2);
    let port = listeners[0].local_addr().unwrap().port();
    assert_eq!(listeners[1].local_addr().unwrap().port(), port);

    nursery(|n| async move {
        let addrs = n.start(|s| serve_listeners(echo, listeners, s)).await?;
        for addr in addrs {
            let mut client = TcpStream::connect(addr).await?;
            assert_eq!(round_trip(&mut client, b"both").await?, b"both");
        }
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn open_tcp_listeners_binds_each_resolved_address_once() {
    let same: [SocketAddr; 2] = ["127.0.0.1:0".parse().unwrap(); 2];
    let listeners = open_tcp_listeners(&same[..]).await.unwrap();
    assert_eq!(listeners.len(), 1);
}

#[tokio::test]
async fn open_tcp_listeners_for_no_address_is_an_error() {
    let error = open_tcp_listeners(&[] as &[SocketAddr]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn open_tcp_stream_connects_to_a_server() {
    nursery(|n| async move {
        let addrs = n.start(|s| serve_tcp(echo, "127.0.0.1:0", s)).await?;
        let mut client = open_tcp_stream(addrs[0]).await?;
        assert_eq!(client.peer_addr()?, addrs[0]);
        assert!(client.nodelay()?);
        assert_eq!(round_trip(&mut client, b"dialled").await?, b"dialled");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn open_tcp_stream_to_a_closed_port_is_refused_and_names_the_address() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }; // closed again: nothing listens there now
    let error = open_tcp_stream(addr).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    assert!(
        error
            .to_string()
            .contains(&format!("could not connect to {addr}")),
        "{error}"
    );
}

#[tokio::test]
async fn open_tcp_stream_tries_every_address_and_reports_the_last_error() {
    let (listener, closed) = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        (listener, closed)
    };
    let open = listener.local_addr().unwrap();
    let stream = open_tcp_stream(&[closed, open][..]).await.unwrap();
    assert_eq!(stream.peer_addr().unwrap(), open);

    drop((stream, listener));
    let error = open_tcp_stream(&[closed, open][..]).await.unwrap_err();
    assert!(error.to_string().contains(&open.to_string()), "{error}");
}

#[tokio::test]
async fn open_tcp_stream_to_no_address_is_an_error() {
    let error = open_tcp_stream(&[] as &[SocketAddr]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

/// The I/O error a server's failed start carries; panics on anything else.
fn start_io_error<T: std::fmt::Debug>(started: Result<T, StartError>) -> io::Error {
    let Err(StartError::Failed(failure)) = started else {
        panic!("expected a failed start, got {started:?}");
    };
    *failure
        .into_error()
        .expect("the server returned an error")
        .downcast::<io::Error>()
        .expect("an io::Error")
}
