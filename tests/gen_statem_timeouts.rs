//! gen_statem's three timeouts on a paused clock, each cancelled by exactly
//! what OTP says: the event timeout by any event, the state timeout by a
//! state change, a generic timeout only by name.

#[allow(clippy::mod_module_files)]
mod gen_statem_support;

use std::time::Duration;

use gen_statem_support::{Cmd, Log, S, start};
use trellis::BoxError;

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn an_event_timeout_fires_when_no_event_arrives_in_time() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::EventTimeout(100, "e")).await?;
        sleep_ms(99).await;
        assert_eq!(log.entries(), ["A cast EventTimeout(100, \"e\")"]);
        sleep_ms(2).await;
        assert_eq!(log.entries()[1..], ["A event-timeout e @100"]);
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn any_event_cancels_the_event_timeout() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        // A cast, an info and an inserted event each cancel it.
        m.cast(Cmd::EventTimeout(100, "e1")).await?;
        sleep_ms(50).await;
        m.cast(Cmd::Log("x")).await?;
        m.cast(Cmd::EventTimeout(100, "e2")).await?;
        sleep_ms(50).await;
        m.send_info("i").await?;
        m.cast(Cmd::Seq(vec![
            Cmd::EventTimeout(100, "e3"),
            Cmd::Insert(vec!["n"]),
        ]))
        .await?;
        sleep_ms(500).await;
        assert!(
            log.entries().iter().all(|e| !e.contains("event-timeout")),
            "{:?}",
            log.entries()
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_state_timeout_survives_events_in_the_same_state() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::StateTimeout(100, "s")).await?;
        sleep_ms(30).await;
        m.cast(Cmd::Log("x")).await?;
        sleep_ms(30).await;
        // A transition to the state it is in is not a change.
        m.cast(Cmd::Goto(S::A)).await?;
        sleep_ms(100).await;
        assert_eq!(log.entries().last().unwrap(), "A state-timeout s @100");
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_state_change_cancels_the_state_timeout() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::StateTimeout(100, "s")).await?;
        sleep_ms(50).await;
        m.cast(Cmd::Goto(S::B)).await?;
        sleep_ms(500).await;
        assert_eq!(
            log.entries(),
            ["A cast StateTimeout(100, \"s\")", "A cast goto B"]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_state_timeout_set_with_a_state_change_runs_in_the_new_state() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Seq(vec![Cmd::StateTimeout(100, "s"), Cmd::Goto(S::B)]))
            .await?;
        sleep_ms(150).await;
        assert_eq!(log.entries().last().unwrap(), "B state-timeout s @100");
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn setting_a_state_timeout_again_restarts_it_and_cancel_stops_it() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::StateTimeout(100, "first")).await?;
        sleep_ms(60).await;
        m.cast(Cmd::StateTimeout(100, "second")).await?;
        sleep_ms(200).await;
        let fired: Vec<_> = log
            .entries()
            .into_iter()
            .filter(|e| e.contains("state-timeout"))
            .collect();
        assert_eq!(fired, ["A state-timeout second @160"]);
        m.cast(Cmd::StateTimeout(100, "third")).await?;
        sleep_ms(50).await;
        m.cast(Cmd::CancelStateTimeout).await?;
        sleep_ms(200).await;
        assert!(log.entries().iter().all(|e| !e.contains("third @")));
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn generic_timeouts_survive_events_and_state_changes_and_are_cancelled_by_name() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Timeout("t1", 100, "g1")).await?;
        m.cast(Cmd::Timeout("t2", 150, "g2")).await?;
        sleep_ms(50).await;
        m.cast(Cmd::Goto(S::B)).await?;
        m.cast(Cmd::Log("x")).await?;
        m.cast(Cmd::CancelTimeout("t2")).await?;
        sleep_ms(500).await;
        let fired: Vec<_> = log
            .entries()
            .into_iter()
            .filter(|e| e.contains(" timeout "))
            .collect();
        assert_eq!(fired, ["B timeout t1 g1 @100"]);
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn setting_a_generic_timeout_again_restarts_only_that_name() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Timeout("a", 100, "a1")).await?;
        m.cast(Cmd::Timeout("b", 100, "b1")).await?;
        sleep_ms(40).await;
        m.cast(Cmd::Timeout("a", 100, "a2")).await?;
        sleep_ms(500).await;
        let fired: Vec<_> = log
            .entries()
            .into_iter()
            .filter(|e| e.contains(" timeout "))
            .collect();
        assert_eq!(fired, ["A timeout b b1 @100", "A timeout a a2 @140"]);
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_three_timeouts_run_side_by_side() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Seq(vec![
            Cmd::EventTimeout(300, "e"),
            Cmd::StateTimeout(100, "s"),
            Cmd::Timeout("g", 200, "g"),
        ]))
        .await?;
        sleep_ms(1000).await;
        // The state timeout is an event: it cancels the event timeout.
        assert_eq!(
            log.entries()[1..],
            ["A state-timeout s @100", "A timeout g g @200"]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn timers_end_with_the_machine() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Seq(vec![
            Cmd::StateTimeout(100, "s"),
            Cmd::Timeout("g", 100, "g"),
        ]))
        .await?;
        m.stop().await?;
        sleep_ms(500).await;
        assert_eq!(log.entries().last().unwrap(), "A terminate normal");
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
