//! `compose_values`: one derived value from several `AsyncValue`s.

use futures_util::FutureExt as _;
use trellis::util::{AsyncValue, compose_values};

#[tokio::test(start_paused = true)]
async fn the_composite_follows_every_source() {
    let a = AsyncValue::new(1);
    let b = AsyncValue::new(String::from("x"));
    let c = AsyncValue::new(false);
    let all = compose_values((&a, &b, &c), |(a, b, c)| format!("{a}{b}{c}"));
    assert_eq!(all.value(), "1xfalse");
    a.set(2);
    assert_eq!(all.value(), "2xfalse");
    b.set("y".into());
    c.set(true);
    assert_eq!(all.value(), "2ytrue");
}

#[tokio::test(start_paused = true)]
async fn waiters_on_the_composite_wake_only_when_it_changes() {
    let x = AsyncValue::new(1);
    let y = AsyncValue::new(2);
    let max = compose_values((&x, &y), |&(x, y)| x.max(y));
    let mut changed = Box::pin(max.wait_transition(|_, _| true));
    assert!((&mut changed).now_or_never().is_none());
    x.set(0); // the maximum stays 2: no change
    assert!((&mut changed).now_or_never().is_none());
    y.set(5);
    assert_eq!(changed.await, (5, 2));
}

#[tokio::test(start_paused = true)]
async fn a_task_waiting_on_the_composite_sees_the_matching_combination() {
    let ready = AsyncValue::new(false);
    let count = AsyncValue::new(0);
    let go = compose_values((&ready, &count), |&(r, c)| r && c >= 2);
    let waiter = tokio::spawn({
        let go = AsyncValue::clone(&go);
        async move { go.wait_value(|g| *g).await }
    });
    tokio::task::yield_now().await;
    count.set(2);
    assert!(!waiter.is_finished());
    ready.set(true);
    assert!(waiter.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_composite_unregisters_from_every_source() {
    let a = AsyncValue::new(0);
    let b = AsyncValue::new(0);
    let c = AsyncValue::new(0);
    let d = AsyncValue::new(0);
    let max = compose_values((&a, &b, &c, &d), |&(a, b, c, d)| a.max(b).max(c).max(d));
    assert_eq!(a.waiters() + b.waiters() + c.waiters() + d.waiters(), 4);
    d.set(9);
    assert_eq!(max.value(), 9);
    let handle = AsyncValue::clone(&max);
    drop(max);
    assert_eq!(a.waiters() + b.waiters() + c.waiters() + d.waiters(), 0);
    d.set(20);
    assert_eq!(handle.value(), 9);
}
