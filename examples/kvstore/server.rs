//! The kvstore's supervision tree, as an application:
//!
//! ```text
//! kvstore (supervisor, one_for_one)
//! ├── shards (supervisor, one_for_one)
//! │   ├── kvstore-shard-0 (gen_server, permanent)
//! │   └── …
//! └── front (listener + dynamic supervisor of connections, permanent)
//!     └── <name>-connections (dynamic supervisor, registered)
//!         ├── connection 127.0.0.1:50112 (temporary)
//!         └── …
//! ```
//!
//! Shards start first, so the listener never accepts a request no shard can
//! answer. Each shard publishes its table in the server's directory when it
//! starts; connections operate on the tables directly. A shard that crashes
//! takes its table with it and is restarted empty under its name, and the
//! next batch of every connection finds the new incarnation's table. The listener
//! and its connection supervisor form one child: if the listener itself
//! fails, both are restarted together (a fresh bind), and connection
//! handlers are temporary — a connection that ends is not restarted.
//!
//! Running out of file descriptors (or buffers, or memory) is not the
//! listener's failure: `accept` errors `EMFILE`, `ENFILE`, `ENOBUFS` and
//! `ENOMEM` pause accepting for 100 ms and retry, as `trellis::net` does,
//! and the connected clients go on. To keep clear of that limit, the
//! number of clients is capped as Redis caps `maxclients`: the descriptor
//! limit (`ulimit -n`) less a reserve of 32, or `--max-connections` if
//! lower; a client past the cap is answered `-ERR max number of clients
//! reached` and closed.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
use trellis::gen_server::GenServerOptions;
use trellis::protocol::run_connection;
use trellis::supervisor::{self, ChildSpec, Restart, Strategy, SupervisorOptions};
use trellis::{TaskStatus, nursery};

use crate::commands::{Router, shard_name};
use crate::connection::RespConnection;
use crate::resp::Limits;
use crate::shard::{Directory, Shard};

/// What the server is asked to be.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The prefix of every registered name (`kvstore-shard-0`, …), so that
    /// two servers can share a process.
    pub(crate) name: String,
    /// Where to listen (`HOST:PORT`; port 0 picks one).
    pub(crate) addr: String,
    /// How many shards own the data.
    pub(crate) shards: usize,
    /// Request size limits.
    pub(crate) limits: Limits,
    /// Most connections served at once.
    pub(crate) max_connections: usize,
    /// Serve `DEBUG PANIC <key>`, which crashes a shard (for tests and demos
    /// of supervision; off by default, as any client could use it).
    pub(crate) debug_command: bool,
    /// File descriptors kept out of `maxclients` (Redis: 32).
    pub(crate) reserved_fds: usize,
}

/// The process's soft limit on open files (Linux: `/proc/self/limits`).
pub(crate) fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Most clients served at once: the configured cap, lowered to the
/// descriptor limit less the reserve.
pub(crate) fn max_clients(config: &Config) -> usize {
    match fd_limit() {
        Some(limit) => config
            .max_connections
            .min(limit.saturating_sub(config.reserved_fds).max(1)),
        None => config.max_connections,
    }
}

/// Counts a connection as connected while it lives.
struct Connected(Arc<crate::commands::Clients>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The application's start function: runs the tree, reports started once
/// the listener is bound (through `bound`, for whoever asked).
pub(crate) async fn kvstore_app(
    config: Config,
    status: TaskStatus<()>,
    bound: Option<Arc<Mutex<Option<SocketAddr>>>>,
) -> io::Result<()> {
    nursery(|n| async move {
        let tree = tree(config, bound);
        supervisor::start(&n, tree, SupervisorOptions::new().name("kvstore"))
            .await
            .map_err(io::Error::other)?;
        status.started(());
        Ok::<_, io::Error>(())
    })
    .await
    .map_err(io::Error::other)
}

fn tree(config: Config, bound: Option<Arc<Mutex<Option<SocketAddr>>>>) -> Vec<ChildSpec> {
    let directory = Arc::new(Directory::new(config.shards));
    let shards = (0..config.shards)
        .map(|i| {
            let name = shard_name(&config.name, i);
            let directory = directory.clone();
            ChildSpec::gen_server(
                name.clone(),
                move || Shard::new(directory.clone(), i),
                (),
                GenServerOptions::new().name(name),
            )
        })
        .collect();
    let shards = ChildSpec::supervisor(
        "shards",
        shards,
        SupervisorOptions::new()
            .name("shards")
            .strategy(Strategy::OneForOne)
            // Generous: a shard crash loses only its own keys.
            .max_restarts(100)
            .max_seconds(Duration::from_secs(10)),
    );
    let front = ChildSpec::new("front", move |status: TaskStatus<SocketAddr>| {
        front(config.clone(), directory.clone(), bound.clone(), status)
    });
    vec![shards, front]
}

/// Binds the listener, starts the connection supervisor, and accepts.
async fn front(
    config: Config,
    directory: Arc<Directory>,
    bound: Option<Arc<Mutex<Option<SocketAddr>>>>,
    status: TaskStatus<SocketAddr>,
) -> io::Result<()> {
    let listeners = trellis::net::open_tcp_listeners(&config.addr).await?;
    let listener = listeners
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other("no address to listen on"))?;
    let local = listener.local_addr()?;
    let router = Router::new(&config.name, config.shards, config.debug_command, directory);
    router.set_port(local.port());
    let max = max_clients(&config);
    router
        .clients()
        .max
        .store(max, std::sync::atomic::Ordering::Relaxed);
    nursery(|n| async move {
        let options = DynamicSupervisorOptions::new()
            .name(format!("{}-connections", config.name))
            .max_children(max.saturating_add(16));
        let connections = dynamic_supervisor::start(&n, options)
            .await
            .map_err(io::Error::other)?;
        if let Some(bound) = &bound {
            *bound.lock().unwrap() = Some(local);
        }
        status.started(local);
        tracing::info!(%local, shards = config.shards, maxclients = max, "kvstore listening");
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // A graceful stop: no new connections; the connection
                // supervisor stops the open ones.
                () = trellis::wait_shutdown() => return Ok(()),
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => match classify(&error) {
                    // One bad connection (reset before accept, …) is not
                    // the listener's failure.
                    AcceptError::Connection => continue,
                    // Out of descriptors, buffers or memory: wait for some
                    // to come back; the connected clients go on.
                    AcceptError::Exhausted => {
                        tracing::warn!(%error, "accept failed; retrying in 100 ms");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                    AcceptError::Fatal => return Err(error),
                },
            };
            let clients = router.clients().clone();
            let connected = clients
                .connected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let guard = Connected(clients);
            if connected >= max {
                // As Redis: an answer, then the door.
                let _ = stream.try_write(b"-ERR max number of clients reached\r\n");
                drop(guard);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let stream = Mutex::new(Some((stream, guard)));
            let router = router.clone();
            let limits = config.limits;
            let spec = ChildSpec::task(format!("connection {peer}"), move || {
                let stream = stream.lock().unwrap().take();
                let protocol = RespConnection::new(router.clone(), limits);
                async move {
                    // A temporary child runs once: the stream is always there.
                    if let Some((stream, _connected)) = stream {
                        // One task per connection: it reads, runs the
                        // requests on the shards' tables, and writes. A
                        // graceful stop closes the connection; replies not
                        // yet written are lost with it.
                        tokio::select! {
                            served = run_connection(protocol, stream) => {
                                served.map_err(io::Error::other)?;
                            }
                            () = trellis::wait_shutdown() => {}
                        }
                    }
                    Ok::<_, io::Error>(())
                }
            })
            .restart(Restart::Temporary);
            if let Err(error) = connections.start_child(spec).await {
                // Too many connections: this one is dropped, the others go on.
                tracing::warn!(%peer, %error, "connection refused");
            }
        }
    })
    .await
    .map_err(io::Error::other)
}

/// How long accepting pauses when the process ran out of something.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What an `accept` error means for the listener.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// One connection failed: accept the next.
    Connection,
    /// The process or system ran out of descriptors, buffers or memory:
    /// pause, then retry.
    Exhausted,
    /// The listener is unusable.
    Fatal,
}

/// Classifies an `accept` error as `trellis::net` does.
pub(crate) fn classify(error: &io::Error) -> AcceptError {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionAborted | ConnectionReset | ConnectionRefused | PermissionDenied | TimedOut
        | Interrupted | WouldBlock => AcceptError::Connection,
        InvalidInput | Unsupported => AcceptError::Fatal,
        // EMFILE, ENFILE, ENOBUFS, ENOMEM and any other error.
        _ => AcceptError::Exhausted,
    }
}
