//! Task handles: await one task's value, cancel one task, ask whether it
//! finished, while the nursery guarantee holds (the nursery still waits for
//! the task, and a failure is reported exactly once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use trellis::{BoxError, NurseryError, SpawnOptions, TaskError, nursery};

#[tokio::test]
async fn a_handle_returns_the_task_s_value() {
    let value = nursery(|n| async move {
        let handle = n.spawn(async { Ok::<_, BoxError>("value") });
        assert_eq!(
            handle.name(),
            "nursery_task_handles::a_handle_returns_the_task_s_value"
        );
        handle.await
    })
    .await
    .unwrap();
    assert_eq!(value, "value");
}

#[tokio::test]
async fn a_bubbling_failure_is_reported_to_the_nursery_once_and_the_handle_says_so() {
    let (tx, rx) = oneshot::channel();
    let err = nursery(|n| async move {
        let handle = n.spawn_with(SpawnOptions::new().name("flaky"), async {
            Err::<(), _>("boom")
        });
        let _ = tx.send(handle.await);
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
    assert_eq!(err.failures()[0].task(), "flaky");
    let seen = rx.await.unwrap_or(Err(TaskError::Cancelled {
        task: "body cancelled before it read the handle".into(),
    }));
    assert!(
        matches!(seen, Err(TaskError::Reported { ref task }) if task == "flaky")
            || matches!(seen, Err(TaskError::Cancelled { .. })),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_non_bubbling_failure_goes_to_the_handle_and_only_there() {
    let got = nursery(|n| async move {
        let handle = n.spawn_with(SpawnOptions::new().name("flaky").bubble(false), async {
            Err::<(), _>("no route to host")
        });
        let Err(TaskError::Failed(failure)) = handle.await else {
            panic!("the failure belongs to the handle");
        };
        assert_eq!(failure.task(), "flaky");
        Ok::<_, NurseryError>(failure.to_string())
    })
    .await
    .unwrap();
    assert_eq!(got, "task `flaky` failed: no route to host");
}

#[tokio::test(start_paused = true)]
async fn cancelling_one_task_leaves_its_siblings_and_the_nursery_alone() {
    let sibling_done = Arc::new(AtomicBool::new(false));
    let done = sibling_done.clone();
    nursery(|n| async move {
        let sleeper = n.spawn(tokio::time::sleep(Duration::from_secs(3600)));
        n.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            done.store(true, Ordering::SeqCst);
        });
        assert!(!sleeper.is_finished());
        sleeper.cancel();
        assert!(matches!(sleeper.await, Err(TaskError::Cancelled { .. })));
        assert!(!n.is_cancelled());
    })
    .await
    .unwrap();
    assert!(sibling_done.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_handle_neither_cancels_nor_detaches_its_task() {
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    nursery(|n| async move {
        drop(n.spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            f.store(true, Ordering::SeqCst);
        }));
    })
    .await
    .unwrap();
    assert!(finished.load(Ordering::SeqCst), "the nursery waited for it");
}

#[tokio::test(start_paused = true)]
async fn a_sibling_can_await_a_handle_and_is_finished_reports_the_end() {
    nursery(|n| async move {
        let (go, wait) = oneshot::channel::<()>();
        let producer = n.spawn(async move {
            let _ = wait.await;
            Ok::<_, BoxError>(7)
        });
        assert!(!producer.is_finished());
        let consumer = n.spawn(async move { Ok::<_, BoxError>(producer.await? * 6) });
        go.send(()).unwrap();
        assert_eq!(consumer.await.unwrap(), 42);
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_handle_awaited_with_a_timeout_can_be_awaited_again() {
    nursery(|n| async move {
        let mut slow = n.spawn(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxError>(5)
        });
        assert!(
            trellis::move_on_after(Duration::from_secs(1), &mut slow)
                .await
                .is_none()
        );
        assert_eq!((&mut slow).await.unwrap(), 5);
        assert!(slow.is_finished());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn try_spawn_on_a_finished_nursery_is_an_error_and_spawn_panics() {
    let escaped = nursery(|n| async move { Ok::<_, NurseryError>(n) })
        .await
        .unwrap();
    assert!(matches!(
        escaped.try_spawn(async {}),
        Err(NurseryError::Closed)
    ));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        escaped.spawn(async {});
    }));
    assert!(panicked.is_err());
}
