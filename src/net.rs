//! TCP servers and clients that live in a nursery: Trio's `serve_tcp`.
//!
//! [`serve_tcp`] binds listeners for an address, then accepts connections
//! until it is stopped, running `handler(stream)` for each connection as a
//! task of a nursery that the server owns. A server is therefore an ordinary
//! task, started with [`Nursery::start`](crate::Nursery::start) —
//! `n.start(|status| serve_tcp(handler, addr, status))` — whose
//! [`TaskStatus`] hands the starter the addresses it bound (port 0 picks a
//! free port). Stop it by cancelling the nursery or scope around it. Because
//! every connection lives in the server's nursery, stopping the server closes
//! every connection, and when the server's task has ended no connection task
//! is left behind.
//!
//! The streams are plain [`tokio::net::TcpStream`]s: anything written for
//! tokio works in a handler. The later `protocol` layer builds
//! `asyncio.Protocol`-style callbacks on top of this module; reach for it when
//! you port callback-style code. When you need a socket option this module
//! does not set, bind with [`tokio::net::TcpSocket`] yourself and hand the
//! listener to [`serve_listeners`].
//!
//! # Cheat sheet
//!
//! | if you want to… | write |
//! |---|---|
//! | serve, and learn the bound address (port 0) | `let addrs = n.start(\|s\| serve_tcp(handler, "127.0.0.1:0", s)).await?` |
//! | serve listeners you bound yourself | [`open_tcp_listeners`] or [`tokio::net::TcpSocket`], then [`serve_listeners`] |
//! | stop the server and close every connection | cancel the nursery or [`CancelScope`](crate::CancelScope) around it |
//! | stop accepting but let connections finish | [`Nursery::shutdown(grace)`](crate::Nursery::shutdown) around it; handlers watch [`wait_shutdown`] |
//! | give up on a silent peer | [`move_on_after`](crate::move_on_after) around each read |
//! | connect to a server | [`open_tcp_stream`] |
//!
//! # Failures
//!
//! A failing connection handler (it returns `Err` or panics) loses only its
//! own connection: connection tasks are spawned with
//! [`SpawnOptions::bubble(false)`](crate::SpawnOptions::bubble), so the
//! failure is logged as a `tracing` error event, with the task name
//! `tcp connection <peer address>`, and the server keeps accepting. Handle
//! errors inside the handler when you want anything else to happen.
//!
//! Errors are [`std::io::Error`]s, as in tokio; those about an address say
//! which one, and keep the [`kind`](std::io::Error::kind) of the error the
//! operating system reported.
//!
//! # Examples
//!
//! An echo server and one client:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::TcpStream;
//! use trellis::net::{open_tcp_stream, serve_tcp};
//!
//! async fn echo(mut stream: TcpStream) -> std::io::Result<u64> {
//!     let (mut reader, mut writer) = stream.split();
//!     tokio::io::copy(&mut reader, &mut writer).await
//! }
//!
//! trellis::nursery(|n| async move {
//!     let addrs = n.start(|status| serve_tcp(echo, "127.0.0.1:0", status)).await?;
//!
//!     let mut client = open_tcp_stream(addrs[0]).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0; 5];
//!     client.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"hello");
//!
//!     n.cancel(); // stops the server and closes its connections
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs, lookup_host};

use crate::{
    Nursery, NurseryError, NurseryOptions, SpawnOptions, TaskOutput, TaskStatus, nursery_with,
    wait_shutdown,
};

/// How long the accept loop pauses after an error that says the process or
/// system ran out of something (file descriptors, buffers, memory), as Trio
/// does, so that a full table does not turn into a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Binds listeners for `addr`, then serves every connection with `handler`
/// until cancelled (Trio's `serve_tcp`).
///
/// `addr` is anything [`tokio::net::ToSocketAddrs`] accepts: `"127.0.0.1:8080"`,
/// `("localhost", 0)`, a [`SocketAddr`]… It is resolved and bound as
/// [`open_tcp_listeners`] does; port 0 picks a free port. Once every listener
/// is bound, `status` receives their addresses, so a starter using
/// [`Nursery::start`](crate::Nursery::start) learns the port. Then the server
/// runs [`serve_listeners`]: each accepted connection becomes a task
/// `tcp connection <peer>` of the server's own nursery, which calls
/// `handler(stream)`. A failing handler (error or panic) is logged and loses
/// only its connection: see [Failures](self#failures). Accepted streams have
/// `TCP_NODELAY` set, as in Trio: small writes go out at once.
///
/// The server stops in one of four ways:
///
/// - **cancelled** (its nursery, scope or task): the listeners close, every
///   connection task is cancelled at its next `.await` and its stream closed;
///   the future is dropped, as any cancelled Trellis task;
/// - **graceful shutdown** ([`Nursery::shutdown`](crate::Nursery::shutdown) or
///   [`CancelScope::shutdown`](crate::CancelScope::shutdown) around it): it
///   stops accepting and closes its listeners at once, then returns `Ok(())`
///   when every connection task has ended. Handlers see the request through
///   [`wait_shutdown`]; those still running when the grace period ends are
///   cancelled;
/// - **stopped by a handler**, which cancels the server's nursery (inside a
///   handler, [`Nursery::current`](crate::Nursery::current) is that nursery):
///   as when cancelled, but the future returns `Ok(())`;
/// - **a fatal accept error**: it cancels its connections and returns the
///   error. Errors that are about one connection (`ECONNABORTED`,
///   `ECONNRESET`, `EPERM`…) are skipped, and errors that say the system ran
///   out of something (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, and any error
///   the operating system does not classify) are logged and retried after
///   100 ms. Only an error saying the listener itself is unusable
///   (`EINVAL`: no longer listening) is fatal.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::net::TcpStream;
/// use trellis::net::serve_tcp;
///
/// async fn greet(mut stream: TcpStream) -> std::io::Result<()> {
///     stream.write_all(b"hello\n").await
/// }
///
/// trellis::nursery(|n| async move {
///     let addrs = n.start(|status| serve_tcp(greet, "127.0.0.1:0", status)).await?;
///     assert_eq!(addrs.len(), 1);
///     assert_ne!(addrs[0].port(), 0); // the port the system picked
///
///     let mut client = TcpStream::connect(addrs[0]).await?;
///     let mut greeting = String::new();
///     client.read_to_string(&mut greeting).await?; // until the server hangs up
///     assert_eq!(greeting, "hello\n");
///
///     n.cancel();
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// The error of [`open_tcp_listeners`] if binding fails (before `status` is
/// reported, so `start` returns it as [`StartError::Failed`](crate::StartError::Failed));
/// afterwards, a fatal accept error as described above, or, if a task that a
/// handler spawned into the server's nursery with `bubble(true)` failed,
/// that [`NurseryError`] wrapped in an [`io::Error`] of kind `Other`.
///
/// # Cancel safety
///
/// Dropping the future closes the listeners and cancels every connection
/// task, at once, without waiting for them: cancel the server through a
/// Trellis scope or nursery instead, which waits for its connection tasks.
pub async fn serve_tcp<H, Fut>(
    handler: H,
    addr: impl ToSocketAddrs,
    status: TaskStatus<Vec<SocketAddr>>,
) -> io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutput,
{
    let listeners = open_tcp_listeners(addr).await?;
    serve_listeners(handler, listeners, status).await
}

/// Serves every connection of already bound `listeners` with `handler`, until
/// cancelled (Trio's `serve_listeners`).
///
/// This is [`serve_tcp`] without the binding: use it when you bound the
/// listeners yourself, e.g. with [`open_tcp_listeners`] or with
/// [`tokio::net::TcpSocket`] to set socket options first. `status` receives
/// the listeners' local addresses before the first connection is accepted.
/// Everything else — one task per connection in the server's nursery,
/// failures logged, how the server stops — is as [`serve_tcp`] describes.
/// With several listeners, connections are accepted from all of them, taking
/// turns.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio::io::AsyncReadExt;
/// use tokio::net::{TcpListener, TcpStream};
/// use trellis::net::serve_listeners;
///
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
///
/// trellis::nursery(|n| async move {
///     let handler = |stream: TcpStream| async move { drop(stream) }; // hang up at once
///     let addrs = n.start(|status| serve_listeners(handler, [listener], status)).await?;
///     assert_eq!(addrs, [addr]);
///
///     let mut client = TcpStream::connect(addr).await?;
///     assert_eq!(client.read(&mut [0; 8]).await?, 0); // closed by the server
///     n.cancel();
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// An error of kind `InvalidInput` if `listeners` is empty; the error of
/// [`TcpListener::local_addr`]; then as [`serve_tcp`].
///
/// # Cancel safety
///
/// As [`serve_tcp`].
pub async fn serve_listeners<H, Fut>(
    handler: H,
    listeners: impl IntoIterator<Item = TcpListener>,
    status: TaskStatus<Vec<SocketAddr>>,
) -> io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutput,
{
    let listeners: Vec<TcpListener> = listeners.into_iter().collect();
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no listeners to serve",
        ));
    }
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    let options = NurseryOptions::new().name(format!("tcp server {}", AddrList(&addrs)));
    let handler = Arc::new(handler);
    let served = nursery_with(options, |n| async move {
        status.started(addrs);
        let result = accept_loop(&n, listeners, &handler).await;
        if result.is_err() {
            n.cancel(); // a fatal error: close every connection too
        }
        Ok::<_, NurseryError>(result)
    })
    .await;
    match served {
        Ok(result) => result,
        // A handler cancelled the server's nursery (`Nursery::current()`):
        // the server stopped as asked.
        Err(NurseryError::Cancelled) => Ok(()),
        Err(error) => Err(io::Error::other(error)),
    }
}

/// Accepts connections and spawns their tasks until a shutdown is requested
/// (`Ok`) or accepting fails for good (`Err`). The listeners close on return.
async fn accept_loop<H, Fut>(
    n: &Nursery,
    listeners: Vec<TcpListener>,
    handler: &Arc<H>,
) -> io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutput,
{
    let mut shutdown = pin!(wait_shutdown());
    let mut turn = 0;
    loop {
        let accepted = poll_fn(|cx| {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            poll_accept_any(&listeners, &mut turn, cx).map(Some)
        })
        .await;
        let Some(accepted) = accepted else {
            tracing::debug!("shutdown requested: no longer accepting connections");
            return Ok(());
        };
        match accepted {
            Ok((stream, peer)) => spawn_connection(n, handler, stream, peer)?,
            Err(error) => match AcceptError::classify(&error) {
                AcceptError::Connection => {
                    tracing::debug!(%error, "accept failed for one connection; accepting on");
                }
                AcceptError::Exhausted => {
                    tracing::error!(
                        %error,
                        "accept failed; retrying in {} ms",
                        ACCEPT_ERROR_PAUSE.as_millis()
                    );
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                AcceptError::Fatal => {
                    tracing::error!(%error, "accept failed; the server stops");
                    return Err(error);
                }
            },
        }
    }
}

/// Polls every listener, starting with the one whose turn it is, so that a
/// busy listener cannot starve the others.
fn poll_accept_any(
    listeners: &[TcpListener],
    turn: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
    let count = listeners.len();
    for offset in 0..count {
        let index = (*turn + offset) % count;
        if let Poll::Ready(accepted) = listeners[index].poll_accept(cx) {
            *turn = (index + 1) % count;
            return Poll::Ready(accepted);
        }
    }
    Poll::Pending
}

fn spawn_connection<H, Fut>(
    n: &Nursery,
    handler: &Arc<H>,
    stream: TcpStream,
    peer: SocketAddr,
) -> io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutput,
{
    set_nodelay(&stream);
    let handler = Arc::clone(handler);
    let options = SpawnOptions::new()
        .name(format!("tcp connection {peer}"))
        .bubble(false);
    // The handler is called inside the task, so that a panic while creating
    // its future is caught like any other panic of the connection.
    n.try_spawn_with(options, async move {
        handler(stream).await.into_result().map(drop)
    })
    .map(drop)
    .map_err(io::Error::other)
}

/// What an accept loop does about an accept error (this module's and the
/// protocol layer's servers share it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// About one connection only (it was aborted or refused): accept on.
    Connection,
    /// The process or system ran out of something, or the cause is unknown:
    /// log, pause, retry.
    Exhausted,
    /// The listener itself is unusable: stop.
    Fatal,
}

impl AcceptError {
    /// Classifies an `accept` error: `EMFILE`, `ENFILE`, `ENOBUFS` and
    /// `ENOMEM` are [`Exhausted`](AcceptError::Exhausted), never fatal.
    pub(crate) fn classify(error: &io::Error) -> AcceptError {
        use io::ErrorKind::*;
        match error.kind() {
            ConnectionAborted | ConnectionReset | ConnectionRefused | PermissionDenied
            | TimedOut | Interrupted | WouldBlock => AcceptError::Connection,
            InvalidInput | Unsupported => AcceptError::Fatal,
            // EMFILE, ENFILE, ENOBUFS and EPROTO are not classified by the
            // standard library; ENOMEM is `OutOfMemory`.
            _ => AcceptError::Exhausted,
        }
    }
}

/// Resolves `addr` and binds a listener on every address it resolves to
/// (Trio's `open_tcp_listeners`).
///
/// Duplicate addresses are bound once. With port 0, the first listener gets
/// a free port from the system and the others are bound on that same port,
/// so that `("localhost", 0)` gives one port on both IPv4 and IPv6. An
/// address whose family the machine does not support (`::1` where IPv6 is
/// disabled) is skipped, as long as another address binds. Listeners are
/// bound by [`TcpListener::bind`], which sets `SO_REUSEADDR` on Unix.
///
/// On Linux, a listener on the IPv6 wildcard `[::]` also accepts IPv4
/// connections, so binding both `0.0.0.0:p` and `[::]:p` fails with
/// `AddrInUse`: pass `"[::]:p"` alone to serve both families.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use trellis::net::open_tcp_listeners;
///
/// let listeners = open_tcp_listeners("127.0.0.1:0").await?;
/// assert_eq!(listeners.len(), 1);
/// assert_ne!(listeners[0].local_addr()?.port(), 0);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// The resolver's error; an error of kind `InvalidInput` if `addr` resolves
/// to no address; otherwise the first bind error (e.g. `AddrInUse`), with a
/// message naming the address, if any address fails for a reason other
/// than an unsupported family, or if every address fails.
///
/// # Cancel safety
///
/// Dropping the future drops the listeners bound so far: nothing stays bound.
pub async fn open_tcp_listeners(addr: impl ToSocketAddrs) -> io::Result<Vec<TcpListener>> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in lookup_host(addr).await? {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    let mut listeners = Vec::with_capacity(addrs.len());
    let mut skipped = None;
    let mut shared_port = None;
    for mut addr in addrs {
        let pick_port = addr.port() == 0;
        if let (true, Some(port)) = (pick_port, shared_port) {
            addr.set_port(port);
        }
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                if pick_port && shared_port.is_none() {
                    shared_port = Some(listener.local_addr()?.port());
                }
                listeners.push(listener);
            }
            Err(error) if is_unsupported_family(&error) => {
                tracing::debug!(%addr, %error, "skipping an address the system cannot bind");
                skipped.get_or_insert(with_address(error, "could not bind", addr));
            }
            Err(error) => return Err(with_address(error, "could not bind", addr)),
        }
    }
    if listeners.is_empty() {
        return Err(skipped.unwrap_or_else(no_address));
    }
    Ok(listeners)
}

/// Whether a bind failed because the machine cannot use that address family
/// or address at all (as opposed to, say, the port being taken).
fn is_unsupported_family(error: &io::Error) -> bool {
    /// `EAFNOSUPPORT`, which the standard library does not classify.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const EAFNOSUPPORT: Option<i32> = Some(97);
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    ))]
    const EAFNOSUPPORT: Option<i32> = Some(47);
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    )))]
    const EAFNOSUPPORT: Option<i32> = None;

    matches!(
        error.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
    ) || (EAFNOSUPPORT.is_some() && error.raw_os_error() == EAFNOSUPPORT)
}

/// Connects to `addr`, trying each address it resolves to in order (Trio's
/// `open_tcp_stream`, without happy eyeballs).
///
/// Returns the first connection that succeeds, with `TCP_NODELAY` set as on
/// accepted streams.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use trellis::net::open_tcp_stream;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let stream = open_tcp_stream(addr).await?;
/// assert_eq!(stream.peer_addr()?, addr);
///
/// drop((stream, listener));
/// let refused = open_tcp_stream(addr).await.unwrap_err();
/// assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
/// assert!(refused.to_string().contains(&addr.to_string()));
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// The resolver's error; an error of kind `InvalidInput` if `addr` resolves
/// to no address; otherwise, if no address accepts the connection, the error
/// of the last one tried, with its kind (e.g. `ConnectionRefused`) and a
/// message naming that address.
///
/// # Cancel safety
///
/// Dropping the future abandons the connection attempt under way and closes
/// its socket.
pub async fn open_tcp_stream(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in lookup_host(addr).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                set_nodelay(&stream);
                return Ok(stream);
            }
            Err(error) => last_error = Some(with_address(error, "could not connect to", addr)),
        }
    }
    Err(last_error.unwrap_or_else(no_address))
}

fn set_nodelay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        // Only a latency optimisation: the stream works without it.
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// Puts the address into the error's message and keeps its kind.
fn with_address(error: io::Error, action: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(error.kind(), format!("{action} {addr}: {error}"))
}

fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "address resolved to no socket address",
    )
}

/// Shows addresses as `a, b, c`.
struct AddrList<'a>(&'a [SocketAddr]);

impl fmt::Display for AddrList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, addr) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{addr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_about_one_connection_are_skipped() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
        ] {
            assert_eq!(AcceptError::classify(&kind.into()), AcceptError::Connection);
        }
    }

    #[cfg(unix)]
    #[test]
    fn running_out_of_file_descriptors_pauses_and_retries() {
        // EMFILE and ENFILE have the same numbers on Linux and the BSDs.
        for errno in [24, 23] {
            let error = io::Error::from_raw_os_error(errno);
            assert_eq!(AcceptError::classify(&error), AcceptError::Exhausted);
        }
        let out_of_memory = io::Error::from(io::ErrorKind::OutOfMemory);
        assert_eq!(
            AcceptError::classify(&out_of_memory),
            AcceptError::Exhausted
        );
    }

    #[test]
    fn a_listener_that_no_longer_listens_is_fatal() {
        let error = io::Error::from(io::ErrorKind::InvalidInput);
        assert_eq!(AcceptError::classify(&error), AcceptError::Fatal);
    }

    #[test]
    fn an_unavailable_address_is_an_unsupported_family() {
        assert!(is_unsupported_family(
            &io::ErrorKind::AddrNotAvailable.into()
        ));
        assert!(!is_unsupported_family(&io::ErrorKind::AddrInUse.into()));
    }

    #[test]
    fn address_lists_are_comma_separated() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:2".parse().unwrap();
        assert_eq!(AddrList(&[a, b]).to_string(), "127.0.0.1:1, [::1]:2");
    }
}
