//! Remote processes as Trellis `Pid`s, against real Erlang nodes: a Trellis
//! gen_server monitors and links an Erlang process by `Pid` and gets
//! `Down`/`Exit` with the right reasons (its exit, `exit(self(), kill)`,
//! `kill -9` of its node: `noconnection`); Erlang processes monitor and link
//! Trellis gen_servers and see their exit reasons; calls by `Pid`.

#![cfg(feature = "dist")]

use tokio::sync::mpsc;
use trellis::BoxError;
use trellis::dist::{
    self, DistError, DistNode, DistOptions, ErlPid, Term, ToTerm, atom, reason_to_term, tagged,
    tuple,
};
use trellis::gen_server::{self, Context, Flow, GenServer, Init, Response};
use trellis::process::{Down, Exit, ExitReason, MonitorRef, Pid};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

const READY: &str = "dist_peer:start(), dist_peer:print(ready).";

async fn trellis_node(prefix: &str) -> DistNode {
    dist_common::setup();
    dist::start(DistOptions::short(unique(prefix)).cookie(COOKIE))
        .await
        .expect("distribution starts")
}

/// What the watching server saw.
#[derive(Debug)]
enum Seen {
    Down(Down),
    Exit(Exit),
    Terminated(ExitReason),
}

enum Watch {
    Monitor(Pid),
    Demonitor(Pid, MonitorRef),
    Link(Pid),
}

/// A gen_server that monitors or links what it is told to and reports
/// every `Down`, `Exit` and its own end.
struct Watcher {
    trap: bool,
    seen: mpsc::UnboundedSender<Seen>,
}

impl GenServer for Watcher {
    type Arg = ();
    type Call = Watch;
    type Reply = Option<MonitorRef>;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        ctx.trap_exits(self.trap);
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Watch,
        ctx: &mut Context<Self>,
    ) -> Result<Response<Option<MonitorRef>>, BoxError> {
        Ok(Response::Reply(match request {
            Watch::Monitor(pid) => Some(ctx.monitor(pid)),
            Watch::Demonitor(pid, monitor) => {
                ctx.demonitor(pid, monitor);
                None
            }
            Watch::Link(pid) => {
                ctx.link(pid);
                None
            }
        }))
    }

    async fn handle_down(&mut self, down: Down, _: &mut Context<Self>) -> Result<Flow, BoxError> {
        let _ = self.seen.send(Seen::Down(down));
        Ok(Flow::Continue)
    }

    async fn handle_exit(&mut self, exit: Exit, _: &mut Context<Self>) -> Result<Flow, BoxError> {
        let _ = self.seen.send(Seen::Exit(exit));
        Ok(Flow::Continue)
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Context<Self>) {
        let _ = self.seen.send(Seen::Terminated(reason.clone()));
    }
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("within the wait")
        .expect("server reports")
}

/// A fresh Erlang node running the test peer, connected to `node`.
async fn peer(node: &DistNode) -> ErlNode {
    let mut erl = ErlNode::start(&unique("peer"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    erl
}

/// Starts a [`Watcher`] in `n` that reports to `seen`.
async fn watcher(
    n: &trellis::Nursery,
    trap: bool,
    seen: mpsc::UnboundedSender<Seen>,
) -> Result<gen_server::Server<Watcher>, gen_server::GenServerError> {
    gen_server::start(n, Watcher { trap, seen }).await
}

/// Runs `body` with a [`Watcher`] (trapping exits if `trap`) started in a
/// nursery, and the receiver of what it sees; the nursery is cancelled
/// once `body` is done.
async fn with_watcher(
    trap: bool,
    body: impl AsyncFnOnce(
        &gen_server::Server<Watcher>,
        &mut mpsc::UnboundedReceiver<Seen>,
    ) -> Result<(), BoxError>,
) {
    let (tx, mut seen) = mpsc::unbounded_channel();
    trellis::nursery(|n| async move {
        let server = watcher(&n, trap, tx).await?;
        body(&server, &mut seen).await?;
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

/// The server's next report, which must be a `Down`.
async fn next_down(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Down {
    match next(seen).await {
        Seen::Down(down) => down,
        _ => panic!("not a Down"),
    }
}

/// The server's next report, which must be an `Exit`.
async fn next_exit(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Exit {
    match next(seen).await {
        Seen::Exit(exit) => exit,
        _ => panic!("not an Exit"),
    }
}

/// A fresh Erlang process on `erl` (unlinked, waiting for `{exit, R}` or
/// `kill`), as a Trellis pid and an Erlang pid.
async fn victim(node: &DistNode, erl: &ErlNode) -> (Pid, ErlPid) {
    let erl_pid: ErlPid = node
        .call(("echo", erl.name.as_str()), atom("victim"), WAIT)
        .await
        .expect("echo answers");
    (node.to_pid(&erl_pid).expect("a remote pid"), erl_pid)
}

async fn tell(node: &DistNode, to: &ErlPid, message: Term) {
    node.mailbox()
        .unwrap()
        .send(to, message)
        .await
        .expect("sent");
}

#[tokio::test]
async fn a_trellis_gen_server_monitoring_an_erlang_process_by_pid_gets_down_with_its_reason() {
    let node = trellis_node("mon").await;
    let erl = peer(&node).await;
    with_watcher(false, async |server, seen| {
        let (crashing, crashing_erl) = victim(&node, &erl).await;
        let (quitting, quitting_erl) = victim(&node, &erl).await;
        assert!(!crashing.is_local());
        assert_ne!(crashing, quitting);
        let first = server.call(Watch::Monitor(crashing), WAIT).await?.unwrap();
        let second = server.call(Watch::Monitor(quitting), WAIT).await?.unwrap();
        tell(&node, &crashing_erl, tagged("exit", vec![atom("boom")])).await;
        let down = next_down(seen).await;
        assert_eq!((down.monitor, down.pid), (first, crashing));
        assert_eq!(reason_to_term(&down.reason), atom("boom"));
        let ExitReason::Error(error) = &down.reason else {
            panic!("not an error")
        };
        assert_eq!(
            error.downcast_ref::<DistError>(),
            Some(&DistError::RemoteExit {
                reason: atom("boom")
            })
        );
        tell(&node, &quitting_erl, tagged("exit", vec![atom("normal")])).await;
        let down = next_down(seen).await;
        assert_eq!(
            (down.monitor, down.pid, down.reason),
            (second, quitting, ExitReason::Normal)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_demonitored_erlang_process_sends_no_down_and_a_gone_one_is_down_noproc() {
    let node = trellis_node("demon").await;
    let erl = peer(&node).await;
    with_watcher(false, async |server, seen| {
        let (pid, erl_pid) = victim(&node, &erl).await;
        let monitor = server.call(Watch::Monitor(pid), WAIT).await?.unwrap();
        server.call(Watch::Demonitor(pid, monitor), WAIT).await?;
        tell(&node, &erl_pid, atom("kill")).await;
        // The process is gone now: a new monitor is `noproc`, and it is the
        // first thing the server sees (no Down for the removed monitor).
        let again = loop {
            let again = server.call(Watch::Monitor(pid), WAIT).await?.unwrap();
            let down = next_down(seen).await;
            assert_eq!(down.monitor, again, "the demonitored Down arrived");
            if down.reason == ExitReason::NoProcess {
                break again;
            }
            // Raced the kill: that monitor saw it (killed); try once more.
            assert_eq!(down.reason, ExitReason::Killed);
        };
        assert_ne!(again, monitor);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_linked_trapping_gen_server_gets_exit_killed_when_the_erlang_process_is_killed() {
    let node = trellis_node("link").await;
    let erl = peer(&node).await;
    with_watcher(true, async |server, seen| {
        let (pid, erl_pid) = victim(&node, &erl).await;
        server.call(Watch::Link(pid), WAIT).await?;
        // Linked: the LINK went out before this call returned, and the kill
        // follows it on the same connection.
        tell(&node, &erl_pid, atom("kill")).await;
        let exit = next_exit(seen).await;
        assert_eq!((exit.pid, exit.reason), (pid, ExitReason::Killed));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_linked_gen_server_not_trapping_exits_stops_with_the_remote_reason() {
    let node = trellis_node("link").await;
    let erl = peer(&node).await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (node, erl) = (&node, &erl);
    let outcome = trellis::nursery(|n| async move {
        let server = watcher(&n, false, tx).await?;
        let (pid, erl_pid) = victim(node, erl).await;
        server.call(Watch::Link(pid), WAIT).await?;
        tell(node, &erl_pid, tagged("exit", vec![atom("badarith")])).await;
        Ok::<_, BoxError>(())
    })
    .await;
    let Seen::Terminated(reason) = next(&mut seen).await else {
        panic!("not the end")
    };
    assert_eq!(reason_to_term(&reason), atom("badarith"));
    assert!(
        outcome.is_err(),
        "an abnormal remote exit stops a linked server"
    );
}

#[tokio::test]
async fn kill_9_of_the_erlang_node_gives_noconnection_to_remote_monitors_and_links() {
    let node = trellis_node("nodedown").await;
    let erl = peer(&node).await;
    with_watcher(true, async |server, seen| {
        let (watched, _) = victim(&node, &erl).await;
        let (linked, _) = victim(&node, &erl).await;
        let monitor = server.call(Watch::Monitor(watched), WAIT).await?.unwrap();
        server.call(Watch::Link(linked), WAIT).await?;
        erl.signal("-9");
        let mut down = None;
        let mut exit = None;
        while down.is_none() || exit.is_none() {
            match next(seen).await {
                Seen::Down(d) => down = Some(d),
                Seen::Exit(e) => exit = Some(e),
                Seen::Terminated(r) => panic!("stopped: {r}"),
            }
        }
        let (down, exit) = (down.unwrap(), exit.unwrap());
        assert_eq!((down.monitor, down.pid), (monitor, watched));
        assert_eq!(reason_to_term(&down.reason), atom("noconnection"));
        assert_eq!(exit.pid, linked);
        assert_eq!(reason_to_term(&exit.reason), atom("noconnection"));
        // A pid of the dead node now: noconnection at once.
        let late = server.call(Watch::Monitor(watched), WAIT).await?.unwrap();
        let d = next_down(seen).await;
        assert_eq!(d.monitor, late);
        assert_eq!(reason_to_term(&d.reason), atom("noconnection"));
        Ok(())
    })
    .await;
}

/// Answers `hello` with `hello_back`.
struct Greeter;

impl GenServer for Greeter {
    type Arg = ();
    type Call = Term;
    type Reply = Term;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        _: Term,
        _: &mut Context<Self>,
    ) -> Result<Response<Term>, BoxError> {
        Ok(Response::Reply(atom("hello_back")))
    }
}

#[tokio::test]
async fn an_erlang_monitor_on_an_exported_gen_server_sees_its_exit_reason() {
    let node = trellis_node("exported").await;
    let eval = "dist_peer:watch_call({greeter, list_to_atom(os:getenv(\"TRELLIS_NODE\"))}).";
    let mut erl = ErlNode::start(&unique("watcher"), COOKIE, node.name(), eval);
    let exporter = node.clone();
    let erl_ref = &mut erl;
    let outcome = trellis::nursery(|n| async move {
        let server = gen_server::start(&n, Greeter).await?;
        exporter.export("greeter", server.clone())?;
        erl_ref.expect("{reply,hello_back}").await;
        let _ = server.stop_with(ExitReason::error("boom")).await;
        Ok::<_, BoxError>(())
    })
    .await;
    assert!(outcome.is_err(), "an error stop fails the nursery");
    erl.expect("{down,{error,<<\"boom\">>}}").await;
    // The name went with the server.
    let gone = node
        .call::<Term>(("greeter", node.name()), atom("hello"), WAIT)
        .await;
    assert!(matches!(gone, Err(DistError::NoProcess { .. })), "{gone:?}");
}

/// Starts a `dist_peer:forward()` node, and has its `fwd` process run
/// `{Verb, Pid, Ack}` (link or monitor) on the Trellis process `pid`.
async fn forwarder_watching(node: &DistNode, verb: &str, pid: Pid) -> ErlNode {
    let mut erl = ErlNode::start(&unique("fwd"), COOKIE, node.name(), "dist_peer:forward().");
    erl.expect("ready").await;
    let me = node.erl_pid(pid).expect("a local pid has an Erlang pid");
    assert_eq!(node.to_pid(&me), Some(pid));
    let mut ack = node.mailbox().unwrap();
    ack.send(
        ("fwd", erl.name.as_str()),
        tuple(vec![atom(verb), me.to_term(), ack.pid().to_term()]),
    )
    .await
    .unwrap();
    let done = tokio::time::timeout(WAIT, ack.recv()).await.unwrap();
    assert!(matches!(done, Some(dist::Incoming::Message { .. })));
    erl
}

/// Has the forwarder on `erl` monitor the Trellis process `pid` once more.
async fn monitor_from_forwarder(node: &DistNode, erl: &ErlNode, pid: Pid) {
    let me = node.erl_pid(pid).unwrap();
    let mut ack = node.mailbox().unwrap();
    ack.send(
        ("fwd", erl.name.as_str()),
        tuple(vec![atom("monitor"), me.to_term(), ack.pid().to_term()]),
    )
    .await
    .unwrap();
    let done = tokio::time::timeout(WAIT, ack.recv()).await.unwrap();
    assert!(matches!(done, Some(dist::Incoming::Message { .. })));
}

#[tokio::test]
async fn an_erlang_process_linked_to_a_trellis_gen_server_gets_its_exit() {
    let node = trellis_node("linked").await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watching = node.clone();
    let outcome = trellis::nursery(|n| async move {
        let server = gen_server::start(&n, Greeter).await?;
        let erl = forwarder_watching(&watching, "link", server.pid()).await;
        let _ = tx.send(erl);
        // Stopping with an error reports that error back, as the server's end.
        let _ = server.stop_with(ExitReason::error("boom")).await;
        Ok::<_, BoxError>(())
    })
    .await;
    assert!(outcome.is_err());
    let mut erl = rx.await.unwrap();
    let line = erl.line().await;
    assert!(line.starts_with("{'EXIT',<"), "{line}");
    assert!(line.ends_with(",{error,<<\"boom\">>}}"), "{line}");
}

#[tokio::test]
async fn erlang_monitors_on_a_trellis_pid_all_fire_with_its_reason() {
    let node = trellis_node("monpid").await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watching = node.clone();
    trellis::nursery(|n| async move {
        let server = gen_server::start(&n, Greeter).await?;
        let erl = forwarder_watching(&watching, "monitor", server.pid()).await;
        // A second monitor from the same process: both fire.
        monitor_from_forwarder(&watching, &erl, server.pid()).await;
        server.stop_with(ExitReason::Shutdown).await?;
        let _ = tx.send(erl);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    let mut erl = rx.await.unwrap();
    let first = erl.line().await;
    let second = erl.line().await;
    assert_ne!(first, second, "two monitors, two references");
    for line in [first, second] {
        assert!(line.starts_with("{'DOWN',#Ref<"), "{line}");
        assert!(line.ends_with(",shutdown}"), "{line}");
    }
}

#[tokio::test]
async fn a_call_by_remote_pid_reaches_the_erlang_server() {
    let node = trellis_node("callpid").await;
    let erl = peer(&node).await;
    let echo: ErlPid = node
        .call(("echo", erl.name.as_str()), atom("whoami"), WAIT)
        .await
        .unwrap();
    let pid = node.to_pid(&echo).unwrap();
    assert_eq!(
        pid.to_string(),
        format!("<{}.{}.{}>", pid.node(), echo.id, echo.serial)
    );
    let reply: Term = node.call(pid, atom("x"), WAIT).await.unwrap();
    assert_eq!(reply, tuple(vec![atom("echo"), atom("x")]));
    // A local pid names no Erlang server.
    let local = node.call::<Term>(Pid::new(), atom("x"), WAIT).await;
    assert!(matches!(local, Err(DistError::NoProcess { .. })));
}

/// Has `erl`'s echo server drop the connection to `node` (Erlang's
/// `erlang:disconnect_node`), and waits until `node` has seen it go.
async fn disconnect(node: &DistNode, erl: &ErlNode) {
    let mut events = node.monitor_nodes();
    let cast = tagged(
        "$gen_cast",
        vec![tagged("disconnect", vec![atom(node.name())])],
    );
    tell_name(node, erl, cast).await;
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("within the wait")
            .expect("events");
        if matches!(&event, dist::NodeEvent::Down { node, .. } if *node == erl.name) {
            break;
        }
    }
    assert!(!node.nodes().contains(&erl.name));
}

async fn tell_name(node: &DistNode, erl: &ErlNode, message: Term) {
    node.mailbox()
        .unwrap()
        .send(("echo", erl.name.as_str()), message)
        .await
        .expect("sent");
}

/// Asks `erl`'s echo server `{question, pid}` until it answers `expected`
/// (the monitor or link made on demand is in place on the Erlang side).
async fn until_erlang_counts(
    node: &DistNode,
    erl: &ErlNode,
    question: &str,
    pid: &ErlPid,
    expected: i64,
) {
    let asking = async {
        loop {
            let count: i64 = node
                .call(
                    ("echo", erl.name.as_str()),
                    tagged(question, vec![pid.to_term()]),
                    WAIT,
                )
                .await
                .expect("echo answers");
            if count == expected {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, asking)
        .await
        .unwrap_or_else(|_| panic!("erlang never counted {expected} for {question}"));
}

#[tokio::test]
async fn a_monitor_on_a_pid_of_a_node_not_connected_connects_first_and_gets_the_real_down() {
    let node = trellis_node("monauto").await;
    let erl = peer(&node).await;
    with_watcher(false, async |server, seen| {
        let (pid, erl_pid) = victim(&node, &erl).await;
        disconnect(&node, &erl).await;
        let monitor = server.call(Watch::Monitor(pid), WAIT).await?.unwrap();
        // No `noconnection`: the node was connected again and the monitor
        // reached the Erlang process.
        until_erlang_counts(&node, &erl, "monitored_by", &erl_pid, 1).await;
        assert!(node.nodes().contains(&erl.name));
        tell(&node, &erl_pid, tagged("exit", vec![atom("boom")])).await;
        let down = next_down(seen).await;
        assert_eq!((down.monitor, down.pid), (monitor, pid));
        assert_eq!(reason_to_term(&down.reason), atom("boom"));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_link_to_a_pid_of_a_node_not_connected_connects_first_and_gets_the_real_exit() {
    let node = trellis_node("linkauto").await;
    let erl = peer(&node).await;
    with_watcher(true, async |server, seen| {
        let (pid, erl_pid) = victim(&node, &erl).await;
        disconnect(&node, &erl).await;
        server.call(Watch::Link(pid), WAIT).await?;
        until_erlang_counts(&node, &erl, "links", &erl_pid, 1).await;
        tell(&node, &erl_pid, atom("kill")).await;
        let exit = next_exit(seen).await;
        assert_eq!((exit.pid, exit.reason), (pid, ExitReason::Killed));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_monitor_or_link_on_a_pid_of_a_node_that_cannot_be_reached_is_noconnection() {
    let node = trellis_node("monnowhere").await;
    let nowhere = ErlPid::new(
        format!("{}@{}", unique("nowhere"), dist_common::host()).as_str(),
        81,
        0,
        1,
    );
    let pid = node.to_pid(&nowhere).expect("a remote pid");
    with_watcher(true, async |server, seen| {
        let monitor = server.call(Watch::Monitor(pid), WAIT).await?.unwrap();
        let down = next_down(seen).await;
        assert_eq!((down.monitor, down.pid), (monitor, pid));
        assert_eq!(reason_to_term(&down.reason), atom("noconnection"));
        server.call(Watch::Link(pid), WAIT).await?;
        let exit = next_exit(seen).await;
        assert_eq!(exit.pid, pid);
        assert_eq!(reason_to_term(&exit.reason), atom("noconnection"));
        Ok(())
    })
    .await;
}
