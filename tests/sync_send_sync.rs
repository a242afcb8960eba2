//! Pins the auto traits of the `sync` types and futures, so that they can be
//! shared between tasks on any runtime.

use std::cell::Cell;

use trellis::sync::{
    Borrower, CapacityLimiter, CapacityLimiterError, CapacityLimiterStats, CapacityToken,
    Condition, Event,
};

fn send_sync<T: Send + Sync + 'static>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn sync_types_are_send_sync_and_static() {
    send_sync::<Event>();
    send_sync::<CapacityLimiter>();
    send_sync::<CapacityToken>();
    send_sync::<CapacityLimiterStats>();
    send_sync::<CapacityLimiterError>();
    send_sync::<Borrower>();
    send_sync::<Condition<Vec<u8>>>();
    // Like tokio's mutex, a condition over `Send` but not `Sync` state is
    // still `Sync`: the lock serialises all access.
    send_sync::<Condition<Cell<u8>>>();
}

#[test]
fn sync_futures_are_send() {
    let event = Event::new();
    send(&event.wait());
    let limiter = CapacityLimiter::new(1);
    send(&limiter.acquire());
    send(&limiter.acquire_on_behalf_of("x"));
    let cond = Condition::new(Cell::new(0u8));
    send(&cond.lock());
    send(&async {
        let guard = cond.lock().await;
        let guard = cond.wait(guard).await;
        guard.set(1);
    });
}
