//! A gen_server waiting on itself: OTP answers a call to self with an
//! immediate `calling_self` exit; Trellis answers every self-directed wait
//! (call, stop, a cast into its own full mailbox) with
//! `GenServerError::CallingSelf` at once, and offers `Context::stop` to stop
//! from inside.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{self, Context, Flow, GenServer, GenServerError, Init, Response};
use trellis::mailbox;
use trellis::nursery;
use trellis::process::{Down, ExitReason};

const LONG: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Request {
    CallSelf,
    CallSelfByName,
    StopSelf,
    StopInContext,
    FillOwnMailbox,
    Ping,
}

/// What each self-directed attempt returned, and the reason `terminate` saw.
#[derive(Default)]
struct Seen {
    results: Vec<Result<(), GenServerError>>,
    terminated: Option<ExitReason>,
}

struct Selfish {
    seen: Arc<Mutex<Seen>>,
    /// `init` calls itself when set.
    call_in_init: bool,
}

impl Selfish {
    fn record(&self, result: Result<(), GenServerError>) {
        self.seen.lock().unwrap().results.push(result);
    }
}

impl GenServer for Selfish {
    type Arg = ();
    type Call = Request;
    type Reply = &'static str;
    type Cast = Request;
    type Info = ();

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        if self.call_in_init {
            let result = ctx.server().call(Request::Ping, LONG).await.map(drop);
            self.record(result);
        }
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Request,
        ctx: &mut Context<Self>,
    ) -> Result<Response<&'static str>, BoxError> {
        match request {
            Request::CallSelf => {
                let result = ctx.server().call(Request::Ping, LONG).await.map(drop);
                self.record(result);
                Ok(Response::Reply("survived"))
            }
            Request::CallSelfByName => {
                let result = gen_server::call::<Selfish>("selfish", Request::Ping, LONG)
                    .await
                    .map(drop);
                self.record(result);
                Ok(Response::Reply("survived"))
            }
            Request::StopSelf => {
                let result = ctx.server().stop().await;
                self.record(result);
                Ok(Response::Reply("survived"))
            }
            Request::StopInContext => {
                ctx.stop(ExitReason::Shutdown);
                Ok(Response::Reply("stopping"))
            }
            Request::FillOwnMailbox | Request::Ping => Ok(Response::Reply("pong")),
        }
    }

    async fn handle_cast(
        &mut self,
        request: Request,
        ctx: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        match request {
            Request::FillOwnMailbox => {
                // The bound is 1: the first cast fills the mailbox, the
                // second would wait for room only we can make.
                let first = ctx.server().cast(Request::Ping).await;
                let second = ctx.server().cast(Request::Ping).await;
                self.record(first);
                self.record(second);
            }
            Request::StopInContext => ctx.stop(ExitReason::error("asked from a cast")),
            _ => {}
        }
        Ok(Flow::Continue)
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Context<Self>) {
        self.seen.lock().unwrap().terminated = Some(reason.clone());
    }
}

fn selfish(call_in_init: bool) -> (Selfish, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    (
        Selfish {
            seen: seen.clone(),
            call_in_init,
        },
        seen,
    )
}

fn calling_self(result: &Result<(), GenServerError>) -> bool {
    matches!(result, Err(GenServerError::CallingSelf { .. }))
}

#[tokio::test(start_paused = true)]
async fn a_call_to_itself_from_a_handler_fails_at_once_with_calling_self() {
    let (server, seen) = selfish(false);
    nursery(|n| async move {
        let handle = gen_server::start(&n, server).await.unwrap();
        let before = Instant::now();
        assert_eq!(handle.call(Request::CallSelf, LONG).await, Ok("survived"));
        assert_eq!(Instant::now(), before, "no time passed: nothing waited");
        handle.stop().await.unwrap();
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.results.len(), 1);
    assert!(calling_self(&seen.results[0]), "{:?}", seen.results);
}

#[tokio::test(start_paused = true)]
async fn a_call_to_its_own_name_fails_at_once_with_calling_self() {
    let (server, seen) = selfish(false);
    nursery(|n| async move {
        let handle = gen_server::Builder::new(server)
            .name("selfish")
            .start(&n)
            .await
            .unwrap();
        let before = Instant::now();
        assert_eq!(
            handle.call(Request::CallSelfByName, LONG).await,
            Ok("survived")
        );
        assert_eq!(Instant::now(), before);
        handle.stop().await.unwrap();
    })
    .await
    .unwrap();
    assert!(calling_self(&seen.lock().unwrap().results[0]));
}

#[tokio::test(start_paused = true)]
async fn stopping_itself_through_its_handle_fails_at_once_and_the_server_goes_on() {
    let (server, seen) = selfish(false);
    nursery(|n| async move {
        let handle = gen_server::start(&n, server).await.unwrap();
        assert_eq!(handle.call(Request::StopSelf, LONG).await, Ok("survived"));
        assert_eq!(handle.call(Request::Ping, LONG).await, Ok("pong"));
        handle.stop().await.unwrap();
    })
    .await
    .unwrap();
    assert!(calling_self(&seen.lock().unwrap().results[0]));
}

#[tokio::test(start_paused = true)]
async fn a_call_to_itself_from_init_fails_at_once_and_the_start_goes_on() {
    let (server, seen) = selfish(true);
    nursery(|n| async move {
        let before = Instant::now();
        let handle = gen_server::start(&n, server).await.unwrap();
        assert_eq!(Instant::now(), before);
        handle.stop().await.unwrap();
    })
    .await
    .unwrap();
    assert!(calling_self(&seen.lock().unwrap().results[0]));
}

#[tokio::test(start_paused = true)]
async fn a_cast_into_its_own_full_mailbox_fails_at_once_instead_of_waiting_for_room() {
    let (server, seen) = selfish(false);
    nursery(|n| async move {
        let options = gen_server::GenServerOptions::new().bounded(1);
        let handle = gen_server::Builder::new(server)
            .options(options)
            .start(&n)
            .await
            .unwrap();
        handle.cast(Request::FillOwnMailbox).await.unwrap();
        assert_eq!(handle.call(Request::Ping, LONG).await, Ok("pong"));
        handle.stop().await.unwrap();
    })
    .await
    .unwrap();
    // Whether the first cast finds room depends on whether the test's call
    // took the free slot first; the second never can.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.results.len(), 2);
    assert!(calling_self(&seen.results[1]), "{:?}", seen.results);
}

#[tokio::test(start_paused = true)]
async fn context_stop_sends_the_reply_then_stops_with_the_reason() {
    let (server, seen) = selfish(false);
    nursery(|n| async move {
        let handle = gen_server::start(&n, server).await.unwrap();
        let mut watch = mailbox::create::<Down>();
        watch.monitor(handle.pid());
        assert_eq!(
            handle.call(Request::StopInContext, LONG).await,
            Ok("stopping")
        );
        assert_eq!(watch.receive().await.unwrap().reason, ExitReason::Shutdown);
    })
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().terminated, Some(ExitReason::Shutdown));
}

#[tokio::test(start_paused = true)]
async fn context_stop_from_a_cast_stops_the_server_with_that_reason() {
    let (server, seen) = selfish(false);
    let outcome = nursery(|n| async move {
        let handle = gen_server::start(&n, server).await.unwrap();
        handle.cast(Request::StopInContext).await.unwrap();
        Ok::<_, BoxError>(())
    })
    .await;
    assert!(outcome.is_err(), "an abnormal stop fails the nursery");
    assert_eq!(
        seen.lock().unwrap().terminated,
        Some(ExitReason::error("asked from a cast"))
    );
}
