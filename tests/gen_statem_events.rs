//! gen_statem's event order: postponed events come back after a state
//! change in arrival order, inserted events run before anything queued, and
//! the state enter call runs for the initial state and on each change.

#[allow(clippy::mod_module_files)]
mod gen_statem_support;

use gen_statem_support::{Cmd, Log, S, start, sync};
use trellis::BoxError;
use trellis::gen_server::GenServerError;
use trellis::gen_statem::{self, GenStatemError};
use trellis::process::ExitReason;

#[tokio::test(start_paused = true)]
async fn postponed_events_come_back_after_the_next_state_change_in_arrival_order() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::PostponeUnless(S::B, "p1")).await?;
        m.cast(Cmd::PostponeUnless(S::B, "p2")).await?;
        m.cast(Cmd::Log("x")).await?;
        m.cast(Cmd::Goto(S::B)).await?;
        m.cast(Cmd::Log("y")).await?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries(),
            [
                "A cast postponable p1",
                "A cast postponable p2",
                "A cast x",
                "A cast goto B",
                "B cast postponable p1",
                "B handled p1",
                "B cast postponable p2",
                "B handled p2",
                "B cast y",
            ]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_transition_to_the_same_state_does_not_redeliver_postponed_events() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::PostponeUnless(S::C, "p")).await?;
        m.cast(Cmd::Goto(S::A)).await?;
        m.cast(Cmd::Repeat).await?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries(),
            ["A cast postponable p", "A cast goto A", "A cast Repeat"]
        );
        // Postponed again in B, delivered in C.
        m.cast(Cmd::Goto(S::B)).await?;
        m.cast(Cmd::Goto(S::C)).await?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries()[3..],
            [
                "A cast goto B",
                "B cast postponable p",
                "B cast goto C",
                "C cast postponable p",
                "C handled p",
            ]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_event_postponed_in_the_transition_that_changes_state_is_retried_at_once() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Seq(vec![
            Cmd::PostponeUnless(S::B, "p"),
            Cmd::Goto(S::B),
        ]))
        .await?;
        m.cast(Cmd::Log("after")).await?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries(),
            [
                "A cast postponable p+goto B",
                "B cast postponable p+goto B",
                "B handled p",
                "B cast after",
            ]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_postponed_call_is_answered_once_the_state_changes() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        let caller = m.clone();
        let call = n.spawn(async move {
            caller
                .call(Cmd::PostponeUnless(S::B, "c"), gen_statem::DEFAULT_TIMEOUT)
                .await
        });
        sync(&m, &log).await;
        assert_eq!(log.entries(), ["A call postponable c"]);
        m.cast(Cmd::Goto(S::B)).await?;
        assert_eq!(call.await?, S::B);
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn inserted_events_run_before_queued_ones_in_insertion_order() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        // Both casts are queued before the machine runs.
        m.try_cast(Cmd::Insert(vec!["i1", "i2"]))?;
        m.try_cast(Cmd::Log("queued"))?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries(),
            [
                r#"A cast Insert(["i1", "i2"])"#,
                "A internal i1",
                "A internal i2",
                "A cast queued",
            ]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn inserted_events_run_before_redelivered_postponed_ones() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.try_cast(Cmd::PostponeUnless(S::B, "p"))?;
        m.try_cast(Cmd::Seq(vec![Cmd::Insert(vec!["i"]), Cmd::Goto(S::B)]))?;
        m.try_cast(Cmd::Log("queued"))?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries()[2..],
            [
                "B internal i",
                "B cast postponable p",
                "B handled p",
                "B cast queued",
            ]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_initial_state_enter_call_has_run_when_start_returns() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<true>(&n, &log).await;
        assert_eq!(log.entries(), ["A enter from A"]);
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn state_enter_runs_on_a_change_and_on_repeat_but_not_on_keep() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<true>(&n, &log).await;
        m.cast(Cmd::Goto(S::B)).await?;
        m.cast(Cmd::Goto(S::B)).await?;
        m.cast(Cmd::Log("keep")).await?;
        m.cast(Cmd::Repeat).await?;
        sync(&m, &log).await;
        assert_eq!(
            log.entries(),
            [
                "A enter from A",
                "A cast goto B",
                "B enter from A",
                "B cast goto B",
                "B cast keep",
                "B cast Repeat",
                "B enter from B",
            ]
        );
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_state_enter_no_enter_call_is_made() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::Goto(S::B)).await?;
        sync(&m, &log).await;
        assert_eq!(log.entries(), ["A cast goto B"]);
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_state_enter_call_that_changes_state_crashes_the_machine() {
    let log = Log::default();
    let result = trellis::nursery(|n| {
        let log = log.clone();
        async move {
            let m = start::<true>(&n, &log).await;
            m.cast(Cmd::OnEnter(Box::new(Cmd::Goto(S::C)))).await?;
            let crashed = m
                .call(Cmd::Goto(S::B), gen_statem::DEFAULT_TIMEOUT)
                .await
                .unwrap_err();
            let GenServerError::Exited {
                reason: ExitReason::Error(error),
                ..
            } = crashed
            else {
                panic!("expected a crash, got {crashed:?}");
            };
            assert!(matches!(
                error.downcast_ref::<GenStatemError>(),
                Some(GenStatemError::InvalidStateEnter { .. })
            ));
            Ok::<_, BoxError>(())
        }
    })
    .await;
    // The crash fails the nursery, as any abnormal exit of its tasks.
    assert!(result.is_err());
    assert!(log.entries().contains(&"B enter from A".to_string()));
}

#[tokio::test(start_paused = true)]
async fn an_enter_call_may_set_a_state_timeout_for_the_state_it_enters() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<true>(&n, &log).await;
        m.cast(Cmd::OnEnter(Box::new(Cmd::StateTimeout(100, "t"))))
            .await?;
        m.cast(Cmd::Goto(S::B)).await?;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(log.entries().last().unwrap(), "B state-timeout t @100");
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
