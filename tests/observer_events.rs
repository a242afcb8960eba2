//! The observer's hooks on a paused clock: lifecycle events in order, and
//! the statistics the tree snapshot carries (restarts, last exit reason,
//! intensity used, uptime, exits by reason, gen_server counters).
#![cfg(feature = "observer")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use trellis::gen_server::{self};
use trellis::observer::{self, Event, EventKind, Subscription};
use trellis::supervisor::{self, ChildSpec, SupervisorInfo, SupervisorOptions};

#[allow(clippy::mod_module_files)]
mod support;
use support::Slow;

/// A child that fails `failures` times, each after `lifetime`, then waits
/// for shutdown.
fn failing(id: &'static str, failures: u32, lifetime: Duration) -> ChildSpec {
    let runs = Arc::new(AtomicU32::new(0));
    ChildSpec::task(id, move || {
        let runs = runs.clone();
        async move {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(lifetime).await;
            if run < failures {
                return Err(format!("failure {run}"));
            }
            trellis::wait_shutdown().await;
            Ok(())
        }
    })
}

/// The next event of supervisor `name` (other tests publish too).
async fn next_of(events: &mut Subscription, name: &str) -> Arc<Event> {
    loop {
        let event = events.next().await.expect("the bus is static");
        if event.supervisor.as_deref() == Some(name) {
            return event;
        }
    }
}

fn find<'a>(trees: &'a [SupervisorInfo], name: &str) -> Option<&'a SupervisorInfo> {
    trees.iter().find(|t| t.name == name)
}

#[tokio::test(start_paused = true)]
async fn a_crash_publishes_exit_then_restart_and_the_tree_counts_it() {
    let mut events = observer::subscribe();
    trellis::nursery(|n| async move {
        let options = SupervisorOptions::new()
            .name("obs-restart")
            .max_restarts(3)
            .max_seconds(Duration::from_secs(10));
        let sup = supervisor::start(
            &n,
            vec![failing("flaky", 1, Duration::from_secs(1))],
            options,
        )
        .await?;
        let started = next_of(&mut events, "obs-restart").await;
        // Read on this test's own clock: `Event::at` counts from the first
        // event of the process, which another test's runtime may have set.
        let started_at = tokio::time::Instant::now();
        assert_eq!(started.kind, EventKind::ChildStarted);
        assert_eq!(started.child.as_deref(), Some("flaky"));
        assert_eq!(started.restarts, 0);

        let exited = next_of(&mut events, "obs-restart").await;
        assert_eq!(exited.kind, EventKind::ChildExited);
        assert_eq!(exited.reason.as_deref(), Some("error: failure 0"));
        assert_eq!(started_at.elapsed(), Duration::from_secs(1));
        assert_eq!(
            next_of(&mut events, "obs-restart").await.kind,
            EventKind::ChildStarted
        );
        let restarted = next_of(&mut events, "obs-restart").await;
        assert_eq!(restarted.kind, EventKind::ChildRestarted);
        assert_eq!(restarted.restarts, 1);
        assert!(restarted.seq > exited.seq);

        tokio::time::sleep(Duration::from_secs(2)).await;
        let tree = supervisor::tree();
        let info = find(&tree, "obs-restart").expect("the supervisor is in the tree");
        assert_eq!(info.restarts, 1);
        assert_eq!(info.intensity_used, 1);
        assert_eq!(info.max_restarts, 3);
        assert_eq!(info.exits, vec![("error", 1)]);
        let child = &info.children[0];
        assert_eq!(child.restarts, 1);
        assert_eq!(
            child.last_exit.as_ref().map(ToString::to_string).as_deref(),
            Some("error: failure 0")
        );
        assert_eq!(child.uptime, Some(Duration::from_secs(2)));

        // The window moves on: ten seconds after the restart, none is used.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let tree = supervisor::tree();
        assert_eq!(find(&tree, "obs-restart").unwrap().intensity_used, 0);
        sup.stop().await?;
        let stopped = next_of(&mut events, "obs-restart").await;
        assert_eq!(stopped.kind, EventKind::ChildStopped);
        assert_eq!(stopped.reason.as_deref(), Some("shutdown"));
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_intensity_trip_is_published_with_the_last_reason() {
    let mut events = observer::subscribe();
    let result = trellis::nursery(|n| async move {
        let options = SupervisorOptions::new()
            .name("obs-trip")
            .max_restarts(1)
            .max_seconds(Duration::from_secs(60));
        let sup = supervisor::start(
            &n,
            vec![failing("doomed", 9, Duration::from_secs(1))],
            options,
        )
        .await?;
        let mut kinds = Vec::new();
        loop {
            let event = next_of(&mut events, "obs-trip").await;
            kinds.push(event.kind);
            if event.kind == EventKind::IntensityExceeded {
                assert_eq!(event.reason.as_deref(), Some("error: failure 1"));
                break;
            }
        }
        assert_eq!(
            kinds,
            [
                EventKind::ChildStarted,
                EventKind::ChildExited,
                EventKind::ChildStarted,
                EventKind::ChildRestarted,
                EventKind::ChildExited,
                EventKind::IntensityExceeded,
            ]
        );
        let _ = sup;
        Ok::<_, trellis::BoxError>(())
    })
    .await;
    // The trip ends the supervisor's task with an error: the nursery says so.
    let error = result.unwrap_err().to_string();
    assert!(error.contains("obs-trip"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn nothing_is_published_while_nobody_observes() {
    // Another test's subscription may be alive in this binary, so this one
    // checks the hook's own condition: a subscriber sees only what happened
    // while it lived.
    trellis::nursery(|n| async move {
        let options = SupervisorOptions::new().name("obs-before");
        let sup = supervisor::start(
            &n,
            vec![ChildSpec::task("quiet", trellis::wait_shutdown)],
            options,
        )
        .await?;
        let mut events = observer::subscribe();
        sup.stop().await?;
        let event = next_of(&mut events, "obs-before").await;
        assert_eq!(event.kind, EventKind::ChildStopped);
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_observed_gen_server_counts_messages_and_handler_time_by_its_name() {
    // A subscription keeps the node watched: handlers are timed.
    let _observed = observer::subscribe();
    trellis::nursery(|n| async move {
        let server = gen_server::Builder::new(Slow)
            .name("events-slow")
            .start(&n)
            .await?;
        assert_eq!(server.call(5, Duration::from_secs(1)).await?, 5);
        assert_eq!(server.call(20, Duration::from_secs(1)).await?, 20);
        let body = reqless_metrics();
        let line = body
            .lines()
            .find(|l| l.starts_with("trellis_gen_server_messages_total{name=\"events-slow\"}"))
            .expect("the server's counter is exported");
        assert!(line.ends_with(" 2"), "{line}");
        let busy = body
            .lines()
            .find(|l| {
                l.starts_with("trellis_gen_server_handler_seconds_total{name=\"events-slow\"}")
            })
            .expect("the server's handler time is exported");
        assert!(busy.ends_with(" 0.025"), "{busy}");
        server.stop().await?;
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

/// `/metrics` without a server: what the observer would answer.
fn reqless_metrics() -> String {
    observer::metrics_text()
}
