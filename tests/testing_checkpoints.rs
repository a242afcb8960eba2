//! `testing::assert_checkpoint` and `assert_no_checkpoint`.

use futures_util::FutureExt as _;
use trellis::testing::{assert_checkpoint, assert_no_checkpoint};
use trellis::{checkpoint, nursery};

#[tokio::test]
async fn a_trellis_checkpoint_passes_assert_checkpoint_and_the_output_comes_through() {
    assert_checkpoint(checkpoint()).await;
    let out = assert_checkpoint(async {
        checkpoint().await;
        "done"
    })
    .await;
    assert_eq!(out, "done");
}

#[tokio::test]
async fn a_future_that_completes_at_once_fails_assert_checkpoint_naming_the_caller() {
    let err = nursery(|n| async move {
        n.spawn(assert_checkpoint(async {}));
    })
    .await
    .unwrap_err();
    let message = err.failures()[0].panic_message().unwrap();
    assert!(message.contains("completed without yielding"), "{message}");
    assert!(message.contains("testing_checkpoints.rs"), "{message}");
}

#[tokio::test]
async fn a_ready_value_passes_assert_no_checkpoint() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tx.send(3).unwrap();
    assert_eq!(assert_no_checkpoint(rx).await, Ok(3));
    assert_eq!(assert_no_checkpoint(async { 4 }).await, 4);
}

#[tokio::test]
async fn a_future_that_yields_fails_assert_no_checkpoint() {
    let err = nursery(|n| async move {
        n.spawn(assert_no_checkpoint(checkpoint()));
    })
    .await
    .unwrap_err();
    let message = err.failures()[0].panic_message().unwrap();
    assert!(message.contains("yielded before completing"), "{message}");
}

#[tokio::test]
async fn assert_no_checkpoint_is_not_fooled_by_an_exhausted_cooperative_budget() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..1000 {
        tx.send(i).unwrap();
    }
    // Receive without yielding until tokio's budget runs out and `recv`
    // returns `Pending` although a value is ready.
    let mut received = 0;
    while rx.recv().now_or_never().is_some() {
        received += 1;
        assert!(received < 1000, "the budget never ran out");
    }
    assert!(rx.recv().now_or_never().is_none(), "the budget is spent");
    assert_eq!(assert_no_checkpoint(rx.recv()).await, Some(received));
}
