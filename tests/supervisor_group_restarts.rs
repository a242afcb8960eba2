//! Group restarts (`OneForAll`, `RestForOne`) start every non-temporary
//! child of the group again, as OTP does — including a transient child that
//! had exited normally and was not running.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trellis::supervisor::{self, ChildSpec, Restart, Strategy, SupervisorOptions};
use trellis::{BoxError, nursery};

/// A transient child that finishes its work at once, counting its runs.
fn finishes(id: &'static str, runs: &Arc<AtomicU32>) -> ChildSpec {
    let runs = runs.clone();
    ChildSpec::task(id, move || {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
        }
    })
    .restart(Restart::Transient)
}

/// A permanent child that fails once, 10 ms into its first run.
fn fails_once(id: &'static str) -> ChildSpec {
    let runs = Arc::new(AtomicU32::new(0));
    ChildSpec::task(id, move || {
        let runs = runs.clone();
        async move {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Err("boom");
            }
            trellis::wait_shutdown().await;
            Ok(())
        }
    })
}

/// Runs `children` under `strategy` for a second; returns the runs of
/// `before` and `after`, transient children listed before and after the
/// one that fails.
async fn runs_after_group_restart(strategy: Strategy) -> (u32, u32) {
    let (before, after) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let children = vec![
        finishes("before", &before),
        fails_once("crasher"),
        finishes("after", &after),
    ];
    nursery(|n| async move {
        let sup = n
            .start(|s| supervisor::serve(children, SupervisorOptions::new().strategy(strategy), s))
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sup.which_children()[1].restarts, 1);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    (before.load(Ordering::SeqCst), after.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_transient_children_that_had_exited_normally() {
    assert_eq!(runs_after_group_restart(Strategy::OneForAll).await, (2, 2));
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_normally_exited_transient_children_after_the_failed_one() {
    assert_eq!(runs_after_group_restart(Strategy::RestForOne).await, (1, 2));
}

#[tokio::test(start_paused = true)]
async fn one_for_one_leaves_normally_exited_transient_children_alone() {
    assert_eq!(runs_after_group_restart(Strategy::OneForOne).await, (1, 1));
}
