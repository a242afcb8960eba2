//! Handlers fail with `?`: the error becomes the server's exit reason, kept
//! as a value (downcastable, with its `source()` chain); a caller in flight
//! gets `Exited` with it; monitors see it.

use std::time::Duration;

use trellis::gen_server::{self, Context, Flow, GenServer, GenServerError, Init, Response};
use trellis::mailbox;
use trellis::process::{Down, ExitReason};
use trellis::{BoxError, nursery};

const LONG: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("store unavailable")]
struct StoreError(#[source] std::io::Error);

fn fetch(ok: bool) -> Result<u32, StoreError> {
    if ok {
        Ok(7)
    } else {
        Err(StoreError(std::io::Error::other("socket closed")))
    }
}

struct Fallible;

impl GenServer for Fallible {
    type Arg = ();
    type Call = bool;
    type Reply = u32;
    type Cast = bool;
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        ok: bool,
        _: &mut Context<Self>,
    ) -> Result<Response<u32>, BoxError> {
        let value = fetch(ok)?;
        Ok(Response::Reply(value))
    }

    async fn handle_cast(&mut self, ok: bool, _: &mut Context<Self>) -> Result<Flow, BoxError> {
        fetch(ok)?;
        Ok(Flow::Continue)
    }
}

/// The `StoreError` inside an exit reason, checked down to its source.
fn assert_store_error(reason: &ExitReason) {
    let ExitReason::Error(error) = reason else {
        panic!("unexpected reason {reason:?}");
    };
    assert!(error.is::<StoreError>());
    let store = error.downcast_ref::<StoreError>().unwrap();
    assert_eq!(store.0.to_string(), "socket closed");
    let source = std::error::Error::source(error).expect("the source chain");
    assert_eq!(source.to_string(), "socket closed");
    assert_eq!(reason.to_string(), "error: store unavailable");
}

#[tokio::test(start_paused = true)]
async fn a_question_mark_in_handle_call_crashes_the_server_and_the_caller_gets_exited_with_the_error()
 {
    let outcome = nursery(|n| async move {
        let server = gen_server::start(&n, Fallible).await?;
        assert_eq!(server.call(true, LONG).await?, 7);
        let error = server.call(false, LONG).await.unwrap_err();
        let GenServerError::Exited { pid, reason } = error else {
            panic!("unexpected {error:?}");
        };
        assert_eq!(pid, server.pid());
        assert_store_error(&reason);
        // Later callers see the same reason.
        let again = server.call(true, LONG).await.unwrap_err();
        assert!(matches!(again, GenServerError::Exited { reason: r, .. } if r == reason));
        Ok::<_, BoxError>(())
    })
    .await;
    // An abnormal exit fails the nursery, as any failed task does.
    assert!(outcome.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_question_mark_in_handle_cast_crashes_the_server_and_monitors_get_the_error_value() {
    let _ = nursery(|n| async move {
        let server = gen_server::start(&n, Fallible).await?;
        let mut watch = mailbox::create::<Down>();
        watch.monitor(server.pid());
        server.cast(false).await?;
        let down = watch.receive().await?;
        assert_store_error(&down.reason);
        assert_store_error(&server.exit_reason().unwrap());
        Ok::<_, BoxError>(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_served_task_fails_with_exited_carrying_the_error() {
    let outcome = nursery(|n| async move {
        let server = gen_server::start(&n, Fallible).await?;
        server.cast(false).await?;
        Ok::<_, BoxError>(())
    })
    .await;
    let failure = outcome.unwrap_err();
    let text = failure.to_string();
    assert!(text.contains("store unavailable"), "{text}");
}
