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
