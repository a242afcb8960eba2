//! Servers and clients: the `Server` handle, cancellation closing every
//! connection, Unix sockets, many clients, the loop facade.

use std::io;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use trellis::BoxError;
use trellis::nursery;
use trellis::protocol::{
    Loop, Protocol, ProtocolError, SocketAddress, Transport, connect_socket, create_connection,
    create_server, run_server,
};
use trellis::testing::memory_pair;

/// Echoes; reports `made` and `lost` with the error kind.
#[derive(Debug)]
struct Echo {
    transport: Option<Transport>,
    events: Option<UnboundedSender<String>>,
}

impl Echo {
    fn new() -> Self {
        Echo {
            transport: None,
            events: None,
        }
    }
    fn reporting(events: UnboundedSender<String>) -> Self {
        Echo {
            transport: None,
            events: Some(events),
        }
    }
    fn report(&self, event: String) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.report("made".into());
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let _ = self.transport.as_ref().unwrap().write(data);
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.report(format!("lost {:?}", error.map(|e| e.kind())));
    }
}

async fn round_trip(client: &mut TcpStream, message: &[u8]) -> io::Result<Vec<u8>> {
    client.write_all(message).await?;
    let mut reply = vec![0; message.len()];
    client.read_exact(&mut reply).await?;
    Ok(reply)
}

#[tokio::test]
async fn cancelling_the_servers_nursery_closes_every_connection() {
    let (events_tx, mut events) = unbounded_channel();
    let result = nursery(|n| async move {
        let mut clients = Vec::new();
        let factory = move || Echo::reporting(events_tx.clone());
        let server = create_server(&n, factory, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        for _ in 0..3 {
            let mut client = TcpStream::connect(addr).await?;
            assert_eq!(round_trip(&mut client, b"hi").await?, b"hi");
            clients.push(client);
        }
        n.cancel();
        Ok::<_, BoxError>(clients)
    })
    .await;
    let clients = result.unwrap();
    // The nursery returned: every connection task has ended.
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(seen.iter().filter(|e| *e == "made").count(), 3);
    assert_eq!(
        seen.iter()
            .filter(|e| *e == "lost Some(ConnectionAborted)")
            .count(),
        3
    );
    for mut client in clients {
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn close_stops_accepting_and_wait_closed_waits_for_open_connections() {
    nursery(|n| async move {
        let server = create_server(&n, Echo::new, "127.0.0.1:0").await?;
        assert!(server.is_serving());
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let mut client = TcpStream::connect(addr).await?;
        assert_eq!(round_trip(&mut client, b"1").await?, b"1");

        server.close();
        assert!(!server.is_serving());
        // The open connection still works...
        assert_eq!(round_trip(&mut client, b"2").await?, b"2");
        // ...and keeps the server from being closed.
        assert!(server.wait_closed().now_or_never().is_none());
        drop(client); // EOF: the echo closes its end
        server.wait_closed().await;
        // The listener is gone.
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn abort_clients_closes_every_connection_now() {
    nursery(|n| async move {
        let server = create_server(&n, Echo::new, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let mut client = TcpStream::connect(addr).await?;
        assert_eq!(round_trip(&mut client, b"1").await?, b"1");
        server.abort_clients();
        server.wait_closed().await;
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await?, 0);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_thousand_concurrent_clients_are_served() {
    const CLIENTS: usize = 1000;
    nursery(|n| async move {
        let server = create_server(&n, Echo::new, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let (done_tx, mut done) = unbounded_channel();
        nursery(|clients| async move {
            for i in 0..CLIENTS {
                let done_tx = done_tx.clone();
                clients.spawn(async move {
                    let mut client = TcpStream::connect(addr).await?;
                    let message = format!("client {i}");
                    let reply = round_trip(&mut client, message.as_bytes()).await?;
                    assert_eq!(reply, message.as_bytes());
                    let _ = done_tx.send(i);
                    Ok::<_, io::Error>(())
                });
            }
        })
        .await?;
        let mut finished = 0;
        while done.try_recv().is_ok() {
            finished += 1;
        }
        assert_eq!(finished, CLIENTS);
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn extra_info_gives_both_addresses_and_the_socket() {
    nursery(|n| async move {
        let server = create_server(&n, Echo::new, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let (transport, _connection) = create_connection(&n, Echo::new, addr).await?;
        let info = transport.extra_info();
        assert_eq!(info.peer_addr, Some(SocketAddress::Inet(addr)));
        let local = info
            .local_addr
            .as_ref()
            .and_then(SocketAddress::as_inet)
            .unwrap();
        assert!(local.ip().is_loopback());
        assert!(info.raw_fd.is_some());
        assert!(transport.can_write_eof());
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_an_io_error_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    nursery(|n| async move {
        let error = create_connection(&n, Echo::new, addr).await.unwrap_err();
        match error {
            ProtocolError::Io(error) => {
                assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
                assert!(error.to_string().contains(&addr.to_string()));
            }
            other => panic!("expected an I/O error, got {other}"),
        }
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn binding_a_taken_address_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let error = run_server(Echo::new, addr).await.unwrap_err();
    assert!(
        matches!(&error, ProtocolError::Io(e) if e.kind() == io::ErrorKind::AddrInUse),
        "{error}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn unix_servers_and_clients_speak_through_a_socket_file() {
    use trellis::protocol::{create_unix_connection, create_unix_server};

    let dir = std::env::temp_dir().join(format!("trellis-protocol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let server_path = path.clone();
    nursery(|n| async move {
        let server = create_unix_server(&n, Echo::new, &server_path).await?;
        assert_eq!(
            server.local_addrs(),
            [SocketAddress::Unix(Some(server_path.clone()))]
        );

        /// Sends "unix", then keeps what comes back until EOF.
        #[derive(Debug, Default)]
        struct Once(Vec<u8>);
        impl Protocol for Once {
            fn connection_made(&mut self, transport: Transport) {
                transport.write(b"unix").unwrap();
                transport.write_eof().unwrap();
            }
            fn data_received(&mut self, data: &[u8]) {
                self.0.extend_from_slice(data);
            }
        }
        let (_transport, client) = create_unix_connection(&n, Once::default, &server_path).await?;
        assert_eq!(client.wait_closed().await?.0, b"unix");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers each read later, through the loop facade: `call_later` and a
/// spawned task.
#[derive(Debug, Default)]
struct Later(Option<Transport>);

impl Protocol for Later {
    fn connection_made(&mut self, transport: Transport) {
        self.0 = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let event_loop = Loop::current().expect("callbacks run in a nursery");
        let transport = self.0.clone().unwrap();
        let data = data.to_vec();
        let cancelled = transport.clone();
        let start = event_loop.time();
        event_loop
            .call_later(Duration::from_secs(10), move || {
                let _ = cancelled.write(b"never");
            })
            .unwrap()
            .cancel();
        event_loop
            .call_later(Duration::from_secs(5), move || {
                let _ = transport.write(&data);
            })
            .unwrap();
        let transport = self.0.clone().unwrap();
        event_loop
            .spawn(async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                assert_eq!(
                    Loop::current().unwrap().time() - start,
                    Duration::from_secs(6)
                );
                transport.close();
            })
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_loop_facade_runs_timers_and_tasks_in_the_connections_nursery() {
    let (ours, mut theirs) = memory_pair(1024);
    nursery(|n| async move {
        let start = tokio::time::Instant::now();
        let (_transport, connection) = connect_socket(&n, Later::default(), ours)?;
        theirs.write_all(b"echo in 5s").await?;
        let mut reply = Vec::new();
        theirs.read_to_end(&mut reply).await?;
        assert_eq!(reply, b"echo in 5s"); // and not "never"
        assert_eq!(start.elapsed(), Duration::from_secs(6)); // closed by the task
        connection.wait_closed().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
