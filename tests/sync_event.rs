//! `Event`: set once, wakes every waiter, never resets.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use trellis::CancelScope;
use trellis::sync::{Event, EventStats};
use trellis::testing::assert_checkpoint;

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task run until it blocks (paused clock).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn setting_the_event_wakes_every_waiter() {
    let event = Event::new();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let event = event.clone();
            tokio::spawn(async move { event.wait().await })
        })
        .collect();
    settle().await;
    assert!(waiters.iter().all(|w| !w.is_finished()), "not set yet");

    event.set();
    for waiter in waiters {
        waiter.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_on_a_set_event_yields_once_then_returns() {
    let event = Event::new();
    event.set();
    let mut wait = pin!(event.wait());
    assert!(
        poll_once(wait.as_mut()).await.is_pending(),
        "a checkpoint even when set"
    );
    assert_eq!(poll_once(wait.as_mut()).await, Poll::Ready(()));
}

#[tokio::test(start_paused = true)]
async fn waiting_on_a_set_event_is_a_checkpoint() {
    let event = Event::new();
    event.set();
    assert_checkpoint(event.wait()).await;
}

#[tokio::test(start_paused = true)]
async fn a_loop_waiting_on_a_set_event_can_be_cancelled() {
    let event = Event::new();
    event.set();
    let scope = CancelScope::new();
    let canceller = tokio::spawn({
        let scope = scope.clone();
        async move { scope.cancel() }
    });
    // Bounded, so that a `wait` that never yields fails the test instead of
    // hanging it: the loop would then run to its end before the canceller.
    let outcome = scope
        .run(async {
            for _ in 0..1_000 {
                event.wait().await;
            }
        })
        .await;
    assert!(
        outcome.is_none(),
        "cancelled at a wait, before the loop ended"
    );
    canceller.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stats_count_the_waiting_tasks_until_the_event_is_set() {
    let event = Event::new();
    assert_eq!(event.stats().tasks_waiting, 0);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let event = event.clone();
            tokio::spawn(async move { event.wait().await })
        })
        .collect();
    settle().await;
    assert_eq!(event.stats().tasks_waiting, 3);

    let mut dropped = pin!(event.wait());
    assert!(poll_once(dropped.as_mut()).await.is_pending());
    assert_eq!(event.stats().tasks_waiting, 4);

    event.set();
    assert_eq!(
        event.stats(),
        EventStats::default(),
        "nobody waits once set"
    );
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(poll_once(dropped.as_mut()).await, Poll::Ready(()));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_is_no_longer_counted() {
    let event = Event::new();
    {
        let mut wait = pin!(event.wait());
        assert!(poll_once(wait.as_mut()).await.is_pending());
        assert_eq!(event.stats().tasks_waiting, 1);
    }
    assert_eq!(event.stats().tasks_waiting, 0);
}

#[test]
fn setting_twice_is_harmless_and_the_event_stays_set() {
    let event = Event::default();
    assert!(!event.is_set());
    event.set();
    event.set();
    assert!(event.is_set());
    assert_eq!(format!("{event:?}"), "Event { is_set: true }");
}

#[test]
fn clones_share_one_flag_but_new_events_do_not() {
    let event = Event::new();
    let clone = event.clone();
    let other = Event::new();
    clone.set();
    assert!(event.is_set());
    assert!(!other.is_set());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_does_not_disturb_the_others() {
    let event = Event::new();
    let mut kept = pin!(event.wait());
    {
        let mut dropped = pin!(event.wait());
        assert!(poll_once(dropped.as_mut()).await.is_pending());
    }
    assert!(poll_once(kept.as_mut()).await.is_pending());
    event.set();
    assert_eq!(poll_once(kept.as_mut()).await, Poll::Ready(()));
}
