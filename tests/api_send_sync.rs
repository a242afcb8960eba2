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
        n.spawn(async {})?;
        Ok::<_, NurseryError>(())
    }));
    send(&n.start(|status: TaskStatus<u8>| async move { status.started(1) }));
}

fn spawn_nursery_inside_a_task(n: &Nursery) -> impl Future<Output = ()> + Send + 'static {
    let n = n.clone();
    async move {
        let _ = n.spawn(async { trellis::nursery(|_inner| async {}).await });
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
    use trellis::gen_server::{self, Context, GenServer, Response};
    use trellis::mailbox;
    use trellis::process::{Down, Exit, ExitReason, Pid};

    struct Echo;

    impl GenServer for Echo {
        type Arg = ();
        type Call = u8;
        type Reply = u8;
        type Cast = ();
        type Info = ();

        async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<(), BoxError> {
            Ok(())
        }

        async fn handle_call(&mut self, n: u8, _: &mut Context<Self>) -> Response<u8> {
            Response::Reply(n)
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
        fn send_only<T: Send + 'static>() {}
        send_only::<mailbox::Mailbox<String>>();
    }

    #[tokio::test]
    async fn otp_futures_are_send() {
        let mut inbox = mailbox::create::<u8>();
        send(&inbox.receive());
        send(&mailbox::send("x", 1_u8));
        trellis::nursery(|n| async move {
            let start = gen_server::start(&n, Echo, (), ());
            send(&start);
            let server = start.await.unwrap();
            send(&server.call(1, Duration::from_secs(1)));
            send(&gen_server::call::<Echo>("x", 1, Duration::from_secs(1)));
            send(&gen_server::serve(
                Echo,
                (),
                (),
                trellis::TaskStatus::ignored(),
            ));
            server.stop().await;
            Ok::<_, trellis::NurseryError>(())
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
    is::<trellis::supervisor::SupervisorRef>();
    send(&trellis::dynamic_supervisor::start_child(
        "d",
        trellis::supervisor::ChildSpec::task("t", || async {}),
    ));
}
