//! Calling a gen_statem: gen_server's no-hang guarantees (a stopped or
//! crashing machine answers at once, timeouts and scope deadlines apply),
//! names and pids, start outcomes, and supervision through a `ChildSpec`.

#[allow(clippy::mod_module_files)]
mod gen_statem_support;

use std::time::Duration;

use gen_statem_support::{Cmd, Log, Probe, S, start, sync};
use tokio::time::Instant;
use trellis::gen_server::GenServerError;
use trellis::gen_statem::{self, Builder, Context, Event, GenStatem, Init, Transition};
use trellis::pg;
use trellis::process::ExitReason;
use trellis::supervisor::{self, SupervisorOptions};
use trellis::{BoxError, fail_after};

type P = Probe<false>;

#[tokio::test(start_paused = true)]
async fn a_call_to_a_stopped_statem_fails_at_once_with_its_exit_reason() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.stop().await?;
        let before = Instant::now();
        let error = m
            .call(Cmd::Log("late"), gen_statem::INFINITY)
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            GenServerError::Exited {
                reason: ExitReason::Normal,
                ..
            }
        ));
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert!(matches!(
            m.cast(Cmd::Log("late")).await,
            Err(GenServerError::Exited { .. })
        ));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_postponed_call_fails_when_the_machine_stops_before_answering() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        let caller = m.clone();
        // The task returns the call's result as its value.
        let call = n.spawn(async move {
            let result = caller
                .call(Cmd::PostponeUnless(S::B, "never"), gen_statem::INFINITY)
                .await;
            Ok::<_, BoxError>(result)
        });
        sync(&m, &log).await;
        m.cast(Cmd::Stop).await?;
        let error = call.await?.unwrap_err();
        assert!(matches!(
            error,
            GenServerError::Exited {
                reason: ExitReason::Normal,
                ..
            }
        ));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_call_that_crashes_the_machine_returns_the_error_as_its_exit_reason() {
    let log = Log::default();
    let outcome = trellis::nursery(|n| {
        let log = log.clone();
        async move {
            let m = start::<false>(&n, &log).await;
            let error = m
                .call(Cmd::Crash, gen_statem::DEFAULT_TIMEOUT)
                .await
                .unwrap_err();
            let GenServerError::Exited {
                reason: ExitReason::Error(error),
                ..
            } = error
            else {
                panic!("expected a crash, got {error:?}");
            };
            assert_eq!(error.message(), "asked to crash");
            Ok::<_, BoxError>(())
        }
    })
    .await;
    assert!(outcome.is_err(), "the crash fails the nursery");
    assert_eq!(
        log.entries().last().unwrap(),
        "A terminate error: asked to crash"
    );
}

#[tokio::test(start_paused = true)]
async fn a_postponed_call_times_out_after_its_own_timeout() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        let before = Instant::now();
        let error = m
            .call(Cmd::PostponeUnless(S::B, "p"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(error, GenServerError::Timeout { .. }));
        assert_eq!(before.elapsed(), Duration::from_secs(2));
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_call_inside_a_cancel_scope_gives_up_at_the_scope_deadline() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        let before = Instant::now();
        let outcome = fail_after(
            Duration::from_secs(1),
            m.call(Cmd::PostponeUnless(S::B, "p"), gen_statem::INFINITY),
        )
        .await;
        assert!(outcome.is_err());
        assert_eq!(before.elapsed(), Duration::from_secs(1));
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_statem_calling_itself_gets_calling_self_at_once() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = start::<false>(&n, &log).await;
        m.cast(Cmd::CallSelf).await?;
        sync(&m, &log).await;
        let entries = log.entries();
        assert!(entries[1].ends_with("called itself"), "{entries:?}");
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_named_statem_is_reached_by_name_and_by_pid() {
    let log = Log::default();
    trellis::nursery(|n| async move {
        let m = Builder::new(P::new(&log))
            .name("statem-calls-named")
            .start(&n)
            .await?;
        let t = gen_statem::DEFAULT_TIMEOUT;
        gen_statem::cast::<P>("statem-calls-named", Cmd::Goto(S::B)).await?;
        let by_name = gen_statem::call::<P>("statem-calls-named", Cmd::Log("n"), t).await?;
        assert_eq!(by_name, S::B);
        let by_pid = gen_statem::call::<P>(m.pid(), Cmd::Log("p"), t).await?;
        assert_eq!(by_pid, S::B);
        // Infos reach it through the mailbox, by name.
        trellis::mailbox::send("statem-calls-named", "hello").await?;
        sync(&m, &log).await;
        assert_eq!(log.entries().last().unwrap(), "B info hello");
        // Another machine type under that name is a type error.
        let wrong = gen_statem::call::<Probe<true>>("statem-calls-named", Cmd::Log("w"), t)
            .await
            .unwrap_err();
        assert!(matches!(wrong, GenServerError::WrongType { .. }));
        let missing = gen_statem::call::<P>("statem-calls-nobody", Cmd::Log("m"), t)
            .await
            .unwrap_err();
        assert!(matches!(missing, GenServerError::NameNotFound { .. }));
        m.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

/// A machine whose `init` does as its argument says.
struct Starter;

impl GenStatem for Starter {
    type Arg = Option<Init<(), ()>>;
    type State = ();
    type Data = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Internal = ();

    async fn init(
        &mut self,
        arg: Option<Init<(), ()>>,
        _: &mut Context<'_, Self>,
    ) -> Result<Init<(), ()>, BoxError> {
        arg.ok_or_else(|| "no init".into())
    }

    async fn handle_event(
        &mut self,
        _: Event<Self>,
        _: &(),
        _: &mut (),
        _: &mut Context<'_, Self>,
    ) -> Result<Transition<()>, BoxError> {
        Ok(Transition::Keep)
    }
}

#[tokio::test(start_paused = true)]
async fn init_can_refuse_ignore_or_fail_the_start() {
    trellis::nursery(|n| async move {
        let stop = Builder::new(Starter)
            .arg(Some(Init::Stop(ExitReason::error("refused"))))
            .start(&n)
            .await
            .unwrap_err();
        assert!(matches!(stop, GenServerError::InitFailed { .. }));
        let ignored = Builder::new(Starter)
            .arg(Some(Init::Ignore))
            .start(&n)
            .await
            .unwrap_err();
        assert_eq!(ignored, GenServerError::Ignored);
        let failed = Builder::new(Starter).arg(None).start(&n).await.unwrap_err();
        let GenServerError::InitFailed { reason } = failed else {
            panic!("expected InitFailed, got {failed:?}");
        };
        assert_eq!(reason.to_string(), "error: no init");
        let ready = Builder::new(Starter)
            .arg(Some(Init::Ready((), ())))
            .start(&n)
            .await?;
        ready.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_supervised_statem_restarts_in_its_initial_state_under_its_name() {
    let log = Log::default();
    let spec = {
        let log = log.clone();
        gen_statem::child_spec("door", move || P::new(&log), (), "statem-calls-supervised")
    };
    trellis::nursery(|n| async move {
        let sup = supervisor::start(&n, vec![spec], SupervisorOptions::new()).await?;
        let t = gen_statem::DEFAULT_TIMEOUT;
        let name = "statem-calls-supervised";
        assert_eq!(gen_statem::call::<P>(name, Cmd::Goto(S::C), t).await?, S::C);
        assert!(gen_statem::call::<P>(name, Cmd::Crash, t).await.is_err());
        let mut again = gen_statem::call::<P>(name, Cmd::Log("again"), t).await;
        while again.is_err() {
            tokio::task::yield_now().await;
            again = gen_statem::call::<P>(name, Cmd::Log("again"), t).await;
        }
        assert_eq!(again?, S::A);
        assert_eq!(sup.which_children()[0].restarts, 1);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[test]
fn handles_and_their_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(trellis::nursery(|n| async move {
            let m = start::<false>(&n, &Log::default()).await;
            send_sync(&m);
            send(m.call(Cmd::Log("x"), gen_statem::DEFAULT_TIMEOUT));
            send(m.cast(Cmd::Log("x")));
            send(gen_statem::call::<P>(
                m.pid(),
                Cmd::Log("x"),
                gen_statem::DEFAULT_TIMEOUT,
            ));
            send(gen_statem::start(&n, P::new(&Log::default())));
            send_sync(&pg::scope("statem-calls-send"));
            m.stop().await?;
            Ok::<_, BoxError>(())
        }))
        .unwrap();
}
