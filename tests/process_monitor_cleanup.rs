//! Issue 19 faults, pinned: monitors and links end with the process that
//! holds them (as in Erlang), and a deferred reply handle dropped by a panic
//! in an unrelated task answers `NoReply` at once.

use std::time::Duration;

use tokio::time::Instant;
use trellis::gen_server::{self, Builder, Context, GenServer, GenServerError, Init, Response};
use trellis::process::{self, Down, Pid};
use trellis::{BoxError, mailbox, nursery};

const LONG: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_mailbox_monitor_is_removed_from_the_target_when_the_watcher_ends() {
    let target = mailbox::create::<()>();
    let mut watcher = mailbox::create::<Down>();
    watcher.monitor(target.pid());
    watcher.monitor(target.pid());
    assert_eq!(process::stats(target.pid()).unwrap().monitored_by, 2);
    assert_eq!(process::stats(watcher.pid()).unwrap().monitors, 2);
    drop(watcher);
    assert_eq!(process::stats(target.pid()).unwrap().monitored_by, 0);
}

#[tokio::test]
async fn a_delivered_down_leaves_no_monitor_behind_on_the_watcher() {
    let mut watcher = mailbox::create::<Down>();
    let target = mailbox::create::<()>();
    watcher.monitor(target.pid());
    drop(target);
    watcher.receive().await.unwrap();
    assert_eq!(process::stats(watcher.pid()).unwrap().monitors, 0);
}

#[tokio::test]
async fn demonitor_removes_the_monitor_from_both_sides() {
    let target = mailbox::create::<()>();
    let mut watcher = mailbox::create::<Down>();
    let monitor = watcher.monitor(target.pid());
    assert!(watcher.demonitor(target.pid(), monitor));
    assert_eq!(process::stats(target.pid()).unwrap().monitored_by, 0);
    assert_eq!(process::stats(watcher.pid()).unwrap().monitors, 0);
}

#[tokio::test]
async fn a_link_is_removed_from_the_other_side_when_a_process_ends() {
    let stays = mailbox::create::<()>();
    let mut goes = mailbox::create::<()>();
    goes.link(stays.pid());
    assert_eq!(process::stats(stays.pid()).unwrap().links, 1);
    drop(goes);
    assert_eq!(process::stats(stays.pid()).unwrap().links, 0);
}

/// Monitors a long-lived process from `init`, as a restarting server would.
struct Watcher {
    target: Pid,
}

impl GenServer for Watcher {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        ctx.monitor(self.target);
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

#[tokio::test(start_paused = true)]
async fn a_restarted_gen_server_does_not_leak_monitors_on_the_process_it_watches() {
    let target = mailbox::create::<()>();
    let pid = target.pid();
    nursery(|n| async move {
        for _ in 0..3 {
            let watcher = Builder::new(Watcher { target: pid }).start(&n).await?;
            assert_eq!(process::stats(pid).unwrap().monitored_by, 1);
            watcher.stop().await?;
            assert_eq!(process::stats(pid).unwrap().monitored_by, 0);
        }
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

/// Defers every call and hands the reply handle to a detached task that
/// panics without answering.
struct Delegator;

impl GenServer for Delegator {
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
        ctx: &mut Context<Self>,
    ) -> Result<Response<()>, BoxError> {
        let reply = ctx.defer().expect("in handle_call");
        // Not one of the server's own tasks: its panic does not stop it.
        tokio::spawn(async move {
            let _reply = reply;
            panic!("worker crashed");
        });
        Ok(Response::NoReply)
    }
}

#[tokio::test(start_paused = true)]
async fn a_reply_handle_dropped_by_a_panic_elsewhere_answers_no_reply_at_once() {
    nursery(|n| async move {
        let server = gen_server::start(&n, Delegator).await?;
        let before = Instant::now();
        let error = server.call((), LONG).await.unwrap_err();
        assert_eq!(error, GenServerError::NoReply { pid: server.pid() });
        assert_eq!(Instant::now(), before, "the caller did not wait");
        // The server was not the one exiting: it still serves.
        assert!(process::is_alive(server.pid()));
        server.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
