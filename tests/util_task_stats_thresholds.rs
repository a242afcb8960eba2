//! `TaskStats` thresholds: per task, the slow steps above the threshold and
//! the rate windows at or above the high-rate threshold, on the paused
//! clock (a test moves it *inside* a poll with `tokio::time::advance`
//! polled once in place).

use std::time::Duration;

use futures_util::FutureExt as _;
use trellis::util::{TaskStats, TaskStatsOptions};
use trellis::{NurseryOptions, SpawnOptions, nursery_with};

const MS: Duration = Duration::from_millis(1);

/// Moves the paused clock forward without yielding: the calling poll
/// "takes" `d`.
fn block_for(d: Duration) {
    let _ = tokio::time::advance(d).now_or_never();
}

fn named(name: &'static str) -> SpawnOptions {
    SpawnOptions::new().name(name)
}

#[tokio::test(start_paused = true)]
async fn slow_steps_above_the_threshold_are_listed_per_task_longest_first() {
    let stats = TaskStats::with_options(TaskStatsOptions::new().slow_step(20 * MS));
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        n.spawn_with(named("a"), async {
            for d in [30, 5, 20, 70] {
                block_for(d * MS); // 20 ms is not above the threshold
                tokio::task::yield_now().await;
            }
        });
        n.spawn_with(named("b"), async {
            block_for(25 * MS);
        });
        n.spawn_with(named("quick"), async {
            block_for(MS);
        });
    })
    .await
    .unwrap();
    let reports = stats.task_reports();
    let mut listed: Vec<_> = reports
        .iter()
        .map(|r| (r.task.as_str(), r.slow_steps.clone()))
        .collect();
    listed.sort(); // reports come in the order the tasks ended
    assert_eq!(
        listed,
        [("a", vec![70 * MS, 30 * MS]), ("b", vec![25 * MS])]
    );
    assert!(reports.iter().all(|r| r.busy_windows.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn windows_at_a_high_rate_are_listed_per_task() {
    // 10 polls per second, counted in 1 s windows.
    let stats = TaskStats::with_options(
        TaskStatsOptions::new()
            .high_rate(10.0)
            .rate_window(Duration::from_secs(1)),
    );
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        n.spawn_with(named("spinner"), async {
            for _ in 0..11 {
                tokio::task::yield_now().await; // 12 polls in window 0
            }
            tokio::time::sleep(Duration::from_millis(2500)).await;
            for _ in 0..3 {
                tokio::task::yield_now().await; // 4 polls in window 2: calm
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            for _ in 0..9 {
                tokio::task::yield_now().await; // 10 polls in window 3
            }
        });
        n.spawn_with(named("calm"), async {
            tokio::task::yield_now().await;
        });
    })
    .await
    .unwrap();
    let reports = stats.task_reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].task, "spinner");
    let windows: Vec<_> = reports[0]
        .busy_windows
        .iter()
        .map(|w| (w.start, w.polls, w.rate))
        .collect();
    assert_eq!(
        windows,
        [
            (Duration::ZERO, 12, 12.0),
            (Duration::from_secs(3), 10, 10.0)
        ]
    );
    assert_eq!(stats.stats().highest_polls_per_window, 12 + 2); // calm's 2 polls share window 0
}

#[tokio::test(start_paused = true)]
async fn tasks_of_the_same_name_share_one_report() {
    let stats = TaskStats::with_options(TaskStatsOptions::new().slow_step(10 * MS));
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        for d in [15, 40] {
            n.spawn_with(named("worker"), async move {
                block_for(d * MS);
            });
        }
    })
    .await
    .unwrap();
    let reports = stats.task_reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].task, "worker");
    assert_eq!(reports[0].slow_steps, [40 * MS, 15 * MS]);
}

#[tokio::test(start_paused = true)]
async fn the_default_thresholds_are_trio_utils() {
    let stats = TaskStats::new();
    nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
        n.spawn_with(named("ten"), async { block_for(10 * MS) }); // not above 10 ms
        n.spawn_with(named("eleven"), async { block_for(11 * MS) });
        n.spawn_with(named("busy"), async {
            for _ in 0..99 {
                tokio::task::yield_now().await; // 100 polls in 1 s: 100 Hz
            }
        });
    })
    .await
    .unwrap();
    let reports = stats.task_reports();
    let mut tasks: Vec<_> = reports.iter().map(|r| r.task.as_str()).collect();
    tasks.sort();
    assert_eq!(tasks, ["busy", "eleven"]);
    let busy = reports.iter().find(|r| r.task == "busy").unwrap();
    assert_eq!(busy.busy_windows[0].polls, 100);
}
