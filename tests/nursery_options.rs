//! Nursery and task options: bubble, master, awaited, timeouts, cancel,
//! forks, `Nursery::current`, dropping the nursery future.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use trellis::testing::wait_all_tasks_blocked;
use trellis::{
    CancelScope, Nursery, NurseryError, NurseryOptions, SpawnOptions, move_on_after, nursery,
    nursery_with, wait_shutdown,
};

#[allow(clippy::mod_module_files)]
mod support;
use support::{Log, OnDrop};

#[tokio::test(start_paused = true)]
async fn a_task_that_does_not_bubble_only_logs_its_failure() {
    let log = Log::default();
    let l = log.clone();
    let out = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().bubble(false), async {
            Err::<(), _>("ignored")
        });
        let l2 = l.clone();
        n.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            l2.push("sibling finished");
        });
        Ok::<_, NurseryError>(7)
    })
    .await;
    assert_eq!(out.unwrap(), 7);
    assert_eq!(log.entries(), ["sibling finished"]);
}

#[tokio::test(start_paused = true)]
async fn when_a_master_task_ends_the_nursery_is_cancelled() {
    let log = Log::default();
    let l = log.clone();
    let start = Instant::now();
    let out = nursery(|n| async move {
        let guard = OnDrop(l.clone(), "worker");
        n.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        n.spawn_with(SpawnOptions::new().master(), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        Ok::<_, NurseryError>("body value")
    })
    .await;
    assert_eq!(out.unwrap(), "body value");
    assert_eq!(log.entries(), ["dropped worker"]);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_master_ending_before_the_body_returns_cancels_the_body() {
    let out = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().master(), async {});
        std::future::pending::<()>().await;
    })
    .await;
    assert!(matches!(out, Ok(())), "a unit body ends Ok: {out:?}");
    let out = nursery(|n| async move {
        n.spawn_with(SpawnOptions::new().master(), async {});
        std::future::pending::<()>().await;
        Ok::<_, NurseryError>("never produced")
    })
    .await;
    assert!(matches!(out, Err(NurseryError::Cancelled)), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn background_tasks_are_cancelled_once_the_awaited_work_is_done() {
    let log = Log::default();
    let l = log.clone();
    let start = Instant::now();
    nursery(|n| async move {
        let (l1, l2) = (l.clone(), l.clone());
        n.spawn_with(SpawnOptions::new().awaited(false), async move {
            let _guard = OnDrop(l1, "heartbeat");
            for _beat in 0.. {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        n.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            l2.push("work done");
        });
    })
    .await
    .unwrap();
    assert_eq!(log.entries(), ["work done", "dropped heartbeat"]);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_nursery_timeout_cancels_everything_and_reports_it() {
    let start = Instant::now();
    let opts = NurseryOptions::new().timeout(Duration::from_secs(5));
    let out = nursery_with(opts, |n| async move {
        n.spawn(tokio::time::sleep(Duration::from_secs(60)));
    })
    .await;
    match out {
        Err(NurseryError::TimedOut { deadline, cleanup }) => {
            assert!(cleanup.is_empty());
            assert_eq!(deadline, start + Duration::from_secs(5))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_nursery_finishing_before_its_timeout_is_fine() {
    let opts = NurseryOptions::new().timeout(Duration::from_secs(5));
    let out = nursery_with(opts, |n| async move {
        n.spawn(tokio::time::sleep(Duration::from_secs(1)));
        Ok::<_, NurseryError>(1)
    })
    .await;
    assert_eq!(out.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_from_a_task_stops_the_nursery() {
    let out = nursery(|n| async move {
        let n2 = n.clone();
        n.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n2.cancel();
        });
        n.spawn(std::future::pending::<()>());
        Ok::<_, NurseryError>("returned before the cancel")
    })
    .await;
    assert_eq!(out.unwrap(), "returned before the cancel");
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_fork_stops_only_its_tasks() {
    let log = Log::default();
    let l = log.clone();
    nursery(|n| async move {
        let group = n.fork();
        let guard = OnDrop(l.clone(), "forked");
        group.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let l2 = l.clone();
        n.spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            l2.push("outside the fork");
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        group.cancel();
    })
    .await
    .unwrap();
    assert_eq!(log.entries(), ["dropped forked", "outside the fork"]);
}

#[tokio::test(start_paused = true)]
async fn a_fork_deadline_and_failure_behave_like_the_nursery_s() {
    let start = Instant::now();
    nursery(|n| async move {
        let group = n.fork_with(trellis::ForkOptions::new().move_on());
        group.set_deadline(Some(Instant::now() + Duration::from_secs(3)));
        group.spawn(std::future::pending::<()>());
    })
    .await
    .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    let timed_out = nursery(|n| async move {
        let group = n.fork();
        group.set_deadline(Some(Instant::now() + Duration::from_secs(3)));
        group.spawn(std::future::pending::<()>());
    })
    .await;
    assert!(
        timed_out.is_err(),
        "a fork's deadline is an error unless move_on"
    );

    let err = nursery(|n| async move {
        n.spawn(std::future::pending::<()>());
        n.fork().spawn(async { Err::<(), _>("in the fork") });
    })
    .await
    .unwrap_err();
    assert_eq!(err.failures().len(), 1);
}

#[tokio::test]
async fn nursery_current_finds_the_nursery_of_the_running_task() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    nursery(|n| async move {
        let c2 = c.clone();
        n.spawn(async move {
            let here = Nursery::current().expect("inside a nursery task");
            let c3 = c2.clone();
            here.spawn(async move {
                c3.fetch_add(1, Ordering::SeqCst);
            });
        });
        let group = n.fork();
        group.spawn(async {
            // Inside a fork, `current` is the fork: cancelling it is local.
            Nursery::current().unwrap().cancel();
        });
    })
    .await
    .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(Nursery::current().is_none());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_nursery_future_cancels_its_children() {
    let log = Log::default();
    let l = log.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let nursery_fut = nursery(|n| async move {
        let guard = OnDrop(l, "child");
        n.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    // Dropped from outside Trellis: a lost `select!` branch.
    tokio::select! {
        _ = nursery_fut => unreachable!(),
        _ = rx => {}
    }
    wait_all_tasks_blocked().await;
    assert_eq!(log.entries(), ["dropped child"]);
}

#[tokio::test(start_paused = true)]
async fn an_outer_scope_waits_for_the_nursery_to_drain_before_dropping_it() {
    let log = Log::default();
    let l = log.clone();
    let start = Instant::now();
    let outer = l.clone();
    let out = move_on_after(Duration::from_secs(1), async move {
        nursery(|n| async move {
            let l2 = l.clone();
            n.spawn(async move {
                let _guard = OnDrop(l2.clone(), "task");
                std::future::pending::<()>().await;
            });
            let l3 = l.clone();
            n.spawn(async move {
                std::future::pending::<()>().await;
                drop(l3);
            });
        })
        .await
        .unwrap();
        outer.push("after the nursery"); // never: the scope was cancelled
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(log.entries(), ["dropped task"]);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_shielded_cleanup_in_a_task_delays_the_outer_cancellation() {
    let log = Log::default();
    let l = log.clone();
    let start = Instant::now();
    let out = move_on_after(Duration::from_secs(1), async move {
        nursery(|n| async move {
            n.spawn(async move {
                let _guard = OnDrop(l, "task");
                std::future::pending::<()>().await;
            });
            n.spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                CancelScope::shielded()
                    .run(async {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    })
                    .await;
            });
        })
        .await
    })
    .await;
    assert!(out.is_none());
    // The shield started at 0.5 s and ran its full 2 s.
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    assert!(log.entries().contains(&"dropped task".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_tasks_their_grace_period_then_cancels() {
    let log = Log::default();
    let l = log.clone();
    let start = Instant::now();
    nursery(|n| async move {
        let (polite, stubborn) = (l.clone(), l.clone());
        n.spawn(async move {
            wait_shutdown().await;
            tokio::time::sleep(Duration::from_secs(1)).await; // async cleanup
            polite.push("polite task said goodbye");
        });
        n.spawn(async move {
            let _guard = OnDrop(stubborn, "stubborn task");
            std::future::pending::<()>().await;
        });
        n.shutdown(Duration::from_secs(3));
    })
    .await
    .unwrap();
    assert_eq!(
        log.entries(),
        ["polite task said goodbye", "dropped stubborn task"]
    );
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn tasks_spawned_into_a_cancelled_nursery_run_to_their_first_checkpoint() {
    let before = Arc::new(AtomicBool::new(false));
    let after = Arc::new(AtomicBool::new(false));
    let (b, a) = (before.clone(), after.clone());
    let _ = nursery(|n| async move {
        n.cancel();
        n.spawn(async move {
            b.store(true, Ordering::SeqCst);
            tokio::task::yield_now().await;
            a.store(true, Ordering::SeqCst);
        });
    })
    .await;
    assert!(before.load(Ordering::SeqCst), "the task never started");
    assert!(
        !after.load(Ordering::SeqCst),
        "the task ran past its checkpoint"
    );
}

#[test]
fn run_owns_a_runtime_and_returns_main_s_output() {
    let out = trellis::run(async {
        nursery(|n| async move {
            n.spawn(async {});
            Ok::<_, NurseryError>(tokio::runtime::Handle::current().runtime_flavor())
        })
        .await
    });
    assert_eq!(out.unwrap(), tokio::runtime::RuntimeFlavor::MultiThread);
    let out = trellis::RunOptions::new()
        .current_thread()
        .run(async { tokio::runtime::Handle::current().runtime_flavor() })
        .unwrap();
    assert_eq!(out, tokio::runtime::RuntimeFlavor::CurrentThread);
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_grace_period_never_cancels() {
    let log = Log::default();
    let l = log.clone();
    nursery(|n| async move {
        n.spawn(async move {
            wait_shutdown().await;
            tokio::time::sleep(Duration::from_secs(3600)).await; // a long goodbye
            l.push("cleanup finished");
        });
        n.shutdown(Duration::MAX);
    })
    .await
    .unwrap();
    assert_eq!(log.entries(), ["cleanup finished"]);
}
