//! Cancel scopes: deadlines, nesting, cancel from another task, shields.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use trellis::{
    CancelScope, checkpoint, current_deadline, fail_after, fail_at, move_on_after, move_on_at,
    wait_shutdown,
};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_shorter_inner_deadline_fires_first_and_the_outer_scope_carries_on() {
    let start = Instant::now();
    let out = move_on_after(10 * SEC, async {
        let inner = move_on_after(SEC, sleep(5 * SEC)).await;
        assert_eq!(inner, None);
        assert_eq!(start.elapsed(), SEC);
        "outer finished"
    })
    .await;
    assert_eq!(out, Some("outer finished"));
    assert_eq!(start.elapsed(), SEC);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_outer_deadline_cancels_the_inner_scope_which_never_returns() {
    let start = Instant::now();
    let inner_returned = Arc::new(AtomicBool::new(false));
    let flag = inner_returned.clone();
    let out = move_on_after(SEC, async move {
        let _ = move_on_after(10 * SEC, sleep(5 * SEC)).await;
        flag.store(true, Ordering::SeqCst);
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), SEC);
    assert!(!inner_returned.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_nearest_deadline_is_the_current_one() {
    let start = Instant::now();
    move_on_after(5 * SEC, async {
        assert_eq!(current_deadline(), Some(start + 5 * SEC));
        move_on_after(10 * SEC, async {
            assert_eq!(current_deadline(), Some(start + 5 * SEC), "outer is nearer");
            move_on_after(SEC, async {
                assert_eq!(current_deadline(), Some(start + SEC));
            })
            .await;
        })
        .await;
        CancelScope::shielded()
            .run(async {
                assert_eq!(current_deadline(), None, "a shield hides outer deadlines");
            })
            .await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancel_from_another_task_stops_the_scope() {
    let scope = CancelScope::new();
    let remote = scope.clone();
    let start = Instant::now();
    let canceller = tokio::spawn(async move {
        sleep(3 * SEC).await;
        remote.cancel();
    });
    let out = scope.run(sleep(3600 * SEC)).await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), 3 * SEC);
    assert!(scope.cancelled_caught());
    assert!(scope.is_cancelled());
    canceller.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelled_caught_is_false_when_the_body_finished_first() {
    let scope = CancelScope::new().with_timeout(10 * SEC);
    assert_eq!(scope.run(sleep(SEC)).await, Some(()));
    assert!(!scope.cancelled_caught());
    assert!(!scope.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_scope_cancelled_before_it_runs_returns_at_the_first_await() {
    let scope = CancelScope::new();
    scope.cancel();
    let reached = AtomicBool::new(false);
    let out = scope
        .run(async {
            sleep(SEC).await;
            reached.store(true, Ordering::SeqCst);
        })
        .await;
    assert_eq!(out, None);
    assert!(!reached.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_can_be_moved_while_the_scope_runs() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(SEC);
    let remote = scope.clone();
    let out = scope
        .run(async move {
            remote.set_deadline(Some(start + 5 * SEC)); // later
            sleep(3 * SEC).await;
            remote.set_deadline(Some(start + 4 * SEC)); // earlier again
            sleep(10 * SEC).await;
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), 4 * SEC);
    assert_eq!(scope.deadline(), Some(start + 4 * SEC));
}

#[tokio::test(start_paused = true)]
async fn removing_the_deadline_lets_the_body_finish() {
    let scope = CancelScope::new().with_timeout(SEC);
    scope.set_deadline(None);
    assert_eq!(scope.run(sleep(5 * SEC)).await, Some(()));
}

#[tokio::test(start_paused = true)]
async fn fail_after_reports_too_slow_with_its_deadline() {
    let start = Instant::now();
    let err = fail_after(2 * SEC, sleep(3 * SEC)).await.unwrap_err();
    assert_eq!(err.deadline(), start + 2 * SEC);
    assert_eq!(
        err.to_string(),
        "deadline passed before the operation finished"
    );
    assert_eq!(fail_after(2 * SEC, async { 5 }).await.unwrap(), 5);
    let at = Instant::now() + SEC;
    assert!(fail_at(at, sleep(2 * SEC)).await.is_err());
    assert_eq!(move_on_at(Instant::now() + SEC, async { 1 }).await, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_past_cancels_at_once() {
    let past = Instant::now() - SEC;
    assert_eq!(move_on_at(past, sleep(SEC)).await, None);
    // ...but a body that never yields still completes.
    assert_eq!(move_on_at(past, async { 3 }).await, Some(3));
}

#[tokio::test(start_paused = true)]
async fn a_shield_finishes_its_work_and_the_outer_cancellation_lands_after_it() {
    let start = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let out = move_on_after(SEC, async move {
        let cleaned = CancelScope::shielded()
            .run(async {
                sleep(3 * SEC).await; // not interrupted at 1 s
                l.lock().unwrap().push("cleanup done");
                42
            })
            .await;
        l.lock().unwrap().push("got the shield's value");
        assert_eq!(cleaned, Some(42));
        sleep(SEC).await; // the next await is cancelled
        l.lock().unwrap().push("never");
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), 3 * SEC);
    assert_eq!(
        *log.lock().unwrap(),
        ["cleanup done", "got the shield's value"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_shield_still_obeys_its_own_deadline() {
    let start = Instant::now();
    let out = move_on_after(SEC, async {
        let shielded = CancelScope::shielded()
            .with_timeout(2 * SEC)
            .run(sleep(60 * SEC))
            .await;
        assert_eq!(shielded, None);
        sleep(SEC).await; // the outer cancellation lands here
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), 2 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_shield_does_not_survive_being_dropped_from_outside_trellis() {
    // Documented limit: tokio's timeout drops the future, shield and all.
    let start = Instant::now();
    let out = tokio::time::timeout(SEC, CancelScope::shielded().run(sleep(5 * SEC))).await;
    assert!(out.is_err());
    assert_eq!(start.elapsed(), SEC);
}

#[tokio::test(start_paused = true)]
async fn shutdown_wakes_wait_shutdown_and_cancels_after_the_grace_period() {
    let start = Instant::now();
    let scope = CancelScope::new();
    let remote = scope.clone();
    tokio::spawn(async move {
        sleep(SEC).await;
        remote.shutdown(2 * SEC);
    });
    let out = scope
        .run(async {
            wait_shutdown().await;
            assert_eq!(start.elapsed(), SEC);
            sleep(10 * SEC).await; // too slow for the grace period
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), 3 * SEC);
}

#[tokio::test]
async fn checkpoint_makes_a_busy_loop_cancellable() {
    let scope = CancelScope::new();
    let remote = scope.clone();
    let mut iterations = 0u32;
    let out = scope
        .run(async {
            loop {
                iterations += 1;
                if iterations == 100 {
                    remote.cancel();
                }
                checkpoint().await;
            }
        })
        .await;
    assert!(out.is_none());
    assert_eq!(iterations, 100);
}

#[tokio::test]
#[should_panic(expected = "a cancel scope can be run only once")]
async fn running_a_scope_twice_panics() {
    let scope = CancelScope::new();
    scope.run(async {}).await;
    scope.run(async {}).await;
}

#[tokio::test(start_paused = true)]
async fn deep_nesting_cancels_every_level_from_the_outermost() {
    fn nest(depth: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                sleep(3600 * SEC).await;
            } else {
                let _ = move_on_after(3600 * SEC, nest(depth - 1)).await;
                unreachable!("an inner scope returned although only the outer one was cancelled");
            }
        })
    }
    let start = Instant::now();
    assert_eq!(move_on_after(SEC, nest(200)).await, None);
    assert_eq!(start.elapsed(), SEC);
}
