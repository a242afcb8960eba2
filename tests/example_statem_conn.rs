//! Drives `examples/statem_conn.rs` over an in-memory socket on a paused
//! clock: login, commands, quitting, and both timeouts closing the
//! connection.

#[path = "../examples/statem_conn.rs"]
#[allow(unreachable_pub, dead_code)]
mod statem_conn;

use std::time::Duration;

use statem_conn::{IDLE_FOR, LOGIN_WITHIN, LineProtocol};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use trellis::protocol::run_connection;
use trellis::testing::{MemoryStream, memory_pair};
use trellis::{BoxError, nursery};

/// The client's end: send a line, read a line (`None` at end of file).
struct Client(BufReader<MemoryStream>);

impl Client {
    async fn send(&mut self, line: &str) {
        self.0
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn read(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self.0.read_line(&mut line).await.unwrap();
        (n > 0).then(|| line.trim_end().to_string())
    }
}

/// Runs the protocol over one end of a pair in `n`; returns the other.
fn connect(n: &trellis::Nursery) -> Client {
    let (server_end, client_end) = memory_pair(1024);
    n.spawn(async move {
        run_connection(LineProtocol::default(), server_end).await?;
        Ok::<_, BoxError>(())
    });
    Client(BufReader::new(client_end))
}

#[tokio::test(start_paused = true)]
async fn a_client_logs_in_pings_and_quits() {
    nursery(|n| async move {
        let mut client = connect(&n);
        client.send("PING").await;
        assert_eq!(client.read().await.unwrap(), "ERR say hello");
        client.send("HELLO ada").await;
        assert_eq!(client.read().await.unwrap(), "OK hello ada");
        client.send("PING").await;
        assert_eq!(client.read().await.unwrap(), "PONG");
        client.send("DANCE").await;
        assert_eq!(client.read().await.unwrap(), "ERR unknown command");
        client.send("QUIT").await;
        assert_eq!(client.read().await.unwrap(), "BYE");
        assert_eq!(client.read().await, None);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_says_hello_is_closed_by_the_state_timeout() {
    nursery(|n| async move {
        let mut client = connect(&n);
        let start = Instant::now();
        // A wrong line does not restart the login timer.
        tokio::time::sleep(Duration::from_secs(3)).await;
        client.send("PING").await;
        assert_eq!(client.read().await.unwrap(), "ERR say hello");
        assert_eq!(client.read().await.unwrap(), "ERR login timeout");
        assert_eq!(start.elapsed(), LOGIN_WITHIN);
        assert_eq!(client.read().await, None);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_by_the_event_timeout_which_each_line_restarts() {
    nursery(|n| async move {
        let mut client = connect(&n);
        client.send("HELLO bob").await;
        assert_eq!(client.read().await.unwrap(), "OK hello bob");
        // The login state timeout does not follow into `Ready`.
        tokio::time::sleep(IDLE_FOR - Duration::from_secs(1)).await;
        client.send("PING").await;
        assert_eq!(client.read().await.unwrap(), "PONG");
        let last = Instant::now();
        assert_eq!(client.read().await.unwrap(), "BYE idle");
        assert_eq!(last.elapsed(), IDLE_FOR);
        assert_eq!(client.read().await, None);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
