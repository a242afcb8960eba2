//! `UnqueuedRepeatedEvent` and `MailboxRepeatedEvent` under bursts of `set()`.

use futures_util::{FutureExt as _, StreamExt as _};
use trellis::util::{MailboxRepeatedEvent, UnqueuedRepeatedEvent, UtilError};

#[tokio::test]
async fn unqueued_drops_sets_while_nobody_waits_and_merges_a_burst() {
    let event = UnqueuedRepeatedEvent::new();
    let mut events = event.events().unwrap();
    event.set(); // the listener has not waited yet: dropped
    assert!(events.next().now_or_never().is_none()); // now it waits
    for _ in 0..10 {
        event.set(); // a burst while it waits: one event
    }
    assert_eq!(events.next().now_or_never(), Some(Some(())));
    // Busy in its loop body: these are dropped.
    event.set();
    event.set();
    assert!(events.next().now_or_never().is_none());
    event.set();
    assert_eq!(events.next().now_or_never(), Some(Some(())));
}

#[tokio::test]
async fn mailbox_keeps_one_set_while_busy_and_merges_a_burst() {
    let event = MailboxRepeatedEvent::new();
    event.set(); // before listening: kept
    let mut events = event.events().unwrap();
    assert_eq!(events.next().now_or_never(), Some(Some(())));
    for _ in 0..10 {
        event.set(); // busy: one kept
    }
    assert_eq!(events.next().now_or_never(), Some(Some(())));
    assert!(events.next().now_or_never().is_none());
    event.set();
    assert_eq!(events.next().now_or_never(), Some(Some(())));
}

#[tokio::test]
async fn a_listener_task_is_woken_by_set() {
    let event = MailboxRepeatedEvent::new();
    let mut events = event.events().unwrap();
    let listener = tokio::spawn(async move {
        let mut n = 0;
        while n < 2 {
            events.next().await;
            n += 1;
        }
        n
    });
    tokio::task::yield_now().await;
    event.set();
    tokio::task::yield_now().await;
    event.set();
    assert_eq!(listener.await.unwrap(), 2);
}

#[tokio::test]
async fn a_second_concurrent_listener_is_an_error() {
    let unqueued = UnqueuedRepeatedEvent::new();
    let first = unqueued.events().unwrap();
    assert_eq!(
        unqueued.clone().events().unwrap_err(),
        UtilError::AlreadyListening
    );
    drop(first);
    assert!(unqueued.events().is_ok());

    let mailbox = MailboxRepeatedEvent::new();
    let _first = mailbox.events().unwrap();
    assert_eq!(mailbox.events().unwrap_err(), UtilError::AlreadyListening);
}
