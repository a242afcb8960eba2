//! A child may refuse to start (OTP's `ignore`): a `ChildSpec::new` child
//! whose task returns `Ok` without reporting `started` is recorded as
//! ignored — not running, no pid, never restarted — while a child that
//! fails before starting is still a start failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trellis::dynamic_supervisor;
use trellis::process::ExitReason;
use trellis::supervisor::{
    self, ChildSpec, ChildState, Restart, SupervisorError, SupervisorOptions,
};
use trellis::{TaskStatus, nursery};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A child that counts its starts and declines every one of them.
fn declining(id: &'static str, runs: &Arc<AtomicU32>, restart: Restart) -> ChildSpec {
    let runs = runs.clone();
    ChildSpec::new(id, move |_status: TaskStatus<u32>| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<(), BoxError>(()) // returns without `started`
        }
    })
    .restart(restart)
}

fn waiting(id: &'static str) -> ChildSpec {
    ChildSpec::new(id, |status: TaskStatus<u32>| async move {
        status.started(7);
        trellis::wait_shutdown().await;
    })
}

#[tokio::test(start_paused = true)]
async fn an_ignored_child_is_kept_without_a_pid_and_never_restarted() {
    for restart in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
        let runs = Arc::new(AtomicU32::new(0));
        let children = vec![declining("shy", &runs, restart), waiting("after")];
        nursery(|n| async move {
            let sup = n
                .start(|s| supervisor::serve(children, SupervisorOptions::new(), s))
                .await?;
            tokio::time::sleep(Duration::from_secs(10)).await;
            let children = sup.which_children();
            assert_eq!(children.len(), 2);
            assert_eq!(children[0].id, "shy");
            assert_eq!(children[0].state, ChildState::Ignored);
            assert_eq!(children[0].pid, None);
            assert_eq!(children[0].restarts, 0);
            assert_eq!(children[1].state, ChildState::Running);
            let count = sup.count_children();
            assert_eq!((count.specs, count.active), (2, 1));
            sup.stop().await?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{restart:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_that_fails_before_starting_is_still_a_start_failure() {
    let failing = ChildSpec::new("broken", |_status: TaskStatus<u32>| async {
        Err::<(), _>("no config")
    });
    let err = supervisor::serve(
        vec![failing],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    match err {
        SupervisorError::StartFailed { child, reason, .. } => {
            assert_eq!(child, "broken");
            assert_eq!(reason, ExitReason::error("no config"));
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn start_child_of_a_dynamic_supervisor_returns_an_ignore_outcome_and_keeps_nothing() {
    let runs = Arc::new(AtomicU32::new(0));
    let shy = declining("shy", &runs, Restart::Permanent);
    nursery(|n| async move {
        let sup = n
            .start(|s| {
                dynamic_supervisor::serve(
                    dynamic_supervisor::DynamicSupervisorOptions::new().name("ignore-dyn"),
                    s,
                )
            })
            .await?;
        let outcome = dynamic_supervisor::start_child(&sup, shy).await?;
        assert!(outcome.is_ignored());
        assert!(outcome.downcast::<u32>().is_err());
        assert!(dynamic_supervisor::which_children(&sup)?.is_empty());
        // The supervisor runs on, and starts others.
        let started = dynamic_supervisor::start_child(&sup, waiting("next")).await?;
        assert!(!started.is_ignored());
        assert_eq!(started.downcast::<u32>().unwrap(), 7);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn start_child_of_a_static_supervisor_keeps_an_ignored_child_listed() {
    let runs = Arc::new(AtomicU32::new(0));
    let shy = declining("shy", &runs, Restart::Permanent);
    nursery(|n| async move {
        let sup = n
            .start(|s| supervisor::serve(vec![waiting("first")], SupervisorOptions::new(), s))
            .await?;
        let outcome = sup.start_child(shy).await?;
        assert!(outcome.is_ignored());
        let children = sup.which_children();
        assert_eq!(children[1].state, ChildState::Ignored);
        assert_eq!(children[1].pid, None);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
