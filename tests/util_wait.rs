//! `wait_any`, `wait_all`, `try_wait_all` and their tuple forms.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use trellis::util::{TryWaitAll as _, UtilError, WaitAll as _, WaitAny as _};
use trellis::util::{try_wait_all, wait_all, wait_any};

/// Counts how many of the guarded futures were dropped unfinished.
struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn wait_any_returns_the_first_finisher_and_cancels_the_others() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let futures = [30u64, 10, 20].map(|ms| {
        let (dropped, finished) = (dropped.clone(), finished.clone());
        async move {
            let guard = DropCounter(dropped);
            sleep(Duration::from_millis(ms)).await;
            std::mem::forget(guard);
            finished.fetch_add(1, Ordering::SeqCst);
            ms
        }
    });
    let start = Instant::now();
    assert_eq!(wait_any(futures).await, Ok((1, 10)));
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    // The other two were dropped at once, before `wait_any` returned.
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(finished.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn wait_any_returns_an_early_error_and_cancels_the_others() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let futures = [(10u64, false), (5, true), (20, false)].map(|(ms, fail)| {
        let dropped = dropped.clone();
        async move {
            let guard = DropCounter(dropped);
            sleep(Duration::from_millis(ms)).await;
            std::mem::forget(guard);
            if fail {
                Err(format!("{ms} failed"))
            } else {
                Ok(ms)
            }
        }
    });
    assert_eq!(
        wait_any(futures).await,
        Ok((1, Err("5 failed".to_string())))
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wait_any_of_nothing_is_an_error_not_a_hang() {
    let none: Vec<std::future::Ready<()>> = Vec::new();
    assert_eq!(wait_any(none).await, Err(UtilError::NoFutures));
}

#[tokio::test(start_paused = true)]
async fn wait_all_runs_concurrently_and_keeps_input_order() {
    let start = Instant::now();
    let out = wait_all((1..=5u64).rev().map(|s| async move {
        sleep(Duration::from_secs(s)).await;
        s
    }))
    .await;
    assert_eq!(out, [5, 4, 3, 2, 1]);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn try_wait_all_returns_the_first_error_and_cancels_the_rest() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let result = try_wait_all([1u64, 2, 60].map(|s| {
        let dropped = dropped.clone();
        async move {
            let guard = DropCounter(dropped);
            sleep(Duration::from_secs(s)).await;
            std::mem::forget(guard);
            if s == 2 { Err(s) } else { Ok(s) }
        }
    }))
    .await;
    assert_eq!(result, Err(2));
    assert_eq!(start.elapsed(), Duration::from_secs(2)); // did not wait for 60 s
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn try_wait_all_returns_every_value_when_none_fails() {
    let result = try_wait_all([3u64, 1].map(|s| async move {
        sleep(Duration::from_secs(s)).await;
        Ok::<_, String>(s)
    }))
    .await;
    assert_eq!(result, Ok(vec![3, 1]));
}

#[tokio::test(start_paused = true)]
async fn tuples_of_mixed_futures_race_and_join() {
    let slow = async {
        sleep(Duration::from_secs(2)).await;
        "slow"
    };
    let fast = async {
        sleep(Duration::from_secs(1)).await;
        "fast"
    };
    let never = std::future::pending::<&str>();
    assert_eq!((slow, fast, never).wait_any().await, Ok((1, "fast")));

    let (n, s, u) = (async { 1 }, async { "two" }, async {}).wait_all().await;
    assert_eq!((n, s, u), (1, "two", ()));

    let failed = (
        async { Ok::<_, &str>(1) },
        async {
            sleep(Duration::from_secs(1)).await;
            Err::<u8, _>("boom")
        },
        std::future::pending::<Result<(), &str>>(),
    )
        .try_wait_all()
        .await;
    assert_eq!(failed, Err("boom"));
}

#[tokio::test(start_paused = true)]
async fn wait_any_inside_a_cancelled_scope_drops_every_future() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let futures = [1u64, 2].map(|s| {
        let dropped = dropped.clone();
        async move {
            let _guard = DropCounter(dropped);
            sleep(Duration::from_secs(s * 100)).await;
        }
    });
    let out = trellis::move_on_after(Duration::from_secs(1), wait_any(futures)).await;
    assert!(out.is_none());
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}
