//! The echo server of the Trio tutorial, on Trellis: every connection is a
//! task in a nursery, silent clients are dropped, and Ctrl-C stops it all.
//!
//! It shows [`serve_tcp`] started as a named task with `n.start_with` (so the
//! bound address is known before anything else happens), one task per
//! connection whose failure stays its own, a timeout around each read with
//! [`move_on_after`], and a clean stop: cancelling the nursery closes the
//! listener and every open connection before `main` returns.
//!
//! ```sh
//! cargo run --example echo                  # listens on 127.0.0.1:1234
//! cargo run --example echo -- 0.0.0.0:7777  # or on the address you give
//! nc 127.0.0.1 1234                         # in another terminal: type, and read it back
//! ```
//!
//! `RUST_LOG` chooses what is logged (default: `info,trellis=debug`).

use std::error::Error;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::info;
use tracing_subscriber::EnvFilter;
use trellis::net::serve_tcp;
use trellis::{SpawnOptions, move_on_after};

/// How long a connection may stay silent before the server closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // `trellis=debug` shows each task's span, whose name says which connection logs.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,trellis=debug"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".to_owned());

    trellis::run(trellis::nursery(|n| async move {
        let server = SpawnOptions::new().name("echo server"); // in logs and errors
        let addrs = n
            .start_with(server, |status| serve_tcp(on_connection, addr, status))
            .await?;
        info!(?addrs, "listening; press Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        info!("stopping");
        n.cancel(); // closes the listener and every connection
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    }))?;
    Ok(())
}

/// Serves one connection: logs it, and echoes until the client is done.
pub async fn on_connection(stream: TcpStream) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    info!(%peer, "connected");
    let result = echo(stream).await;
    info!(%peer, ?result, "disconnected");
    result
}

/// Sends every byte back until the peer closes its side, or stays silent for
/// [`IDLE_TIMEOUT`].
pub async fn echo(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> io::Result<()> {
    let mut buf = vec![0; 4096];
    loop {
        let Some(read) = move_on_after(IDLE_TIMEOUT, stream.read(&mut buf)).await else {
            info!("idle for {IDLE_TIMEOUT:?}; closing");
            return Ok(());
        };
        match read? {
            0 => return Ok(()), // the client is done
            n => stream.write_all(&buf[..n]).await?,
        }
    }
}
