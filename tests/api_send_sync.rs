//! Pins which public types and futures are `Send`, `Sync` and `'static`, so
//! that a change that loses one fails here rather than in a user's build.

use std::future::Future;
use std::time::Duration;

use trellis::{
    CancelScope, Nursery, NurseryError, NurseryOptions, SpawnOptions, StartError, TaskFailure,
    TaskStatus, TooSlow,
};

fn send_sync_static<T: Send + Sync + 'static>(_: &T) {}
fn send<T: Send>(_: &T) {}

fn assert_types() {
    fn is<T: Send + Sync + 'static>() {}
    is::<CancelScope>();
    is::<Nursery>();
    is::<NurseryError>();
    is::<NurseryOptions>();
    is::<SpawnOptions>();
    is::<StartError>();
    is::<TaskFailure>();
    is::<TaskStatus<String>>();
    is::<TooSlow>();
    is::<trellis::RunOptions>();
    is::<trellis::TaskHandle<String>>();
    is::<trellis::TaskError>();
    is::<trellis::TaskInfo>();
    is::<trellis::TaskState>();
    is::<trellis::ForkOptions>();
    is::<trellis::ScopeError>();
}

/// A future that is `Send` stays `Send` inside every Trellis wrapper, so a
/// nursery can be spawned as a task of another nursery.
fn assert_futures(n: &Nursery) {
    let work = async { 1 };
    send_sync_static(&trellis::move_on_after(Duration::from_secs(1), async { 1 }));
    send(&trellis::fail_after(Duration::from_secs(1), work));
    send(&CancelScope::new().run(async {}));
    send(&trellis::checkpoint());
    send(&trellis::wait_shutdown());
    send(&trellis::nursery(|n| async move {
        n.spawn(async {});
    }));
    send(&n.start(|status: TaskStatus<u8>| async move { status.started(1) }));
    send(&n.join());
    send(&n.spawn(async {}));
}

fn spawn_nursery_inside_a_task(n: &Nursery) -> impl Future<Output = ()> + Send + 'static {
    let n = n.clone();
    async move {
        drop(n.spawn(async { trellis::nursery(|_inner| async {}).await }));
    }
}

#[tokio::test]
async fn public_types_and_futures_are_send() {
    assert_types();
    trellis::nursery(|n| async move {
        assert_futures(&n);
        spawn_nursery_inside_a_task(&n).await;
    })
    .await
    .unwrap();
}

mod otp {
    use std::time::Duration;

    use trellis::BoxError;
    use trellis::gen_server::{self, Context, GenServer, Init, Response};
    use trellis::mailbox;
    use trellis::process::{Down, Exit, ExitReason, Pid};

    struct Echo;

    impl GenServer for Echo {
        type Arg = ();
        type Call = u8;
        type Reply = u8;
        type Cast = ();
        type Info = ();

        async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
            Ok(Init::Ready)
        }

        async fn handle_call(
            &mut self,
            n: u8,
            _: &mut Context<Self>,
        ) -> Result<Response<u8>, BoxError> {
            Ok(Response::Reply(n))
        }
    }

    fn is<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}

    #[test]
    fn otp_types_are_send_and_sync() {
        is::<Pid>();
        is::<ExitReason>();
        is::<Down>();
        is::<Exit>();
        is::<mailbox::Address<String>>();
        is::<mailbox::MailboxError>();
        is::<mailbox::SendError<String>>();
        is::<trellis::registry::RegistryError>();
        is::<trellis::registry::DuplicateRegistry<String, Pid>>();
        is::<gen_server::Server<Echo>>();
        is::<gen_server::GenServerError>();
        is::<gen_server::ReplyTo<u8>>();
        is::<gen_server::TimerRef>();
        is::<gen_server::Init>();
        is::<gen_server::GenServerOptions>();
        is::<gen_server::Builder<Echo, ()>>();
        is::<trellis::process::ExitError>();
        is::<trellis::process::ProcessStats>();
        is::<trellis::registry::ProcessRef<gen_server::Server<Echo>>>();
        is::<trellis::registry::ProcessRef<mailbox::Address<String>>>();
        fn send_only<T: Send + 'static>() {}
        send_only::<mailbox::Mailbox<String>>();
    }

    #[tokio::test]
    async fn otp_futures_are_send() {
        let mut inbox = mailbox::create::<u8>();
        send(&inbox.receive());
        send(&mailbox::send("x", 1_u8));
        trellis::nursery(|n| async move {
            let start = gen_server::start(&n, Echo);
            send(&start);
            let server = start.await.unwrap();
            send(&server.call(1, Duration::from_secs(1)));
            send(&gen_server::call::<Echo>("x", 1, Duration::from_secs(1)));
            send(&gen_server::serve(Echo, trellis::TaskStatus::ignored()));
            server.stop().await.unwrap();
        })
        .await
        .unwrap();
    }
}

/// The protocol layer: handles cross tasks, and its futures can be spawned.
#[test]
fn protocol_types_and_futures_are_send_and_sync() {
    use trellis::protocol::{
        Connection, ExtraInfo, FramedProtocol, Loop, Protocol, ProtocolError, Server,
        SocketAddress, TimerHandle, Transport,
    };
    use trellis::testing::MemoryStream;

    fn is<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    struct Idle;
    impl Protocol for Idle {
        fn data_received(&mut self, _data: &[u8]) {}
    }
    is::<Transport>();
    is::<Server>();
    is::<Loop>();
    is::<TimerHandle>();
    is::<ProtocolError>();
    is::<ExtraInfo>();
    is::<SocketAddress>();
    is::<MemoryStream>();
    is::<Connection<Idle>>();
    fn is_send<T: Send + 'static>() {}
    is_send::<FramedProtocol<tokio_util::codec::LinesCodec, ()>>();
    let (a, _b) = trellis::testing::memory_pair(1);
    send(&trellis::protocol::run_connection(Idle, a));
    send(&trellis::protocol::run_server(|| Idle, "127.0.0.1:0"));
    send(&trellis::testing::check_protocol(|| Idle, b""));
    send(&trellis::testing::wait_all_tasks_blocked());
    // Compiled, not run: no transport exists outside a connection.
    fn _with_protocol_is_send(transport: &Transport) {
        send(&transport.with_protocol(|_: &mut Idle| ()));
    }
}

/// The `util` helpers: handles are `Send + Sync + 'static`, and so are their
/// futures and streams when what they wrap is.
#[test]
fn util_types_and_futures_are_send() {
    use trellis::util::*;
    fn is<T: Send + Sync + 'static>() {}
    is::<AsyncValue<String>>();
    is::<AsyncBool>();
    is::<AsyncDictionary<String, u32>>();
    is::<UnqueuedRepeatedEvent>();
    is::<MailboxRepeatedEvent>();
    is::<RepeatedEvents>();
    is::<TaskStats>();
    is::<TaskStatsReport>();
    is::<UtilError>();
    fn send_static<T: Send + 'static>(_: &T) {}
    let v = AsyncValue::new(1u8);
    send_static(&v.wait_value(|x| *x > 1));
    send_static(&v.wait_transition(|_, _| true));
    send_static(&v.eventual_values(|_| true));
    send_static(&v.open_transform(|x| *x as u32));
    send_static(&periodic(Duration::from_secs(1)));
    send_static(&wait_any([async { 1 }]));
    send_static(&wait_all([async { 1 }]));
    send_static(&azip([futures_util::stream::iter(0..1)]));
    send(&AsyncDictionary::<u8, u8>::new().get_wait(&1));
    send(&defer_to_cancelled(
        async { Err::<(), _>(NurseryError::Closed) },
        failures_of::<std::io::Error>(),
    ));
}

#[test]
fn supervision_types_and_futures_are_send() {
    use trellis::application::{AppSpec, ApplicationError, Applications};
    use trellis::supervisor::{
        self, ChildSpec, Supervisor, SupervisorError, SupervisorOptions, Tree,
    };
    fn is<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    is::<ChildSpec>();
    is::<Supervisor>();
    is::<SupervisorError>();
    is::<Tree>();
    is::<AppSpec>();
    is::<Applications>();
    is::<ApplicationError>();
    is::<trellis::node::NodeError>();
    send(&supervisor::serve(
        vec![],
        SupervisorOptions::new(),
        TaskStatus::ignored(),
    ));
    send(&trellis::dynamic_supervisor::serve(
        trellis::dynamic_supervisor::DynamicSupervisorOptions::new().name("d"),
        TaskStatus::ignored(),
    ));
    send(&trellis::node::run(
        vec![],
        trellis::node::NodeOptions::new(),
    ));
}

#[test]
fn supervisor_refs_and_by_name_futures_are_send() {
    fn is<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    is::<trellis::registry::ProcessRef<trellis::supervisor::Supervisor>>();
    send(&trellis::dynamic_supervisor::start_child(
        "d",
        trellis::supervisor::ChildSpec::task("t", || async {}),
    ));
}

/// Pins the auto traits of the channel handles and futures: a `Sender` or
/// `Receiver` of any `T: Send` can be shared between threads, and its futures
/// can be spawned.
mod channel {
    use std::cell::Cell;
    use std::future::Future;

    use trellis::{Receiver, Sender, channel};

    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    fn spawnable<F: Future + Send + 'static>(_: F) {}

    #[test]
    fn handles_of_send_but_not_sync_values_are_send_and_sync() {
        // `Cell` is `Send` but not `Sync`.
        send_sync::<Sender<Cell<u8>>>();
        send_sync::<Receiver<Cell<u8>>>();
        send_sync::<trellis::ChannelStats>();
        send_sync::<trellis::SendError<u8>>();
        send_sync::<trellis::TrySendError<u8>>();
        send_sync::<trellis::RecvError>();
        send_sync::<trellis::TryRecvError>();
    }

    #[test]
    fn send_and_recv_futures_are_send() {
        let (tx, rx) = channel::<Cell<u8>>(1);
        send(&tx.send(Cell::new(1)));
        send(&rx.recv());
        spawnable(async move {
            let _ = tx.send(Cell::new(2)).await;
            let _ = rx.recv().await;
        });
    }

    #[test]
    fn handles_of_non_static_values_work_without_stream_or_sink() {
        let text = String::from("borrowed");
        let (tx, rx) = channel::<&str>(1);
        tx.try_send(&text).unwrap();
        assert_eq!(rx.try_recv(), Ok("borrowed"));
    }
}

/// Pins the auto traits of the `sync` types and futures, so that they can be
/// shared between tasks on any runtime.
mod sync {
    use std::cell::Cell;

    use trellis::sync::{
        Borrower, CapacityLimiter, CapacityLimiterError, CapacityLimiterStats, CapacityToken,
        Condition, Event,
    };

    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}

    #[test]
    fn sync_types_are_send_sync_and_static() {
        send_sync::<Event>();
        send_sync::<CapacityLimiter>();
        send_sync::<CapacityToken>();
        send_sync::<CapacityLimiterStats>();
        send_sync::<CapacityLimiterError>();
        send_sync::<Borrower>();
        send_sync::<Condition<Vec<u8>>>();
        // Like tokio's mutex, a condition over `Send` but not `Sync` state is
        // still `Sync`: the lock serialises all access.
        send_sync::<Condition<Cell<u8>>>();
    }

    #[test]
    fn sync_futures_are_send() {
        let event = Event::new();
        send(&event.wait());
        let limiter = CapacityLimiter::new(1);
        send(&limiter.acquire());
        send(&limiter.acquire_on_behalf_of("x"));
        let cond = Condition::new(Cell::new(0u8));
        send(&cond.lock());
        send(&async {
            let guard = cond.lock().await;
            let guard = cond.wait(guard).await;
            guard.set(1);
        });
    }
}
