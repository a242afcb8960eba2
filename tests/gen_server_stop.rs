//! How a gen_server stops: `terminate` on every path, the exit reason the
//! world sees, the server's own tasks and timers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{self, Context, Flow, GenServer, GenServerError, Init, Response, Server};
use trellis::mailbox;
use trellis::process::{Down, ExitReason};
use trellis::{CancelScope, NurseryError, nursery};

const LONG: Duration = Duration::from_secs(5);

type Log = Arc<Mutex<Vec<String>>>;

#[derive(Debug)]
enum Request {
    Ping,
    Stop,
    Panic,
    FailInTask,
    PanicInDeferredTask,
    Tick(Duration),
    TickEvery(Duration),
    CancelTimer,
}

#[derive(Debug)]
enum Info {
    Tick(u32),
}

struct Recorder {
    log: Log,
    /// `terminate` awaits this long before logging its second line.
    slow_terminate: Duration,
    timer: Option<gen_server::TimerRef>,
    ticks: u32,
}

impl Recorder {
    fn new(log: &Log) -> Self {
        Recorder {
            log: log.clone(),
            slow_terminate: Duration::ZERO,
            timer: None,
            ticks: 0,
        }
    }

    fn note(&self, line: impl Into<String>) {
        self.log.lock().unwrap().push(line.into());
    }
}

impl GenServer for Recorder {
    type Arg = ();
    type Call = Request;
    type Reply = ();
    type Cast = ();
    type Info = Info;

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        self.note("init");
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Request,
        ctx: &mut Context<Self>,
    ) -> Result<Response<()>, BoxError> {
        match request {
            Request::Ping => Ok(Response::Reply(())),
            Request::Stop => Ok(Response::ReplyAndStop((), ExitReason::Shutdown)),
            Request::Panic => panic!("boom"),
            Request::FailInTask => {
                ctx.spawn(async { Err::<(), _>(std::io::Error::other("job failed")) })
                    .unwrap();
                Ok(Response::Reply(()))
            }
            Request::PanicInDeferredTask => {
                let to = ctx.defer().unwrap();
                ctx.spawn(async move {
                    let _keep = to;
                    tokio::task::yield_now().await;
                    let fail = true;
                    assert!(!fail, "job panicked");
                })
                .unwrap();
                Ok(Response::NoReply)
            }
            Request::Tick(delay) => {
                self.timer = Some(ctx.send_after(Info::Tick(1), delay).unwrap());
                Ok(Response::Reply(()))
            }
            Request::TickEvery(period) => {
                let mut n = 0;
                self.timer = Some(
                    ctx.send_interval(period, move || {
                        n += 1;
                        Info::Tick(n)
                    })
                    .unwrap(),
                );
                Ok(Response::Reply(()))
            }
            Request::CancelTimer => {
                if let Some(timer) = self.timer.take() {
                    timer.cancel();
                }
                Ok(Response::Reply(()))
            }
        }
    }

    async fn handle_info(
        &mut self,
        Info::Tick(n): Info,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        self.ticks += 1;
        self.note(format!(
            "tick {n} at {:?}",
            tokio::time::Instant::now().elapsed()
        ));
        Ok(Flow::Continue)
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Context<Self>) {
        self.note(format!("terminate {reason}"));
        if !self.slow_terminate.is_zero() {
            tokio::time::sleep(self.slow_terminate).await;
            self.note("terminate done");
        }
    }
}

fn lines(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Starts a recorder, runs `body`, and returns how its nursery ended.
async fn run_recorder<F, Fut>(recorder: Recorder, body: F) -> Result<(), NurseryError>
where
    F: FnOnce(Server<Recorder>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    nursery(|n| async move {
        let server = gen_server::start(&n, recorder).await.unwrap();
        body(server).await;
    })
    .await
}

/// A mailbox watching `server`: made before the action that stops it, so
/// its `Down` carries the real reason.
fn watch(server: &Server<Recorder>) -> mailbox::Mailbox<Down> {
    let mut watch = mailbox::create::<Down>();
    watch.monitor(server.pid());
    watch
}

#[tokio::test(start_paused = true)]
async fn terminate_runs_on_a_normal_stop() {
    let log = Log::default();
    run_recorder(Recorder::new(&log), |server| async move {
        server.stop().await.unwrap();
        assert_eq!(server.exit_reason(), Some(ExitReason::Normal));
    })
    .await
    .unwrap();
    assert_eq!(lines(&log), ["init", "terminate normal"]);
}

#[tokio::test(start_paused = true)]
async fn terminate_runs_when_a_callback_stops_the_server() {
    let log = Log::default();
    run_recorder(Recorder::new(&log), |server| async move {
        let mut watch = watch(&server);
        server.call(Request::Stop, LONG).await.unwrap();
        assert_eq!(watch.receive().await.unwrap().reason, ExitReason::Shutdown);
    })
    .await
    .unwrap();
    assert_eq!(lines(&log), ["init", "terminate shutdown"]);
}

#[tokio::test(start_paused = true)]
async fn terminate_runs_after_a_panic_and_the_nursery_sees_the_failure() {
    let log = Log::default();
    let outcome = run_recorder(Recorder::new(&log), |server| async move {
        let error = server.call(Request::Panic, LONG).await.unwrap_err();
        assert!(matches!(
            error,
            GenServerError::Exited {
                reason: ExitReason::Panic(_),
                ..
            }
        ));
    })
    .await;
    let failures = outcome.unwrap_err();
    assert_eq!(failures.failures().len(), 1, "{failures}");
    assert!(failures.to_string().contains("boom"), "{failures}");
    assert_eq!(lines(&log), ["init", "terminate panic: boom"]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_task_stops_its_server_with_the_error() {
    let log = Log::default();
    let outcome = run_recorder(Recorder::new(&log), |server| async move {
        let mut watch = watch(&server);
        server.call(Request::FailInTask, LONG).await.unwrap();
        assert_eq!(
            watch.receive().await.unwrap().reason,
            ExitReason::error("job failed")
        );
    })
    .await;
    assert!(outcome.is_err());
    assert_eq!(lines(&log), ["init", "terminate error: job failed"]);
}

#[tokio::test(start_paused = true)]
async fn a_deferred_reply_dropped_by_a_panicking_task_reports_the_panic() {
    let log = Log::default();
    let _ = run_recorder(Recorder::new(&log), |server| async move {
        let error = server
            .call(Request::PanicInDeferredTask, LONG)
            .await
            .unwrap_err();
        match error {
            GenServerError::Exited {
                reason: ExitReason::Panic(message),
                ..
            } => assert!(message.contains("job panicked")),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_lets_terminate_await_within_the_grace_period() {
    let log = Log::default();
    let mut recorder = Recorder::new(&log);
    recorder.slow_terminate = Duration::from_millis(100);
    let started = Instant::now();
    nursery(|n| async move {
        let server = gen_server::start(&n, recorder).await.unwrap();
        let mut watch = watch(&server);
        n.shutdown(Duration::from_secs(1));
        assert_eq!(watch.receive().await.unwrap().reason, ExitReason::Shutdown);
    })
    .await
    .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(
        lines(&log),
        ["init", "terminate shutdown", "terminate done"]
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_grace_period_the_server_is_killed() {
    let log = Log::default();
    let mut recorder = Recorder::new(&log);
    recorder.slow_terminate = Duration::from_secs(100);
    let started = Instant::now();
    let mut watch = mailbox::create::<Down>();
    let _ = nursery(|n| async move {
        let server = gen_server::start(&n, recorder).await.unwrap();
        watch.monitor(server.pid());
        n.shutdown(Duration::from_millis(50));
        let down = watch.receive().await.unwrap();
        assert_eq!(down.reason, ExitReason::Killed);
    })
    .await;
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(lines(&log), ["init", "terminate shutdown"]);
}

#[tokio::test(start_paused = true)]
async fn cancellation_polls_terminate_once_and_reports_killed() {
    let log = Log::default();
    let mut recorder = Recorder::new(&log);
    recorder.slow_terminate = Duration::from_secs(1);
    let mut watch = mailbox::create::<Down>();
    let scope = CancelScope::new();
    let canceller = scope.clone();
    scope
        .run(nursery(|n| async move {
            let server = gen_server::start(&n, recorder).await.unwrap();
            watch.monitor(server.pid());
            canceller.cancel();
            tokio::task::yield_now().await;
        }))
        .await;
    // `terminate` ran up to its first await: one line, not two.
    assert_eq!(lines(&log), ["init", "terminate killed"]);
}

#[tokio::test(start_paused = true)]
async fn send_after_delivers_one_message_after_the_delay() {
    let log = Log::default();
    let seen = log.clone();
    run_recorder(Recorder::new(&log), |server| async move {
        server
            .call(Request::Tick(Duration::from_millis(30)), LONG)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(29)).await;
        server.call(Request::Ping, LONG).await.unwrap();
        assert_eq!(lines(&seen), ["init"]);
        tokio::time::sleep(Duration::from_millis(1)).await;
        server.call(Request::Ping, LONG).await.unwrap();
        assert_eq!(lines(&seen).len(), 2, "{:?}", lines(&seen));
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop().await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(lines(&log).len(), 3, "{:?}", lines(&log));
    assert!(lines(&log)[1].starts_with("tick 1"));
}

#[tokio::test(start_paused = true)]
async fn send_interval_ticks_until_cancelled_and_a_cancelled_timer_stays_silent() {
    let log = Log::default();
    run_recorder(Recorder::new(&log), |server| async move {
        server
            .call(Request::TickEvery(Duration::from_millis(10)), LONG)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(35)).await;
        server.call(Request::CancelTimer, LONG).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop().await.unwrap();
    })
    .await
    .unwrap();
    let ticks: Vec<_> = lines(&log)
        .into_iter()
        .filter(|l| l.starts_with("tick"))
        .collect();
    assert_eq!(ticks.len(), 3, "{ticks:?}");
    assert!(ticks[2].starts_with("tick 3"));
}

#[tokio::test(start_paused = true)]
async fn timers_end_with_their_server() {
    let log = Log::default();
    run_recorder(Recorder::new(&log), |server| async move {
        server
            .call(Request::TickEvery(Duration::from_millis(10)), LONG)
            .await
            .unwrap();
        server.stop().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    })
    .await
    .unwrap();
    assert_eq!(lines(&log), ["init", "terminate normal"]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_nursery_of_a_running_server_is_not_a_failure() {
    let log = Log::default();
    let recorder = Recorder::new(&log);
    nursery(|n| async move {
        let server = gen_server::start(&n, recorder).await.unwrap();
        server.call(Request::Ping, LONG).await.unwrap();
        n.cancel();
    })
    .await
    .unwrap();
    assert_eq!(lines(&log), ["init", "terminate killed"]);
}
