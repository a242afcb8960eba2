//! Distribution against real Erlang nodes: ping both ways, node events,
//! cookies, `gen_server:call` both ways, `noproc`, node-down, two Trellis
//! nodes. Needs `erl`, `erlc` and `epmd` (Debian's `erlang-nox`).

#![cfg(feature = "dist")]

use std::time::Duration;

use trellis::dist::{
    self, DistError, DistOptions, Incoming, NodeEvent, Term, ToTerm, atom, tagged,
};
use trellis::gen_server::{self};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, Echo, ErlNode, WAIT, unique};

async fn trellis_node(prefix: &str) -> dist::DistNode {
    dist_common::setup();
    dist::start(DistOptions::short(unique(prefix)).cookie(COOKIE))
        .await
        .expect("distribution starts")
}

/// The eval line that starts the Erlang echo server and says so.
const READY: &str = "dist_peer:start(), dist_peer:print(ready).";

#[tokio::test]
async fn erlang_pings_a_trellis_node_and_gets_pong() {
    let node = trellis_node("pingee").await;
    let mut erl = ErlNode::start(
        &unique("pinger"),
        COOKIE,
        node.name(),
        "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
         dist_peer:print(net_adm:ping(T)), dist_peer:print(lists:member(T, nodes(hidden))).",
    );
    assert_eq!(erl.line().await, "pong");
    assert_eq!(erl.line().await, "true");
}

#[tokio::test]
async fn a_trellis_node_pings_erlang_sees_it_in_nodes_and_gets_up_and_down_events() {
    let node = trellis_node("pinger").await;
    let mut events = node.monitor_nodes();
    let mut erl = ErlNode::start(&unique("pingee"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    assert!(node.ping(&erl.name, WAIT).await);
    assert_eq!(node.nodes(), vec![erl.name.clone()]);
    let up = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
    assert_eq!(up, Some(NodeEvent::Up(erl.name.clone())));
    erl.signal("-9");
    let down = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
    assert!(matches!(down, Some(NodeEvent::Down { node, .. }) if node == erl.name));
    assert!(node.nodes().is_empty());
}

#[tokio::test]
async fn pinging_a_node_that_does_not_exist_is_pang_not_a_hang() {
    let node = trellis_node("lonely").await;
    let missing = format!("{}@{}", unique("nobody"), dist_common::host());
    assert!(!node.ping(&missing, WAIT).await);
    assert!(matches!(
        node.connect(&missing).await,
        Err(DistError::NodeNotFound { .. })
    ));
}

#[tokio::test]
async fn a_wrong_cookie_is_rejected_both_ways() {
    let node = trellis_node("guarded").await;
    let mut erl = ErlNode::start(
        &unique("intruder"),
        "not-the-cookie",
        node.name(),
        "dist_peer:start(), dist_peer:print(ready), \
         dist_peer:print(net_adm:ping(list_to_atom(os:getenv(\"TRELLIS_NODE\")))).",
    );
    erl.expect("ready").await;
    // Erlang's attempt is refused: it gets pang, and we never list it.
    assert_eq!(erl.one_of(&["pang", "pong"]).await, "pang");
    assert!(node.nodes().is_empty());
    // Ours is refused with a clear error value.
    let error = node.connect(&erl.name).await.unwrap_err();
    assert_eq!(
        error,
        DistError::CookieRejected {
            node: erl.name.clone()
        }
    );
    assert!(node.nodes().is_empty());
}

#[tokio::test]
async fn an_erlang_gen_server_call_reaches_an_exported_trellis_gen_server() {
    let node = trellis_node("echo").await;
    trellis::nursery(|n| {
        let node = node.clone();
        async move {
            let server = gen_server::start(&n, Echo).await.unwrap();
            node.export("echo", server).unwrap();
            let mut erl = ErlNode::start(
                &unique("caller"),
                COOKIE,
                node.name(),
                "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
                 dist_peer:print(gen_server:call({echo, T}, hello)), \
                 dist_peer:print(gen_server:call({echo, T}, {1, <<\"two\">>, [3.5]})), \
                 dist_peer:print(catch gen_server:call({nobody, T}, hello, 5000)).",
            );
            assert_eq!(erl.line().await, "{echo,hello}");
            assert_eq!(erl.line().await, "{echo,{1,<<\"two\">>,[3.5]}}");
            let noproc = erl.line().await;
            assert!(noproc.starts_with("{'EXIT',{noproc,"), "{noproc}");
            n.cancel();
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_trellis_call_reaches_an_erlang_gen_server_by_name_and_by_pid() {
    let node = trellis_node("caller").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let reply: (Term, String) = node
        .call(("echo", erl.name.as_str()), "hi", WAIT)
        .await
        .unwrap();
    assert_eq!(reply, (atom("echo"), "hi".to_string()));
    // Typed values both ways; negative integers stay negative.
    let reply: (Term, Vec<i32>) = node
        .call(("echo", erl.name.as_str()), vec![-1i32, 5], WAIT)
        .await
        .unwrap();
    assert_eq!(reply.1, vec![-1, 5]);
    // By pid: the server's own pid, which it tells.
    let pid: dist::ErlPid = node
        .call(("echo", erl.name.as_str()), atom("whoami"), WAIT)
        .await
        .unwrap();
    assert_eq!(pid.node.name, erl.name);
    let reply: Term = node.call(pid, 7u32, WAIT).await.unwrap();
    assert_eq!(reply, tagged("echo", vec![7u32.to_term()]));
}

#[tokio::test]
async fn calling_an_unknown_name_fails_at_once_with_noproc() {
    let node = trellis_node("caller").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let started = std::time::Instant::now();
    let error = node
        .call::<Term>(("nobody", erl.name.as_str()), "hi", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(error, DistError::NoProcess { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_node_killed_during_a_call_fails_the_call_with_node_down() {
    let node = trellis_node("caller").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    node.connect(&erl.name).await.unwrap();
    let call = node.call::<Term>(
        ("echo", erl.name.as_str()),
        atom("stall"),
        Duration::from_secs(60),
    );
    let kill = async {
        // The call is sent before the kill: both run on this task, the call first.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        erl.signal("-9");
    };
    let (result, ()) = tokio::join!(call, kill);
    assert!(
        matches!(result, Err(DistError::NodeDown { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_server_that_stops_during_a_call_fails_it_with_its_reason() {
    let node = trellis_node("caller").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let result = node
        .call::<Term>(("echo", erl.name.as_str()), atom("stop"), WAIT)
        .await;
    // `stop` replies `stopped` before it ends: the reply wins.
    assert_eq!(result, Ok(atom("stopped")));
    let result = node
        .call::<Term>(("echo", erl.name.as_str()), atom("x"), WAIT)
        .await;
    assert!(
        matches!(result, Err(DistError::NoProcess { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn two_trellis_nodes_call_each_other() {
    let a = trellis_node("a").await;
    let b = trellis_node("b").await;
    trellis::nursery(|n| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let server = gen_server::start(&n, Echo).await.unwrap();
            b.export("echo", server).unwrap();
            let reply: Term = a.call(("echo", b.name()), 42u32, WAIT).await.unwrap();
            assert_eq!(reply, tagged("echo", vec![42u32.to_term()]));
            assert_eq!(a.nodes(), vec![b.name().to_string()]);
            assert!(b.ping(a.name(), WAIT).await);
            n.cancel();
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_16_mib_message_crosses_both_ways() {
    let node = trellis_node("big").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let big = "x".repeat(16 * 1024 * 1024);
    let reply: (Term, String) = node
        .call(("echo", erl.name.as_str()), big.as_str(), WAIT)
        .await
        .unwrap();
    assert_eq!(reply.1.len(), big.len());
    assert!(reply.1 == big);
}

#[tokio::test]
async fn messages_reach_a_registered_mailbox_from_erlang_with_their_sender() {
    let node = trellis_node("inbox").await;
    let mut inbox = node.register("inbox").unwrap();
    let mut erl = ErlNode::start(
        &unique("sender"),
        COOKIE,
        node.name(),
        "{inbox, list_to_atom(os:getenv(\"TRELLIS_NODE\"))} ! {hello, self()}, \
         receive X -> dist_peer:print({got, X}) end.",
    );
    let Some(Incoming::Message { from, term }) =
        tokio::time::timeout(WAIT, inbox.recv()).await.unwrap()
    else {
        panic!("no message")
    };
    let from = from.expect("a registered send names its sender");
    assert_eq!(term, tagged("hello", vec![from.to_term()]));
    inbox.send(&from, "back").await.unwrap();
    assert_eq!(erl.line().await, "{got,<<\"back\">>}");
}

#[tokio::test]
async fn simultaneous_connects_leave_one_connection_and_both_succeed() {
    for _ in 0..5 {
        let a = trellis_node("sim").await;
        let b = trellis_node("sim").await;
        let (ab, ba) = tokio::join!(a.connect(b.name()), b.connect(a.name()));
        assert_eq!((ab, ba), (Ok(()), Ok(())));
        assert_eq!(a.nodes(), vec![b.name().to_string()]);
        assert_eq!(b.nodes(), vec![a.name().to_string()]);
        assert!(a.ping(b.name(), WAIT).await);
        assert!(b.ping(a.name(), WAIT).await);
    }
}

#[tokio::test]
async fn a_node_registers_again_when_epmd_restarts() {
    dist_common::setup();
    // A private EPMD, so that restarting it disturbs no other test.
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let epmd = |args: &[&str]| {
        std::process::Command::new("epmd")
            .arg("-port")
            .arg(port.to_string())
            .args(args)
            .output()
            .unwrap()
    };
    let names = || String::from_utf8_lossy(&epmd(&["-names"]).stdout).into_owned();
    // `-relaxed_command_check`: `-kill` works while nodes are registered.
    epmd(&["-daemon", "-relaxed_command_check"]);
    let _kill_at_end = KillEpmd(port);
    // `epmd -daemon` returns before the daemon listens: wait until it answers.
    let deadline = std::time::Instant::now() + WAIT;
    while !epmd(&["-names"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "private epmd never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let short = unique("phoenix");
    let node = dist::start(DistOptions::short(&short).cookie(COOKIE).epmd_port(port))
        .await
        .unwrap();
    assert!(names().contains(&short), "{}", names());
    epmd(&["-kill"]);
    assert!(!names().contains(&short), "epmd still up");
    epmd(&["-daemon", "-relaxed_command_check"]);
    // Re-registered within a few retries (one a second).
    let deadline = std::time::Instant::now() + WAIT;
    while !names().contains(&short) {
        assert!(std::time::Instant::now() < deadline, "not registered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(node);
}

/// Kills the private EPMD on its port when dropped, even if the test failed.
struct KillEpmd(u16);

impl Drop for KillEpmd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("epmd")
            .args(["-port", &self.0.to_string(), "-kill"])
            .output();
    }
}

#[tokio::test]
async fn a_finished_call_leaves_no_monitor_on_the_erlang_server() {
    let node = trellis_node("caller").await;
    let mut erl = ErlNode::start(&unique("server"), COOKIE, node.name(), READY);
    erl.expect("ready").await;
    let to = ("echo", erl.name.as_str());
    for _ in 0..3 {
        let _: Term = node.call(to, atom("x"), WAIT).await.unwrap();
    }
    // The earlier calls' DEMONITOR_Ps went out ahead of this call's
    // MONITOR_P: only this call monitors the server while it answers.
    let monitors: i64 = node.call(to, atom("monitored_by"), WAIT).await.unwrap();
    assert_eq!(monitors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_way_messages_reaches_a_slower_erlang_reader_complete_and_in_order() {
    const COUNT: u32 = 20_000;
    let node = trellis_node("flood").await;
    let mut erl = ErlNode::start(
        &unique("reader"),
        COOKIE,
        node.name(),
        &format!(
            "register(seq, self()), dist_peer:print(ready), \
             Check = fun F(N) when N > {COUNT} -> dist_peer:print(in_order); \
                         F(N) -> receive {{M, _}} when M =:= N -> F(N + 1); \
                                         {{M, _}} -> dist_peer:print({{out_of_order, N, M}}) end end, \
             Check(1)."
        ),
    );
    erl.expect("ready").await;
    let mailbox = node.mailbox().unwrap();
    // 20 MiB queued far faster than Erlang decodes it: the sender's own
    // writes past the batch limit are partial, and the writer takes over.
    let kib = "k".repeat(1024);
    for i in 1..=COUNT {
        mailbox
            .send(("seq", erl.name.as_str()), (i, kib.as_str()))
            .await
            .unwrap();
    }
    assert_eq!(erl.line().await, "in_order");
}
