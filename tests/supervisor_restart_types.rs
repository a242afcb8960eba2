//! Each restart type against each way a child can end: normal exit, error,
//! panic. The child reports every run on a channel; its first run ends the
//! chosen way, later runs wait for shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use trellis::supervisor::{self, ChildSpec, Restart, SupervisorOptions};
use trellis::{CancelScope, TaskStatus};

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Normal,
    Error,
    Panic,
}

fn child(restart: Restart, first: Outcome, runs: mpsc::UnboundedSender<u32>) -> ChildSpec {
    let count = Arc::new(AtomicU32::new(0));
    ChildSpec::task("child", move || {
        let count = count.clone();
        let runs = runs.clone();
        async move {
            let run = count.fetch_add(1, Ordering::SeqCst);
            let _ = runs.send(run);
            if run > 0 {
                trellis::wait_shutdown().await;
                return Ok(());
            }
            match first {
                Outcome::Normal => Ok(()),
                Outcome::Error => Err("boom"),
                Outcome::Panic => panic!("boom"),
            }
        }
    })
    .restart(restart)
}

/// Runs a supervisor of one child; returns how many times the child ran.
async fn runs_of(restart: Restart, first: Outcome) -> u32 {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scope = CancelScope::new();
    let sup = scope.run(supervisor::serve(
        vec![child(restart, first, tx)],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    ));
    let watcher = async {
        assert_eq!(rx.recv().await, Some(0));
        // Either a second run comes, or the supervisor returns on its own
        // (then the channel closes: every sender was in the child spec).
        let second = rx.recv().await;
        scope.shutdown(Duration::from_secs(1));
        second
    };
    let (out, second) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(sup, watcher)
    })
    .await
    .expect("supervisor neither restarted nor returned");
    assert!(matches!(out, Some(Ok(()))), "{out:?}");
    if second.is_some() { 2 } else { 1 }
}

#[tokio::test(start_paused = true)]
async fn permanent_child_is_restarted_after_normal_exit() {
    assert_eq!(runs_of(Restart::Permanent, Outcome::Normal).await, 2);
}

#[tokio::test(start_paused = true)]
async fn permanent_child_is_restarted_after_error() {
    assert_eq!(runs_of(Restart::Permanent, Outcome::Error).await, 2);
}

#[tokio::test(start_paused = true)]
async fn permanent_child_is_restarted_after_panic() {
    assert_eq!(runs_of(Restart::Permanent, Outcome::Panic).await, 2);
}

#[tokio::test(start_paused = true)]
async fn transient_child_is_not_restarted_after_normal_exit() {
    assert_eq!(runs_of(Restart::Transient, Outcome::Normal).await, 1);
}

#[tokio::test(start_paused = true)]
async fn transient_child_is_restarted_after_error() {
    assert_eq!(runs_of(Restart::Transient, Outcome::Error).await, 2);
}

#[tokio::test(start_paused = true)]
async fn transient_child_is_restarted_after_panic() {
    assert_eq!(runs_of(Restart::Transient, Outcome::Panic).await, 2);
}

#[tokio::test(start_paused = true)]
async fn temporary_child_is_not_restarted_after_normal_exit() {
    assert_eq!(runs_of(Restart::Temporary, Outcome::Normal).await, 1);
}

#[tokio::test(start_paused = true)]
async fn temporary_child_is_not_restarted_after_error() {
    assert_eq!(runs_of(Restart::Temporary, Outcome::Error).await, 1);
}

#[tokio::test(start_paused = true)]
async fn temporary_child_is_not_restarted_after_panic() {
    assert_eq!(runs_of(Restart::Temporary, Outcome::Panic).await, 1);
}

#[tokio::test(start_paused = true)]
async fn supervisor_returns_when_every_child_finished_normally() {
    let spec = |id| ChildSpec::task(id, || async {}).restart(Restart::Transient);
    let out = supervisor::serve(
        vec![spec("a"), spec("b")],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    )
    .await;
    assert!(out.is_ok());
}

#[tokio::test(start_paused = true)]
async fn child_failing_before_started_fails_the_supervisor_start() {
    let ok = ChildSpec::task("ok", trellis::wait_shutdown);
    let bad = ChildSpec::new("bad", |_status: TaskStatus<()>| async {
        Err::<(), _>("no db")
    });
    let err = supervisor::serve(
        vec![ok, bad],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    match err {
        supervisor::SupervisorError::StartFailed { child, reason, .. } => {
            assert_eq!(child, "bad");
            assert_eq!(reason.to_string(), "error: no db");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn zero_window_is_an_options_error() {
    let err = supervisor::serve(
        vec![],
        SupervisorOptions::new().max_seconds(Duration::ZERO),
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        supervisor::SupervisorError::InvalidOptions(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn duplicate_child_ids_are_an_error() {
    let a = || ChildSpec::task("same", trellis::wait_shutdown);
    let err = supervisor::serve(
        vec![a(), a()],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        supervisor::SupervisorError::DuplicateChild { .. }
    ));
}
