//! When `node::run` returns: once every application has ended, with an
//! error naming a permanent application that terminated (normally or not),
//! never because of an application stopped explicitly; and how application
//! restart limits end the node.
//!
//! One node runs per process, so the tests take turns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trellis::TaskStatus;
use trellis::application::{self, AppSpec, ApplicationError, Restart};
use trellis::node::{self, NodeError, NodeOptions};
use trellis::process::ExitReason;

static ONE_NODE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Far past anything these nodes wait for: reaching it means a hang.
const HANG: Duration = Duration::from_secs(3600);

async fn run(apps: Vec<AppSpec>) -> Result<(), NodeError> {
    let _turn = ONE_NODE_AT_A_TIME.lock().await;
    let options = NodeOptions::new().logging(false).signals(false);
    tokio::time::timeout(HANG, node::run(apps, options))
        .await
        .expect("node::run never returned")
}

/// An application that starts, runs for `after`, then ends with `outcome`,
/// counting its starts in `runs`.
fn ending(
    name: &'static str,
    after: Duration,
    outcome: Result<(), &'static str>,
    runs: &Arc<AtomicU32>,
) -> AppSpec {
    let runs = runs.clone();
    AppSpec::new(
        name,
        move |(), status: TaskStatus<()>| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                status.started(());
                tokio::time::sleep(after).await;
                outcome
            }
        },
        (),
    )
}

/// An application that runs until asked to stop.
fn waiting(name: &'static str) -> AppSpec {
    AppSpec::new(
        name,
        |(), status: TaskStatus<()>| async move {
            status.started(());
            trellis::wait_shutdown().await;
        },
        (),
    )
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_non_permanent_applications_all_ended_returns_ok() {
    let runs = Arc::new(AtomicU32::new(0));
    let apps = vec![
        ending("short", Duration::from_secs(1), Ok(()), &runs).restart(Restart::Transient),
        ending("long", Duration::from_secs(2), Ok(()), &runs).restart(Restart::Temporary),
        ending("failing", Duration::from_secs(3), Err("boom"), &runs).restart(Restart::Temporary),
    ];
    run(apps).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_application_that_ends_normally_stops_the_node_with_an_error_naming_it() {
    let runs = Arc::new(AtomicU32::new(0));
    let apps = vec![
        waiting("other"),
        ending("perm", Duration::from_secs(1), Ok(()), &runs),
    ];
    match run(apps).await.unwrap_err() {
        NodeError::ApplicationTerminated { app, reason } => {
            assert_eq!(app, "perm");
            assert_eq!(reason, ExitReason::Normal);
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_application_that_fails_stops_the_node_with_an_error_naming_it() {
    let runs = Arc::new(AtomicU32::new(0));
    let apps = vec![ending("perm", Duration::from_secs(1), Err("boom"), &runs)];
    let err = run(apps).await.unwrap_err();
    assert!(
        matches!(err, NodeError::ApplicationTerminated { ref app, ref reason } if app == "perm" && *reason == ExitReason::error("boom"))
    );
    assert_eq!(err.to_string(), "application perm terminated: error: boom");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_application_stopped_explicitly_does_not_stop_the_node_with_an_error() {
    let stopper = AppSpec::new(
        "stopper",
        |(), status: TaskStatus<()>| async move {
            status.started(());
            application::stop("perm").await?;
            // Unknown names are a value, not a failure.
            assert!(matches!(
                application::stop("nobody").await,
                Err(ApplicationError::NotStarted { ref app }) if app == "nobody"
            ));
            Ok::<_, ApplicationError>(())
        },
        (),
    )
    .restart(Restart::Temporary)
    .depends_on("perm");
    // Both end: the node returns, with no error.
    run(vec![waiting("perm"), stopper]).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_transient_application_is_retried_up_to_its_limit_then_ends_the_node() {
    let runs = Arc::new(AtomicU32::new(0));
    let app = ending("flaky", Duration::from_millis(10), Err("boom"), &runs)
        .restart(Restart::Transient)
        .max_restarts(3)
        .max_seconds(Duration::from_secs(5));
    let err = run(vec![app]).await.unwrap_err();
    assert!(matches!(err, NodeError::ApplicationTerminated { ref app, .. } if app == "flaky"));
    // The first run and three restarts (triotp: max_restarts + 1 runs).
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_transient_application_that_recovers_within_its_limit_does_not_end_the_node() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let app = AppSpec::new(
        "recovers",
        move |(), status: TaskStatus<()>| {
            let counter = counter.clone();
            async move {
                let run = counter.fetch_add(1, Ordering::SeqCst);
                status.started(());
                if run < 2 { Err("not yet") } else { Ok(()) }
            }
        },
        (),
    )
    .restart(Restart::Transient)
    .max_restarts(3);
    run(vec![app]).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn without_a_restart_limit_a_failing_transient_application_ends_the_node_at_once() {
    let runs = Arc::new(AtomicU32::new(0));
    let app = ending("fragile", Duration::ZERO, Err("boom"), &runs).restart(Restart::Transient);
    assert!(run(vec![app]).await.is_err());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_application_listed_twice_is_started_once() {
    let runs = Arc::new(AtomicU32::new(0));
    let once = ending("once", Duration::from_secs(1), Ok(()), &runs).restart(Restart::Temporary);
    run(vec![once.clone(), once]).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
