//! Applications: dependency order, cycle and missing-dependency detection
//! before anything starts, idempotent start, reverse stop order, and what an
//! application's end means for the node by its restart type.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis::application::{AppSpec, ApplicationError, Applications, Restart};
use trellis::process::ExitReason;
use trellis::{TaskStatus, nursery};

type Log = Arc<Mutex<Vec<String>>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn app(name: &'static str, log: &Log) -> AppSpec {
    let log = log.clone();
    AppSpec::new(
        name,
        move |(), status: TaskStatus<()>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("start {name}"));
                status.started(());
                trellis::wait_shutdown().await;
                log.lock().unwrap().push(format!("stop {name}"));
            }
        },
        (),
    )
}

/// An application that starts, then ends with `outcome`.
fn ending(name: &'static str, outcome: Result<(), &'static str>) -> AppSpec {
    AppSpec::new(
        name,
        move |(), status: TaskStatus<()>| async move {
            status.started(());
            tokio::task::yield_now().await;
            outcome
        },
        (),
    )
}

#[tokio::test(start_paused = true)]
async fn dependencies_start_first_and_stop_last() {
    let log: Log = Arc::default();
    let specs = vec![
        app("web", &log).depends_on("db").depends_on("cache"),
        app("cache", &log).depends_on("db"),
        app("db", &log),
    ];
    nursery(|n| async move {
        let apps = Applications::new(&n);
        apps.start_all(specs).await?;
        assert_eq!(apps.which_applications(), ["db", "cache", "web"]);
        apps.stop_all().await;
        assert!(apps.which_applications().is_empty());
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "start db",
            "start cache",
            "start web",
            "stop web",
            "stop cache",
            "stop db"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_is_an_error_before_anything_starts() {
    let log: Log = Arc::default();
    let specs = vec![
        app("base", &log),
        app("a", &log).depends_on("b"),
        app("b", &log).depends_on("a"),
    ];
    nursery(|n| async move {
        let apps = Applications::new(&n);
        let err = apps.start_all(specs).await.unwrap_err();
        assert!(
            matches!(err, ApplicationError::Cycle(ref names) if names.len() == 2),
            "{err}"
        );
        assert!(apps.which_applications().is_empty());
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_dependency_is_an_error_before_anything_starts() {
    let log: Log = Arc::default();
    let specs = vec![app("base", &log), app("web", &log).depends_on("db")];
    nursery(|n| async move {
        let apps = Applications::new(&n);
        let err = apps.start_all(specs).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "application web depends on db, which is not known"
        );
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn starting_a_running_application_does_nothing() {
    let log: Log = Arc::default();
    let (first, second) = (app("db", &log), app("db", &log));
    nursery(|n| async move {
        let apps = Applications::new(&n);
        apps.start(first).await?;
        apps.start(second).await?;
        assert_eq!(apps.which_applications(), ["db"]);
        apps.stop("db").await?;
        assert!(matches!(
            apps.stop("db").await,
            Err(ApplicationError::NotStarted { .. })
        ));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(*log.lock().unwrap(), ["start db", "stop db"]);
}

#[tokio::test(start_paused = true)]
async fn an_application_failing_to_start_is_an_error_and_others_are_stopped() {
    let log: Log = Arc::default();
    let broken = AppSpec::new(
        "broken",
        |(), _status: TaskStatus<()>| async { Err::<(), _>("no config") },
        (),
    )
    .depends_on("db");
    let specs = vec![app("db", &log), broken];
    nursery(|n| async move {
        let apps = Applications::new(&n);
        let err = apps.start_all(specs).await.unwrap_err();
        match err {
            ApplicationError::StartFailed { app, reason } => {
                assert_eq!(app, "broken");
                assert_eq!(reason, ExitReason::error("no config"));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(apps.which_applications().is_empty());
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(*log.lock().unwrap(), ["start db", "stop db"]);
}

/// Starts `spec`, lets it end, and says whether the node was asked to stop.
async fn stops_node(spec: AppSpec) -> Option<ExitReason> {
    nursery(|n| async move {
        let apps = Applications::new(&n);
        apps.start(spec).await?;
        let stop = trellis::move_on_after(Duration::from_secs(60), apps.wait_node_stop()).await;
        Ok::<_, BoxError>(stop.map(|s| s.reason))
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn permanent_application_ending_normally_stops_the_node() {
    let spec = ending("perm", Ok(())).restart(Restart::Permanent);
    assert_eq!(stops_node(spec).await, Some(ExitReason::Normal));
}

#[tokio::test(start_paused = true)]
async fn permanent_application_failing_stops_the_node() {
    let spec = ending("perm", Err("boom")).restart(Restart::Permanent);
    assert_eq!(stops_node(spec).await, Some(ExitReason::error("boom")));
}

#[tokio::test(start_paused = true)]
async fn transient_application_stops_the_node_only_when_it_fails() {
    let normal = ending("tr", Ok(())).restart(Restart::Transient);
    assert_eq!(stops_node(normal).await, None);
    let failed = ending("tr", Err("boom")).restart(Restart::Transient);
    assert_eq!(stops_node(failed).await, Some(ExitReason::error("boom")));
}

#[tokio::test(start_paused = true)]
async fn temporary_application_never_stops_the_node() {
    let failed = ending("tmp", Err("boom")).restart(Restart::Temporary);
    assert_eq!(stops_node(failed).await, None);
}
