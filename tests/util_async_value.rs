//! `AsyncValue` and `AsyncBool`: predicates, transitions, streams, transforms.

use futures_util::{FutureExt as _, StreamExt as _};
use trellis::CancelScope;
use trellis::testing::assert_checkpoint;
use trellis::util::{AsyncBool, AsyncValue};

async fn let_others_run() {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn wait_value_already_true_is_still_a_checkpoint() {
    let v = AsyncValue::new(10);
    assert_eq!(assert_checkpoint(v.wait_value(|x| *x == 10)).await, 10);
    assert_eq!(v.waiters(), 0);
    let flag = AsyncBool::new(true);
    assert!(assert_checkpoint(flag.wait_value(true)).await);
}

#[tokio::test(start_paused = true)]
async fn a_loop_over_a_true_wait_value_lets_other_tasks_run_and_be_cancelled() {
    let v = AsyncValue::new(1);
    let stop = AsyncBool::new(false);
    let scope = CancelScope::new();
    let canceller = tokio::spawn({
        let (scope, stop) = (scope.clone(), stop.clone());
        async move {
            stop.set(true);
            scope.cancel();
        }
    });
    let mut rounds = 0u32;
    let out = scope
        .run(async {
            loop {
                v.wait_value(|x| *x == 1).await; // always true
                rounds += 1;
            }
        })
        .await;
    assert_eq!(out, None::<()>);
    assert!(stop.value());
    // The other task ran at the first checkpoint, and the cancellation
    // dropped the loop there.
    assert_eq!(rounds, 0);
    canceller.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_transition_is_a_checkpoint() {
    let v = AsyncValue::new(0);
    let setter = tokio::spawn({
        let v = v.clone();
        async move { v.set(1) }
    });
    assert_eq!(
        assert_checkpoint(v.wait_transition(|_, _| true)).await,
        (1, 0)
    );
    setter.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_value_returns_the_latest_match_set_before_it_ran() {
    let v = AsyncValue::new(0);
    let mut waiter = Box::pin(v.wait_value(|x| *x >= 5));
    assert!((&mut waiter).now_or_never().is_none());
    v.set(5);
    v.set(9);
    v.set(2);
    assert_eq!(waiter.await, 9);
}

#[tokio::test(start_paused = true)]
async fn wait_transition_reports_the_latest_of_several_matching_changes() {
    let v = AsyncValue::new(0);
    let mut rising = Box::pin(v.wait_transition(|new, old| new > old));
    assert!((&mut rising).now_or_never().is_none());
    v.set(1);
    v.set(5);
    v.set(3); // a fall: ignored
    v.set(4);
    assert_eq!(rising.await, (4, 3));
}

#[tokio::test(start_paused = true)]
async fn eventual_values_never_yields_the_same_value_twice_in_a_row() {
    let v = AsyncValue::new(0);
    let mut values = v.eventual_values(|_| true);
    assert_eq!(values.next().await, Some(0));
    v.set(1); // the consumer is busy: 0 -> 1 -> 0 happens unseen
    v.set(0);
    assert!(values.next().now_or_never().is_none());
    v.set(2);
    assert_eq!(values.next().await, Some(2));
    v.set(0);
    assert_eq!(values.next().await, Some(0)); // differs from the last yielded
}

#[tokio::test(start_paused = true)]
async fn transitions_yield_each_matching_change_while_the_consumer_waits() {
    let v = AsyncValue::new(0);
    let mut rises = v.transitions(|new, old| new > old);
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(t) = rises.next().await {
            seen.push(t);
            if seen.len() == 2 {
                break;
            }
        }
        seen
    });
    tokio::task::yield_now().await; // the consumer waits now
    v.set(2);
    tokio::task::yield_now().await; // it takes (2, 0) and waits again
    v.set(1); // a fall
    v.set(7);
    assert_eq!(seen.await.unwrap(), [(2, 0), (7, 1)]);
    assert_eq!(v.waiters(), 0); // the dropped stream unregistered
}

#[tokio::test(start_paused = true)]
async fn transitions_while_the_consumer_is_busy_or_before_it_starts_are_dropped() {
    let v = AsyncValue::new(0);
    let mut changes = v.transitions(|_, _| true);
    v.set(1); // before the first next(): not seen
    assert!(changes.next().now_or_never().is_none()); // waits now (and is dropped)
    v.set(2);
    v.set(3);
    assert_eq!(changes.next().await, Some((3, 2))); // latest of two
    v.set(4); // busy in the body: dropped
    assert!(changes.next().now_or_never().is_none());
    v.set(5);
    assert_eq!(changes.next().await, Some((5, 4)));
}

#[tokio::test]
async fn wait_value_returns_the_value_that_matched_even_if_it_changed_again() {
    let v = AsyncValue::new(0);
    let mut waiter = Box::pin(v.wait_value(|x| *x >= 5));
    assert!((&mut waiter).now_or_never().is_none());
    v.set(3);
    v.set(7);
    v.set(1);
    assert_eq!(waiter.await, 7);
    assert_eq!(v.waiters(), 0);
}

#[tokio::test]
async fn setting_the_same_value_wakes_nobody() {
    let v = AsyncValue::new(1);
    let mut changed = Box::pin(v.wait_transition(|_, _| true));
    assert!((&mut changed).now_or_never().is_none());
    assert!(!v.set(1));
    assert!((&mut changed).now_or_never().is_none());
    assert!(v.set(2));
    assert_eq!(changed.now_or_never(), Some((2, 1)));
}

#[tokio::test]
async fn transitions_that_happen_while_nobody_waits_are_not_seen() {
    let v = AsyncValue::new(false);
    v.set(true);
    v.set(false);
    let mut rising = Box::pin(v.wait_transition(|new, old| *new && !*old));
    assert!((&mut rising).now_or_never().is_none()); // registers now
    assert!((&mut rising).now_or_never().is_none());
    v.set(true);
    assert_eq!(rising.await, (true, false));
}

#[tokio::test]
async fn wait_transition_ignores_the_current_value_and_non_matching_changes() {
    let v = AsyncValue::new(5);
    let task = tokio::spawn({
        let v = v.clone();
        async move { v.wait_transition(|new, old| new - old >= 10).await }
    });
    let_others_run().await;
    v.set(8); // +3
    v.set(30); // +22
    assert_eq!(task.await.unwrap(), (30, 8));
}

#[tokio::test]
async fn dropped_waiters_unregister() {
    let v = AsyncValue::new(0);
    let mut waiter = Box::pin(v.wait_value(|x| *x > 0));
    assert!((&mut waiter).now_or_never().is_none());
    let stream = v.eventual_values(|_| true);
    assert_eq!(v.waiters(), 2);
    drop(waiter);
    drop(stream);
    assert_eq!(v.waiters(), 0);
}

#[tokio::test]
async fn eventual_values_yields_the_current_match_then_the_latest_one() {
    let v = AsyncValue::new(1);
    let mut odd = v.eventual_values(|x| x % 2 == 1);
    assert_eq!(odd.next().await, Some(1));
    assert!(odd.next().now_or_never().is_none());
    v.set(2);
    assert!(odd.next().now_or_never().is_none()); // not a match
    v.set(3);
    v.set(5);
    assert_eq!(odd.next().await, Some(5)); // 3 was overwritten
    v.set(4);
    assert!(odd.next().now_or_never().is_none());
}

#[tokio::test]
async fn eventual_values_skips_a_current_value_that_does_not_match() {
    let v = AsyncValue::new(0);
    let mut big = v.eventual_values(|x| *x > 100);
    assert!(big.next().now_or_never().is_none());
    v.set(101);
    assert_eq!(big.next().await, Some(101));
}

#[tokio::test]
async fn open_transform_follows_the_source_and_wakes_only_on_derived_changes() {
    let v = AsyncValue::new(3);
    let parity = v.open_transform(|x| x % 2);
    assert_eq!(parity.value(), 1);
    let mut flipped = Box::pin(parity.wait_transition(|_, _| true));
    assert!((&mut flipped).now_or_never().is_none());
    v.set(5); // parity unchanged
    assert!((&mut flipped).now_or_never().is_none());
    v.set(6);
    assert_eq!(flipped.await, (0, 1));
    let handle = AsyncValue::clone(&parity);
    drop(parity);
    v.set(7);
    assert_eq!(handle.value(), 0); // no longer follows
    assert_eq!(v.waiters(), 0);
}

#[tokio::test]
async fn async_bool_waits_for_values_and_transitions() {
    let flag = AsyncBool::new(false);
    assert!(!flag.wait_value(false).await);
    let mut up = Box::pin(flag.wait_transition(Some(true)));
    let mut any = Box::pin(flag.wait_transition(None));
    let mut set = Box::pin(flag.wait_value(true));
    assert!((&mut up).now_or_never().is_none());
    assert!((&mut any).now_or_never().is_none());
    assert!((&mut set).now_or_never().is_none());
    flag.set(true);
    assert_eq!(up.await, (true, false));
    assert_eq!(any.await, (true, false));
    assert!(set.await);
    let mut down = Box::pin(flag.wait_transition(Some(false)));
    assert!((&mut down).now_or_never().is_none());
    flag.set(false);
    assert_eq!(down.await, (false, true));
}

#[tokio::test]
async fn many_waiters_are_woken_only_when_their_own_predicate_holds() {
    let v = AsyncValue::new(0usize);
    let mut waiters: Vec<_> = (1..=100)
        .map(|n| Box::pin(v.wait_value(move |x| *x == n)))
        .collect();
    for w in &mut waiters {
        assert!(w.now_or_never().is_none());
    }
    v.set(42);
    let ready: Vec<usize> = waiters
        .iter_mut()
        .filter_map(|w| w.now_or_never())
        .collect();
    assert_eq!(ready, [42]);
    assert_eq!(v.waiters(), 99);
}
