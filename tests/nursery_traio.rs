//! traio's task control on nurseries: cancelling your own nursery is not an
//! error, a cleanup failure never hides a timeout, cancel with a reason, a
//! cancel grace per task, blocking work as a child. (After traio's
//! `tests/`: `test_scope.py`, `test_task.py`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use trellis::{
    BoxError, CancelScope, Nursery, NurseryError, NurseryOptions, SpawnOptions, TaskError,
    move_on_after, nursery, nursery_with, wait_shutdown,
};

#[tokio::test(start_paused = true)]
async fn a_child_cancelling_its_own_nursery_ends_it_with_ok() {
    let out = nursery(|n| async move {
        n.spawn(std::future::pending::<()>());
        n.spawn(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Nursery::current().unwrap().cancel();
        });
        std::future::pending::<()>().await;
    })
    .await;
    assert!(out.is_ok(), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn the_body_cancelling_its_own_nursery_ends_it_with_ok_under_question_mark() {
    async fn work() -> Result<(), NurseryError> {
        nursery(|n| async move {
            n.spawn(std::future::pending::<()>());
            n.cancel();
            tokio::task::yield_now().await;
        })
        .await?;
        Ok(())
    }
    assert!(work().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_from_outside_still_propagates() {
    let out = move_on_after(
        Duration::from_secs(1),
        nursery(|n| async move {
            n.spawn(std::future::pending::<()>());
        }),
    )
    .await;
    assert!(out.is_none(), "the enclosing scope catches it: {out:?}");
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("cleanup failed");
    }
}

#[tokio::test(start_paused = true)]
async fn a_cleanup_failure_never_hides_the_timeout() {
    let start = Instant::now();
    let options = NurseryOptions::new().timeout(Duration::from_secs(1));
    let err = nursery_with(options, |n| async move {
        n.spawn_with(SpawnOptions::new().name("holder"), async {
            let _guard = PanicOnDrop;
            std::future::pending::<()>().await;
        });
    })
    .await
    .unwrap_err();
    let NurseryError::TimedOut { deadline, cleanup } = &err else {
        panic!("the timeout must win: {err:?}");
    };
    assert_eq!(*deadline, start + Duration::from_secs(1));
    assert_eq!(cleanup.len(), 1);
    assert_eq!(cleanup[0].task(), "holder");
    assert_eq!(cleanup[0].panic_message(), Some("cleanup failed"));
    assert_eq!(err.failures().len(), 1);
    assert!(
        err.to_string()
            .starts_with("nursery timed out (and, while cancelling:")
    );
}

#[derive(Debug, thiserror::Error)]
#[error("upstream went away")]
struct Upstream;

#[tokio::test]
async fn cancel_with_ends_the_nursery_with_that_error() {
    let err = nursery_with(NurseryOptions::new().name("fetch"), |n| async move {
        n.spawn(std::future::pending::<()>());
        let canceller = n.clone();
        n.spawn(async move { canceller.cancel_with(Upstream) });
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
    let failure = &err.failures()[0];
    assert_eq!(failure.task(), "fetch");
    assert!(
        failure
            .error()
            .unwrap()
            .downcast_ref::<Upstream>()
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_with_a_cancel_grace_is_asked_first_and_may_finish() {
    let start = Instant::now();
    let said_goodbye = Arc::new(AtomicBool::new(false));
    let said = said_goodbye.clone();
    let out = nursery(|n| async move {
        n.spawn_with(
            SpawnOptions::new()
                .name("polite")
                .cancel_grace(Duration::from_secs(5)),
            async move {
                wait_shutdown().await;
                tokio::time::sleep(Duration::from_secs(2)).await; // flushing
                said.store(true, Ordering::SeqCst);
            },
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        n.cancel();
    })
    .await;
    assert!(out.is_ok(), "{out:?}");
    assert!(said_goodbye.load(Ordering::SeqCst));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_task_overstaying_its_cancel_grace_is_dropped_and_reported() {
    let start = Instant::now();
    let err = nursery(|n| async move {
        n.spawn_with(
            SpawnOptions::new()
                .name("stubborn")
                .cancel_grace(Duration::from_secs(2)),
            std::future::pending::<()>(),
        );
        n.cancel();
    })
    .await
    .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(err.failures().len(), 1);
    assert_eq!(
        err.failures()[0].to_string(),
        "task `stubborn` failed: could not cancel task `stubborn` within 2s"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_handle_with_a_grace_asks_first() {
    nursery(|n| async move {
        let task = n.spawn_with(
            SpawnOptions::new().cancel_grace(Duration::from_secs(1)),
            async {
                wait_shutdown().await;
                Ok::<_, BoxError>("drained")
            },
        );
        task.cancel();
        assert_eq!(task.await.unwrap(), "drained");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn spawn_blocking_returns_the_value_of_the_closure() {
    let value = nursery(|n| async move {
        let sum = n.spawn_blocking(|| (1..=10u32).sum::<u32>());
        Ok::<_, BoxError>(sum.await?)
    })
    .await
    .unwrap();
    assert_eq!(value, 55);
}

#[tokio::test]
async fn a_panic_in_blocking_work_is_a_failure_value() {
    let err = nursery(|n| async move {
        n.spawn_blocking(|| panic!("disk on fire"));
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
    assert!(err.failures()[0].is_panic());
    assert_eq!(err.failures()[0].panic_message(), Some("disk on fire"));
}

#[tokio::test]
async fn a_cancelled_nursery_waits_for_its_blocking_work() {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let scope = CancelScope::new();
    let running = tokio::spawn(scope.run(nursery(move |n| async move {
        n.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            done.store(true, Ordering::SeqCst);
        });
    })));
    started_rx.await.unwrap();
    scope.cancel();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!running.is_finished(), "the nursery waits for the thread");
    release_tx.send(()).unwrap();
    let out = running.await.unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert!(matches!(out, Some(Ok(()))) || out.is_none(), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_non_bubbling_task_error_is_the_handle_s() {
    nursery(|n| async move {
        let task = n.spawn_with(SpawnOptions::new().bubble(false).name("t"), async {
            Err::<(), _>("nope")
        });
        assert!(matches!(task.await, Err(TaskError::Failed(_))));
    })
    .await
    .unwrap();
}
