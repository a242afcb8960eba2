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

#[test]
fn supervision_types_and_futures_are_send() {
    use trellis::application::{AppSpec, ApplicationError, Applications};
    use trellis::supervisor::{self, ChildSpec, Options, Supervisor, SupervisorError, Tree};
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
    send(&supervisor::start(
        vec![],
        Options::new(),
        TaskStatus::ignored(),
    ));
    send(&trellis::dynamic_supervisor::start(
        trellis::dynamic_supervisor::Options::new(),
        "d",
        TaskStatus::ignored(),
    ));
    send(&trellis::node::run(vec![], trellis::node::Options::new()));
}
