//! `gen_server::call` and friends: replies, errors, deferred replies,
//! timeouts and deadlines. Every timed test runs on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{
    self, Context, Flow, GenServer, GenServerError, Init, ReplyTo, Response, Server,
};
use trellis::process::ExitReason;
use trellis::{NurseryError, fail_after, nursery};

const LONG: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Request {
    Get,
    Add(u64),
    Fail(String),
    Panic,
    DropReply,
    Defer,
    AnswerDeferred(u64),
    DeferToTask(Duration),
    Stop,
    Slow(Duration),
}

/// A counter that can misbehave on request.
#[derive(Default)]
struct Probe {
    value: u64,
    deferred: Option<ReplyTo<Result<u64, String>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl GenServer for Probe {
    type Arg = u64;
    type Call = Request;
    type Reply = Result<u64, String>;
    type Cast = u64;
    type Info = u64;

    async fn init(&mut self, start: u64, _: &mut Context<Self>) -> Result<Init, BoxError> {
        if start == 666 {
            return Err("refusing 666".into());
        }
        self.value = start;
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Request,
        ctx: &mut Context<Self>,
    ) -> Result<Response<Self::Reply>, BoxError> {
        match request {
            Request::Get => Ok(Response::Reply(Ok(self.value))),
            Request::Add(n) => {
                self.value += n;
                Ok(Response::Reply(Ok(self.value)))
            }
            Request::Fail(why) => Ok(Response::Reply(Err(why))),
            Request::Panic => panic!("probe panicked on request"),
            Request::DropReply => {
                drop(ctx.defer());
                Ok(Response::NoReply)
            }
            Request::Defer => {
                self.deferred = ctx.defer();
                Ok(Response::NoReply)
            }
            Request::AnswerDeferred(n) => {
                let answered = self.deferred.take().map(|to| to.reply(Ok(n)).is_ok());
                Ok(Response::Reply(Ok(u64::from(answered == Some(true)))))
            }
            Request::DeferToTask(delay) => {
                let to = ctx.defer().unwrap();
                let value = self.value;
                ctx.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = to.reply(Ok(value * 10));
                })
                .unwrap();
                Ok(Response::NoReply)
            }
            Request::Stop => Ok(Response::Stop(ExitReason::error("asked to stop"))),
            Request::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(Response::Reply(Ok(self.value)))
            }
        }
    }

    async fn handle_cast(&mut self, n: u64, _: &mut Context<Self>) -> Result<Flow, BoxError> {
        self.value += n;
        Ok(Flow::Continue)
    }

    async fn handle_info(&mut self, n: u64, _: &mut Context<Self>) -> Result<Flow, BoxError> {
        self.log.lock().unwrap().push(format!("info {n}"));
        Ok(Flow::Continue)
    }
}

/// Runs `body` with a fresh `Probe` started in a nursery; the nursery's
/// outcome (the server's failure, if any) is ignored.
async fn with_probe<F, Fut>(name: Option<&'static str>, body: F)
where
    F: FnOnce(Server<Probe>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let _ = nursery(|n| async move {
        let server = gen_server::Builder::new(Probe::default())
            .arg(1)
            .options(name)
            .start(&n)
            .await
            .unwrap();
        body(server).await;
        n.cancel();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn call_returns_the_reply() {
    with_probe(None, |server| async move {
        assert_eq!(server.call(Request::Add(2), LONG).await.unwrap(), Ok(3));
        assert_eq!(server.call(Request::Get, LONG).await.unwrap(), Ok(3));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn call_by_name_and_by_pid_reach_the_server() {
    with_probe(Some("probe-by-name"), |server| async move {
        let by_name = gen_server::call::<Probe>("probe-by-name", Request::Get, LONG).await;
        assert_eq!(by_name.unwrap(), Ok(1));
        let by_pid = gen_server::call::<Probe>(server.pid(), Request::Add(1), LONG).await;
        assert_eq!(by_pid.unwrap(), Ok(2));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn call_to_a_name_never_registered_is_an_error() {
    let error = gen_server::call::<Probe>("nobody-here", Request::Get, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GenServerError::NameNotFound { ref name } if &**name == "nobody-here"),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn call_with_the_wrong_server_type_is_an_error() {
    struct Other;
    impl GenServer for Other {
        type Arg = ();
        type Call = ();
        type Reply = ();
        type Cast = ();
        type Info = ();
        async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
            Ok(Init::Ready)
        }
        async fn handle_call(
            &mut self,
            (): (),
            _: &mut Context<Self>,
        ) -> Result<Response<()>, BoxError> {
            Ok(Response::Reply(()))
        }
    }
    with_probe(Some("probe-typed"), |_| async move {
        let error = gen_server::call::<Other>("probe-typed", (), LONG)
            .await
            .unwrap_err();
        assert!(
            matches!(error, GenServerError::WrongType { .. }),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_error_sent_as_the_reply_reaches_the_caller_and_the_server_goes_on() {
    with_probe(None, |server| async move {
        let reply = server
            .call(Request::Fail("no such key".into()), LONG)
            .await
            .unwrap();
        assert_eq!(reply, Err("no such key".to_string()));
        assert_eq!(server.call(Request::Get, LONG).await.unwrap(), Ok(1));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_server_panicking_during_a_call_returns_exited_with_the_panic() {
    with_probe(None, |server| async move {
        let error = server.call(Request::Panic, LONG).await.unwrap_err();
        match error {
            GenServerError::Exited {
                reason: ExitReason::Panic(message),
                pid,
            } => {
                assert_eq!(pid, server.pid());
                assert!(message.contains("probe panicked on request"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // And it stays an error, at once.
        let again = server.call(Request::Get, LONG).await.unwrap_err();
        assert!(matches!(again, GenServerError::Exited { .. }), "{again:?}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_reply_handle_is_an_error_not_a_hang() {
    with_probe(None, |server| async move {
        let started = Instant::now();
        let error = server.call(Request::DropReply, LONG).await.unwrap_err();
        assert!(matches!(error, GenServerError::NoReply { .. }), "{error:?}");
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(server.call(Request::Get, LONG).await.unwrap(), Ok(1));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_deferred_reply_is_answered_from_another_task() {
    with_probe(None, |server| async move {
        let started = Instant::now();
        let reply = server
            .call(Request::DeferToTask(Duration::from_millis(30)), LONG)
            .await;
        assert_eq!(reply.unwrap(), Ok(10));
        assert_eq!(started.elapsed(), Duration::from_millis(30));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_deferred_job_does_not_block_the_mailbox() {
    with_probe(None, |server| async move {
        let slow = {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call(Request::DeferToTask(Duration::from_secs(1)), LONG)
                    .await
            })
        };
        tokio::task::yield_now().await;
        let started = Instant::now();
        assert_eq!(server.call(Request::Add(1), LONG).await.unwrap(), Ok(2));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(slow.await.unwrap().unwrap(), Ok(10));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_call_times_out_with_its_own_error() {
    with_probe(None, |server| async move {
        let started = Instant::now();
        let error = server
            .call(Request::Slow(Duration::from_secs(10)), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(error, GenServerError::Timeout { timeout, .. } if timeout == Duration::from_millis(50)));
        assert_eq!(started.elapsed(), Duration::from_millis(50));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn current_thread_calls_time_out_on_time_first_and_later_and_late_answers_arrive() {
    // The first wait on a thread registers its deadline at once; later ones
    // on a current-thread runtime yield once first: both must keep time.
    with_probe(None, |server| async move {
        let timeout = Duration::from_millis(50);
        let started = Instant::now();
        for round in 1..=2 {
            // The server sleeps 60 ms per request, so each call outlives its
            // timeout (the second also waits for the first to be handled).
            let error = server
                .call(Request::Slow(Duration::from_millis(60)), timeout)
                .await
                .unwrap_err();
            assert!(matches!(error, GenServerError::Timeout { .. }));
            assert_eq!(started.elapsed(), timeout * round);
        }
        // Sent at 100 ms, handled when the server wakes at 120 ms.
        assert_eq!(server.call(Request::Add(1), timeout).await.unwrap(), Ok(2));
        assert_eq!(started.elapsed(), Duration::from_millis(120));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_call_inside_fail_after_gives_up_at_the_scope_deadline() {
    with_probe(None, |server| async move {
        let started = Instant::now();
        let outcome = fail_after(
            Duration::from_millis(10),
            server.call(Request::Slow(Duration::from_secs(60)), LONG),
        )
        .await;
        assert!(outcome.is_err(), "the scope's deadline wins: {outcome:?}");
        assert_eq!(started.elapsed(), Duration::from_millis(10));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_deferred_reply_after_the_caller_timed_out_is_dropped_and_the_server_goes_on() {
    with_probe(None, |server| async move {
        let error = server
            .call(Request::Defer, Duration::from_millis(5))
            .await
            .unwrap_err();
        assert!(matches!(error, GenServerError::Timeout { .. }), "{error:?}");
        // The server answers the stale caller: the reply is given back, no panic.
        assert_eq!(
            server.call(Request::AnswerDeferred(7), LONG).await.unwrap(),
            Ok(0)
        );
        assert_eq!(server.call(Request::Add(1), LONG).await.unwrap(), Ok(2));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cast_and_info_reach_their_callbacks() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let probe = Probe {
        log: log.clone(),
        ..Probe::default()
    };
    let _ = nursery(|n| async move {
        let server = gen_server::Builder::new(probe)
            .arg(0)
            .name("probe-info")
            .start(&n)
            .await
            .unwrap();
        server.cast(5).await.unwrap();
        server.send_info(1).await.unwrap();
        trellis::mailbox::send("probe-info", 2_u64).await.unwrap();
        server.info_address().send(3).await.unwrap();
        assert_eq!(server.call(Request::Get, LONG).await.unwrap(), Ok(5));
        n.cancel();
    })
    .await;
    assert_eq!(*log.lock().unwrap(), ["info 1", "info 2", "info 3"]);
}

#[tokio::test(start_paused = true)]
async fn an_init_error_is_returned_to_the_starter_and_frees_the_name() {
    nursery(|n| async move {
        let error = gen_server::Builder::new(Probe::default()).arg(666).name("probe-init").start(&n).await.unwrap_err();
        assert!(
            matches!(error, GenServerError::InitFailed { ref reason } if reason.to_string().contains("refusing 666")),
            "{error:?}"
        );
        assert_eq!(trellis::registry::whereis("probe-init"), None);
        // The name can be used again.
        let server = gen_server::Builder::new(Probe::default()).arg(1).name("probe-init").start(&n).await.unwrap();
        assert_eq!(server.call(Request::Get, LONG).await.unwrap(), Ok(1));
        server.stop().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn starting_under_a_taken_name_is_an_error() {
    with_probe(Some("probe-taken"), |_| async move {
        let error = nursery(|n| async move {
            Ok::<_, NurseryError>(
                gen_server::Builder::new(Probe::default())
                    .arg(1)
                    .name("probe-taken")
                    .start(&n)
                    .await,
            )
        })
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            matches!(error, GenServerError::NameAlreadyExists { .. }),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn stop_answers_queued_callers_with_exited() {
    with_probe(None, |server| async move {
        // One slow call holds the loop while others queue behind it.
        let mut callers = Vec::new();
        let first = {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call(Request::Slow(Duration::from_millis(10)), LONG)
                    .await
            })
        };
        tokio::task::yield_now().await;
        let stopping = {
            let server = server.clone();
            tokio::spawn(async move { server.call(Request::Stop, LONG).await })
        };
        tokio::task::yield_now().await;
        for _ in 0..3 {
            let server = server.clone();
            callers.push(tokio::spawn(async move {
                server.call(Request::Get, LONG).await
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(first.await.unwrap().unwrap(), Ok(1));
        let reason = ExitReason::error("asked to stop");
        let error = stopping.await.unwrap().unwrap_err();
        assert_eq!(
            error,
            GenServerError::Exited {
                pid: server.pid(),
                reason: reason.clone()
            }
        );
        for caller in callers {
            let error = caller.await.unwrap().unwrap_err();
            assert_eq!(
                error,
                GenServerError::Exited {
                    pid: server.pid(),
                    reason: reason.clone()
                }
            );
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_server_that_exited_fails_at_once() {
    with_probe(None, |server| async move {
        server.stop().await.unwrap();
        let started = Instant::now();
        let error = server.call(Request::Get, LONG).await.unwrap_err();
        assert_eq!(
            error,
            GenServerError::Exited {
                pid: server.pid(),
                reason: ExitReason::Normal
            }
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(matches!(
            server.cast(1).await,
            Err(GenServerError::Exited { .. })
        ));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_bounded_server_mailbox_reports_fullness() {
    let _ = nursery(|n| async move {
        let options = gen_server::GenServerOptions::new().bounded(1);
        let server = gen_server::Builder::new(Probe::default())
            .arg(0)
            .options(options)
            .start(&n)
            .await
            .unwrap();
        // Hold the loop in a slow call, then fill the mailbox.
        let slow = {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call(Request::Slow(Duration::from_millis(10)), LONG)
                    .await
            })
        };
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        server.try_cast(1).unwrap();
        assert!(matches!(
            server.try_cast(1),
            Err(GenServerError::Full { .. })
        ));
        // `cast` waits for room instead.
        server.cast(2).await.unwrap();
        assert_eq!(slow.await.unwrap().unwrap(), Ok(0));
        assert_eq!(server.call(Request::Get, LONG).await.unwrap(), Ok(3));
        n.cancel();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_infinite_call_still_fails_at_once_when_the_server_dies() {
    with_probe(None, |server| async move {
        assert_eq!(
            server
                .call(Request::Get, gen_server::INFINITY)
                .await
                .unwrap(),
            Ok(1)
        );
        let started = Instant::now();
        let error = server
            .call(Request::Panic, gen_server::INFINITY)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                GenServerError::Exited {
                    reason: ExitReason::Panic(_),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_calls_time_out_and_answered_ones_return_their_reply() {
    // Real time (a paused clock needs a current-thread runtime). The outcome
    // does not depend on timing: the server sleeps 10 s, far past the
    // timeout, and then stays busy, so only the deadline can end each call.
    with_probe(None, |server| async move {
        assert_eq!(
            server
                .call(Request::Add(1), Duration::from_secs(5))
                .await
                .unwrap(),
            Ok(2)
        );
        let timeout = Duration::from_millis(50);
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let error = server
                .call(Request::Slow(Duration::from_secs(10)), timeout)
                .await
                .unwrap_err();
            assert!(matches!(error, GenServerError::Timeout { .. }), "{error:?}");
            assert!(started.elapsed() >= timeout);
        }
    })
    .await;
}
