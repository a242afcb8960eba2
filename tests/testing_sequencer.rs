//! `testing::Sequencer`: steps of several tasks in a fixed order, and what
//! happens when a step is cancelled, reused, or fails.

use std::future::pending;

use futures_util::FutureExt as _;
use tokio::sync::oneshot;
use trellis::testing::{Sequencer, SequencerError};
use trellis::{CancelScope, NurseryError, SpawnOptions, checkpoint, nursery};

#[allow(clippy::mod_module_files)]
mod support;
use support::Log;

#[tokio::test]
async fn steps_happen_in_order_whatever_order_their_tasks_were_spawned_in() {
    let (seq, log) = (Sequencer::new(), Log::default());
    let l = log.clone();
    nursery(|n| async move {
        for step in (0..5).rev() {
            let (seq, log) = (seq.clone(), l.clone());
            n.spawn(async move {
                let _step = seq.step(step).await?;
                log.push(format!("step {step}"));
                Ok::<_, SequencerError>(())
            });
        }
    })
    .await
    .unwrap();
    assert_eq!(
        log.entries(),
        ["step 0", "step 1", "step 2", "step 3", "step 4"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_take_turns_through_interleaved_steps_on_a_multi_thread_runtime() {
    let (seq, log) = (Sequencer::new(), Log::default());
    let l = log.clone();
    nursery(|n| async move {
        for (name, first) in [("pong", 1), ("ping", 0)] {
            let (seq, log) = (seq.clone(), l.clone());
            n.spawn(async move {
                for step in (first..20).step_by(2) {
                    let _step = seq.step(step).await?;
                    log.push(name);
                    checkpoint().await; // the step lasts across a yield
                }
                Ok::<_, SequencerError>(())
            });
        }
    })
    .await
    .unwrap();
    let expected: Vec<&str> = (0..20)
        .map(|i| if i % 2 == 0 { "ping" } else { "pong" })
        .collect();
    assert_eq!(log.entries(), expected);
}

#[tokio::test]
async fn a_step_begins_only_once_the_previous_steps_guard_is_dropped() {
    let seq = Sequencer::new();
    let step0 = seq.step(0).await.unwrap();
    let mut step1 = Box::pin(seq.step(1));
    assert!(
        (&mut step1).now_or_never().is_none(),
        "step 1 waits while step 0 runs"
    );
    checkpoint().await;
    assert!((&mut step1).now_or_never().is_none(), "and still waits");
    drop(step0);
    let step1 = step1.await.unwrap();
    assert_eq!(step1.number(), 1);
}

#[tokio::test]
async fn a_step_cancelled_while_waiting_breaks_the_sequence() {
    let seq = Sequencer::new();
    let step0 = seq.step(0).await.unwrap();
    // Step 3 is already waiting when step 2 is cancelled.
    let mut step3 = Box::pin(seq.step(3));
    assert!((&mut step3).now_or_never().is_none());

    let scope = CancelScope::new();
    scope.cancel();
    assert!(
        scope.run(seq.step(2)).await.is_none(),
        "step 2's wait was cancelled"
    );

    let broken = SequencerError::Broken { step: 3, by: 2 };
    assert_eq!(step3.await.unwrap_err(), broken);
    // Every later call fails too, even for a step before the cancelled one.
    assert_eq!(
        seq.step(1).await.unwrap_err(),
        SequencerError::Broken { step: 1, by: 2 }
    );
    assert_eq!(
        SequencerError::Broken { step: 1, by: 2 }.to_string(),
        "sequence broken: step 2 was cancelled while waiting, so step 1 cannot begin"
    );
    drop(step0); // a step that had begun is not affected
}

#[tokio::test]
async fn a_waiting_step_cancelled_by_its_nursery_fails_the_later_steps_instead_of_hanging() {
    let seq = Sequencer::new();
    let s = seq.clone();
    let failed = nursery(|n| async move {
        n.spawn(async move {
            let _step = s.step(1).await?; // step 0 never comes
            Ok::<_, SequencerError>(())
        });
        n.spawn(async { Err::<(), _>("boom") }); // fails, and cancels the waiter
    })
    .await
    .unwrap_err();
    assert_eq!(failed.failures().len(), 1);
    assert_eq!(
        seq.step(2).await.unwrap_err(),
        SequencerError::Broken { step: 2, by: 1 }
    );
}

#[tokio::test]
async fn a_step_number_can_be_used_only_once() {
    let seq = Sequencer::new();
    let waiting = seq.step(1);
    assert_eq!(
        seq.step(1).await.unwrap_err(),
        SequencerError::Reused { step: 1 }
    );
    drop(seq.step(0).await.unwrap());
    assert_eq!(
        waiting.await.unwrap().number(),
        1,
        "the first claim still works"
    );
    assert_eq!(
        seq.step(0).await.unwrap_err(),
        SequencerError::Reused { step: 0 }
    );
    assert_eq!(
        SequencerError::Reused { step: 0 }.to_string(),
        "sequencer step 0 used twice"
    );
}

/// Panics; typed `()` so that a task calling it last has a `()` output.
fn explode() {
    panic!("a task panicked inside its step");
}

#[tokio::test]
async fn a_step_whose_task_panics_still_completes() {
    let seq = Sequencer::new();
    let s = seq.clone();
    let reached = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().bubble(false), async move {
            let _step = s.step(0).await.unwrap();
            checkpoint().await;
            explode(); // while holding the step
        });
        let step1 = seq.step(1).await;
        Ok::<_, NurseryError>(step1.map(|step| step.number()))
    })
    .await
    .unwrap();
    assert_eq!(reached, Ok(1));
}

#[tokio::test]
async fn a_step_whose_task_is_cancelled_after_it_began_still_completes() {
    let seq = Sequencer::new();
    let s = seq.clone();
    let reached = nursery(|n| async move {
        let group = n.fork();
        let (began_tx, began) = oneshot::channel();
        group.spawn(async move {
            let _step = s.step(0).await?;
            let _ = began_tx.send(());
            pending::<()>().await;
            Ok::<_, SequencerError>(())
        });
        began.await.unwrap();
        group.cancel(); // drops the task, and its step guard with it
        let step1 = seq.step(1).await;
        Ok::<_, NurseryError>(step1.map(|step| step.number()))
    })
    .await
    .unwrap();
    assert_eq!(reached, Ok(1));
}
