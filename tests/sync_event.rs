//! `Event`: set once, wakes every waiter, never resets.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use trellis::sync::Event;

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
async fn waiting_on_a_set_event_returns_at_once() {
    let event = Event::new();
    event.set();
    let mut wait = pin!(event.wait());
    assert_eq!(poll_once(wait.as_mut()).await, Poll::Ready(()));
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
