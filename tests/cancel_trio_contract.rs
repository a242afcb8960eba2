//! Cancel scopes behave as Trio's: the outermost cancelled scope catches,
//! `current_deadline` inside a cancelled scope has passed, misuse is an
//! error value, relative deadlines count from entry, and the shield can be
//! turned on and off while a scope runs. (After Trio's
//! `src/trio/_core/_tests/test_run.py` cancel-scope tests.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use trellis::{
    CancelScope, NurseryError, NurseryOptions, ScopeError, checkpoint, current_deadline,
    fail_after, move_on_after, nursery_with,
};

/// Runs s1 ⊃ s2 ⊃ s3; inside s3, `cancel_inner_first` decides the order of
/// the two cancels. Returns (s1, s2, s3, whether code after s3 ran in s2).
async fn nested_cancel(cancel_inner_first: bool, shield_s3: bool) -> [bool; 4] {
    let (s1, s2) = (CancelScope::new(), CancelScope::new());
    let s3 = if shield_s3 {
        CancelScope::shielded()
    } else {
        CancelScope::new()
    };
    let after_s3 = Arc::new(AtomicBool::new(false));
    let (c2, c3, flag) = (s2.clone(), s3.clone(), after_s3.clone());
    let inner = s3.clone();
    let s2_body = s2.clone();
    s1.run(async move {
        s2_body
            .run(async move {
                inner
                    .run(async move {
                        if cancel_inner_first {
                            c3.cancel();
                            c2.cancel();
                        } else {
                            c2.cancel();
                            c3.cancel();
                        }
                        checkpoint().await;
                        unreachable!("cancelled at the checkpoint");
                    })
                    .await;
                flag.store(true, Ordering::SeqCst);
                checkpoint().await;
            })
            .await;
    })
    .await;
    [
        s1.cancelled_caught(),
        s2.cancelled_caught(),
        s3.cancelled_caught(),
        after_s3.load(Ordering::SeqCst),
    ]
}

#[tokio::test]
async fn the_outermost_cancelled_scope_catches_when_the_inner_one_was_cancelled_first() {
    let [s1, s2, s3, after_s3] = nested_cancel(true, false).await;
    assert!(!s1);
    assert!(s2, "s2, the outermost cancelled scope, catches");
    assert!(!s3, "s3 must not catch: s2 around it is cancelled too");
    assert!(!after_s3, "code in s2 after s3 must not run");
}

#[tokio::test]
async fn the_outermost_cancelled_scope_catches_when_the_outer_one_was_cancelled_first() {
    let [s1, s2, s3, after_s3] = nested_cancel(false, false).await;
    assert!(!s1 && s2 && !s3 && !after_s3);
}

#[tokio::test]
async fn a_shielded_scope_catches_its_own_cancellation_and_the_outer_one_then_catches_its_own() {
    let [s1, s2, s3, after_s3] = nested_cancel(true, true).await;
    assert!(!s1);
    assert!(s3, "the shield hides s2's cancellation: s3 catches its own");
    assert!(after_s3, "s2's body goes on until its next checkpoint");
    assert!(s2);
}

#[tokio::test(start_paused = true)]
async fn current_deadline_inside_a_cancelled_scope_has_passed() {
    let scope = CancelScope::new().with_deadline(Instant::now() + Duration::from_secs(60));
    let inside = scope.clone();
    scope
        .run(async move {
            assert_eq!(
                current_deadline(),
                Some(Instant::now() + Duration::from_secs(60))
            );
            inside.cancel();
            let deadline = current_deadline().expect("a cancelled scope has a passed deadline");
            assert!(deadline <= Instant::now());
            checkpoint().await;
        })
        .await;
    assert!(scope.cancelled_caught());
}

#[tokio::test]
async fn running_a_scope_twice_is_an_error_value() {
    let scope = CancelScope::new();
    assert_eq!(scope.try_run(async { 1 }).unwrap().await, Some(1));
    assert!(matches!(
        scope.try_run(async { 2 }),
        Err(ScopeError::AlreadyRun)
    ));
    let clone = scope.clone();
    assert!(matches!(
        clone.try_run(async {}),
        Err(ScopeError::AlreadyRun)
    ));
}

#[tokio::test]
async fn entering_a_scope_from_a_second_task_is_an_error_value() {
    let scope = CancelScope::new();
    let running = scope.run(std::future::pending::<()>());
    let other = scope.clone();
    let second = tokio::spawn(async move { other.try_run(async {}).err() })
        .await
        .unwrap();
    assert_eq!(second, Some(ScopeError::AlreadyRun));
    scope.cancel();
    assert_eq!(running.await, None);
}

#[tokio::test]
async fn run_panics_on_a_scope_that_already_ran() {
    let scope = CancelScope::new();
    drop(scope.run(async {}));
    let again = std::panic::catch_unwind(|| drop(scope.run(async {})));
    assert!(again.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_into_the_past_before_entry_reports_cancelled() {
    let scope = CancelScope::new();
    assert!(!scope.is_cancelled());
    scope.set_deadline(Some(Instant::now() - Duration::from_secs(1)));
    assert!(scope.is_cancelled(), "cancelled before it runs");
    assert_eq!(scope.run(std::future::pending::<()>()).await, None);
    assert!(scope.cancelled_caught());
}

#[tokio::test(start_paused = true)]
async fn move_on_after_counts_from_its_first_poll() {
    let slow = move_on_after(Duration::from_secs(5), std::future::pending::<()>());
    tokio::time::sleep(Duration::from_secs(60)).await; // built long before it runs
    let start = Instant::now();
    assert_eq!(slow.await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn fail_after_counts_from_its_first_poll() {
    let slow = fail_after(
        Duration::from_secs(5),
        tokio::time::sleep(Duration::from_secs(3)),
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        slow.await.is_ok(),
        "3 s of work fits in 5 s counted from the start"
    );
}

#[tokio::test(start_paused = true)]
async fn a_nursery_timeout_counts_from_its_first_poll() {
    let options = NurseryOptions::new().timeout(Duration::from_secs(5));
    let nursery = nursery_with(options, |n| async move {
        n.spawn(tokio::time::sleep(Duration::from_secs(3)));
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(nursery.await.is_ok());
    let options = NurseryOptions::new().timeout(Duration::from_secs(5));
    let start = Instant::now();
    let late = nursery_with(options, |n| async move {
        n.spawn(tokio::time::sleep(Duration::from_secs(30)));
    })
    .await;
    assert!(matches!(late, Err(NurseryError::TimedOut { .. })));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_relative_deadline_is_exposed_before_and_after_entry() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(10));
    assert_eq!(scope.relative_deadline(), Some(Duration::from_secs(10)));
    assert_eq!(scope.deadline(), None, "no absolute deadline before entry");
    let inside = scope.clone();
    scope
        .run(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(inside.relative_deadline(), Some(Duration::from_secs(6)));
            inside.set_relative_deadline(Some(Duration::from_secs(1)));
            tokio::time::sleep(Duration::from_secs(2)).await;
            unreachable!("the moved deadline passed");
        })
        .await;
    assert!(scope.cancelled_caught());
}

#[tokio::test(start_paused = true)]
async fn turning_the_shield_on_while_running_keeps_an_outer_deadline_out() {
    let start = Instant::now();
    let cleanup = CancelScope::new();
    let shield = cleanup.clone();
    let out = move_on_after(Duration::from_secs(1), async move {
        let flushed = cleanup
            .run(async move {
                shield.set_shield(true);
                assert!(shield.is_shield());
                tokio::time::sleep(Duration::from_secs(5)).await;
                "flushed"
            })
            .await;
        assert_eq!(flushed, Some("flushed"));
        checkpoint().await;
        unreachable!("the outer deadline applies again after the shield");
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn turning_the_shield_off_lets_a_pending_outer_cancellation_in() {
    let start = Instant::now();
    let guarded = CancelScope::shielded();
    let switch = guarded.clone();
    let out = move_on_after(Duration::from_secs(1), async move {
        guarded
            .run(async move {
                tokio::time::sleep(Duration::from_secs(2)).await; // the outer deadline passes
                switch.set_shield(false);
                tokio::time::sleep(Duration::from_secs(60)).await;
                unreachable!("cancelled once the shield is off");
            })
            .await
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}
