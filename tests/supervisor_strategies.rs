//! Each strategy's stop and restart order, observed through a shared log.
//! Children `a`, `b`, `c` log their starts and graceful stops; `b` fails on
//! its first run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use trellis::supervisor::{self, ChildSpec, Restart, Strategy, SupervisorOptions};
use trellis::{CancelScope, TaskStatus};

type Log = Arc<Mutex<Vec<String>>>;

fn logged(id: &'static str, log: Log, starts: watch::Sender<u32>, fail_first: bool) -> ChildSpec {
    let runs = Arc::new(AtomicU32::new(0));
    ChildSpec::task(id, move || {
        let (log, starts, runs) = (log.clone(), starts.clone(), runs.clone());
        async move {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            log.lock().unwrap().push(format!("start {id}"));
            starts.send_modify(|n| *n += 1);
            if fail_first && run == 0 {
                // Fail once all three children have started.
                let _ = starts.subscribe().wait_for(|n| *n >= 3).await;
                log.lock().unwrap().push(format!("fail {id}"));
                return Err("boom");
            }
            trellis::wait_shutdown().await;
            log.lock().unwrap().push(format!("stop {id}"));
            Ok(())
        }
    })
}

/// Runs a, b, c under `strategy` until `expected_starts` starts happened,
/// then shuts the supervisor down; returns the log.
async fn run(strategy: Strategy, expected_starts: u32, temporary_c: bool) -> Vec<String> {
    let log: Log = Arc::default();
    let (starts, mut seen) = watch::channel(0);
    let mut c = logged("c", log.clone(), starts.clone(), false);
    if temporary_c {
        c = c.restart(Restart::Temporary);
    }
    let children = vec![
        logged("a", log.clone(), starts.clone(), false),
        logged("b", log.clone(), starts.clone(), true),
        c,
    ];
    drop(starts);
    let scope = CancelScope::new();
    let sup = scope.run(supervisor::serve(
        children,
        SupervisorOptions::new().strategy(strategy),
        TaskStatus::ignored(),
    ));
    let stopper = async {
        seen.wait_for(|n| *n >= expected_starts).await.unwrap();
        log.lock().unwrap().push("-- shutdown".into());
        scope.shutdown(Duration::from_secs(1));
    };
    let (out, ()) = tokio::join!(sup, stopper);
    assert!(matches!(out, Some(Ok(()))), "{out:?}");
    log.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    assert_eq!(
        run(Strategy::OneForOne, 4, false).await,
        [
            "start a",
            "start b",
            "start c",
            "fail b",
            "start b",
            "-- shutdown",
            "stop c",
            "stop b",
            "stop a",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_others_in_reverse_order_and_restarts_all_in_order() {
    assert_eq!(
        run(Strategy::OneForAll, 6, false).await,
        [
            "start a",
            "start b",
            "start c",
            "fail b",
            "stop c",
            "stop a",
            "start a",
            "start b",
            "start c",
            "-- shutdown",
            "stop c",
            "stop b",
            "stop a",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    assert_eq!(
        run(Strategy::RestForOne, 5, false).await,
        [
            "start a",
            "start b",
            "start c",
            "fail b",
            "stop c",
            "start b",
            "start c",
            "-- shutdown",
            "stop c",
            "stop b",
            "stop a",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_all_drops_temporary_siblings_it_stopped() {
    assert_eq!(
        run(Strategy::OneForAll, 5, true).await,
        [
            "start a",
            "start b",
            "start c",
            "fail b",
            "stop c",
            "stop a",
            "start a",
            "start b",
            "-- shutdown",
            "stop b",
            "stop a",
        ]
    );
}
