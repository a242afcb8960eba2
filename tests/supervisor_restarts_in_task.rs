//! What a one-for-one supervisor's restarts look like from outside, now that
//! a failed child is restarted by its own task (no round trip through the
//! supervisor): the child's row, the restart counts and pids, OTP's `ignore`
//! on a restart, a child that fails at once for ever, and no restart while
//! the supervisor stops its children.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use trellis::supervisor::{self, ChildSpec, ChildState, SupervisorOptions};
use trellis::{BoxError, TaskStatus, mailbox};

#[tokio::test(start_paused = true)]
async fn restarts_are_counted_in_the_childs_row_and_each_incarnation_has_its_own_pid() {
    let pids = Arc::new(Mutex::new(Vec::new()));
    let up = Arc::new(Notify::new());
    let child = {
        let (pids, up) = (pids.clone(), up.clone());
        ChildSpec::new("flaky", move |status: TaskStatus<()>| {
            let (pids, up) = (pids.clone(), up.clone());
            async move {
                let inbox = mailbox::create::<()>();
                status.started(());
                let run = {
                    let mut pids = pids.lock().unwrap();
                    pids.push(inbox.pid());
                    pids.len()
                };
                if run <= 5 {
                    return Err::<(), BoxError>("flaky".into());
                }
                up.notify_one();
                trellis::wait_shutdown().await;
                drop(inbox);
                Ok(())
            }
        })
    };
    let seen = pids.clone();
    trellis::nursery(|n| async move {
        let options = SupervisorOptions::new().max_restarts(10);
        let sup = n
            .start(|s| supervisor::serve(vec![child], options, s))
            .await?;
        up.notified().await;
        let row = sup.which_children().remove(0);
        assert_eq!(row.restarts, 5);
        assert_eq!(row.state, ChildState::Running);
        assert_eq!(row.pid, seen.lock().unwrap().last().copied());
        assert_eq!(sup.info().restarts, 5);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    let mut pids = pids.lock().unwrap().clone();
    assert_eq!(pids.len(), 6);
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 6, "a new incarnation, a new pid");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_child_that_ignores_its_start_is_kept_as_ignored_and_not_restarted_again() {
    let runs = Arc::new(AtomicU32::new(0));
    // A sibling that stays up: a supervisor with no child left running ends.
    let steady = ChildSpec::task("steady", trellis::wait_shutdown);
    let child = {
        let runs = runs.clone();
        ChildSpec::new("once", move |status: TaskStatus<()>| {
            let runs = runs.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    status.started(());
                    return Err::<(), BoxError>("first run fails".into());
                }
                // OTP's `ignore`: returns without reporting started.
                Ok(())
            }
        })
    };
    trellis::nursery(|n| async move {
        let sup = n
            .start(|s| supervisor::serve(vec![steady, child], SupervisorOptions::new(), s))
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let row = sup.which_children().remove(1);
        assert_eq!(row.state, ChildState::Ignored);
        assert_eq!(row.pid, None);
        assert!(sup.is_running(), "an ignored child is no failure");
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_child_that_always_fails_at_once_lets_the_other_tasks_of_its_thread_run() {
    // One thread: if restarting in place never yielded, the body below
    // would never run again and `stop` would never be asked for.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let child = {
        let runs = runs.clone();
        ChildSpec::task("crasher", move || {
            runs.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>("crash") }
        })
    };
    let err = runtime.block_on(trellis::nursery(|n| async move {
        let options = SupervisorOptions::new()
            .max_restarts(u32::MAX)
            .max_seconds(Duration::from_secs(3600));
        let sup = n
            .start(|s| supervisor::serve(vec![child], options, s))
            .await?;
        tokio::task::yield_now().await;
        sup.stop().await?;
        Ok::<_, BoxError>(())
    }));
    assert!(err.is_ok(), "{err:?}");
    assert!(runs.load(Ordering::Relaxed) > 1, "it was restarted");
}

#[tokio::test(start_paused = true)]
async fn a_child_that_fails_while_its_supervisor_stops_the_others_is_not_restarted() {
    let runs = Arc::new(AtomicU32::new(0));
    let (crash_tx, crash_rx) = oneshot::channel::<()>();
    let crash_rx = Arc::new(Mutex::new(Some(crash_rx)));
    // Started first, stopped last: fails as soon as its sibling is asked
    // to stop.
    let first = {
        let runs = runs.clone();
        ChildSpec::task("first", move || {
            runs.fetch_add(1, Ordering::SeqCst);
            let crash = crash_rx.lock().unwrap().take();
            async move {
                match crash {
                    Some(crash) => {
                        let _ = crash.await;
                        Err::<(), _>("sibling stopping")
                    }
                    None => {
                        trellis::wait_shutdown().await;
                        Ok(())
                    }
                }
            }
        })
    };
    let crash_tx = Mutex::new(Some(crash_tx));
    let second = ChildSpec::task("second", move || {
        let crash = crash_tx.lock().unwrap().take();
        async move {
            trellis::wait_shutdown().await;
            if let Some(crash) = crash {
                let _ = crash.send(());
            }
            // Still stopping while the first child fails.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    trellis::nursery(|n| async move {
        let sup = n
            .start(|s| supervisor::serve(vec![first, second], SupervisorOptions::new(), s))
            .await?;
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "not restarted while stopping"
    );
}
