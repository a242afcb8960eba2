//! `TaskStats` logs its numbers when the instrumented nursery ends.
//!
//! Alone in its test binary: `tracing` caches each callsite's interest for
//! the whole process, computed by whichever thread reaches it first, so a
//! sibling test without a subscriber could make this one's thread-local
//! subscriber miss the event.

use std::time::Duration;

use futures_util::FutureExt as _;
use trellis::util::{TaskStats, TaskStatsOptions};
use trellis::{NurseryOptions, SpawnOptions, nursery_with};

#[allow(clippy::mod_module_files)]
mod support;
use support::capture_logs;

/// Moves the paused clock forward without yielding: the calling poll
/// "takes" `d`.
fn block_for(d: Duration) {
    let _ = tokio::time::advance(d).now_or_never();
}

#[tokio::test(start_paused = true)]
async fn the_instrumented_nursery_logs_the_numbers_when_it_ends() {
    let (logs, _guard) = capture_logs();
    let stats = TaskStats::with_options(
        TaskStatsOptions::new()
            .slow_step(Duration::from_millis(5))
            .high_rate(3.0),
    );
    let options = stats.instrument(NurseryOptions::new().name("workers"));
    nursery_with(options, |n| async move {
        n.spawn_with(SpawnOptions::new().name("slow"), async {
            block_for(Duration::from_millis(7));
        });
        n.spawn_with(SpawnOptions::new().name("spinner"), async {
            for _ in 0..4 {
                tokio::task::yield_now().await; // 5 polls in one second
            }
        });
    })
    .await
    .unwrap();
    let text = logs.text();
    assert!(text.contains("task stats"), "{text}");
    assert!(text.contains("scope=\"workers\""), "{text}");
    assert!(text.contains("slowest_poll=7ms"), "{text}");
    assert!(text.contains("slowest_poll_task=\"slow\""), "{text}");
    // trio-util's lists: slow steps per task, then high schedule rates.
    assert!(
        text.contains("slow task steps (> 5ms):\n  slow: 7ms"),
        "{text}"
    );
    assert!(
        text.contains("high task schedule rates (>= 3 Hz, 1s windows):\n  spinner: 5 Hz at +0.00s"),
        "{text}"
    );
}
