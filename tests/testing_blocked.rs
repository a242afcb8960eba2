//! `testing::wait_all_tasks_blocked`: it returns only once every other task
//! is blocked, on tokio's paused clock, and refuses to run without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::yield_now;
use tokio::time::{Instant, sleep};
use trellis::testing::{wait_all_tasks_blocked, wait_all_tasks_blocked_for};
use trellis::{BoxError, nursery};

#[tokio::test(start_paused = true)]
async fn tasks_that_each_take_many_yields_have_all_run_to_their_block() -> Result<(), BoxError> {
    let yields = Arc::new(AtomicUsize::new(0));
    nursery(|n| async move {
        for task in 1..=5 {
            let yields = yields.clone();
            n.spawn(async move {
                for _ in 0..task * 50 {
                    yields.fetch_add(1, Ordering::Relaxed);
                    yield_now().await;
                }
                std::future::pending::<()>().await;
            });
        }
        wait_all_tasks_blocked().await;
        // 50 + 100 + 150 + 200 + 250: every task ran to its `pending()`.
        assert_eq!(yields.load(Ordering::Relaxed), 750);
        n.cancel();
    })
    .await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_chain_of_oneshot_hand_offs_has_reached_its_end() -> Result<(), BoxError> {
    const LINKS: usize = 20;
    let reached = Arc::new(AtomicUsize::new(0));
    let r = reached.clone();
    nursery(|n| async move {
        let (first, mut rx) = oneshot::channel::<usize>();
        for _ in 0..LINKS {
            let (tx, next_rx) = oneshot::channel();
            let reached = r.clone();
            n.spawn(async move {
                if let Ok(hops) = rx.await {
                    reached.store(hops + 1, Ordering::Relaxed);
                    yield_now().await; // one more poll before handing on
                    let _ = tx.send(hops + 1);
                }
            });
            rx = next_rx;
        }
        let _ = first.send(0);
        wait_all_tasks_blocked().await;
        assert_eq!(r.load(Ordering::Relaxed), LINKS);
        assert_eq!(
            rx.try_recv().ok(),
            Some(LINKS),
            "the last link handed on too"
        );
    })
    .await?;
    assert_eq!(reached.load(Ordering::Relaxed), LINKS);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_task_ready_to_run_keeps_it_waiting_and_the_clock_moves_only_by_the_cushion()
-> Result<(), BoxError> {
    let start = Instant::now();
    let turns = Arc::new(AtomicUsize::new(0));
    let t = turns.clone();
    nursery(|n| async move {
        // Always ready for 10 000 polls: the wait cannot end before.
        n.spawn(async move {
            for _ in 0..10_000 {
                t.fetch_add(1, Ordering::Relaxed);
                yield_now().await;
            }
        });
        wait_all_tasks_blocked().await;
        assert_eq!(turns.load(Ordering::Relaxed), 10_000);
        assert_eq!(start.elapsed(), Duration::from_millis(1));
    })
    .await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_task_waiting_for_a_later_timer_counts_as_blocked() -> Result<(), BoxError> {
    let start = Instant::now();
    nursery(|n| async move {
        let (tx, mut woke) = oneshot::channel();
        n.spawn(async move {
            sleep(Duration::from_secs(3600)).await;
            let _ = tx.send(());
        });
        wait_all_tasks_blocked().await;
        assert!(woke.try_recv().is_err(), "still asleep");
        assert_eq!(start.elapsed(), Duration::from_millis(1));
        n.cancel();
    })
    .await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_cushion_lets_timers_within_it_fire_and_moves_the_clock_by_exactly_it()
-> Result<(), BoxError> {
    let start = Instant::now();
    nursery(|n| async move {
        let fired = Arc::new(AtomicUsize::new(0));
        for ms in [2, 5, 9, 11] {
            let fired = fired.clone();
            n.spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                fired.fetch_add(1, Ordering::Relaxed);
            });
        }
        wait_all_tasks_blocked_for(Duration::from_millis(10)).await;
        assert_eq!(fired.load(Ordering::Relaxed), 3, "2, 5 and 9 ms, not 11");
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        n.cancel();
    })
    .await?;
    Ok(())
}

#[tokio::test]
#[should_panic(expected = "wait_all_tasks_blocked needs tokio's paused clock")]
async fn on_a_running_clock_it_panics_instead_of_sleeping_and_hoping() {
    wait_all_tasks_blocked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "wait_all_tasks_blocked needs tokio's paused clock")]
async fn on_a_multi_thread_runtime_it_panics() {
    wait_all_tasks_blocked().await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "wait_all_tasks_blocked needs tokio's paused clock")]
async fn after_the_clock_is_resumed_it_panics() {
    tokio::time::resume();
    wait_all_tasks_blocked().await;
}
