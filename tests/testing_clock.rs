//! `testing::run_paused`: tokio's paused clock for plain `#[test]`s
//! (cargo feature `test-util`).
#![cfg(feature = "test-util")]

use std::time::Duration;

use tokio::time::Instant;
use trellis::testing::run_paused;
use trellis::{NurseryError, NurseryOptions, checkpoint, fail_after, nursery, nursery_with};

#[test]
fn run_paused_finishes_long_sleeps_at_once_and_exactly() {
    let wall = std::time::Instant::now();
    let slept = run_paused(async {
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        start.elapsed()
    });
    assert_eq!(slept, Duration::from_secs(3600));
    assert!(
        wall.elapsed() < Duration::from_secs(600),
        "an hour did not really pass"
    );
}

#[test]
fn the_paused_clock_stands_still_while_tasks_can_run() {
    let elapsed = run_paused(async {
        let start = Instant::now();
        nursery(|n| async move {
            for _ in 0..10 {
                n.spawn(async {
                    for _ in 0..100 {
                        checkpoint().await;
                    }
                });
            }
        })
        .await?;
        Ok::<_, NurseryError>(start.elapsed())
    });
    assert_eq!(elapsed.unwrap(), Duration::ZERO);
}

#[test]
fn deadlines_in_nurseries_fire_at_exactly_their_time_under_run_paused() {
    let (timed_out_after, result) = run_paused(async {
        let start = Instant::now();
        let options = NurseryOptions::new().timeout(Duration::from_secs(30));
        let result = nursery_with(options, |n| async move {
            n.spawn(tokio::time::sleep(Duration::from_secs(60)));
        })
        .await;
        (start.elapsed(), result)
    });
    assert_eq!(timed_out_after, Duration::from_secs(30));
    assert!(matches!(result, Err(NurseryError::TimedOut { .. })));
}

#[test]
fn run_paused_returns_the_output_of_its_future() {
    let out = run_paused(fail_after(Duration::from_secs(1), async { 40 + 2 }));
    assert_eq!(out, Ok(42));
}
