//! Links and monitors between processes (mailboxes and gen_servers).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis::BoxError;
use trellis::gen_server::{self, Context, Flow, GenServer, Init, Response, Server};
use trellis::mailbox::{self, MailboxError};
use trellis::process::{Down, Exit, ExitReason, Pid};
use trellis::{NurseryError, nursery};

const LONG: Duration = Duration::from_secs(5);

#[test]
fn pids_are_unique_and_print_like_erlang() {
    let pids: Vec<Pid> = (0..1000).map(|_| Pid::new()).collect();
    let mut sorted = pids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), pids.len());
    assert_eq!(pids[0].to_string(), format!("<0.{}>", pids[0].id()));
}

#[tokio::test(start_paused = true)]
async fn a_monitor_on_a_process_that_already_exited_fires_at_once() {
    let gone = mailbox::create::<()>();
    let pid = gone.pid();
    mailbox::destroy(gone);
    let mut watch = mailbox::create::<Down>();
    let monitor = watch.monitor(pid);
    let down = watch.try_receive().expect("delivered at once").unwrap();
    assert_eq!(
        down,
        Down {
            monitor,
            pid,
            reason: ExitReason::NoProcess
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_monitor_delivers_one_down_with_the_reason() {
    let mut watch = mailbox::create::<Down>();
    let worker = mailbox::create::<()>();
    let monitor = watch.monitor(worker.pid());
    let pid = worker.pid();
    assert!(watch.try_receive().is_none());
    drop(worker);
    assert_eq!(
        watch.receive().await.unwrap(),
        Down {
            monitor,
            pid,
            reason: ExitReason::Normal
        }
    );
    assert!(watch.try_receive().is_none(), "exactly one Down");
}

#[tokio::test(start_paused = true)]
async fn demonitor_silences_the_monitor() {
    let mut watch = mailbox::create::<Down>();
    let worker = mailbox::create::<()>();
    let monitor = watch.monitor(worker.pid());
    assert!(watch.demonitor(worker.pid(), monitor));
    drop(worker);
    assert!(watch.try_receive().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_process_reports_panic_to_its_monitors() {
    let mut watch = mailbox::create::<Down>();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let worker = mailbox::create::<()>();
        tx.send(worker.pid()).unwrap();
        tokio::task::yield_now().await;
        let _keep = worker;
        let fail = true;
        assert!(!fail, "worker failed");
    });
    let pid = rx.await.unwrap();
    watch.monitor(pid);
    assert!(task.await.is_err());
    let down = watch.receive().await.unwrap();
    assert!(matches!(down.reason, ExitReason::Panic(_)), "{down:?}");
}

/// A server that records exits it traps and can crash on request.
struct Peer {
    trapped: Arc<Mutex<Vec<Exit>>>,
    trap: bool,
}

impl GenServer for Peer {
    type Arg = Option<Pid>;
    type Call = &'static str;
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(
        &mut self,
        link_to: Option<Pid>,
        ctx: &mut Context<Self>,
    ) -> Result<Init, BoxError> {
        ctx.trap_exits(self.trap);
        if let Some(pid) = link_to {
            ctx.link(pid);
        }
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: &'static str,
        _: &mut Context<Self>,
    ) -> Result<Response<()>, BoxError> {
        match request {
            "crash" => panic!("peer crashed"),
            "quit" => Ok(Response::ReplyAndStop((), ExitReason::Normal)),
            _ => Ok(Response::Reply(())),
        }
    }

    async fn handle_exit(&mut self, exit: Exit, _: &mut Context<Self>) -> Result<Flow, BoxError> {
        self.trapped.lock().unwrap().push(exit);
        Ok(Flow::Continue)
    }
}

fn peer(trap: bool) -> (Peer, Arc<Mutex<Vec<Exit>>>) {
    let trapped = Arc::new(Mutex::new(Vec::new()));
    (
        Peer {
            trapped: trapped.clone(),
            trap,
        },
        trapped,
    )
}

#[tokio::test(start_paused = true)]
async fn a_linked_server_stops_when_its_partner_panics() {
    let _ = nursery(|n| async move {
        let (a, _) = peer(false);
        let a: Server<Peer> = gen_server::Builder::new(a)
            .arg(None)
            .start(&n)
            .await
            .unwrap();
        let (b, _) = peer(false);
        let b: Server<Peer> = gen_server::Builder::new(b)
            .arg(Some(a.pid()))
            .start(&n)
            .await
            .unwrap();
        let mut watch = mailbox::create::<Down>();
        watch.monitor(a.pid());
        let _ = b.call("crash", LONG).await;
        let down = watch.receive().await.unwrap();
        assert!(
            matches!(down.reason, ExitReason::Panic(ref m) if m.contains("peer crashed")),
            "{down:?}"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_server_trapping_exits_gets_the_exit_as_a_message_and_goes_on() {
    nursery(|n| async move {
        let (a, trapped) = peer(true);
        let a: Server<Peer> = gen_server::Builder::new(a)
            .arg(None)
            .start(&n)
            .await
            .unwrap();
        // The crash is supervised by this inner nursery, so the outer one
        // only sees `a`.
        let a_pid = a.pid();
        let b_pid = nursery(|inner| async move {
            let (b, _) = peer(false);
            let b: Server<Peer> = gen_server::Builder::new(b)
                .arg(Some(a_pid))
                .start(&inner)
                .await
                .unwrap();
            let _ = b.call("crash", LONG).await;
            Ok::<_, NurseryError>(b.pid())
        })
        .await;
        assert!(b_pid.is_err(), "b's panic fails its own nursery");
        a.call("ping", LONG).await.unwrap();
        let trapped = trapped.lock().unwrap().clone();
        assert_eq!(trapped.len(), 1);
        assert!(matches!(trapped[0].reason, ExitReason::Panic(_)));
        a.stop().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_normal_exit_does_not_stop_a_linked_server() {
    nursery(|n| async move {
        let (a, _) = peer(false);
        let a: Server<Peer> = gen_server::Builder::new(a)
            .arg(None)
            .start(&n)
            .await
            .unwrap();
        let (b, _) = peer(false);
        let b: Server<Peer> = gen_server::Builder::new(b)
            .arg(Some(a.pid()))
            .start(&n)
            .await
            .unwrap();
        let mut watch = mailbox::create::<Down>();
        watch.monitor(b.pid());
        b.call("quit", LONG).await.unwrap();
        assert_eq!(watch.receive().await.unwrap().reason, ExitReason::Normal);
        a.call("ping", LONG).await.unwrap();
        a.stop().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_linked_mailbox_learns_of_an_abnormal_exit_on_receive() {
    let mut inbox = mailbox::create::<u32>();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let worker = mailbox::create::<()>();
        tx.send(worker.pid()).unwrap();
        tokio::task::yield_now().await;
        let _keep = worker;
        let fail = true;
        assert!(!fail, "linked worker failed");
    });
    inbox.link(rx.await.unwrap());
    assert!(task.await.is_err());
    let error = inbox.receive().await.unwrap_err();
    assert!(
        matches!(
            error,
            MailboxError::LinkExited {
                reason: ExitReason::Panic(_),
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_mailbox_trapping_exits_receives_them_as_messages() {
    #[derive(Debug)]
    enum Msg {
        Exit(Exit),
    }
    impl From<Exit> for Msg {
        fn from(exit: Exit) -> Self {
            Msg::Exit(exit)
        }
    }
    let mut inbox = mailbox::create::<Msg>();
    inbox.trap_exits();
    let worker = mailbox::create::<()>();
    inbox.link(worker.pid());
    let pid = worker.pid();
    drop(worker);
    let Msg::Exit(exit) = inbox.receive().await.unwrap();
    assert_eq!(
        exit,
        Exit {
            pid,
            reason: ExitReason::Normal
        }
    );
}

#[tokio::test(start_paused = true)]
async fn linking_to_a_dead_process_reports_noproc() {
    #[derive(Debug)]
    struct Got(Exit);
    impl From<Exit> for Got {
        fn from(exit: Exit) -> Self {
            Got(exit)
        }
    }
    let gone = mailbox::create::<()>();
    let pid = gone.pid();
    drop(gone);
    let mut inbox = mailbox::create::<Got>();
    inbox.trap_exits();
    inbox.link(pid);
    let Got(exit) = inbox.receive().await.unwrap();
    assert_eq!(
        exit,
        Exit {
            pid,
            reason: ExitReason::NoProcess
        }
    );
}
