//! Nursery failures: propagation, cancellation of siblings, panics, start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use trellis::{CancelScope, NurseryError, SpawnOptions, StartError, nursery};

/// Counts live instances; a task holding one is alive until it is dropped.
#[derive(Clone, Default)]
struct Alive(Arc<AtomicUsize>);

struct Guard(Arc<AtomicUsize>);

impl Alive {
    fn guard(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nursery_returns_only_after_every_child_finished() {
    let alive = Alive::default();
    let finished = Arc::new(AtomicUsize::new(0));
    let a = alive.clone();
    let f = finished.clone();
    nursery(|n| async move {
        for i in 0..100u64 {
            let guard = a.guard();
            let f = f.clone();
            n.spawn(async move {
                let _guard = guard;
                for _ in 0..i % 7 {
                    tokio::task::yield_now().await;
                }
                f.fetch_add(1, Ordering::SeqCst);
            });
        }
    })
    .await
    .unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 100);
    assert_eq!(alive.count(), 0, "a task outlived its nursery");
}

#[tokio::test(start_paused = true)]
async fn failure_cancels_siblings_and_body_at_their_next_await() {
    let alive = Alive::default();
    let body_reached_end = Arc::new(AtomicBool::new(false));
    let (a, reached) = (alive.clone(), body_reached_end.clone());
    let err = nursery(|n| async move {
        for _ in 0..3 {
            let guard = a.guard();
            n.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        n.spawn_with(SpawnOptions::new().name("failing"), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<(), _>("disk on fire")
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        reached.store(true, Ordering::SeqCst);
    })
    .await
    .unwrap_err();
    assert_eq!(alive.count(), 0);
    assert!(
        !body_reached_end.load(Ordering::SeqCst),
        "the body ran past a cancelled await"
    );
    let failures = err.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].task(), "failing");
    assert_eq!(failures[0].error().unwrap().to_string(), "disk on fire");
    assert_eq!(err.to_string(), "task `failing` failed: disk on fire");
}

#[tokio::test(start_paused = true)]
async fn every_failure_is_reported_with_its_task_name() {
    // Two tasks that both fail during the same cancellation: both reported.
    let err = nursery(|n| async move {
        for name in ["a", "b"] {
            n.spawn_with(SpawnOptions::new().name(name), async move {
                CancelScope::shielded()
                    .run(async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Err::<(), _>(format!("{name} broke"))
                    })
                    .await
                    .unwrap()
            });
        }
    })
    .await
    .unwrap_err();
    let mut names: Vec<_> = err.failures().iter().map(|f| f.task().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert!(err.to_string().starts_with("2 tasks failed"), "{err}");
}

#[tokio::test]
async fn panics_become_failures_with_their_message() {
    let err = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().name("crasher"), async {
            let v: Vec<u8> = Vec::new();
            let _ = v[7]; // index out of bounds
        });
    })
    .await
    .unwrap_err();
    let failure = &err.failures()[0];
    assert!(failure.is_panic());
    assert_eq!(failure.task(), "crasher");
    let message = failure.panic_message().unwrap();
    assert!(message.contains("index out of bounds"), "{message}");
    assert!(
        err.to_string()
            .starts_with("task `crasher` panicked: index out of bounds")
    );
}

#[tokio::test]
async fn a_body_error_cancels_children_and_is_reported() {
    let alive = Alive::default();
    let a = alive.clone();
    let err = nursery(|n| async move {
        let guard = a.guard();
        n.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        Err::<(), _>(NurseryError::Cancelled) // any error type will do
    })
    .await
    .unwrap_err();
    assert_eq!(alive.count(), 0);
    assert_eq!(err.failures().len(), 1);
    assert_eq!(err.failures()[0].task(), "nursery");
}

#[tokio::test]
async fn a_panicking_body_is_a_failure_not_an_unwind() {
    let err = nursery(|_n| async move {
        if true {
            panic!("body broke");
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures()[0].panic_message(), Some("body broke"));
}

#[tokio::test]
async fn start_returns_the_started_value() {
    let got = nursery(|n| async move {
        let v = n
            .start(|status| async move {
                status.started("ready");
                std::future::pending::<()>().await;
            })
            .await
            .unwrap();
        n.cancel(); // the started task is an ordinary task: cancel it
        Ok::<_, NurseryError>(v)
    })
    .await
    .unwrap();
    assert_eq!(got, "ready");
}

#[tokio::test]
async fn start_errors_when_the_task_never_calls_started() {
    nursery(|n| async move {
        let err = n
            .start(|_status: trellis::TaskStatus<u8>| async {})
            .await
            .unwrap_err();
        assert!(matches!(err, StartError::NotStarted { .. }), "{err:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_failure_before_started_goes_to_the_starter_not_the_nursery() {
    let outcome = nursery(|n| async move {
        let err = n
            .start_with(
                SpawnOptions::new().name("binder"),
                |_status: trellis::TaskStatus<u8>| async { Err::<(), _>("address in use") },
            )
            .await
            .unwrap_err();
        match err {
            StartError::Failed(failure) => {
                assert_eq!(failure.task(), "binder");
                assert_eq!(failure.error().unwrap().to_string(), "address in use");
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok::<_, NurseryError>("nursery unaffected")
    })
    .await;
    assert_eq!(outcome.unwrap(), "nursery unaffected");
}

#[tokio::test]
async fn a_failure_after_started_fails_the_nursery() {
    let err = nursery(|n| async move {
        n.start(|status| async move {
            status.started(());
            Err::<(), _>("later")
        })
        .await
        .unwrap();
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_start_before_started_cancels_the_task() {
    let alive = Alive::default();
    let a = alive.clone();
    nursery(|n| async move {
        let guard = a.guard();
        let starting = n.start(|status: trellis::TaskStatus<()>| async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(10)).await;
            status.started(());
        });
        assert!(
            trellis::move_on_after(Duration::from_secs(1), starting)
                .await
                .is_none()
        );
    })
    .await
    .unwrap();
    assert_eq!(alive.count(), 0);
}

#[tokio::test]
async fn spawning_into_a_finished_nursery_is_an_error() {
    let (tx, rx) = oneshot::channel();
    nursery(|n| async move {
        tx.send(n.clone()).ok();
    })
    .await
    .unwrap();
    let escaped = rx.await.unwrap();
    assert!(matches!(
        escaped.try_spawn(async {}),
        Err(NurseryError::Closed)
    ));
    assert!(matches!(escaped.try_fork(), Err(NurseryError::Closed)));
    let err = escaped
        .start(|s| async move { s.started(()) })
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Closed));
}
