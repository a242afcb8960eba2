//! Nurseries keep Trio's promises where a race could break them: every
//! spawned task starts, so no early failure is lost, on either runtime.
//! (After Trio's `src/trio/_core/_tests/test_run.py` nursery tests.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use trellis::{NurseryError, SpawnOptions, nursery};

fn names(err: &NurseryError) -> Vec<&str> {
    let mut names: Vec<&str> = err.failures().iter().map(|f| f.task()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn two_children_failing_before_their_first_await_are_both_reported() {
    let err = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().name("a"), async { Err::<(), _>("a") });
        n.spawn_with(SpawnOptions::new().name("b"), async { Err::<(), _>("b") });
    })
    .await
    .unwrap_err();
    assert_eq!(names(&err), ["a", "b"]);
}

#[tokio::test]
async fn a_failing_body_and_a_failing_child_are_both_reported() {
    let err = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().name("child"), async {
            Err::<(), _>("child")
        });
        Err::<(), _>("body")
    })
    .await
    .unwrap_err();
    assert_eq!(names(&err), ["child", "nursery"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_then_fail_never_loses_the_second_failure_on_the_multi_thread_runtime() {
    for round in 0..1000 {
        let err = nursery(|n| async move {
            n.spawn_with(SpawnOptions::new().name("first"), async {
                Err::<(), _>("1")
            });
            n.spawn_with(SpawnOptions::new().name("second"), async {
                Err::<(), _>("2")
            });
        })
        .await
        .unwrap_err();
        assert_eq!(names(&err), ["first", "second"], "round {round}");
    }
}

#[tokio::test]
async fn tasks_spawned_into_a_cancelled_nursery_each_run_their_first_step_only() {
    let steps = Arc::new(AtomicUsize::new(0));
    let s = steps.clone();
    let _ = nursery(|n| async move {
        n.cancel();
        for _ in 0..3 {
            let s = s.clone();
            n.spawn(async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                s.fetch_add(100, Ordering::SeqCst);
            });
        }
    })
    .await;
    assert_eq!(steps.load(Ordering::SeqCst), 3);
}
