//! Stopping children: graceful exit within the shutdown budget, the budget
//! running out, brutal kills, and nested supervisors whose trip their parent
//! handles.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use trellis::process::ExitReason;
use trellis::supervisor::{
    self, ChildSpec, ChildState, Shutdown, SupervisorError, SupervisorOptions,
};
use trellis::{TaskStatus, nursery};

type Log = Arc<Mutex<Vec<String>>>;

/// Logs "dropped <id>" when dropped, however the child ends.
struct DropLog(Log, &'static str);

impl Drop for DropLog {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(format!("dropped {}", self.1));
    }
}

/// A child that, asked to shut down, cleans up for `cleanup`.
fn slow_cleanup(id: &'static str, log: Log, cleanup: Duration, shutdown: Shutdown) -> ChildSpec {
    ChildSpec::task(id, move || {
        let log = log.clone();
        async move {
            let _guard = DropLog(log.clone(), id);
            trellis::wait_shutdown().await;
            tokio::time::sleep(cleanup).await;
            log.lock().unwrap().push(format!("cleaned {id}"));
        }
    })
    .shutdown(shutdown)
}

async fn stop_time(spec: ChildSpec) -> Duration {
    nursery(|n| async move {
        let sup = n
            .start(|status| supervisor::serve(vec![spec], SupervisorOptions::new(), status))
            .await?;
        let start = Instant::now();
        sup.stop().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(start.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn graceful_exit_within_the_shutdown_timeout_runs_cleanup() {
    let log: Log = Arc::default();
    let spec = slow_cleanup(
        "w",
        log.clone(),
        Duration::from_millis(200),
        Shutdown::Timeout(Duration::from_secs(1)),
    );
    assert_eq!(stop_time(spec).await, Duration::from_millis(200));
    assert_eq!(*log.lock().unwrap(), ["cleaned w", "dropped w"]);
}

#[tokio::test(start_paused = true)]
async fn child_past_its_shutdown_timeout_is_dropped() {
    let log: Log = Arc::default();
    let spec = slow_cleanup(
        "w",
        log.clone(),
        Duration::from_secs(60),
        Shutdown::Timeout(Duration::from_secs(1)),
    );
    assert_eq!(stop_time(spec).await, Duration::from_secs(1));
    assert_eq!(*log.lock().unwrap(), ["dropped w"]);
}

#[tokio::test(start_paused = true)]
async fn brutal_kill_drops_the_child_at_once() {
    let log: Log = Arc::default();
    let spec = slow_cleanup(
        "w",
        log.clone(),
        Duration::from_millis(200),
        Shutdown::BrutalKill,
    );
    assert_eq!(stop_time(spec).await, Duration::ZERO);
    assert_eq!(*log.lock().unwrap(), ["dropped w"]);
}

#[tokio::test(start_paused = true)]
async fn infinity_waits_for_the_child_however_long() {
    let log: Log = Arc::default();
    let spec = slow_cleanup(
        "w",
        log.clone(),
        Duration::from_secs(3600),
        Shutdown::Infinity,
    );
    assert_eq!(stop_time(spec).await, Duration::from_secs(3600));
    assert_eq!(*log.lock().unwrap(), ["cleaned w", "dropped w"]);
}

#[tokio::test(start_paused = true)]
async fn stopping_a_tree_stops_every_level_gracefully_in_reverse_order() {
    let log: Log = Arc::default();
    let grace = Shutdown::Timeout(Duration::from_secs(1));
    let ms = Duration::from_millis;
    let inner = ChildSpec::supervisor(
        "inner",
        vec![
            slow_cleanup("x", log.clone(), ms(10), grace),
            slow_cleanup("y", log.clone(), ms(10), grace),
        ],
        SupervisorOptions::new().name("inner"),
    );
    let children = vec![
        slow_cleanup("a", log.clone(), ms(10), grace),
        inner,
        slow_cleanup("b", log.clone(), ms(10), grace),
    ];
    let elapsed = nursery(|n| async move {
        n.start(|status| {
            supervisor::serve(children, SupervisorOptions::new().name("outer"), status)
        })
        .await?;
        let start = Instant::now();
        n.shutdown(Duration::from_secs(10)); // as a node would
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(start)
    })
    .await
    .unwrap()
    .elapsed();
    assert_eq!(elapsed, ms(40)); // one child at a time
    let log = log.lock().unwrap().clone();
    let cleaned: Vec<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("cleaned "))
        .collect();
    assert_eq!(cleaned, ["b", "y", "x", "a"]);
}

#[tokio::test(start_paused = true)]
async fn nested_supervisor_trip_is_handled_by_its_parent() {
    let runs = Arc::new(Mutex::new(0u32));
    let counter = runs.clone();
    let worker = ChildSpec::task("worker", move || {
        *counter.lock().unwrap() += 1;
        async { Err::<(), _>("broken") }
    });
    let inner = ChildSpec::supervisor(
        "inner",
        vec![worker],
        SupervisorOptions::new().name("inner").max_restarts(0),
    );
    let err = supervisor::serve(
        vec![inner],
        SupervisorOptions::new().name("outer").max_restarts(1),
        TaskStatus::ignored(),
    )
    .await
    .unwrap_err();
    // The inner supervisor tripped twice: the parent restarted it once, then
    // gave up itself.
    assert_eq!(*runs.lock().unwrap(), 2);
    match err {
        SupervisorError::IntensityExceeded {
            supervisor,
            child,
            reason,
            ..
        } => {
            assert_eq!(supervisor, "outer");
            assert_eq!(child, "inner");
            let ExitReason::Error(message) = reason else {
                panic!("unexpected reason {reason:?}");
            };
            assert!(message.contains("restart intensity exceeded"), "{message}");
            assert!(message.contains("broken"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn tree_shows_nested_supervisors_and_restart_counts() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runs = Arc::new(Mutex::new(0u32));
    let flaky = ChildSpec::task("flaky", move || {
        let (tx, runs) = (tx.clone(), runs.clone());
        async move {
            let run = {
                let mut runs = runs.lock().unwrap();
                *runs += 1;
                *runs
            };
            if run == 1 {
                return Err("first run fails");
            }
            let _ = tx.send(());
            trellis::wait_shutdown().await;
            Ok(())
        }
    });
    let inner = ChildSpec::supervisor(
        "pool",
        vec![flaky],
        SupervisorOptions::new().name("tree-test-pool"),
    );
    nursery(|n| async move {
        let sup = n
            .start(|status| {
                supervisor::serve(
                    vec![inner],
                    SupervisorOptions::new().name("tree-test-root"),
                    status,
                )
            })
            .await?;
        rx.recv().await;
        let info = sup.info();
        assert_eq!(info.children.len(), 1);
        let pool = info.children[0]
            .supervisor
            .as_ref()
            .expect("nested supervisor");
        assert_eq!(pool.name, "tree-test-pool");
        assert_eq!(pool.children[0].id, "flaky");
        assert_eq!(pool.children[0].state, ChildState::Running);
        assert_eq!(pool.children[0].restarts, 1);
        let text = supervisor::tree().to_string();
        assert!(text.contains("tree-test-root"), "{text}");
        assert!(text.contains("\n  tree-test-pool"), "{text}");
        assert!(text.contains("\n    flaky"), "{text}");
        assert!(text.contains("restarts: 1"), "{text}");
        // Only roots are listed at the top level.
        assert!(
            !supervisor::tree()
                .iter()
                .any(|t| t.name == "tree-test-pool")
        );
        assert_eq!(sup.count_children().supervisors, 1);
        sup.stop().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .await
    .unwrap();
}

/// A worker that never looks at the shutdown request.
fn deaf(id: &'static str) -> ChildSpec {
    ChildSpec::task(id, std::future::pending::<()>)
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_ignores_shutdown_is_killed_after_the_default_five_seconds() {
    assert_eq!(stop_time(deaf("deaf")).await, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn stopping_a_tree_of_deaf_workers_is_bounded_by_their_shutdown_times() {
    // The nested supervisor's own shutdown is `Infinity` (OTP's default for
    // a supervisor child), but it stops its two workers within 5 s each.
    let pool = ChildSpec::supervisor("pool", vec![deaf("a"), deaf("b")], SupervisorOptions::new());
    assert_eq!(stop_time(pool).await, Duration::from_secs(10));
}
