//! Clients: connect, then run the protocol as a task of the caller's nursery.

use std::fmt;
use std::sync::Arc;

use tokio::net::ToSocketAddrs;
use tokio::sync::oneshot;

use super::transport::Driver;
use super::{Protocol, ProtocolError, Socket, Transport};
use crate::{Nursery, SpawnOptions};

/// The protocol side of a connection started by [`create_connection`]: wait
/// for the connection to end and get the protocol back.
///
/// asyncio's `create_connection` returns `(transport, protocol)`; here the
/// protocol is owned by the connection's task while the connection lives,
/// and handed back by [`wait_closed`](Connection::wait_closed).
pub struct Connection<P> {
    done: oneshot::Receiver<Result<P, ProtocolError>>,
}

impl<P> fmt::Debug for Connection<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl<P> Connection<P> {
    /// Waits until the connection ends ([`Protocol::connection_lost`] has
    /// returned), and returns the protocol the connection was started with
    /// (also after a [`Transport::set_protocol`]).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Panicked`] if a callback panicked;
    /// [`ProtocolError::Cancelled`] if the connection's nursery was
    /// cancelled first.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses the protocol, not the connection: it runs
    /// on in its nursery.
    pub async fn wait_closed(self) -> Result<P, ProtocolError> {
        self.done.await.unwrap_or(Err(ProtocolError::Cancelled))
    }
}

/// Runs `protocol` over a connected `socket` as a task of `nursery`, and
/// returns its transport at once (asyncio's `connect_accepted_socket`).
///
/// [`Protocol::connection_made`] is called when the task first runs. The
/// task is named `protocol connection <peer>` and never fails its nursery: a
/// panic of the protocol reaches [`Connection::wait_closed`] (and is
/// logged).
///
/// # Examples
///
/// See [`Transport::set_write_buffer_limits`].
///
/// # Errors
///
/// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
#[doc(alias = "connect_accepted_socket")]
pub fn connect_socket<P: Protocol>(
    nursery: &Nursery,
    protocol: P,
    socket: impl Socket,
) -> Result<(Transport, Connection<P>), ProtocolError> {
    let (transport, driver) = Driver::new(protocol, Arc::new(socket));
    let (tx, done) = oneshot::channel();
    let name = match &transport.extra_info().peer_addr {
        Some(peer) => format!("protocol connection {peer}"),
        None => "protocol connection".to_owned(),
    };
    nursery.try_spawn_with(SpawnOptions::new().name(name), async move {
        let _ = tx.send(driver.run().await);
    })?;
    Ok((transport, Connection { done }))
}

/// Connects to a TCP address and runs `factory()`'s protocol over the
/// connection as a task of `nursery` (asyncio's `create_connection`).
///
/// `addr` is anything [`tokio::net::ToSocketAddrs`] accepts; every address it
/// resolves to is tried in order, as [`net::open_tcp_stream`](crate::net::open_tcp_stream)
/// does, and `TCP_NODELAY` is set. Then as [`connect_socket`].
///
/// # Examples
///
/// See the [module documentation](super#examples).
///
/// # Errors
///
/// [`ProtocolError::Io`] if no address accepts the connection (with the
/// kind, e.g. `ConnectionRefused`, and the address in the message);
/// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
///
/// # Cancel safety
///
/// Dropping the future before it resolves abandons the connection attempt;
/// `factory` is not called.
pub async fn create_connection<P, F>(
    nursery: &Nursery,
    factory: F,
    addr: impl ToSocketAddrs,
) -> Result<(Transport, Connection<P>), ProtocolError>
where
    P: Protocol,
    F: FnOnce() -> P,
{
    let stream = crate::net::open_tcp_stream(addr).await?;
    connect_socket(nursery, factory(), stream)
}

/// Connects to a Unix socket at `path` and runs `factory()`'s protocol over
/// the connection as a task of `nursery` (asyncio's
/// `create_unix_connection`).
///
/// # Errors
///
/// [`ProtocolError::Io`] if the connection fails;
/// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
///
/// # Cancel safety
///
/// As [`create_connection`].
#[cfg(unix)]
pub async fn create_unix_connection<P, F>(
    nursery: &Nursery,
    factory: F,
    path: impl AsRef<std::path::Path>,
) -> Result<(Transport, Connection<P>), ProtocolError>
where
    P: Protocol,
    F: FnOnce() -> P,
{
    let stream = tokio::net::UnixStream::connect(path).await?;
    connect_socket(nursery, factory(), stream)
}
