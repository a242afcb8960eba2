//! `Transport::set_protocol` and `Transport::with_protocol`: handing a
//! connection from one protocol to another mid-stream (a handshake that
//! gives way to a data protocol), from a callback or from another task.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trellis::protocol::{Protocol, ProtocolError, Transport, connect_socket, run_connection};
use trellis::testing::{check_protocol, memory_pair};
use trellis::{BoxError, nursery};

#[allow(clippy::mod_module_files)]
mod support;
use support::Log as Events;

/// Echoes, and logs every callback under its name. Built with its transport:
/// `connection_made` is never called on a protocol switched to.
struct Echo {
    name: &'static str,
    transport: Transport,
    events: Events,
}

impl Protocol for Echo {
    fn connection_made(&mut self, _transport: Transport) {
        self.events.push(format!("{} made", self.name));
    }
    fn data_received(&mut self, data: &[u8]) {
        let data_text = String::from_utf8_lossy(data);
        self.events.push(format!("{} data {data_text}", self.name));
        let _ = self.transport.write(data);
    }
    fn eof_received(&mut self) -> bool {
        self.events.push(format!("{} eof", self.name));
        false
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let error = error.map_or("ok".to_owned(), |e| format!("{:?}", e.kind()));
        self.events.push(format!("{} lost {error}", self.name));
    }
    fn pause_writing(&mut self) {
        self.events.push(format!("{} pause_writing", self.name));
    }
    fn resume_writing(&mut self) {
        self.events.push(format!("{} resume_writing", self.name));
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.events.push(format!("{} dropped", self.name));
    }
}

/// Waits for a `HELLO` line, answers `WELCOME`, then hands the connection
/// to an [`Echo`], passing it the rest of the read that held the line.
#[derive(Default)]
struct Handshake {
    transport: Option<Transport>,
    line: Vec<u8>,
    events: Events,
    after_switch: usize,
}

impl Protocol for Handshake {
    fn connection_made(&mut self, transport: Transport) {
        self.events.push("handshake made");
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let transport = self.transport.clone().unwrap();
        if self.line.ends_with(b"\n") {
            self.after_switch += 1; // a callback after the switch: a bug
            return;
        }
        let end = data.iter().position(|&b| b == b'\n');
        let (line, rest) = match end {
            Some(end) => (&data[..=end], &data[end + 1..]),
            None => (data, &[][..]),
        };
        self.line.extend_from_slice(line);
        if end.is_some() {
            self.events.push("handshake done");
            let _ = transport.write(b"WELCOME\n");
            let mut echo = Echo {
                name: "echo",
                transport: transport.clone(),
                events: self.events.clone(),
            };
            if !rest.is_empty() {
                echo.data_received(rest);
            }
            transport.set_protocol(echo);
        }
    }
    fn eof_received(&mut self) -> bool {
        self.events.push("handshake eof");
        false
    }
    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.events.push("handshake lost");
    }
}

#[tokio::test(start_paused = true)]
async fn a_handshake_hands_over_to_echo_and_the_rest_of_its_read_goes_with_it()
-> Result<(), BoxError> {
    let events = Events::default();
    let handshake = Handshake {
        events: events.clone(),
        ..Handshake::default()
    };
    let (ours, mut theirs) = memory_pair(1024);
    let peer = async {
        // "HELLO\nping " arrives in one read: "ping " is passed on by the
        // handshake itself. "pong" is sent once "ping " came back, so it is a
        // later read, which reaches the echo directly.
        theirs.write_all(b"HELLO\nping ").await?;
        let mut first = [0; 13];
        theirs.read_exact(&mut first).await?;
        assert_eq!(&first, b"WELCOME\nping ");
        theirs.write_all(b"pong").await?;
        theirs.shutdown().await?;
        let mut rest = String::new();
        theirs.read_to_string(&mut rest).await?;
        Ok::<_, io::Error>(rest)
    };
    let (handshake, rest) = tokio::join!(run_connection(handshake, ours), peer);
    let handshake = handshake?;
    assert_eq!(rest?, "pong");
    assert_eq!(
        handshake.line, b"HELLO\n",
        "the original protocol is handed back"
    );
    assert_eq!(handshake.after_switch, 0);
    assert_eq!(
        events.entries(),
        [
            "handshake made",
            "handshake done",
            "echo data ping ",
            "echo data pong",
            "echo eof",
            "echo lost ok",
            "echo dropped",
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_switched_connection_passes_the_protocol_conformance_check() {
    // Every split of the input, the handshake line included, gives the same
    // answers: the switch never loses or repeats bytes.
    let output = check_protocol(Handshake::default, b"HELLO\nsome bytes\nand more").await;
    assert_eq!(output, b"WELCOME\nsome bytes\nand more");
}

#[tokio::test(start_paused = true)]
async fn a_switch_from_another_task_takes_effect_before_the_next_callback() -> Result<(), BoxError>
{
    let events = Events::default();
    let ours_events = events.clone();
    nursery(|n| async move {
        let (ours, mut theirs) = memory_pair(1024);
        let (transport, connection) = connect_socket(&n, Handshake::default(), ours)?;
        let first = Echo {
            name: "first",
            transport: transport.clone(),
            events: ours_events.clone(),
        };
        // Switch before any byte arrives, then again from this task.
        transport.set_protocol(first);
        theirs.write_all(b"one").await?;
        let mut echoed = [0; 3];
        theirs.read_exact(&mut echoed).await?;
        let second = Echo {
            name: "second",
            transport: transport.clone(),
            events: ours_events.clone(),
        };
        transport.set_protocol(second);
        theirs.write_all(b"two").await?;
        theirs.read_exact(&mut echoed).await?;
        assert_eq!(&echoed, b"two");
        theirs.shutdown().await?;
        let handshake = connection.wait_closed().await?;
        assert!(handshake.line.is_empty(), "the handshake saw no data");
        Ok::<_, BoxError>(())
    })
    .await?;
    assert_eq!(
        events.entries(),
        [
            "first data one",
            "first dropped", // replaced: dropped at the switch
            "second data two",
            "second eof",
            "second lost ok",
            "second dropped",
        ]
    );
    Ok(())
}

/// Logs its `connection_lost`, and tries to switch from inside it.
struct SwitchesWhenLost {
    transport: Option<Transport>,
    events: Events,
}

impl Protocol for SwitchesWhenLost {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, _data: &[u8]) {}
    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.events.push("lost");
        let transport = self.transport.clone().unwrap();
        transport.set_protocol(Echo {
            name: "late",
            transport: transport.clone(),
            events: self.events.clone(),
        });
        self.events.push("set_protocol returned");
    }
}

#[tokio::test(start_paused = true)]
async fn set_protocol_inside_connection_lost_drops_the_protocol_and_does_nothing()
-> Result<(), BoxError> {
    let events = Events::default();
    let protocol = SwitchesWhenLost {
        transport: None,
        events: events.clone(),
    };
    let (ours, mut theirs) = memory_pair(1024);
    theirs.shutdown().await?;
    let protocol = run_connection(protocol, ours).await?;
    // The late protocol got no callback and was dropped inside set_protocol.
    assert_eq!(
        events.entries(),
        ["lost", "late dropped", "set_protocol returned"]
    );
    let transport = protocol.transport.unwrap();
    assert!(matches!(
        transport.with_protocol(|_: &mut SwitchesWhenLost| ()).await,
        Err(ProtocolError::Closing)
    ));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn connection_lost_and_flow_control_reach_the_new_protocol() -> Result<(), BoxError> {
    let events = Events::default();
    let ours_events = events.clone();
    nursery(|n| async move {
        let (ours, mut theirs) = memory_pair(4);
        let (transport, connection) = connect_socket(&n, Handshake::default(), ours)?;
        transport.set_write_buffer_limits(Some(8), Some(0))?;
        transport.set_protocol(Echo {
            name: "new",
            transport: transport.clone(),
            events: ours_events.clone(),
        });
        // Past the high mark: the socket takes 4 bytes, 12 stay buffered.
        transport.write(b"0123456789abcdef")?;
        let mut all = [0; 16];
        theirs.read_exact(&mut all).await?;
        theirs.shutdown().await?;
        let handshake = connection.wait_closed().await?;
        assert!(handshake.line.is_empty());
        Ok::<_, BoxError>(())
    })
    .await?;
    assert_eq!(
        events.entries(),
        [
            "new pause_writing",
            "new resume_writing",
            "new eof",
            "new lost ok",
            "new dropped",
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn with_protocol_reaches_the_protocol_now_running_and_names_it_otherwise()
-> Result<(), BoxError> {
    nursery(|n| async move {
        let (ours, mut theirs) = memory_pair(1024);
        let (transport, connection) = connect_socket(&n, Handshake::default(), ours)?;
        let line = transport
            .with_protocol(|h: &mut Handshake| h.line.len())
            .await?;
        assert_eq!(line, 0, "the original protocol, before any byte");
        theirs.write_all(b"HELLO\n").await?;
        let mut welcome = [0; 8];
        theirs.read_exact(&mut welcome).await?;

        let name = transport.with_protocol(|echo: &mut Echo| echo.name).await?;
        assert_eq!(name, "echo");
        match transport
            .with_protocol(|h: &mut Handshake| h.line.len())
            .await
        {
            Err(ProtocolError::WrongProtocol { expected, found }) => {
                assert!(expected.ends_with("Handshake"), "{expected}");
                assert!(found.ends_with("Echo"), "{found}");
            }
            other => panic!("expected WrongProtocol, got {other:?}"),
        }
        // What `f` writes is flushed like a callback's writes.
        transport
            .with_protocol(|echo: &mut Echo| echo.transport.write(b"hi"))
            .await??;
        let mut hi = [0; 2];
        theirs.read_exact(&mut hi).await?;
        assert_eq!(&hi, b"hi");

        transport.close();
        connection.wait_closed().await?;
        assert!(matches!(
            transport.with_protocol(|echo: &mut Echo| echo.name).await,
            Err(ProtocolError::Closing)
        ));
        Ok::<_, BoxError>(())
    })
    .await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn of_two_switches_before_the_next_callback_the_last_wins_and_the_other_is_dropped()
-> Result<(), BoxError> {
    let events = Events::default();
    let ours_events = events.clone();
    nursery(|n| async move {
        let (ours, mut theirs) = memory_pair(1024);
        let (transport, connection) = connect_socket(&n, Handshake::default(), ours)?;
        for name in ["overtaken", "last"] {
            transport.set_protocol(Echo {
                name,
                transport: transport.clone(),
                events: ours_events.clone(),
            });
        }
        theirs.write_all(b"x").await?;
        theirs.shutdown().await?;
        let mut echoed = Vec::new();
        theirs.read_to_end(&mut echoed).await?;
        assert_eq!(echoed, b"x");
        connection.wait_closed().await?;
        Ok::<_, BoxError>(())
    })
    .await?;
    assert_eq!(
        events.entries(),
        [
            "overtaken dropped", // at the second set_protocol, no callback
            "last data x",
            "last eof",
            "last lost ok",
            "last dropped",
        ]
    );
    Ok(())
}
