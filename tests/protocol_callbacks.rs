//! The order of a protocol's callbacks, and how a connection ends: end of
//! file, a reset by the peer, a panic, cancellation.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use trellis::BoxError;
use trellis::protocol::{
    Protocol, ProtocolError, Transport, connect_socket, create_server, run_connection,
};
use trellis::testing::memory_pair;
use trellis::{CancelScope, nursery};

/// Reports every callback on a channel; echoes data; panics on "boom".
#[derive(Debug)]
struct Recorder {
    events: UnboundedSender<String>,
    transport: Option<Transport>,
    keep_open: bool,
}

fn recorder(keep_open: bool) -> (Recorder, UnboundedReceiver<String>) {
    let (events, rx) = unbounded_channel();
    let recorder = Recorder {
        events,
        transport: None,
        keep_open,
    };
    (recorder, rx)
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        let _ = self.events.send("made".into());
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        assert_ne!(data, b"boom", "asked to panic");
        let _ = self
            .events
            .send(format!("data {}", String::from_utf8_lossy(data)));
        let _ = self.transport.as_ref().unwrap().write(data);
    }
    fn eof_received(&mut self) -> bool {
        let _ = self.events.send("eof".into());
        self.keep_open
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = self.events.send(match error {
            None => "lost".to_owned(),
            Some(error) => format!("lost {:?}: {error}", error.kind()),
        });
    }
}

fn drain(events: &mut UnboundedReceiver<String>) -> Vec<String> {
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    all
}

#[tokio::test(start_paused = true)]
async fn callbacks_come_in_order_made_then_data_then_eof_then_lost() {
    let (protocol, mut events) = recorder(false);
    let (ours, mut theirs) = memory_pair(1024);
    let peer = async move {
        theirs.write_all(b"one").await?;
        let mut echo = [0; 3];
        theirs.read_exact(&mut echo).await?; // "one" was handled before "two" is sent
        theirs.write_all(b"two").await?;
        theirs.shutdown().await?;
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await?;
        Ok::<_, io::Error>(rest)
    };
    let (ran, rest) = tokio::join!(run_connection(protocol, ours), peer);
    ran.unwrap();
    assert_eq!(rest.unwrap(), b"two"); // flushed before closing
    assert_eq!(
        drain(&mut events),
        ["made", "data one", "data two", "eof", "lost"]
    );
}

#[tokio::test(start_paused = true)]
async fn eof_received_returning_true_keeps_the_transport_open_for_writing() {
    let (protocol, mut events) = recorder(true);
    let (ours, mut theirs) = memory_pair(1024);
    nursery(|n| async move {
        let (transport, connection) = connect_socket(&n, protocol, ours)?;
        theirs.shutdown().await?;
        assert_eq!(events.recv().await.as_deref(), Some("made"));
        assert_eq!(events.recv().await.as_deref(), Some("eof"));
        assert!(!transport.is_closing());
        transport.write(b"still here")?;
        transport.close();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await?;
        assert_eq!(rest, b"still here");
        connection.wait_closed().await?;
        assert_eq!(drain(&mut events), ["lost"]);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reset_in_memory_surfaces_in_connection_lost() {
    let (protocol, mut events) = recorder(false);
    let (ours, theirs) = memory_pair(1024);
    theirs.reset();
    run_connection(protocol, ours).await.unwrap();
    assert_eq!(
        drain(&mut events),
        ["made", "lost ConnectionReset: connection reset"]
    );
}

#[tokio::test]
async fn a_tcp_peer_reset_surfaces_in_connection_lost() {
    nursery(|n| async move {
        let (events_tx, mut events) = unbounded_channel();
        let factory = move || Recorder {
            events: events_tx.clone(),
            transport: None,
            keep_open: false,
        };
        let server = create_server(&n, factory, "127.0.0.1:0").await?;
        let mut client = TcpStream::connect(server.local_addrs()[0].as_inet().unwrap()).await?;
        client.write_all(b"hi").await?;
        let mut echo = [0; 2];
        client.read_exact(&mut echo).await?;
        // Close with SO_LINGER 0: the kernel sends RST instead of FIN.
        socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO))?;
        drop(client);
        assert_eq!(events.recv().await.as_deref(), Some("made"));
        assert_eq!(events.recv().await.as_deref(), Some("data hi"));
        let lost = events.recv().await.unwrap();
        assert!(lost.starts_with("lost ConnectionReset"), "{lost}");
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_panic_aborts_the_connection_and_reaches_connection_lost() {
    let (protocol, mut events) = recorder(false);
    let (ours, mut theirs) = memory_pair(1024);
    theirs.write_all(b"boom").await.unwrap();
    let error = run_connection(protocol, ours).await.unwrap_err();
    assert!(
        matches!(&error, ProtocolError::Panicked { callback: "data_received", message } if message.contains("asked to panic")),
        "{error}"
    );
    let events = drain(&mut events);
    assert_eq!(events[0], "made");
    assert!(events[1].starts_with("lost Other: protocol panicked in data_received"));
    let mut rest = Vec::new();
    theirs.read_to_end(&mut rest).await.unwrap(); // closed
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_protocol_that_panics_loses_only_its_own_connection() {
    nursery(|n| async move {
        let (events_tx, _events) = unbounded_channel();
        let factory = move || Recorder {
            events: events_tx.clone(),
            transport: None,
            keep_open: false,
        };
        let server = create_server(&n, factory, "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let mut good = TcpStream::connect(addr).await?;
        let mut bad = TcpStream::connect(addr).await?;

        bad.write_all(b"boom").await?;
        let mut rest = Vec::new();
        let _ = bad.read_to_end(&mut rest).await; // closed (or reset) by the server
        assert!(rest.is_empty());

        good.write_all(b"fine").await?;
        let mut echo = [0; 4];
        good.read_exact(&mut echo).await?;
        assert_eq!(&echo, b"fine");
        let mut late = TcpStream::connect(addr).await?; // still accepting
        late.write_all(b"ok").await?;
        late.read_exact(&mut echo[..2]).await?;
        assert!(server.is_serving());
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_connection_task_calls_connection_lost_with_connection_aborted() {
    let (protocol, mut events) = recorder(false);
    let (ours, mut theirs) = memory_pair(1024);
    let scope = CancelScope::new();
    let cancel = scope.clone();
    let run = scope.run(async move {
        let _ = run_connection(protocol, ours).await;
    });
    let peer = async move {
        theirs.write_all(b"x").await?;
        let mut echo = [0; 1];
        theirs.read_exact(&mut echo).await?;
        cancel.cancel();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await?;
        Ok::<_, io::Error>(rest)
    };
    let (ran, rest) = tokio::join!(run, peer);
    assert!(ran.is_none());
    assert!(rest.unwrap().is_empty());
    assert_eq!(
        drain(&mut events),
        [
            "made",
            "data x",
            "lost ConnectionAborted: connection cancelled"
        ]
    );
}
