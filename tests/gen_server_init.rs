//! How `init` decides a start (OTP's `{ok, State}`, `{stop, Reason}`,
//! `ignore`, or a crash), and what the starter, the name and the nursery see
//! in each case; `start`, `serve` and the `Builder`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis::gen_server::{
    self, Builder, Context, GenServer, GenServerError, GenServerOptions, Init, Response, Server,
};
use trellis::process::ExitReason;
use trellis::{BoxError, NurseryError, StartError, TaskStatus, nursery, registry};

const LONG: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("config unreadable")]
struct ConfigError(#[source] std::io::Error);

/// What `init` does, chosen by its argument.
#[derive(Clone, Copy, Debug)]
enum Decide {
    Ready,
    Stop,
    Ignore,
    Fail,
    StopInContext,
}

struct Starter {
    terminated: Arc<Mutex<bool>>,
}

impl GenServer for Starter {
    type Arg = Decide;
    type Call = ();
    type Reply = &'static str;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, decide: Decide, ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        match decide {
            Decide::Ready => Ok(Init::Ready),
            Decide::Stop => Ok(Init::Stop(ExitReason::error("not today"))),
            Decide::Ignore => Ok(Init::Ignore),
            Decide::Fail => {
                let read: Result<(), _> = Err(ConfigError(std::io::Error::other("disk gone")));
                read?;
                Ok(Init::Ready)
            }
            Decide::StopInContext => {
                ctx.stop(ExitReason::Shutdown);
                Ok(Init::Ready)
            }
        }
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<&'static str>, BoxError> {
        Ok(Response::Reply("serving"))
    }

    async fn terminate(&mut self, _: &ExitReason, _: &mut Context<Self>) {
        *self.terminated.lock().unwrap() = true;
    }
}

fn starter() -> (Starter, Arc<Mutex<bool>>) {
    let terminated = Arc::new(Mutex::new(false));
    (
        Starter {
            terminated: terminated.clone(),
        },
        terminated,
    )
}

/// Starts a `Starter` named `name` deciding `decide`, in a nursery that is
/// left running nothing else; returns the start's outcome.
async fn start_named(
    name: &'static str,
    decide: Decide,
    server: Starter,
) -> Result<Server<Starter>, GenServerError> {
    nursery(|n| async move {
        let started = Builder::new(server).arg(decide).name(name).start(&n).await;
        if let Ok(server) = &started {
            server.stop().await.unwrap();
        }
        Ok::<_, NurseryError>(started)
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn init_stop_refuses_the_start_with_its_reason_frees_the_name_and_skips_terminate() {
    let (server, terminated) = starter();
    let error = start_named("init-stop", Decide::Stop, server)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        GenServerError::InitFailed {
            reason: ExitReason::error("not today")
        }
    );
    assert_eq!(registry::whereis("init-stop"), None);
    assert!(!*terminated.lock().unwrap(), "terminate is not called");
}

#[tokio::test(start_paused = true)]
async fn init_ignore_gives_the_starter_ignored_and_ends_the_process_normally() {
    let (server, terminated) = starter();
    let error = start_named("init-ignore", Decide::Ignore, server)
        .await
        .unwrap_err();
    assert_eq!(error, GenServerError::Ignored);
    assert_eq!(registry::whereis("init-ignore"), None);
    assert!(!*terminated.lock().unwrap());
}

#[tokio::test(start_paused = true)]
async fn an_init_error_reaches_the_starter_as_a_value_with_its_source_chain() {
    let (server, _) = starter();
    let error = start_named("init-fail", Decide::Fail, server)
        .await
        .unwrap_err();
    let GenServerError::InitFailed {
        reason: ExitReason::Error(error),
    } = error
    else {
        panic!("unexpected {error:?}");
    };
    let config = error
        .downcast_ref::<ConfigError>()
        .expect("the error value");
    assert_eq!(config.0.to_string(), "disk gone");
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "disk gone"
    );
}

#[tokio::test(start_paused = true)]
async fn context_stop_during_init_refuses_the_start_with_that_reason() {
    let (server, terminated) = starter();
    let error = start_named("init-ctx-stop", Decide::StopInContext, server)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        GenServerError::InitFailed {
            reason: ExitReason::Shutdown
        }
    );
    assert!(!*terminated.lock().unwrap());
}

#[tokio::test(start_paused = true)]
async fn under_serve_an_ignoring_init_ends_the_task_normally_without_reporting_started() {
    let (server, _) = starter();
    let outcome = nursery(|n| async move {
        let started = n
            .start(|status: TaskStatus<Server<Starter>>| {
                Builder::new(server).arg(Decide::Ignore).serve(status)
            })
            .await;
        // The task returned Ok without `started`: the nursery does not fail.
        assert!(
            matches!(started, Err(StartError::NotStarted { .. })),
            "{started:?}"
        );
    })
    .await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn under_serve_a_refusing_init_fails_the_start_with_init_failed() {
    let (server, _) = starter();
    nursery(|n| async move {
        let started = n
            .start(|status: TaskStatus<Server<Starter>>| {
                Builder::new(server).arg(Decide::Stop).serve(status)
            })
            .await;
        let Err(StartError::Failed(failure)) = started else {
            panic!("unexpected {started:?}");
        };
        let error = failure.into_error().unwrap();
        assert!(matches!(
            error.downcast_ref::<GenServerError>(),
            Some(GenServerError::InitFailed { .. })
        ));
    })
    .await
    .unwrap();
}

/// A server without an argument.
struct Plain;

impl GenServer for Plain {
    type Arg = ();
    type Call = ();
    type Reply = &'static str;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<&'static str>, BoxError> {
        Ok(Response::Reply("plain"))
    }
}

#[tokio::test(start_paused = true)]
async fn start_takes_just_the_nursery_and_the_server_when_there_is_no_argument() {
    nursery(|n| async move {
        let plain = gen_server::start(&n, Plain).await?;
        assert_eq!(plain.call((), LONG).await?, "plain");
        plain.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_builder_names_bounds_and_passes_the_argument() {
    nursery(|n| async move {
        let (server, _) = starter();
        let started = Builder::new(server)
            .options(GenServerOptions::new().bounded(2))
            .name("built")
            .arg(Decide::Ready)
            .start(&n)
            .await?;
        assert_eq!(registry::whereis("built"), Some(started.pid()));
        assert_eq!(
            gen_server::call::<Starter>("built", (), LONG).await?,
            "serving"
        );
        started.stop().await?;
        assert_eq!(registry::whereis("built"), None);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn serve_runs_a_server_without_an_argument_under_nursery_start() {
    nursery(|n| async move {
        let plain = n
            .start(|status: TaskStatus<Server<Plain>>| gen_server::serve(Plain, status))
            .await?;
        assert_eq!(plain.call((), LONG).await?, "plain");
        plain.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
