//! Restart intensity: the supervisor gives up at exactly `max_restarts + 1`
//! restarts within `max_seconds`, and not when restarts are spread out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use trellis::process::ExitReason;
use trellis::supervisor::{self, Backoff, ChildSpec, SupervisorError, SupervisorOptions};
use trellis::{CancelScope, TaskStatus};

/// A child that fails `failures` times, each after `lifetime`, then waits
/// for shutdown.
fn failing(runs: Arc<AtomicU32>, failures: u32, lifetime: Duration) -> ChildSpec {
    failing_watched(runs, failures, lifetime, watch::channel(0).0)
}

/// As [`failing`], also publishing the number of runs so far.
fn failing_watched(
    runs: Arc<AtomicU32>,
    failures: u32,
    lifetime: Duration,
    seen: watch::Sender<u32>,
) -> ChildSpec {
    ChildSpec::task("flaky", move || {
        let runs = runs.clone();
        let seen = seen.clone();
        async move {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            seen.send_replace(run + 1);
            tokio::time::sleep(lifetime).await;
            if run < failures {
                return Err(format!("failure {run}"));
            }
            trellis::wait_shutdown().await;
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn intensity_trips_at_max_restarts_plus_one_within_the_window() {
    let runs = Arc::new(AtomicU32::new(0));
    let options = SupervisorOptions::new()
        .max_restarts(3)
        .max_seconds(Duration::from_secs(5));
    let err = supervisor::serve(
        vec![failing(runs.clone(), u32::MAX, Duration::ZERO)],
        options,
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    // One start and three restarts; the fourth failure is one too many.
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    match err {
        SupervisorError::IntensityExceeded {
            child,
            reason,
            max_restarts,
            ..
        } => {
            assert_eq!(child, "flaky");
            assert_eq!(reason, ExitReason::error("failure 3"));
            assert_eq!(max_restarts, 3);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn exactly_max_restarts_within_the_window_is_tolerated() {
    let runs = Arc::new(AtomicU32::new(0));
    let (seen_tx, mut seen) = watch::channel(0);
    let scope = CancelScope::new();
    let sup = scope.run(supervisor::serve(
        vec![failing_watched(runs.clone(), 3, Duration::ZERO, seen_tx)],
        SupervisorOptions::new().max_restarts(3),
        TaskStatus::ignored(),
    ));
    let stopper = async {
        let _ = seen.wait_for(|n| *n >= 4).await;
        scope.shutdown(Duration::from_secs(1));
    };
    let (out, ()) = tokio::join!(sup, stopper);
    assert!(matches!(out, Some(Ok(()))), "{out:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn spread_out_restarts_never_trip() {
    let runs = Arc::new(AtomicU32::new(0));
    let (seen_tx, mut seen) = watch::channel(0);
    let scope = CancelScope::new();
    // Each run fails after 2 s: at most 2 earlier restarts fall in the 5 s
    // before any restart, fewer than the 3 allowed.
    let sup = scope.run(supervisor::serve(
        vec![failing_watched(
            runs.clone(),
            20,
            Duration::from_secs(2),
            seen_tx,
        )],
        SupervisorOptions::new()
            .max_restarts(3)
            .max_seconds(Duration::from_secs(5)),
        TaskStatus::ignored(),
    ));
    // If the supervisor gave up, the channel closes and the stopper ends too.
    let stopper = async {
        let _ = seen.wait_for(|n| *n >= 21).await;
        scope.shutdown(Duration::from_secs(10)); // the last run sleeps 2 s first
    };
    let (out, ()) = tokio::join!(sup, stopper);
    assert!(matches!(out, Some(Ok(()))), "{out:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 21);
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_consecutive_restarts() {
    let runs = Arc::new(AtomicU32::new(0));
    let start = tokio::time::Instant::now();
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    let err = supervisor::serve(
        vec![failing(runs.clone(), u32::MAX, Duration::ZERO)],
        SupervisorOptions::new().max_restarts(3).backoff(backoff),
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SupervisorError::IntensityExceeded { .. }));
    // Three restarts, after 100, 200 and 400 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn restarts_are_immediate_without_backoff() {
    let runs = Arc::new(AtomicU32::new(0));
    let start = tokio::time::Instant::now();
    let _ = supervisor::serve(
        vec![failing(runs, u32::MAX, Duration::ZERO)],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}
