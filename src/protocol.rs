//! `asyncio.Protocol`-style protocols and transports, inside nurseries
//! (trio-protocol, complete).
//!
//! Callback-style network code — a [`Protocol`] whose methods are called when
//! a connection is made, when bytes arrive, when the peer stops sending —
//! is how asyncio servers, Twisted and many C libraries are written. This
//! module runs such code in the structured world: every connection is a task
//! of a nursery, so cancelling the server's nursery closes every connection,
//! and nothing the protocol starts outlives it.
//!
//! It sits above [`net`](crate::net), which hands a plain stream to an
//! `async fn` per connection. Choose by the shape of your code:
//!
//! | if your protocol is… | use |
//! |---|---|
//! | straight-line `async` code (read, then answer, then read…) | [`net::serve_tcp`](crate::net::serve_tcp) with a handler |
//! | a state machine fed by callbacks, ported from asyncio or Twisted, or one that answers from other tasks later | a [`Protocol`] with [`create_server`] / [`create_connection`] |
//! | made of frames that a [`tokio_util::codec`] `Decoder` already parses | [`FramedProtocol`] (a protocol built from a codec), or `tokio_util::codec::Framed` over [`net`](crate::net) when the handler is straight-line `async` code |
//!
//! # You call → we call back
//!
//! | you call | we call back |
//! |---|---|
//! | [`create_server`], [`create_unix_server`], [`run_server`]: a peer connects | `factory()`, then [`Protocol::connection_made`] with its [`Transport`] |
//! | [`create_connection`], [`create_unix_connection`], [`connect_socket`] | [`Protocol::connection_made`] |
//! | (the peer sends bytes) | [`Protocol::data_received`], once per read, with the bytes read |
//! | (the peer closes its sending side) | [`Protocol::eof_received`]; return `true` to keep writing |
//! | [`Transport::write`] past the high-water mark ([`Transport::set_write_buffer_limits`]) | [`Protocol::pause_writing`] |
//! | (the buffer drains to the low-water mark) | [`Protocol::resume_writing`] |
//! | [`Transport::pause_reading`] / [`Transport::resume_reading`] | `data_received` stops / starts again |
//! | [`Transport::close`] (after the buffer is flushed), [`Transport::abort`], an I/O error, a panic, the nursery cancelled | [`Protocol::connection_lost`], exactly once, last |
//! | [`Transport::set_protocol`] | nothing at once; every later callback goes to the new protocol (no `connection_made`) |
//! | [`Transport::with_protocol`] | your closure, on the current protocol, between two callbacks |
//!
//! The order is always `connection_made`, any number of `data_received`, at
//! most one `eof_received` (then no more `data_received`), and
//! `connection_lost`; `pause_writing` and `resume_writing` alternate,
//! starting with `pause_writing`, anywhere between `connection_made` and
//! `connection_lost`.
//!
//! Callbacks are synchronous methods taking `&mut self`, as in asyncio. They
//! run in the connection's task, one at a time. Asynchronous work goes
//! through the [`Loop`] facade (`Loop::current()` inside a callback), whose
//! tasks live in the server's nursery. The [`Transport`] is a cheap, `Clone`,
//! `Send + Sync` handle: other tasks may keep it and write later (a
//! shard answering a request, a timer).
//!
//! # asyncio → Trellis
//!
//! | asyncio | Trellis | difference, and why |
//! |---|---|---|
//! | `Protocol` methods | [`Protocol`] methods, same names | synchronous `&mut self` callbacks, in the connection's own task |
//! | `transport.write`, `writelines`, `write_eof`, `close`, `abort` | the same [`Transport`] methods | errors are values ([`ProtocolError::Closing`]) instead of silently ignored writes |
//! | `get_extra_info(name)` | [`Transport::extra_info`] | a typed struct instead of string keys |
//! | `set_protocol(p)` | [`Transport::set_protocol`] | same rule: takes effect for the next callback, no `connection_made` on the new protocol. The protocol the connection started with is handed back by [`run_connection`] / [`Connection::wait_closed`] (asyncio's caller keeps its reference too); protocols replaced later are dropped |
//! | `get_protocol()` | [`Transport::with_protocol`] `(|p: &mut P| …)` | the protocol is owned by the connection's task, so no reference can be handed out: your closure travels there and runs between callbacks, and a wrong type is an error naming the protocol's actual type |
//! | `loop.create_server`, `create_connection`, `connect_accepted_socket` | [`create_server`], [`create_connection`], [`connect_socket`] / [`run_connection`] | every connection is a task of a nursery |
//!
//! # Performance notes
//!
//! One task per connection reads into a reused buffer and hands
//! `data_received` a slice of it. Small writes made inside a callback are
//! collected and handed to the socket in one system call when the callback
//! returns (so pipelined answers go out together); a write from another task
//! goes straight to the socket when nothing is buffered, and is buffered
//! otherwise. Steady-state writes do not allocate.
//!
//! # Failures
//!
//! A protocol that panics loses only its own connection: the panic is
//! caught, logged as a `tracing` error, the connection is aborted, and
//! [`Protocol::connection_lost`] is called with an error that carries the
//! panic message. A server keeps serving its other connections.
//!
//! # Examples
//!
//! An echo server and a client that counts what comes back:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use trellis::protocol::{create_connection, create_server, Protocol, Transport};
//!
//! struct Echo(Option<Transport>);
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: Transport) {
//!         self.0 = Some(transport);
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         if let Some(transport) = &self.0 {
//!             let _ = transport.write(data);
//!         }
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Client(Vec<u8>);
//!
//! impl Protocol for Client {
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.0.extend_from_slice(data);
//!     }
//! }
//!
//! trellis::nursery(|n| async move {
//!     let server = create_server(&n, || Echo(None), "127.0.0.1:0").await?;
//!     let addr = server.local_addrs()[0].as_inet().unwrap();
//!
//!     let (transport, client) = create_connection(&n, Client::default, addr).await?;
//!     transport.write(b"hello")?;
//!     transport.write_eof()?; // the server's Echo closes when it sees EOF
//!     let client = client.wait_closed().await?;
//!     assert_eq!(client.0, b"hello");
//!
//!     n.cancel(); // stops the server
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::task::{Context, Poll};

use crate::NurseryError;

mod client;
mod codec;
mod event_loop;
mod server;
mod socket;
mod transport;

pub use client::{Connection, connect_socket, create_connection, create_unix_connection};
pub use codec::{FrameHandler, FrameWriter, FramedProtocol};
pub use event_loop::{Loop, TimerHandle};
pub use server::{Server, create_server, create_unix_server, run_server, run_unix_server};
pub use transport::{Transport, run_connection};

/// The callbacks of a connection (asyncio's `Protocol`).
///
/// See the [module documentation](self#you-call--we-call-back) for who calls
/// what, and in which order. Every method but `data_received` has a default:
///
/// | callback | default |
/// |---|---|
/// | `connection_made` | drops the transport |
/// | `data_received` | (required) |
/// | `eof_received` | returns `false`: the transport closes |
/// | `connection_lost` | does nothing |
/// | `pause_writing`, `resume_writing` | do nothing |
///
/// # Examples
///
/// A protocol driven over an in-memory socket, showing the callback order:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::io;
/// use tokio::io::AsyncWriteExt;
/// use trellis::protocol::{run_connection, Protocol, Transport};
/// use trellis::testing::memory_pair;
///
/// #[derive(Default)]
/// struct Log(Vec<String>);
///
/// impl Protocol for Log {
///     fn connection_made(&mut self, _transport: Transport) {
///         self.0.push("made".into());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         self.0.push(format!("data {}", String::from_utf8_lossy(data)));
///     }
///     fn eof_received(&mut self) -> bool {
///         self.0.push("eof".into());
///         false
///     }
///     fn connection_lost(&mut self, error: Option<io::Error>) {
///         self.0.push(format!("lost {}", error.is_some()));
///     }
/// }
///
/// let (ours, mut theirs) = memory_pair(1024);
/// theirs.write_all(b"hi").await?;
/// theirs.shutdown().await?;
/// let log = run_connection(Log::default(), ours).await?;
/// assert_eq!(log.0, ["made", "data hi", "eof", "lost false"]);
/// # Ok(()) }
/// ```
pub trait Protocol: Send + 'static {
    /// Called once, first, with the connection's transport; keep a clone to
    /// write.
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }

    /// Called with the bytes of each read, in order.
    ///
    /// The slice is only valid during the call: framing protocols copy what
    /// they must keep (see [`FramedProtocol`] for one that does it for you).
    /// Any split of the stream is possible: a frame may arrive in many calls,
    /// several frames in one.
    fn data_received(&mut self, data: &[u8]);

    /// Called once when the peer closes its sending side; no
    /// `data_received` follows.
    ///
    /// Return `false` (the default) to close the transport, flushing what is
    /// buffered, or `true` to keep it open for writing until you call
    /// [`Transport::close`].
    fn eof_received(&mut self) -> bool {
        false
    }

    /// Called once, last: `None` after [`Transport::close`] or
    /// [`Transport::abort`] or an end of file the protocol let close, `Some`
    /// with the error that ended the connection otherwise (a reset by the
    /// peer, a panic of this protocol, the connection's nursery cancelled,
    /// of kind `ConnectionAborted`).
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }

    /// Called when the write buffer grows past the high-water mark: stop
    /// producing until [`resume_writing`](Protocol::resume_writing).
    ///
    /// Writes still work while paused; they are buffered.
    fn pause_writing(&mut self) {}

    /// Called when the write buffer drained to the low-water mark after a
    /// [`pause_writing`](Protocol::pause_writing).
    fn resume_writing(&mut self) {}
}

/// A readiness-based byte stream a [`Transport`] can drive: TCP and Unix
/// streams, and [`testing::MemoryStream`](crate::testing::MemoryStream).
///
/// Implement it to run protocols over another kind of socket. All methods
/// take `&self`: the connection's task reads while other tasks write through
/// the transport. [`testing::check_socket`](crate::testing::check_socket)
/// checks an implementation.
pub trait Socket: Send + Sync + 'static {
    /// Reads into `buf`, registering `cx` for wake-up when nothing can be
    /// read. `Ok(0)` means end of file.
    ///
    /// # Errors
    ///
    /// The I/O error of the read.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Resolves when [`poll_read`](Socket::poll_read) may have bytes (or
    /// end of file, or an error) to give, registering `cx` for wake-up until
    /// then. A transport waits on it without a read buffer, so that an idle
    /// connection holds none.
    ///
    /// The default resolves at once: a socket that cannot tell gets a buffer
    /// for every read attempt, and gives it back when the read waits.
    ///
    /// # Errors
    ///
    /// The I/O error that makes the socket unusable.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// Writes as much of `buf` as the socket takes now, without waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when it takes nothing now; the I/O error of the write.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Resolves when [`try_write`](Socket::try_write) may take bytes again,
    /// registering `cx` for wake-up until then.
    ///
    /// # Errors
    ///
    /// The I/O error that makes the socket unusable.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Closes the sending side: the peer reads end of file.
    ///
    /// # Errors
    ///
    /// The I/O error of the shutdown.
    fn shutdown_write(&self) -> io::Result<()>;

    /// Addresses and handles of the socket, for [`Transport::extra_info`].
    /// The default has none.
    fn extra_info(&self) -> ExtraInfo {
        ExtraInfo::default()
    }
}

/// What a transport knows about its socket (asyncio's `get_extra_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtraInfo {
    /// The peer's address (`peername`).
    pub peer_addr: Option<SocketAddress>,
    /// The local address (`sockname`).
    pub local_addr: Option<SocketAddress>,
    /// The socket's file descriptor (`socket`), to set options with
    /// `socket2::SockRef` or `libc`; valid while the connection is open.
    #[cfg(unix)]
    pub raw_fd: Option<std::os::fd::RawFd>,
}

impl ExtraInfo {
    /// Extra info with the given addresses and no file descriptor.
    pub fn new(peer_addr: Option<SocketAddress>, local_addr: Option<SocketAddress>) -> Self {
        ExtraInfo {
            peer_addr,
            local_addr,
            #[cfg(unix)]
            raw_fd: None,
        }
    }
}

/// The address of a socket: an IP address and port, or a Unix socket path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketAddress {
    /// A TCP address.
    Inet(SocketAddr),
    /// A Unix socket, with its path if it is bound to one.
    Unix(Option<PathBuf>),
}

impl SocketAddress {
    /// The TCP address, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::protocol::SocketAddress;
    ///
    /// let addr = "127.0.0.1:80".parse().unwrap();
    /// assert_eq!(SocketAddress::Inet(addr).as_inet(), Some(addr));
    /// assert_eq!(SocketAddress::Unix(None).as_inet(), None);
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            SocketAddress::Inet(addr) => Some(*addr),
            SocketAddress::Unix(_) => None,
        }
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Inet(addr) => write!(f, "{addr}"),
            SocketAddress::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            SocketAddress::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// What went wrong in the protocol layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The transport is closing or closed: the write was discarded.
    #[error("transport is closing")]
    Closing,
    /// [`Transport::write_eof`] was called: nothing more may be written.
    #[error("write side already closed")]
    EofWritten,
    /// [`Transport::set_write_buffer_limits`] got a low mark above the high
    /// mark.
    #[error("invalid write buffer limits: low {low} is above high {high}")]
    InvalidLimits {
        /// The high-water mark asked for.
        high: usize,
        /// The low-water mark asked for.
        low: usize,
    },
    /// [`Transport::with_protocol`] asked for a protocol type the
    /// connection is not running.
    #[error("connection runs protocol {found}, not {expected}")]
    WrongProtocol {
        /// The type asked for.
        expected: &'static str,
        /// The type of the connection's current protocol.
        found: &'static str,
    },
    /// A callback of the protocol panicked; the connection was aborted.
    #[error("protocol panicked in {callback}: {message}")]
    Panicked {
        /// The callback that panicked (`data_received`, …).
        callback: &'static str,
        /// The panic message.
        message: String,
    },
    /// The connection's task was cancelled before the connection ended.
    #[error("connection cancelled")]
    Cancelled,
    /// Binding, accepting or connecting failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The nursery no longer takes tasks.
    #[error("nursery error: {0}")]
    Nursery(#[from] NurseryError),
}
