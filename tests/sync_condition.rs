//! `Condition`: `wait` releases and re-takes the lock, `notify_one` wakes one
//! waiter, `notify_all` every waiter, and no wakeup is lost.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use trellis::sync::{Condition, Mutex};

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task run until it blocks (paused clock).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Spawns `n` tasks that each wait for exactly one notification, then count
/// themselves in the state.
fn spawn_single_waiters(cond: &Arc<Condition<u32>>, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let cond = Arc::clone(cond);
            tokio::spawn(async move {
                let guard = cond.lock().await;
                let mut guard = cond.wait(guard).await;
                *guard += 1;
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn notify_one_wakes_exactly_one_waiter_each_time() {
    let cond = Arc::new(Condition::new(0));
    let waiters = spawn_single_waiters(&cond, 3);
    settle().await;
    for woken in 1..=3 {
        cond.notify_one();
        settle().await;
        assert_eq!(*cond.lock().await, woken);
    }
    for waiter in waiters {
        waiter.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn notify_all_wakes_every_waiter() {
    let cond = Arc::new(Condition::new(0));
    let waiters = spawn_single_waiters(&cond, 4);
    settle().await;
    assert_eq!(*cond.lock().await, 0);
    cond.notify_all();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*cond.lock().await, 4);
}

#[tokio::test(start_paused = true)]
async fn a_notification_with_nobody_waiting_is_not_kept_for_later() {
    let cond = Arc::new(Condition::new(0));
    cond.notify_one();
    cond.notify_one();
    cond.notify_all();
    let waiters = spawn_single_waiters(&cond, 1);
    settle().await;
    assert_eq!(*cond.lock().await, 0, "the early notifications woke nobody");
    cond.notify_one();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*cond.lock().await, 1);
}

#[tokio::test(start_paused = true)]
async fn wait_releases_the_lock_while_waiting_and_holds_it_again_after() {
    let cond = Condition::new(String::new());
    let guard = cond.lock().await;
    let mut wait = pin!(cond.wait(guard));
    assert!(poll_once(wait.as_mut()).await.is_pending());
    cond.try_lock()
        .expect("free while waiting")
        .push_str("changed");
    cond.notify_one();
    let Poll::Ready(guard) = poll_once(wait.as_mut()).await else {
        panic!("notified and the lock is free");
    };
    assert_eq!(*guard, "changed");
    assert!(cond.try_lock().is_err(), "held again by the waiter");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_being_chosen_passes_the_notification_on() {
    let cond = Condition::new(());
    let mut first = Box::pin(cond.wait(cond.lock().await));
    assert!(poll_once(first.as_mut()).await.is_pending());
    let mut second = Box::pin(cond.wait(cond.lock().await));
    assert!(poll_once(second.as_mut()).await.is_pending());

    cond.notify_one(); // chooses `first`, the longest waiting
    drop(first); // cancelled before it ran
    assert!(poll_once(second.as_mut()).await.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_checks_its_predicate_under_the_lock_misses_no_change() {
    let cond = Arc::new(Condition::new(false));
    let waiter = tokio::spawn({
        let cond = Arc::clone(&cond);
        async move {
            let mut ready = cond.lock().await;
            while !*ready {
                ready = cond.wait(ready).await;
            }
        }
    });
    // Change and notify before the waiter even starts: it sees the state.
    *cond.lock().await = true;
    cond.notify_one();
    waiter.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_across_threads_loses_no_wakeup() {
    // Two tasks take turns; a lost wakeup would leave both waiting forever.
    const TURNS: u32 = 2_000;
    let cond = Arc::new(Condition::new(0u32));
    let players: Vec<_> = (0..2u32)
        .map(|me| {
            let cond = Arc::clone(&cond);
            tokio::spawn(async move {
                loop {
                    let mut turn = cond.lock().await;
                    while *turn < TURNS && *turn % 2 != me {
                        turn = cond.wait(turn).await;
                    }
                    if *turn >= TURNS {
                        return;
                    }
                    *turn += 1;
                    drop(turn);
                    cond.notify_one();
                }
            })
        })
        .collect();
    let all = futures_util::future::join_all(players);
    let finished = tokio::time::timeout(Duration::from_secs(60), all).await;
    let results = finished.expect("a wakeup was lost: both players wait");
    for result in results {
        result.unwrap();
    }
    assert_eq!(*cond.lock().await, TURNS);
}

#[tokio::test]
#[should_panic(expected = "guard of another mutex")]
async fn waiting_with_the_guard_of_another_mutex_panics() {
    let cond = Condition::new(0);
    let other = Mutex::new(0);
    let _ = cond.wait(other.lock().await).await;
}
