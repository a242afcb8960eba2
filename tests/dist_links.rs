//! Monitors and links across nodes, both directions, against real Erlang
//! nodes: `DOWN`/`EXIT` on a process's end, and `noconnection` when its node
//! is killed or goes silent (`SIGSTOP`) for the tick time.

#![cfg(feature = "dist")]

use std::time::Duration;

use trellis::dist::{self, DistOptions, Incoming, NodeEvent, Term, ToTerm, atom, tuple};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

const READY: &str = "dist_peer:start(), dist_peer:print(ready).";

async fn trellis_node(prefix: &str) -> dist::DistNode {
    dist_common::setup();
    dist::start(DistOptions::short(unique(prefix)).cookie(COOKIE))
        .await
        .expect("distribution starts")
}

async fn next(mailbox: &mut dist::DistMailbox) -> Incoming {
    tokio::time::timeout(WAIT, mailbox.recv())
        .await
        .expect("within the wait")
        .expect("node running")
}

#[tokio::test]
async fn a_trellis_monitor_on_an_erlang_server_fires_when_it_stops() {
    let node = trellis_node("watcher").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let mut mailbox = node.mailbox().unwrap();
    let monitor = mailbox.monitor(("echo", erl.name.as_str())).await.unwrap();
    let stopped: Term = node
        .call(("echo", erl.name.as_str()), atom("stop"), WAIT)
        .await
        .unwrap();
    assert_eq!(stopped, atom("stopped"));
    let Incoming::Down {
        monitor: fired,
        reason,
        process,
    } = next(&mut mailbox).await
    else {
        panic!("not a DOWN")
    };
    assert_eq!(fired, monitor);
    assert_eq!(reason, atom("normal"));
    assert_eq!(process, tuple(vec![atom("echo"), atom(&erl.name)]));
}

#[tokio::test]
async fn monitoring_a_name_nobody_holds_is_down_noproc_at_once() {
    let node = trellis_node("watcher").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let mut mailbox = node.mailbox().unwrap();
    mailbox
        .monitor(("nobody", erl.name.as_str()))
        .await
        .unwrap();
    let Incoming::Down { reason, .. } = next(&mut mailbox).await else {
        panic!("not a DOWN")
    };
    assert_eq!(reason, atom("noproc"));
}

#[tokio::test]
async fn an_erlang_monitor_on_a_trellis_mailbox_fires_when_it_closes() {
    let node = trellis_node("watched").await;
    let mut watched = node.register("watched").unwrap();
    let mut erl = ErlNode::start(
        &unique("watcher"),
        COOKIE,
        node.name(),
        "dist_peer:watch({watched, list_to_atom(os:getenv(\"TRELLIS_NODE\"))}).",
    );
    // `monitoring` follows the monitor on the same connection.
    let Incoming::Message { term, .. } = next(&mut watched).await else {
        panic!("not a message")
    };
    assert_eq!(term, atom("monitoring"));
    watched.close(atom("bye"));
    assert_eq!(erl.line().await, "{down,bye}");
}

#[tokio::test]
async fn links_carry_exits_both_ways() {
    let node = trellis_node("linked").await;
    let mut inbox = node.register("inbox").unwrap();
    let mut erl = ErlNode::start(
        &unique("peer"),
        COOKIE,
        node.name(),
        "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
         spawn(fun() -> {inbox, T} ! {doomed, self()}, receive go -> exit(boom) end end), \
         dist_peer:forward().",
    );
    erl.expect("ready").await;
    // Ours → theirs: a link to the doomed process, then `go`.
    let Incoming::Message {
        from: Some(doomed), ..
    } = next(&mut inbox).await
    else {
        panic!("no pid")
    };
    inbox.link(&doomed).await.unwrap();
    inbox.send(&doomed, atom("go")).await.unwrap();
    let Incoming::Exit { from, reason } = next(&mut inbox).await else {
        panic!("not an EXIT")
    };
    assert_eq!((from, reason), (doomed, atom("boom")));
    // Theirs → ours: `fwd` (trapping exits) links to a mailbox that closes.
    let mut mailbox = node.mailbox().unwrap();
    let me = mailbox.pid().clone();
    mailbox
        .send(
            ("fwd", erl.name.as_str()),
            tuple(vec![atom("link"), me.to_term()]),
        )
        .await
        .unwrap();
    let Incoming::Message { term, .. } = next(&mut mailbox).await else {
        panic!("not a message")
    };
    assert_eq!(term, atom("linked"));
    mailbox.close(atom("bye"));
    let exit = erl.line().await;
    assert!(
        exit.starts_with("{'EXIT',<") && exit.ends_with(">,bye}"),
        "{exit}"
    );
}

#[tokio::test]
async fn a_killed_node_brings_down_and_exit_noconnection_to_every_watcher() {
    let node = trellis_node("watcher").await;
    let mut inbox = node.register("inbox").unwrap();
    let mut erl = ErlNode::start(
        &unique("victim"),
        COOKIE,
        node.name(),
        "dist_peer:start(), T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
         {inbox, T} ! {me, self()}, dist_peer:print(ready), receive after infinity -> ok end.",
    );
    erl.expect("ready").await;
    let Incoming::Message {
        from: Some(shell), ..
    } = next(&mut inbox).await
    else {
        panic!("no pid")
    };
    let mut watcher = node.mailbox().unwrap();
    let monitor = watcher.monitor(("echo", erl.name.as_str())).await.unwrap();
    inbox.link(&shell).await.unwrap();
    erl.signal("-9");
    let Incoming::Down {
        monitor: fired,
        reason,
        ..
    } = next(&mut watcher).await
    else {
        panic!("not a DOWN")
    };
    assert_eq!((fired, reason), (monitor, atom("noconnection")));
    let Incoming::Exit { from, reason } = next(&mut inbox).await else {
        panic!("not an EXIT")
    };
    assert_eq!((from, reason), (shell, atom("noconnection")));
}

#[tokio::test]
async fn a_silent_node_is_declared_down_within_the_tick_time() {
    dist_common::setup();
    let tick = Duration::from_secs(2);
    let node = dist::start(
        DistOptions::short(unique("watcher"))
            .cookie(COOKIE)
            .net_ticktime(tick),
    )
    .await
    .unwrap();
    let mut events = node.monitor_nodes();
    let mut erl = ErlNode::start_with(
        &unique("sleeper"),
        COOKIE,
        node.name(),
        READY,
        &["-kernel", "net_ticktime", "2"],
    );
    erl.expect("ready").await;
    let mut watcher = node.mailbox().unwrap();
    watcher.monitor(("echo", erl.name.as_str())).await.unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, events.recv()).await.unwrap(),
        Some(NodeEvent::Up(erl.name.clone()))
    );
    // Alive and ticking: nothing for twice the tick time.
    assert!(
        tokio::time::timeout(2 * tick, watcher.recv())
            .await
            .is_err(),
        "a ticking node stays up"
    );
    erl.signal("-STOP");
    let stopped = std::time::Instant::now();
    let Incoming::Down { reason, .. } = next(&mut watcher).await else {
        panic!("not a DOWN")
    };
    assert_eq!(reason, atom("noconnection"));
    assert!(stopped.elapsed() <= tick + Duration::from_secs(1));
    let Some(NodeEvent::Down { reason, .. }) =
        tokio::time::timeout(WAIT, events.recv()).await.unwrap()
    else {
        panic!("no nodedown")
    };
    assert_eq!(reason, "net_tick_timeout");
}
