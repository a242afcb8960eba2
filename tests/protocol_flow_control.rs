//! Flow control both ways: write-buffer limits driving `pause_writing` and
//! `resume_writing`, `pause_reading` / `resume_reading`; and how `close`,
//! `abort` and `write_eof` treat pending writes.
//!
//! These run over `memory_pair`, whose capacity is exact: how much the
//! "socket" takes is known, so the buffer sizes below are too.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use trellis::BoxError;
use trellis::nursery;
use trellis::protocol::{Protocol, ProtocolError, Transport, connect_socket, run_connection};
use trellis::testing::{memory_pair, wait_all_tasks_blocked};

/// Reports its callbacks; pauses reading after each `data_received` when
/// asked to.
#[derive(Debug)]
struct Flow {
    events: UnboundedSender<String>,
    transport: Option<Transport>,
    pause_after_data: bool,
}

fn flow(pause_after_data: bool) -> (Flow, UnboundedReceiver<String>) {
    let (events, rx) = unbounded_channel();
    let flow = Flow {
        events,
        transport: None,
        pause_after_data,
    };
    (flow, rx)
}

impl Protocol for Flow {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let _ = self
            .events
            .send(format!("data {}", String::from_utf8_lossy(data)));
        if self.pause_after_data {
            self.transport.as_ref().unwrap().pause_reading();
        }
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = self.events.send(format!("lost {}", error.is_some()));
    }
    fn pause_writing(&mut self) {
        let size = self.transport.as_ref().unwrap().write_buffer_size();
        let _ = self.events.send(format!("pause at {size}"));
    }
    fn resume_writing(&mut self) {
        let size = self.transport.as_ref().unwrap().write_buffer_size();
        let _ = self.events.send(format!("resume at {size}"));
    }
}

#[tokio::test(start_paused = true)]
async fn write_buffer_limits_fire_pause_and_resume_exactly_at_the_marks() {
    let (protocol, mut events) = flow(false);
    let (ours, mut slow_reader) = memory_pair(10);
    nursery(|n| async move {
        let (transport, _connection) = connect_socket(&n, protocol, ours)?;
        transport.set_write_buffer_limits(Some(20), Some(5))?;

        transport.write(&[b'a'; 25])?; // 10 to the socket, 15 buffered
        assert_eq!(transport.write_buffer_size(), 15);
        transport.write(&[b'b'; 5])?; // 20: at the mark, not above
        wait_all_tasks_blocked().await;
        assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
        transport.write(b"c")?; // 21: above
        assert_eq!(events.recv().await.as_deref(), Some("pause at 21"));

        let mut chunk = [0; 10];
        slow_reader.read_exact(&mut chunk).await?; // the connection moves 10 more: 11 left
        slow_reader.read_exact(&mut chunk).await?; // those 10 arrived
        assert_eq!(transport.write_buffer_size(), 11);
        assert_eq!(events.try_recv(), Err(TryRecvError::Empty)); // 11 is above the low mark
        // The connection moves 10 more: 1 left, at or below 5.
        assert_eq!(events.recv().await.as_deref(), Some("resume at 1"));
        wait_all_tasks_blocked().await;
        assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn resume_is_called_when_the_buffer_drains_to_the_low_mark_not_below() {
    let (protocol, mut events) = flow(false);
    let (ours, mut slow_reader) = memory_pair(5);
    nursery(|n| async move {
        let (transport, _connection) = connect_socket(&n, protocol, ours)?;
        transport.set_write_buffer_limits(Some(12), Some(8))?;
        transport.write(&[b'x'; 5 + 13])?; // 5 to the socket, 13 buffered: above 12
        assert_eq!(events.recv().await.as_deref(), Some("pause at 13"));
        let mut chunk = [0; 5];
        slow_reader.read_exact(&mut chunk).await?; // 5 move: 8 left, the low mark
        assert_eq!(events.recv().await.as_deref(), Some("resume at 8"));
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn raising_the_limits_resumes_a_paused_writer() {
    let (protocol, mut events) = flow(false);
    let (ours, _slow_reader) = memory_pair(1);
    nursery(|n| async move {
        let (transport, _connection) = connect_socket(&n, protocol, ours)?;
        transport.set_write_buffer_limits(Some(4), None)?;
        assert_eq!(transport.write_buffer_limits(), (1, 4));
        transport.write(b"123456")?; // 1 to the socket, 5 buffered
        assert_eq!(events.recv().await.as_deref(), Some("pause at 5"));
        transport.set_write_buffer_limits(Some(100), Some(50))?;
        assert_eq!(events.recv().await.as_deref(), Some("resume at 5"));
        assert!(matches!(
            transport.set_write_buffer_limits(Some(1), Some(2)),
            Err(ProtocolError::InvalidLimits { high: 1, low: 2 })
        ));
        assert_eq!(transport.write_buffer_limits(), (50, 100)); // unchanged
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn pause_reading_stops_data_received_and_resume_reading_restarts_it() {
    let (protocol, mut events) = flow(true);
    let (ours, mut theirs) = memory_pair(1);
    nursery(|n| async move {
        let (transport, _connection) = connect_socket(&n, protocol, ours)?;
        theirs.write_all(b"a").await?;
        assert_eq!(events.recv().await.as_deref(), Some("data a"));
        theirs.write_all(b"b").await?; // fills the one-byte socket: nobody reads it
        wait_all_tasks_blocked().await;
        assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
        assert!(!transport.is_reading());

        transport.resume_reading();
        assert_eq!(events.recv().await.as_deref(), Some("data b"));
        assert!(!transport.is_reading()); // paused again by the protocol
        transport.resume_reading();
        assert!(transport.is_reading());
        theirs.write_all(b"c").await?;
        assert_eq!(events.recv().await.as_deref(), Some("data c"));
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

/// Writes 100 bytes when connected, then ends as told.
#[derive(Debug)]
struct WriteThen(&'static str, UnboundedSender<String>);

impl Protocol for WriteThen {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(&[b'z'; 100]).unwrap();
        match self.0 {
            "close" => transport.close(),
            "abort" => transport.abort(),
            _ => transport.write_eof().unwrap(),
        }
        assert!(matches!(
            transport.write(b"late"),
            Err(ProtocolError::Closing | ProtocolError::EofWritten)
        ));
    }
    fn data_received(&mut self, data: &[u8]) {
        let _ = self.1.send(String::from_utf8_lossy(data).into_owned());
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = self.1.send(format!("lost {}", error.is_some()));
    }
}

async fn peer_of(end: &'static str) -> (Vec<u8>, Vec<String>) {
    let (events_tx, mut events) = unbounded_channel();
    let (ours, mut theirs) = memory_pair(4);
    let peer = async move {
        let mut received = Vec::new();
        let _ = theirs.read_to_end(&mut received).await;
        if end == "write_eof" {
            theirs.write_all(b"reply").await.unwrap();
            drop(theirs);
        }
        received
    };
    let (ran, received) = tokio::join!(run_connection(WriteThen(end, events_tx), ours), peer);
    ran.unwrap();
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    (received, all)
}

#[tokio::test(start_paused = true)]
async fn close_flushes_pending_writes_before_the_connection_is_lost() {
    let (received, events) = peer_of("close").await;
    assert_eq!(received, [b'z'; 100]);
    assert_eq!(events, ["lost false"]);
}

#[tokio::test(start_paused = true)]
async fn abort_drops_pending_writes_and_loses_the_connection_at_once() {
    let (received, events) = peer_of("abort").await;
    // Writes made inside a callback reach the socket when it returns:
    // `connection_made` aborted first, so nothing was sent.
    assert!(received.is_empty());
    assert_eq!(events, ["lost false"]);
}

#[tokio::test(start_paused = true)]
async fn write_eof_flushes_then_closes_only_the_sending_side() {
    let (received, events) = peer_of("write_eof").await;
    assert_eq!(received, [b'z'; 100]);
    assert_eq!(events, ["repl", "y", "lost false"]); // the socket takes 4 bytes at a time
}

#[tokio::test(start_paused = true)]
async fn abort_from_another_task_drops_what_the_socket_has_not_taken() {
    let (protocol, mut events) = flow(false);
    let (ours, mut theirs) = memory_pair(4);
    nursery(|n| async move {
        let (transport, connection) = connect_socket(&n, protocol, ours)?;
        transport.write(b"sent then dropped")?; // 4 bytes to the socket
        assert_eq!(transport.write_buffer_size(), 13);
        transport.abort();
        assert!(transport.is_closing());
        assert!(matches!(transport.write(b"x"), Err(ProtocolError::Closing)));
        connection.wait_closed().await?;
        assert_eq!(events.recv().await.as_deref(), Some("lost false"));
        let mut received = Vec::new();
        theirs.read_to_end(&mut received).await?;
        assert_eq!(received, b"sent");
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
