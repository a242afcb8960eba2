//! `move_on_when` and `run_and_cancelling`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use trellis::nursery;
use trellis::util::{AsyncBool, move_on_when, run_and_cancelling};

const SEC: Duration = Duration::from_secs(1);

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn move_on_when_returns_the_body_output_when_the_body_finishes_first() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let out = move_on_when(rx, async {
        sleep(SEC).await;
        7
    })
    .await;
    assert_eq!(out, Some(7));
    assert!(tx.is_closed()); // the condition was dropped with the call
}

#[tokio::test(start_paused = true)]
async fn move_on_when_cancels_the_body_and_its_tasks_when_the_condition_fires() {
    let stop = AsyncBool::new(false);
    let stopper = stop.clone();
    tokio::spawn(async move {
        sleep(2 * SEC).await;
        stopper.set(true);
    });
    let child_dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&child_dropped));
    let start = Instant::now();
    let out = move_on_when(
        stop.wait_value(true),
        nursery(|n| async move {
            n.spawn(async move {
                let _flag = flag;
                sleep(60 * SEC).await;
            });
        }),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(start.elapsed(), 2 * SEC);
    assert!(child_dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn move_on_when_with_a_condition_already_true_still_lets_a_ready_body_win() {
    let out = move_on_when(std::future::ready(()), async { 1 }).await;
    assert_eq!(out, Some(1));
    let out = move_on_when(std::future::ready(()), sleep(SEC)).await;
    assert_eq!(out, None);
}

#[tokio::test(start_paused = true)]
async fn run_and_cancelling_drops_the_background_when_the_body_ends() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let out = run_and_cancelling(
        async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        },
        async {
            sleep(SEC).await;
            "body"
        },
    )
    .await;
    assert_eq!(out, "body");
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn run_and_cancelling_lets_the_body_go_on_after_the_background_ends() {
    let start = Instant::now();
    let done = AsyncBool::new(false);
    let setter = done.clone();
    let out = run_and_cancelling(
        async move {
            setter.set(true);
        },
        async {
            sleep(3 * SEC).await;
            done.value()
        },
    )
    .await;
    assert!(out);
    assert_eq!(start.elapsed(), 3 * SEC);
}
