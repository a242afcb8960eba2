//! An observer that nobody looks at does not time handlers: gen_servers
//! count their messages always, and time them only while the node is
//! watched — an open event stream, a request in flight, or the scrape
//! window after a `/metrics` scrape. One test in its own binary: whether
//! the node is watched is process-wide.
#![cfg(feature = "observer")]

use std::time::Duration;

use trellis::gen_server::{self};
use trellis::observer::{self, ObserverOptions};

#[allow(clippy::mod_module_files)]
mod support;
use support::Slow;

/// (messages handled, timed calls) of the server named `watch-slow`, as
/// `/api/tree` reports them (read without a request: not watching).
fn counts() -> (u64, u64) {
    let tree: serde_json::Value = serde_json::from_str(&observer::tree_json()).unwrap();
    let server = tree["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "watch-slow")
        .unwrap_or_else(|| panic!("watch-slow not in {tree}"))
        .clone();
    (
        server["messages_handled"].as_u64().unwrap(),
        server["timed_calls"].as_u64().unwrap(),
    )
}

fn line<'a>(metrics: &'a str, prefix: &str) -> &'a str {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
}

#[tokio::test(start_paused = true)]
async fn handlers_are_timed_only_while_watched_and_for_a_window_after_a_scrape() {
    trellis::nursery(|n| async move {
        // Running, nobody connected.
        observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
        let server = gen_server::Builder::new(Slow)
            .name("watch-slow")
            .start(&n)
            .await?;
        let call = |ms| server.call(ms, Duration::from_secs(1));

        // Unwatched: counted, not timed.
        call(3).await?;
        assert_eq!(counts(), (1, 0));

        // An open event stream watches.
        let stream = observer::subscribe();
        call(3).await?;
        assert_eq!(counts(), (2, 1));
        drop(stream);
        call(3).await?;
        assert_eq!(counts(), (3, 1));

        // A scrape keeps timing on for its window (2 minutes by default),
        // however many calls come in it, and no longer.
        let first = observer::metrics_text();
        assert!(
            line(
                &first,
                "trellis_gen_server_call_duration_seconds_count{name=\"watch-slow\"}"
            )
            .ends_with(" 1"),
            "{first}"
        );
        call(3).await?;
        tokio::time::sleep(Duration::from_secs(100)).await;
        call(3).await?;
        assert_eq!(counts(), (5, 3));
        tokio::time::sleep(Duration::from_secs(21)).await;
        call(3).await?;
        assert_eq!(counts(), (6, 3), "the window has closed");

        // The next scrape: every message counted, the timed calls in the
        // histogram (each 3 ms: in the 5 ms bucket), and a new window.
        let second = observer::metrics_text();
        assert!(
            line(
                &second,
                "trellis_gen_server_messages_total{name=\"watch-slow\"}"
            )
            .ends_with(" 6"),
            "{second}"
        );
        assert!(
            line(
                &second,
                "trellis_gen_server_call_duration_seconds_bucket{name=\"watch-slow\",le=\"0.001\"}"
            )
            .ends_with(" 0"),
            "{second}"
        );
        assert!(
            line(
                &second,
                "trellis_gen_server_call_duration_seconds_bucket{name=\"watch-slow\",le=\"0.005\"}"
            )
            .ends_with(" 3"),
            "{second}"
        );
        assert!(
            line(
                &second,
                "trellis_gen_server_handler_seconds_total{name=\"watch-slow\"}"
            )
            .ends_with(" 0.009"),
            "{second}"
        );
        call(3).await?;
        assert_eq!(counts(), (7, 4));
        server.stop().await?;
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}
