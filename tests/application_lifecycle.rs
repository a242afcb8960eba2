//! An application's life on a controller: one that ended by itself leaves
//! the running set and can be started again; restart limits restart a
//! permanent application, even after a normal end, up to the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trellis::application::{AppSpec, ApplicationError, Applications, Restart};
use trellis::process::ExitReason;
use trellis::{TaskStatus, nursery};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Starts, counts its runs, ends normally after a second.
fn once(name: &'static str, runs: &Arc<AtomicU32>) -> AppSpec {
    let runs = runs.clone();
    AppSpec::new(
        name,
        move |(), status: TaskStatus<()>| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                status.started(());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        },
        (),
    )
}

#[tokio::test(start_paused = true)]
async fn an_application_that_finished_by_itself_can_be_started_again() {
    let runs = Arc::new(AtomicU32::new(0));
    let spec = once("job", &runs).restart(Restart::Temporary);
    nursery(|n| async move {
        let apps = Applications::new(&n);
        apps.start(spec.clone()).await?;
        assert_eq!(apps.which_applications(), ["job"]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(apps.which_applications().is_empty());
        apps.start(spec).await?; // not "already running": it runs again
        assert_eq!(apps.which_applications(), ["job"]);
        apps.stop("job").await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn stopping_an_unknown_application_is_a_value_and_changes_nothing() {
    let runs = Arc::new(AtomicU32::new(0));
    let spec = once("kept", &runs).restart(Restart::Temporary);
    nursery(|n| async move {
        let apps = Applications::new(&n);
        apps.start(spec).await?;
        let err = apps.stop("unknown").await.unwrap_err();
        assert!(matches!(err, ApplicationError::NotStarted { ref app } if app == "unknown"));
        assert_eq!(err.to_string(), "application unknown is not started");
        assert_eq!(apps.which_applications(), ["kept"]);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_permanent_application_is_restarted_after_normal_ends_up_to_its_limit() {
    for max_restarts in [1, 3, 5] {
        let runs = Arc::new(AtomicU32::new(0));
        let spec = once("perm", &runs)
            .max_restarts(max_restarts)
            .max_seconds(Duration::from_secs(60));
        let stop = nursery(|n| async move {
            let apps = Applications::new(&n);
            apps.start(spec).await?;
            Ok::<_, BoxError>(apps.wait_node_stop().await)
        })
        .await
        .unwrap();
        assert_eq!(
            (stop.app.as_str(), stop.reason),
            ("perm", ExitReason::Normal)
        );
        // triotp: max_restarts + 1 runs.
        assert_eq!(runs.load(Ordering::SeqCst), max_restarts + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_application_is_not_restarted_whatever_its_limit() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let spec = AppSpec::new(
        "calm",
        move |(), status: TaskStatus<()>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                status.started(());
                trellis::wait_shutdown().await;
            }
        },
        (),
    )
    .max_restarts(10);
    nursery(|n| async move {
        let apps = Applications::new(&n);
        apps.start(spec).await?;
        apps.stop("calm").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(apps.which_applications().is_empty());
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
