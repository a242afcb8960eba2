//! Servers: an accept loop and a nursery of connections, both tasks of the
//! caller's nursery (asyncio's `Server`).

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};

use super::transport::Driver;
use super::{Protocol, ProtocolError, Socket, SocketAddress};
use crate::net::AcceptError;
use crate::sync::Event;
use crate::{Nursery, NurseryError, NurseryOptions, SpawnOptions, nursery, nursery_with};

/// How long accepting pauses after an error that says the system ran out of
/// something, so that a full descriptor table does not become a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A listening server (asyncio's `Server`): its addresses, and the means to
/// stop it.
///
/// Returned by [`create_server`] and [`create_unix_server`]. The server runs
/// as a task of the nursery given to them: cancelling that nursery stops the
/// server and closes every connection. Dropping a `Server` does not stop
/// it. `Server` is a cheap `Clone` handle.
///
/// | you want to… | call |
/// |---|---|
/// | the bound addresses (port 0 resolved) | [`local_addrs`](Server::local_addrs) |
/// | stop accepting, let connections finish | [`close`](Server::close) |
/// | close every connection now | [`abort_clients`](Server::abort_clients) |
/// | wait until closed and every connection ended | [`wait_closed`](Server::wait_closed) |
/// | serve until cancelled | [`serve_forever`](Server::serve_forever) |
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Vec<SocketAddress>,
    closing: Event,
    closed: Event,
    connections: Nursery,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.inner.addrs)
            .field("serving", &self.is_serving())
            .finish()
    }
}

impl Server {
    /// The addresses the server listens on (asyncio's `sockets`), in the
    /// order they were bound.
    #[doc(alias = "sockets")]
    pub fn local_addrs(&self) -> &[SocketAddress] {
        &self.inner.addrs
    }

    /// Stops accepting and closes the listeners; open connections go on
    /// until they end (asyncio's `close`).
    pub fn close(&self) {
        self.inner.closing.set();
    }

    /// Closes every open connection now, as [`Transport::abort`](super::Transport::abort)
    /// would, and stops the server: its connection tasks are cancelled
    /// (asyncio's `abort_clients`). Each protocol sees
    /// [`Protocol::connection_lost`] with an error of kind
    /// `ConnectionAborted`.
    pub fn abort_clients(&self) {
        self.inner.closing.set();
        self.inner.connections.cancel();
    }

    /// Whether the server is accepting connections.
    pub fn is_serving(&self) -> bool {
        !self.inner.closing.is_set() && !self.inner.closed.is_set()
    }

    /// Waits until the server is closed and every connection has ended
    /// (asyncio's `wait_closed`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn wait_closed(&self) {
        self.inner.closed.wait().await;
    }

    /// Serves until cancelled, then closes the server (asyncio's
    /// `serve_forever`); returns when the server was closed some other way.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the server: it stops accepting, and open
    /// connections go on until they end.
    pub async fn serve_forever(&self) {
        struct CloseOnDrop<'a>(&'a Server);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _guard = CloseOnDrop(self);
        self.wait_closed().await;
    }
}

/// A bound listener of either kind.
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// An accepted socket and its peer, ready for a driver.
type Accepted = (Arc<dyn Socket>, String);

impl Listener {
    fn local_addr(&self) -> io::Result<SocketAddress> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(SocketAddress::Inet),
            #[cfg(unix)]
            Listener::Unix(listener) => listener
                .local_addr()
                .map(|addr| SocketAddress::Unix(addr.as_pathname().map(Into::into))),
        }
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted>> {
        match self {
            Listener::Tcp(listener) => listener.poll_accept(cx).map_ok(|(stream, peer)| {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                (Arc::new(stream) as Arc<dyn Socket>, peer.to_string())
            }),
            #[cfg(unix)]
            Listener::Unix(listener) => listener
                .poll_accept(cx)
                .map_ok(|(stream, _)| (Arc::new(stream) as Arc<dyn Socket>, "unix".to_owned())),
        }
    }
}

/// Binds listeners for `addr` and serves each connection with a protocol
/// made by `factory`, as tasks of `nursery` (asyncio's `create_server`).
///
/// `addr` is anything [`tokio::net::ToSocketAddrs`] accepts, bound as
/// [`net::open_tcp_listeners`](crate::net::open_tcp_listeners) does (port 0
/// picks a free port; [`Server::local_addrs`] tells which). Returns once the
/// listeners are bound; the server then accepts in a task named
/// `protocol server <addrs>`. Each connection is a task of the server's own
/// nursery of connections, named `protocol connection <peer>`, which calls
/// `factory()` and runs [`run_connection`](super::run_connection): a
/// protocol that panics loses only its own connection (logged). Accepted
/// streams have `TCP_NODELAY` set.
///
/// Errors of `accept` that concern one connection are skipped; those that say
/// the system ran out of something are logged and retried after 100 ms; an
/// error saying the listener is unusable stops the server and fails its task
/// (and so `nursery`, as any failed task).
///
/// # Examples
///
/// See the [module documentation](super#examples).
///
/// # Errors
///
/// [`ProtocolError::Io`] if binding fails; [`ProtocolError::Nursery`] if
/// `nursery` no longer takes tasks.
///
/// # Cancel safety
///
/// Dropping the future before it resolves releases what was bound.
pub async fn create_server<P, F>(
    nursery: &Nursery,
    factory: F,
    addr: impl ToSocketAddrs,
) -> Result<Server, ProtocolError>
where
    P: Protocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let listeners = crate::net::open_tcp_listeners(addr).await?;
    start_server(
        nursery,
        factory,
        listeners.into_iter().map(Listener::Tcp).collect(),
    )
    .await
}

/// Binds a Unix socket at `path` and serves each connection with a protocol
/// made by `factory`, as tasks of `nursery` (asyncio's
/// `create_unix_server`); otherwise as [`create_server`].
///
/// The socket file is not removed when the server stops.
///
/// # Errors
///
/// [`ProtocolError::Io`] if binding fails (e.g. `AddrInUse` when the file
/// exists); [`ProtocolError::Nursery`] if `nursery` no longer takes tasks.
#[cfg(unix)]
pub async fn create_unix_server<P, F>(
    nursery: &Nursery,
    factory: F,
    path: impl AsRef<std::path::Path>,
) -> Result<Server, ProtocolError>
where
    P: Protocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let listener = tokio::net::UnixListener::bind(path)?;
    start_server(nursery, factory, vec![Listener::Unix(listener)]).await
}

/// Serves `addr` with `factory`'s protocols until cancelled: the one-line
/// form of [`create_server`] and [`Server::serve_forever`] (trio-protocol's
/// `run_server`).
///
/// # Errors
///
/// As [`create_server`]; and a fatal accept error, as
/// [`ProtocolError::Nursery`] carrying the server task's failure.
///
/// # Cancel safety
///
/// Dropping the future closes the listeners and every connection.
pub async fn run_server<P, F>(factory: F, addr: impl ToSocketAddrs) -> Result<(), ProtocolError>
where
    P: Protocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    serve_until_cancelled(|n| async move { create_server(&n, factory, addr).await }).await
}

/// Runs the server `create` makes in a nursery of its own until cancelled:
/// the body of [`run_server`] and [`run_unix_server`].
async fn serve_until_cancelled<C, Fut>(create: C) -> Result<(), ProtocolError>
where
    C: FnOnce(Nursery) -> Fut,
    Fut: Future<Output = Result<Server, ProtocolError>>,
{
    let served = nursery(|n| async move {
        let server = match create(n).await {
            Ok(server) => server,
            Err(error) => return Ok(Err(error)),
        };
        server.serve_forever().await;
        Ok::<_, NurseryError>(Ok(()))
    })
    .await;
    served.unwrap_or_else(|error| Err(ProtocolError::Nursery(error)))
}

/// Serves a Unix socket at `path` with `factory`'s protocols until
/// cancelled; the Unix form of [`run_server`].
///
/// # Errors
///
/// As [`create_unix_server`]; and a fatal accept error, as
/// [`ProtocolError::Nursery`].
///
/// # Cancel safety
///
/// As [`run_server`].
#[cfg(unix)]
pub async fn run_unix_server<P, F>(
    factory: F,
    path: impl AsRef<std::path::Path>,
) -> Result<(), ProtocolError>
where
    P: Protocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    serve_until_cancelled(|n| async move { create_unix_server(&n, factory, path).await }).await
}

async fn start_server<P, F>(
    nursery: &Nursery,
    factory: F,
    listeners: Vec<Listener>,
) -> Result<Server, ProtocolError>
where
    P: Protocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let addrs = listeners
        .iter()
        .map(Listener::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    let names = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let closing = Event::new();
    let closed = Event::new();
    let (closing2, closed2) = (closing.clone(), closed.clone());
    let factory = Arc::new(factory);
    let options = SpawnOptions::new().name(format!("protocol server {names}"));
    let connections = nursery
        .start_with(options, move |status| async move {
            struct SetOnDrop(Event);
            impl Drop for SetOnDrop {
                fn drop(&mut self) {
                    self.0.set();
                }
            }
            let _closed = SetOnDrop(closed2);
            let options = NurseryOptions::new().name(format!("protocol connections {names}"));
            let served = nursery_with(options, |conns| async move {
                status.started(conns.clone());
                let result = accept_loop(&conns, listeners, &factory, &closing2).await;
                if result.is_err() {
                    conns.cancel(); // a fatal error: close every connection too
                }
                Ok::<_, NurseryError>(result)
            })
            .await;
            match served {
                Ok(result) => result.map_err(ProtocolError::Io),
                // `abort_clients`, or a task spawned through `Loop` cancelled it.
                Err(NurseryError::Cancelled) => Ok(()),
                Err(error) => Err(ProtocolError::Nursery(error)),
            }
        })
        .await
        .map_err(|error| ProtocolError::Io(io::Error::other(error)))?;
    // Observed: the observer counts this server's connections.
    crate::observer::bus::protocol_server(|| {
        let names = addrs.iter().map(ToString::to_string).collect::<Vec<_>>();
        (names.join(", "), connections.clone(), closed.clone())
    });
    Ok(Server {
        inner: Arc::new(Inner {
            addrs,
            closing,
            closed,
            connections,
        }),
    })
}

async fn accept_loop<P, F>(
    conns: &Nursery,
    listeners: Vec<Listener>,
    factory: &Arc<F>,
    closing: &Event,
) -> io::Result<()>
where
    P: Protocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let mut closing = std::pin::pin!(closing.wait());
    let mut turn = 0;
    loop {
        let accepted = poll_fn(|cx| {
            if closing.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            let count = listeners.len();
            for offset in 0..count {
                let index = (turn + offset) % count;
                if let Poll::Ready(accepted) = listeners[index].poll_accept(cx) {
                    turn = (index + 1) % count;
                    return Poll::Ready(Some(accepted));
                }
            }
            Poll::Pending
        })
        .await;
        match accepted {
            None => return Ok(()),
            Some(Ok((socket, peer))) => {
                let factory = Arc::clone(factory);
                let options = SpawnOptions::new()
                    .name(format!("protocol connection {peer}"))
                    .bubble(false);
                conns
                    .try_spawn_with(options, async move {
                        let (_transport, driver) = Driver::new(factory(), socket);
                        driver.run().await.map(drop)
                    })
                    .map(drop)
                    .map_err(io::Error::other)?;
            }
            Some(Err(error)) => match AcceptError::classify(&error) {
                AcceptError::Connection => {
                    tracing::debug!(%error, "accept failed for one connection");
                }
                AcceptError::Fatal => {
                    tracing::error!(%error, "accept failed; the server stops");
                    return Err(error);
                }
                // Out of descriptors, buffers or memory (EMFILE, ENFILE,
                // ENOBUFS, ENOMEM): the open connections go on; accepting
                // pauses, then retries.
                AcceptError::Exhausted => {
                    tracing::error!(%error, "accept failed; retrying");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}
