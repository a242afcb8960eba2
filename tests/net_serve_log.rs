//! A connection that fails is logged as an error naming its peer.
//!
//! Alone in its test binary: `tracing` caches each callsite's interest for
//! the whole process, computed by whichever thread reaches it first, so a
//! sibling test without a subscriber could make this one's thread-local
//! subscriber miss the event.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis::net::serve_tcp;
use trellis::nursery;

#[allow(clippy::mod_module_files)]
mod support;
use support::capture_logs;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Fails as soon as the client has sent one byte.
async fn refuse(mut stream: TcpStream) -> Result<(), BoxError> {
    let mut first = [0; 1];
    stream.read_exact(&mut first).await?;
    Err("the client asked for an error".into())
}

#[tokio::test]
async fn a_failing_connection_is_logged_as_an_error_naming_its_peer() {
    // The test runs on one thread, so the connection task logs here too.
    let (captured, _guard) = capture_logs();

    let peer = nursery(|n| async move {
        let addrs = n.start(|s| serve_tcp(refuse, "127.0.0.1:0", s)).await?;
        let mut doomed = TcpStream::connect(addrs[0]).await?;
        let peer = doomed.local_addr()?;
        doomed.write_all(b"e").await?;
        // The server closes the connection (end of stream or reset).
        let mut rest = Vec::new();
        match doomed.read_to_end(&mut rest).await {
            Ok(_) => assert!(rest.is_empty()),
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        }
        n.cancel();
        Ok::<_, BoxError>(peer)
    })
    .await
    .unwrap();

    let log = captured.text();
    let line = log
        .lines()
        .find(|line| line.contains("the client asked for an error"))
        .unwrap_or_else(|| panic!("no log line for the failure in:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&format!("tcp connection {peer}")), "{line}");
}
