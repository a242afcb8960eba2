//! `defer_to_cancelled`: routine errors racing with a cancellation give way.

use std::time::Duration;

use trellis::util::{defer_to_cancelled, failures_of};
use trellis::{CancelScope, NurseryError, move_on_after, nursery};

#[derive(Debug, thiserror::Error)]
#[error("connection reset")]
struct Reset;

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

/// A nursery inside `scope` whose task cancels the scope and fails in the
/// same poll: the failure races with the cancellation.
async fn fail_while_cancelling<T, P>(
    task_ends: fn() -> Result<(), T>,
    defer: Option<P>,
) -> Option<Result<(), NurseryError>>
where
    T: std::error::Error + Send + Sync + 'static,
    P: FnMut(&NurseryError) -> bool,
{
    let scope = CancelScope::new();
    let stopper = scope.clone();
    let work = nursery(move |n| async move {
        n.spawn(async move {
            stopper.cancel();
            task_ends()
        });
        n.spawn(std::future::pending::<()>());
    });
    match defer {
        Some(defer) => scope.run(defer_to_cancelled(work, defer)).await,
        None => scope.run(work).await,
    }
}

type Never = fn(&NurseryError) -> bool;

#[tokio::test(start_paused = true)]
async fn a_routine_failure_during_cancellation_yields_to_the_cancellation() {
    let out = fail_while_cancelling(|| Err(Reset), Some(failures_of::<Reset>())).await;
    assert!(out.is_none());
}

#[tokio::test(start_paused = true)]
async fn without_the_adapter_the_failure_is_returned() {
    let out = fail_while_cancelling(|| Err(Reset), None::<Never>).await;
    let err = out.expect("failures win over a cancellation").unwrap_err();
    assert!(err.failures()[0].error().unwrap().is::<Reset>());
}

#[tokio::test(start_paused = true)]
async fn an_error_the_predicate_does_not_list_is_returned() {
    let out = fail_while_cancelling(|| Err(DiskFull), Some(failures_of::<Reset>())).await;
    let err = out.unwrap().unwrap_err();
    assert!(err.failures()[0].error().unwrap().is::<DiskFull>());
}

#[tokio::test(start_paused = true)]
async fn a_routine_error_without_a_cancellation_is_returned() {
    let out = defer_to_cancelled(async { Err::<(), _>(Reset) }, |_: &Reset| true).await;
    assert!(out.is_err());
    let out = move_on_after(
        Duration::from_secs(1),
        defer_to_cancelled(async { Err::<(), _>(Reset) }, |_: &Reset| true),
    )
    .await;
    assert!(matches!(out, Some(Err(Reset))));
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_never_deferred() {
    let out = fail_while_cancelling::<Reset, _>(
        || {
            let bug = true;
            if bug {
                panic!("bug");
            }
            Ok(())
        },
        Some(failures_of::<Reset>()),
    )
    .await;
    assert!(out.unwrap().unwrap_err().failures()[0].is_panic());
}
