//! `multi_error_defer_to` and `DeferTo`: several failures reduced to the one
//! of the highest priority.

use trellis::util::{DeferTo, DeferToError, multi_error_defer_to};
use trellis::{BoxError, CancelScope, NurseryError, SpawnOptions, nursery};

#[derive(Debug, thiserror::Error)]
#[error("obstacle {0}")]
struct Obstacle(&'static str);

#[derive(Debug, thiserror::Error)]
#[error("emergency stop")]
struct EmergencyStop;

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

enum Outcome {
    Fail(BoxError),
    Panic,
}

/// A nursery whose tasks (named t0, t1, …) all fail in the same instant:
/// each is shielded, so the first failure does not cancel the others first.
async fn together(outcomes: Vec<Outcome>) -> Result<(), NurseryError> {
    nursery(|n| async move {
        for (i, outcome) in outcomes.into_iter().enumerate() {
            n.spawn_with(SpawnOptions::new().name(format!("t{i}")), async move {
                CancelScope::shielded()
                    .run(async move {
                        trellis::checkpoint().await;
                        match outcome {
                            Outcome::Fail(e) => Err::<(), _>(e),
                            Outcome::Panic => panic!("boom"),
                        }
                    })
                    .await
                    .unwrap()
            });
        }
    })
    .await
}

async fn failed(outcomes: Vec<Outcome>) -> NurseryError {
    let err = together(outcomes).await.unwrap_err();
    assert!(
        err.failures().len() > 1,
        "the helper must produce a multi-error"
    );
    err
}

fn fail(e: impl std::error::Error + Send + Sync + 'static) -> Outcome {
    Outcome::Fail(Box::new(e))
}

fn only_error(err: &NurseryError) -> &(dyn std::error::Error + Send + Sync + 'static) {
    assert_eq!(err.failures().len(), 1, "{err}");
    err.failures()[0].error().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_listed_first_outranks_a_routine_error() {
    let err = failed(vec![fail(Obstacle("a")), fail(NurseryError::Cancelled)]).await;
    let out = DeferTo::new()
        .cancelled()
        .error::<Obstacle>()
        .defer(err)
        .unwrap();
    assert!(matches!(out, NurseryError::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn an_error_listed_above_the_cancellation_outranks_it() {
    let work = together(vec![fail(NurseryError::Cancelled), fail(EmergencyStop)]);
    let defer_to = DeferTo::new().error::<EmergencyStop>().cancelled();
    let err = multi_error_defer_to(work, defer_to).await.unwrap_err();
    assert!(only_error(&err).is::<EmergencyStop>());
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_too_slow_count_as_cancellations() {
    let too_slow = trellis::fail_after(std::time::Duration::ZERO, std::future::pending::<()>())
        .await
        .unwrap_err();
    let err = failed(vec![fail(too_slow), fail(Obstacle("a"))]).await;
    let out = DeferTo::new()
        .cancelled()
        .error::<Obstacle>()
        .defer(err)
        .unwrap();
    assert!(only_error(&out).is::<trellis::TooSlow>());
}

#[tokio::test(start_paused = true)]
async fn equal_errors_merge_into_one() {
    let err = failed(vec![fail(Obstacle("x")), fail(Obstacle("x"))]).await;
    let out = DeferTo::new().error::<Obstacle>().defer(err).unwrap();
    assert_eq!(only_error(&out).to_string(), "obstacle x");
}

#[tokio::test(start_paused = true)]
async fn different_errors_at_the_top_are_ambiguous_when_strict() {
    let err = failed(vec![fail(Obstacle("x")), fail(Obstacle("y"))]).await;
    let refused = DeferTo::new().error::<Obstacle>().defer(err).unwrap_err();
    assert!(matches!(refused, DeferToError::Ambiguous { count: 2, .. }));
    assert_eq!(refused.into_inner().failures().len(), 2); // given back whole
}

#[tokio::test(start_paused = true)]
async fn not_strict_the_first_of_the_top_errors_wins() {
    let err = failed(vec![
        fail(Obstacle("x")),
        fail(Obstacle("y")),
        fail(NurseryError::Cancelled),
    ])
    .await;
    // "First" is in the order the failures happened.
    let first = err
        .failures()
        .iter()
        .find(|f| f.error().unwrap().is::<Obstacle>())
        .map(|f| (f.task().to_owned(), f.to_string()))
        .unwrap();
    let out = DeferTo::new()
        .error::<Obstacle>()
        .cancelled()
        .strict(false)
        .defer(err)
        .unwrap();
    assert_eq!(only_error(&out).to_string().len(), "obstacle x".len());
    assert_eq!(
        (
            out.failures()[0].task().to_owned(),
            out.failures()[0].to_string()
        ),
        first
    );
}

#[tokio::test(start_paused = true)]
async fn an_unlisted_error_or_a_panic_leaves_the_error_unchanged() {
    let err = failed(vec![fail(Obstacle("a")), fail(DiskFull)]).await;
    let refused = DeferTo::new().error::<Obstacle>().defer(err).unwrap_err();
    assert!(matches!(&refused, DeferToError::Unlisted { task, .. } if task == "t1"));
    assert_eq!(refused.into_inner().failures().len(), 2);

    let work = together(vec![fail(Obstacle("a")), Outcome::Panic]);
    let err = multi_error_defer_to(work, DeferTo::new().error::<Obstacle>())
        .await
        .unwrap_err();
    assert_eq!(err.failures().len(), 2); // the adapter lets it through as it was
}

#[tokio::test(start_paused = true)]
async fn nested_multi_errors_are_flattened() {
    let inner = failed(vec![fail(NurseryError::Cancelled), fail(Obstacle("deep"))]).await;
    let err = failed(vec![Outcome::Fail(Box::new(inner)), fail(Obstacle("top"))]).await;
    let out = DeferTo::new()
        .cancelled()
        .error::<Obstacle>()
        .defer(err)
        .unwrap();
    assert!(matches!(out, NurseryError::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn a_single_failure_or_a_plain_cancellation_passes_unchanged() {
    let one = together(vec![fail(DiskFull)]).await.unwrap_err();
    let out = DeferTo::new().error::<Obstacle>().defer(one).unwrap();
    assert!(only_error(&out).is::<DiskFull>());
    let out = DeferTo::new().defer(NurseryError::Cancelled).unwrap();
    assert!(matches!(out, NurseryError::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn defer_to_error_messages_say_the_multi_error_was_unhandled() {
    let err = failed(vec![fail(Obstacle("a")), fail(DiskFull)]).await;
    let refused = DeferTo::new().error::<Obstacle>().defer(err).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "unhandled multi-error: task `t1` failed with an error of no listed kind"
    );
    let err = failed(vec![fail(Obstacle("x")), fail(Obstacle("y"))]).await;
    let refused = DeferTo::new().error::<Obstacle>().defer(err).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "unhandled multi-error: 2 different errors share the highest priority"
    );
}
