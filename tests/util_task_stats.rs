//! `TaskStats`: slow polls, wake-to-poll latency and scheduling rate, all on
//! the paused clock, which a test moves *inside* a poll or between a wake
//! and a poll with `tokio::time::advance` polled once in place.

use std::time::Duration;

use futures_util::FutureExt as _;
use trellis::util::TaskStats;
use trellis::{NurseryOptions, SpawnOptions, nursery, nursery_with};

/// Moves the paused clock forward without yielding: the calling poll
/// "takes" `d`.
fn block_for(d: Duration) {
    let _ = tokio::time::advance(d).now_or_never();
}

fn named(name: &'static str) -> SpawnOptions {
    SpawnOptions::new().name(name)
}

#[tokio::test(start_paused = true)]
async fn the_slowest_poll_and_its_task_are_reported() {
    let stats = TaskStats::new();
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        n.spawn_with(named("quick"), async {
            for _ in 0..3 {
                block_for(Duration::from_millis(10));
                tokio::task::yield_now().await;
            }
        });
        n.spawn_with(named("slow"), async {
            tokio::task::yield_now().await;
            block_for(Duration::from_millis(250)); // one slow step
            tokio::task::yield_now().await;
        });
    })
    .await
    .unwrap();
    let report = stats.stats();
    assert_eq!(report.slowest_poll, Duration::from_millis(250));
    assert_eq!(stats.slowest_poll_task().as_deref(), Some("slow"));
    assert_eq!(report.polls, 4 + 3);
}

#[tokio::test(start_paused = true)]
async fn the_longest_wait_between_wake_and_poll_is_reported() {
    let stats = TaskStats::new();
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        n.spawn_with(named("waiter"), async move {
            let _ = rx.await;
        });
        tokio::task::yield_now().await; // the waiter now waits
        tx.send(()).unwrap(); // wakes it...
        block_for(Duration::from_millis(40)); // ...but this thread is busy
    })
    .await
    .unwrap();
    assert_eq!(
        stats.stats().longest_wake_to_poll,
        Duration::from_millis(40)
    );
    assert_eq!(stats.longest_wake_to_poll_task().as_deref(), Some("waiter"));
}

#[tokio::test(start_paused = true)]
async fn the_highest_scheduling_rate_is_the_busiest_window() {
    let stats = TaskStats::with_rate_window(Duration::from_secs(1));
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        n.spawn(async {
            for _ in 0..10 {
                tokio::task::yield_now().await; // 11 polls at t = 0
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            for _ in 0..3 {
                tokio::task::yield_now().await; // 4 polls at t = 2 s
            }
        });
    })
    .await
    .unwrap();
    let report = stats.stats();
    assert_eq!(report.polls, 15);
    assert_eq!(report.highest_polls_per_window, 11);
    assert_eq!(report.highest_rate(), 11.0);
}

#[tokio::test(start_paused = true)]
async fn nested_nurseries_inherit_the_instrument_and_others_are_not_measured() {
    let stats = TaskStats::new();
    nursery(|n| async move {
        n.spawn(async {}); // not instrumented
    })
    .await
    .unwrap();
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        n.spawn_with(named("outer"), async {
            nursery(|inner| async move {
                inner.spawn_with(named("inner"), async {
                    block_for(Duration::from_millis(5));
                });
            })
            .await
        });
    })
    .await
    .unwrap();
    assert_eq!(stats.slowest_poll_task().as_deref(), Some("inner"));
    assert_eq!(stats.stats().slowest_poll, Duration::from_millis(5));
}
