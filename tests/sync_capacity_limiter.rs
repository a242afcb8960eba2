//! `CapacityLimiter`: FIFO lending, resizing (up and below what is
//! borrowed), named borrowers, cancellation and statistics.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use trellis::sync::{Borrower, CapacityLimiter, CapacityLimiterError, CapacityToken};

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task run until it blocks (paused clock).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_while_every_token_is_borrowed_and_resumes_on_release() {
    let limiter = CapacityLimiter::new(1);
    let token = limiter.acquire().await;
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { drop(limiter.acquire().await) }
    });
    settle().await;
    assert!(!waiter.is_finished());
    assert_eq!(limiter.stats().tasks_waiting, 1);
    drop(token);
    waiter.await.unwrap();
    assert_eq!(limiter.stats().tasks_waiting, 0);
    assert_eq!(limiter.borrowed_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiters_get_tokens_in_the_order_they_started_waiting() {
    let limiter = CapacityLimiter::new(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let token = limiter.acquire().await;
    let mut waiters = Vec::new();
    for id in 0..5 {
        let (limiter, order) = (limiter.clone(), order.clone());
        // Alternate the two ways of asking: both queue in one line.
        waiters.push(tokio::spawn(async move {
            let token = if id % 2 == 0 {
                limiter.acquire().await
            } else {
                limiter.acquire_on_behalf_of(id).await.unwrap()
            };
            order.lock().unwrap().push(id);
            tokio::task::yield_now().await;
            drop(token);
        }));
        settle().await;
    }
    drop(token);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn try_acquire_does_not_overtake_a_waiter() {
    let limiter = CapacityLimiter::new(1);
    let token = limiter.acquire().await;
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            let _token = limiter.acquire().await;
            settle().await;
        }
    });
    settle().await;
    drop(token); // goes to the waiter, not to whoever asks next
    assert_eq!(
        limiter.try_acquire().unwrap_err(),
        CapacityLimiterError::NoTokens
    );
    waiter.await.unwrap();
    assert!(limiter.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn raising_the_total_wakes_as_many_waiters_as_new_tokens() {
    let limiter = CapacityLimiter::new(0);
    let done = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let (limiter, done) = (limiter.clone(), done.clone());
        waiters.push(tokio::spawn(async move {
            let _token = limiter.acquire().await;
            done.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await; // hold the token
        }));
    }
    settle().await;
    assert_eq!(done.load(Ordering::SeqCst), 0);
    limiter.set_total_tokens(2);
    settle().await;
    assert_eq!(done.load(Ordering::SeqCst), 2);
    assert_eq!(limiter.stats().tasks_waiting, 1);
    for waiter in waiters {
        waiter.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn lowering_the_total_below_what_is_borrowed_blocks_newcomers_until_enough_return() {
    let limiter = CapacityLimiter::new(3);
    let mut held: Vec<CapacityToken> = Vec::new();
    for _ in 0..3 {
        held.push(limiter.acquire().await);
    }
    limiter.set_total_tokens(1);
    assert_eq!(limiter.borrowed_tokens(), 3, "nobody loses a token");
    assert_eq!(limiter.available_tokens(), 0);

    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { drop(limiter.acquire().await) }
    });
    for left in [2, 1] {
        held.pop();
        settle().await;
        assert_eq!(limiter.borrowed_tokens(), left);
        assert!(
            !waiter.is_finished(),
            "{left} borrowed, total 1: still full"
        );
    }
    held.pop();
    waiter.await.unwrap();
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(limiter.available_tokens(), 1);
}

#[test]
fn lowering_the_total_takes_free_tokens_away_at_once() {
    let limiter = CapacityLimiter::new(4);
    let _one = limiter.try_acquire().unwrap();
    limiter.set_total_tokens(2);
    assert_eq!(limiter.available_tokens(), 1);
    let _two = limiter.try_acquire().unwrap();
    assert_eq!(
        limiter.try_acquire().unwrap_err(),
        CapacityLimiterError::NoTokens
    );
}

#[tokio::test(start_paused = true)]
async fn a_borrower_asking_twice_gets_an_error_not_a_deadlock() {
    let limiter = CapacityLimiter::new(2);
    let token = limiter.acquire_on_behalf_of("worker").await.unwrap();
    let err = limiter.acquire_on_behalf_of("worker").await.unwrap_err();
    assert_eq!(
        err,
        CapacityLimiterError::AlreadyBorrowing(Borrower::from("worker"))
    );
    assert!(matches!(
        limiter.try_acquire_on_behalf_of("worker"),
        Err(CapacityLimiterError::AlreadyBorrowing(_))
    ));
    assert_eq!(
        limiter.borrowed_tokens(),
        1,
        "the failed calls borrowed nothing"
    );
    assert_eq!(limiter.borrowers(), [Borrower::from("worker")]);

    drop(token);
    assert!(limiter.borrowers().is_empty());
    assert!(limiter.try_acquire_on_behalf_of("worker").is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_borrower_already_waiting_cannot_queue_twice_and_is_forgotten_when_cancelled() {
    let limiter = CapacityLimiter::new(1);
    let token = limiter.acquire().await;
    {
        let mut waiting = pin!(limiter.acquire_on_behalf_of(1u64));
        assert!(poll_once(waiting.as_mut()).await.is_pending());
        assert!(matches!(
            limiter.try_acquire_on_behalf_of(1u64),
            Err(CapacityLimiterError::AlreadyBorrowing(_))
        ));
        assert_eq!(limiter.stats().tasks_waiting, 1);
    } // the waiting acquire is cancelled
    assert_eq!(limiter.stats().tasks_waiting, 0);
    assert_eq!(
        limiter.try_acquire_on_behalf_of(1u64).unwrap_err(),
        CapacityLimiterError::NoTokens,
        "borrower 1 may ask again; only the tokens are missing"
    );
    drop(token);
    assert!(limiter.try_acquire_on_behalf_of(1u64).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_gives_up_its_place_in_the_queue() {
    let limiter = CapacityLimiter::new(1);
    let token = limiter.acquire().await;
    let mut first = Box::pin(limiter.acquire());
    assert!(poll_once(first.as_mut()).await.is_pending());
    let second = tokio::spawn({
        let limiter = limiter.clone();
        async move { drop(limiter.acquire().await) }
    });
    settle().await;
    drop(first);
    drop(token);
    second.await.unwrap();
    assert_eq!(limiter.borrowed_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_current_task_can_be_named_as_the_borrower() {
    let limiter = CapacityLimiter::new(5);
    let outcome = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            let me = Borrower::current_task().unwrap();
            let _token = limiter.acquire_on_behalf_of(me.clone()).await.unwrap();
            limiter.acquire_on_behalf_of(me).await.map(drop)
        }
    })
    .await
    .unwrap();
    assert!(matches!(
        outcome,
        Err(CapacityLimiterError::AlreadyBorrowing(_))
    ));
    assert_eq!(Borrower::current_task(), None, "outside a task");
}

#[test]
fn tokens_outlive_the_handle_they_came_from() {
    let limiter = CapacityLimiter::new(1);
    let token = limiter.clone().try_acquire().unwrap();
    assert_eq!(limiter.borrowed_tokens(), 1);
    drop(token);
    assert_eq!(limiter.borrowed_tokens(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_borrowers_never_exceed_the_total() {
    let limiter = CapacityLimiter::new(3);
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (limiter, inside, most) = (limiter.clone(), inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..500 {
                let _token = limiter.acquire().await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 3);
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(limiter.available_tokens(), 3);
}

#[derive(Debug, Clone)]
enum Op {
    TryAcquire,
    TryAcquireFor(u64),
    Release(usize),
    SetTotal(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::TryAcquire),
        (0u64..3).prop_map(Op::TryAcquireFor),
        any::<usize>().prop_map(Op::Release),
        (0usize..5).prop_map(Op::SetTotal),
    ]
}

proptest! {
    /// Against a model: a token is lent exactly when fewer than `total` are
    /// borrowed and the borrower holds none, whatever resizing happened.
    #[test]
    fn lending_follows_the_model_through_any_resizing(ops in prop::collection::vec(op(), 0..60)) {
        let limiter = CapacityLimiter::new(2);
        let mut total = 2usize;
        let mut held: Vec<(Option<u64>, CapacityToken)> = Vec::new();
        for op in ops {
            match op {
                Op::TryAcquire => {
                    let result = limiter.try_acquire();
                    prop_assert_eq!(result.is_ok(), held.len() < total);
                    if let Ok(token) = result {
                        held.push((None, token));
                    }
                }
                Op::TryAcquireFor(who) => {
                    let result = limiter.try_acquire_on_behalf_of(who);
                    if held.iter().any(|(b, _)| *b == Some(who)) {
                        prop_assert_eq!(
                            result.unwrap_err(),
                            CapacityLimiterError::AlreadyBorrowing(Borrower::from(who))
                        );
                    } else if held.len() < total {
                        held.push((Some(who), result.unwrap()));
                    } else {
                        prop_assert_eq!(result.unwrap_err(), CapacityLimiterError::NoTokens);
                    }
                }
                Op::Release(i) => {
                    if !held.is_empty() {
                        drop(held.swap_remove(i % held.len()));
                    }
                }
                Op::SetTotal(n) => {
                    limiter.set_total_tokens(n);
                    total = n;
                }
            }
            let stats = limiter.stats();
            prop_assert_eq!(stats.borrowed_tokens, held.len());
            prop_assert_eq!(stats.total_tokens, total);
            prop_assert_eq!(limiter.available_tokens(), total.saturating_sub(held.len()));
            let mut named: Vec<_> = held.iter().filter_map(|(b, _)| *b).map(Borrower::from).collect();
            let mut reported = limiter.borrowers();
            named.sort_by_key(|b| b.to_string());
            reported.sort_by_key(|b| b.to_string());
            prop_assert_eq!(named, reported);
        }
    }
}
