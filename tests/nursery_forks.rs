//! Forks: groups of tasks inside one nursery that can be cancelled, given a
//! deadline and joined on their own (traio's `fork`).

use std::time::Duration;

use tokio::time::Instant;
use trellis::{ForkOptions, NurseryError, TaskError, nursery};

#[tokio::test(start_paused = true)]
async fn join_waits_for_the_fork_s_tasks_and_returns_ok() {
    let start = Instant::now();
    nursery(|n| async move {
        let fork = n.fork();
        fork.spawn(tokio::time::sleep(Duration::from_secs(5)));
        fork.spawn(tokio::time::sleep(Duration::from_secs(2)));
        fork.join().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_fork_that_keeps_its_failures_is_handled_by_its_parent() {
    let out = nursery(|n| async move {
        let fork = n.fork_with(ForkOptions::new().name("probes").bubble(false));
        fork.spawn(async { Err::<(), _>("unreachable host") });
        let sibling_in_fork = fork.spawn(std::future::pending::<()>());
        let outside = n.spawn(tokio::time::sleep(Duration::from_secs(1)));
        let err = fork.join().await.unwrap_err();
        assert_eq!(err.failures().len(), 1);
        assert!(matches!(
            sibling_in_fork.await,
            Err(TaskError::Cancelled { .. })
        ));
        assert!(outside.await.is_ok(), "the rest of the nursery carries on");
    })
    .await;
    assert!(
        out.is_ok(),
        "the joined failure is not reported again: {out:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fork_failure_nobody_joins_is_reported_when_the_nursery_ends() {
    let err = nursery(|n| async move {
        let fork = n.fork_with(ForkOptions::new().name("probes").bubble(false));
        fork.spawn(async { Err::<(), _>("unreachable host") });
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
    let failure = &err.failures()[0];
    assert_eq!(failure.task(), "probes");
    let inner = failure
        .error()
        .unwrap()
        .downcast_ref::<NurseryError>()
        .unwrap();
    assert_eq!(
        inner.failures()[0].to_string(),
        "task `nursery_forks::a_fork_failure_nobody_joins_is_reported_when_the_nursery_ends` failed: unreachable host"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bubbling_fork_failure_fails_the_nursery_at_once() {
    let start = Instant::now();
    let err = nursery(|n| async move {
        let fork = n.fork();
        fork.spawn(async { Err::<(), _>("boom") });
        n.spawn(tokio::time::sleep(Duration::from_secs(60)));
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_fork_deadline_is_an_error_the_parent_sees() {
    let start = Instant::now();
    let err = nursery(|n| async move {
        let fork = n.fork_with(
            ForkOptions::new()
                .name("slow")
                .timeout(Duration::from_secs(1)),
        );
        fork.spawn(tokio::time::sleep(Duration::from_secs(60)));
        n.spawn(tokio::time::sleep(Duration::from_secs(60)));
    })
    .await
    .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let failure = &err.failures()[0];
    assert_eq!(failure.task(), "slow");
    assert!(matches!(
        failure.error().unwrap().downcast_ref::<NurseryError>(),
        Some(NurseryError::TimedOut { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_move_on_fork_deadline_only_cancels_the_fork() {
    let out = nursery(|n| async move {
        let fork = n.fork_with(ForkOptions::new().move_on().timeout(Duration::from_secs(1)));
        let task = fork.spawn(tokio::time::sleep(Duration::from_secs(60)));
        assert!(matches!(task.await, Err(TaskError::Cancelled { .. })));
        fork.join().await.unwrap();
    })
    .await;
    assert!(out.is_ok(), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn join_reports_the_deadline_of_a_fork_that_keeps_its_failures() {
    nursery(|n| async move {
        let fork = n.fork_with(
            ForkOptions::new()
                .bubble(false)
                .timeout(Duration::from_secs(1)),
        );
        fork.spawn(tokio::time::sleep(Duration::from_secs(60)));
        assert!(matches!(
            fork.join().await,
            Err(NurseryError::TimedOut { .. })
        ));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_nursery_cannot_join_itself() {
    nursery(|n| async move {
        assert!(matches!(n.join().await, Err(NurseryError::NotAFork)));
    })
    .await
    .unwrap();
}
