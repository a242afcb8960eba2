//! trio-protocol's length-prefixed string server, on Trellis, and a client
//! for it.
//!
//! Each message is a 4-byte little-endian length, then that many bytes of
//! UTF-8. The server logs every string as `received string: <payload>` and
//! answers each with `ok`, framed the same way (the bytes `02 00 00 00 6f
//! 6b`). It shows a [`Protocol`] that reassembles frames from whatever
//! pieces `data_received` gets, a server whose connections all close when
//! its nursery is cancelled (Ctrl-C), and a client protocol that sends,
//! counts the answers and closes.
//!
//! ```sh
//! cargo run --example len_prefixed                            # server on 127.0.0.1:5566
//! cargo run --example len_prefixed -- 0.0.0.0:7000            # or on the address you give
//! cargo run --example len_prefixed -- --client                # in another terminal: sends "hello", "world"
//! cargo run --example len_prefixed -- --client 127.0.0.1:5566 one two three
//! ```
//!
//! `RUST_LOG` chooses what is logged (default: `info`).

use std::error::Error;
use std::io;

use bytes::{Buf, BytesMut};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;
use trellis::protocol::{Protocol, ProtocolError, Transport, create_connection, create_server};
use trellis::{Nursery, nursery};

/// The address the server listens on unless one is given, as in trio-protocol.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5566";

/// The largest payload accepted: a longer length prefix closes the
/// connection instead of waiting for gigabytes.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The server's answer to every string: `ok`, length-prefixed.
pub const OK_REPLY: &[u8] = b"\x02\x00\x00\x00ok";

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let mut args = std::env::args().skip(1).peekable();
    let client = args.next_if(|arg| arg == "--client").is_some();
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let mut messages: Vec<String> = args.collect();
    if messages.is_empty() {
        messages = vec!["hello".into(), "world".into()];
    }

    trellis::run(nursery(|n| async move {
        if client {
            let replies = send_strings(&n, &addr, messages).await?;
            info!(?replies, "the server answered");
            return Ok(());
        }
        let server = create_server(&n, LenPrefixedServer::default, addr).await?;
        info!(addrs = ?server.local_addrs(), "listening; press Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        info!("stopping");
        n.cancel(); // closes the listener and every connection
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    }))?;
    Ok(())
}

/// Frames `payload`: its length as 4 bytes, little-endian, then the bytes.
///
/// # Panics
///
/// If the payload is longer than `u32::MAX` bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("payload too long to frame");
    let mut framed = len.to_le_bytes().to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// Reassembles length-prefixed frames from pieces of a byte stream.
#[derive(Debug, Default)]
pub struct Frames {
    buffer: BytesMut,
}

impl Frames {
    /// Adds bytes as they arrived.
    pub fn extend(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next complete payload, if there is one.
    ///
    /// # Errors
    ///
    /// If the length prefix announces more than [`MAX_PAYLOAD`] bytes.
    pub fn next_payload(&mut self) -> io::Result<Option<BytesMut>> {
        let Some(prefix) = self.buffer.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes is over the {MAX_PAYLOAD}-byte limit"),
            ));
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(len)))
    }
}

/// The server's protocol: logs each string and answers `ok`.
#[derive(Debug, Default)]
pub struct LenPrefixedServer {
    transport: Option<Transport>,
    frames: Frames,
    /// Where received strings are also sent, for tests and embedders.
    received: Option<UnboundedSender<String>>,
}

impl LenPrefixedServer {
    /// A server protocol that also sends every string it receives to
    /// `received`.
    pub fn reporting_to(received: UnboundedSender<String>) -> Self {
        LenPrefixedServer {
            received: Some(received),
            ..LenPrefixedServer::default()
        }
    }
}

impl Protocol for LenPrefixedServer {
    fn connection_made(&mut self, transport: Transport) {
        info!(peer = ?transport.extra_info().peer_addr, "connected");
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(transport) = &self.transport else {
            return;
        };
        self.frames.extend(data);
        loop {
            match self.frames.next_payload() {
                Ok(Some(payload)) => {
                    let text = String::from_utf8_lossy(&payload);
                    info!("received string: {text}");
                    if let Some(received) = &self.received {
                        let _ = received.send(text.into_owned());
                    }
                    let _ = transport.write(OK_REPLY); // all answers go out together
                }
                Ok(None) => return,
                Err(error) => {
                    warn!(%error, "closing the connection");
                    transport.abort();
                    return;
                }
            }
        }
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        info!(?error, "disconnected");
    }
}

/// The client's protocol: sends every message when connected, collects the
/// answers, and closes when each message was answered.
#[derive(Debug, Default)]
pub struct LenPrefixedClient {
    transport: Option<Transport>,
    messages: Vec<String>,
    frames: Frames,
    /// The answers received, in order.
    pub replies: Vec<String>,
}

impl LenPrefixedClient {
    /// A client that will send `messages`.
    pub fn new(messages: Vec<String>) -> Self {
        LenPrefixedClient {
            messages,
            ..LenPrefixedClient::default()
        }
    }
}

impl Protocol for LenPrefixedClient {
    fn connection_made(&mut self, transport: Transport) {
        // One write for all frames.
        let _ = transport.writelines(self.messages.iter().map(|m| frame(m.as_bytes())));
        if self.messages.is_empty() {
            transport.close();
        }
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.frames.extend(data);
        while let Ok(Some(payload)) = self.frames.next_payload() {
            self.replies
                .push(String::from_utf8_lossy(&payload).into_owned());
        }
        if self.replies.len() >= self.messages.len() {
            if let Some(transport) = &self.transport {
                transport.close();
            }
        }
    }
}

/// Connects to `addr`, sends each message as a frame, and returns the
/// server's answers once every message was answered.
///
/// # Errors
///
/// If the connection fails or the client protocol fails.
pub async fn send_strings(
    n: &Nursery,
    addr: &str,
    messages: Vec<String>,
) -> Result<Vec<String>, ProtocolError> {
    let (_transport, connection) =
        create_connection(n, || LenPrefixedClient::new(messages), addr).await?;
    Ok(connection.wait_closed().await?.replies)
}
