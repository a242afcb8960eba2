//! Stopping applications is bounded by default: an application (or a worker
//! inside it) that ignores the request to shut down is killed after its
//! shutdown time, so `stop` and the node's stop always return.

use std::time::Duration;

use tokio::time::Instant;
use trellis::application::{AppSpec, Applications, Shutdown};
use trellis::supervisor::{self, ChildSpec};
use trellis::{TaskStatus, nursery};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Far past every default: reaching it means something waited forever.
const HANG: Duration = Duration::from_secs(3600);

/// An application whose own body never looks at the shutdown request.
fn deaf_app(name: &'static str) -> AppSpec {
    AppSpec::new(
        name,
        |(), status: TaskStatus<()>| async move {
            status.started(());
            std::future::pending::<()>().await;
        },
        (),
    )
}

/// An application running a supervisor whose one worker ignores shutdown.
fn app_with_deaf_worker(name: &'static str) -> AppSpec {
    AppSpec::new(
        name,
        |(), status: TaskStatus<()>| async move {
            let worker = ChildSpec::task("deaf", std::future::pending::<()>);
            let options = supervisor::SupervisorOptions::new().name("deaf-sup");
            nursery(move |n| async move {
                let started = n
                    .start(|s| supervisor::serve(vec![worker], options, s))
                    .await;
                status.started(());
                started.map(drop).map_err(|error| error.to_string())
            })
            .await
            .map_err(|error| error.to_string())
        },
        (),
    )
}

async fn stop_time(spec: AppSpec) -> Duration {
    let stopped = tokio::time::timeout(HANG, async move {
        nursery(|n| async move {
            let apps = Applications::new(&n);
            apps.start(spec).await?;
            let start = Instant::now();
            apps.stop_all().await;
            assert!(apps.which_applications().is_empty());
            Ok::<_, BoxError>(start.elapsed())
        })
        .await
        .unwrap()
    })
    .await;
    stopped.expect("stopping the application waited forever")
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_ignores_shutdown_is_killed_after_five_seconds_when_its_application_stops() {
    assert_eq!(
        stop_time(app_with_deaf_worker("deaf-worker")).await,
        Duration::from_secs(5)
    );
}

#[tokio::test(start_paused = true)]
async fn an_application_that_ignores_shutdown_is_killed_after_the_default_shutdown_time() {
    assert_eq!(stop_time(deaf_app("deaf")).await, Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn an_explicit_application_shutdown_time_replaces_the_default() {
    let spec = deaf_app("deaf-short").shutdown(Shutdown::Timeout(Duration::from_millis(300)));
    assert_eq!(stop_time(spec).await, Duration::from_millis(300));
}
