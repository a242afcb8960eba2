//! `pg` across nodes, against real Erlang nodes running a `pg` scope of the
//! same name: a Trellis member is listed by Erlang's `pg:get_members` and
//! leaves when it ends; members that joined before the scope was shared
//! arrive with the sync; Erlang members appear in the Trellis scope as
//! remote pids and go when they end or their node dies.

#![cfg(feature = "dist")]

use trellis::dist::{self, DistMailbox, DistNode, DistOptions, ErlPid, FromTerm, Incoming, atom};
use trellis::dist::{tagged, tuple};
use trellis::mailbox;
use trellis::pg::{self, PgEvent, PgMonitor};
use trellis::process::Pid;

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

async fn trellis_node(prefix: &str) -> DistNode {
    dist_common::setup();
    dist::start(DistOptions::short(unique(prefix)).cookie(COOKIE))
        .await
        .expect("distribution starts")
}

/// An Erlang node running `pg` scope `scope` and `dist_peer:pg_peer`.
async fn erlang_with_scope(node: &DistNode, scope: &str) -> ErlNode {
    let mut erl = ErlNode::start(
        &unique("pgpeer"),
        COOKIE,
        node.name(),
        &format!("dist_peer:pg_peer('{scope}')."),
    );
    erl.expect("ready").await;
    erl
}

async fn next_event(monitor: &mut PgMonitor) -> PgEvent {
    tokio::time::timeout(WAIT, monitor.next())
        .await
        .expect("within the wait")
        .expect("the scope lives")
}

async fn next_message(mailbox: &mut DistMailbox) -> dist::Term {
    loop {
        match tokio::time::timeout(WAIT, mailbox.recv())
            .await
            .expect("within the wait")
        {
            Some(Incoming::Message { term, .. }) => return term,
            Some(_) => {}
            None => panic!("node stopped"),
        }
    }
}

#[tokio::test]
async fn a_trellis_member_is_listed_by_erlang_pg_and_leaves_when_it_ends() {
    let node = trellis_node("pgshare").await;
    let scope_name = unique("scope");
    let scope = pg::scope(&scope_name);
    let mut erl = erlang_with_scope(&node, &scope_name).await;
    node.share_pg(&scope).unwrap();
    // Connecting is enough: the Trellis scope discovers Erlang's.
    assert!(node.ping(&erl.name, WAIT).await);

    let member = mailbox::create::<()>();
    scope.join("workers", member.pid()).unwrap();
    assert_eq!(erl.line().await, "{join,workers,1}");

    // Erlang lists the Trellis process's own pid.
    let mut asking = node.mailbox().unwrap();
    let me = asking.pid().clone();
    asking
        .send(
            ("pg_peer", erl.name.as_str()),
            tuple(vec![atom("members"), atom("workers"), me.into()]),
        )
        .await
        .unwrap();
    let reply = next_message(&mut asking).await;
    let (_, members): (dist::Term, Vec<ErlPid>) = FromTerm::from_term(reply).unwrap();
    assert_eq!(members, vec![node.erl_pid(member.pid()).unwrap()]);

    // Its end is a leave on the Erlang side.
    mailbox::destroy(member);
    assert_eq!(erl.line().await, "{leave,workers,1}");
}

#[tokio::test]
async fn erlang_members_appear_as_remote_pids_and_go_when_they_end_or_their_node_dies() {
    let node = trellis_node("pgseen").await;
    let scope_name = unique("scope");
    let scope = pg::scope(&scope_name);
    let (mut jobs, now) = scope.monitor("jobs");
    assert!(now.is_empty());
    let erl = erlang_with_scope(&node, &scope_name).await;
    node.share_pg(&scope).unwrap();
    let peer = node.mailbox().unwrap();
    let to = ("pg_peer", erl.name.as_str());

    peer.send(to, tagged("join", vec![atom("jobs")]))
        .await
        .unwrap();
    let PgEvent::Join { pids, .. } = next_event(&mut jobs).await else {
        panic!("not a join")
    };
    let [first]: [Pid; 1] = pids.try_into().unwrap();
    assert!(!first.is_local());
    let first_erl = node.erl_pid(first).unwrap();
    assert_eq!(first_erl.node.name, erl.name);
    assert_eq!(scope.get_members("jobs"), vec![first]);

    // It ends: Erlang's scope says so, and it leaves here.
    peer.send(to, tagged("stop", vec![first_erl.into()]))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut jobs).await,
        PgEvent::Leave {
            group: "jobs".into(),
            pids: vec![first]
        }
    );

    // Its node dies: its members leave here.
    peer.send(to, tagged("join", vec![atom("jobs")]))
        .await
        .unwrap();
    let PgEvent::Join { pids, .. } = next_event(&mut jobs).await else {
        panic!("not a join")
    };
    erl.signal("-9");
    assert_eq!(
        next_event(&mut jobs).await,
        PgEvent::Leave {
            group: "jobs".into(),
            pids
        }
    );
    assert!(scope.get_members("jobs").is_empty());
}

#[tokio::test]
async fn members_that_joined_before_sharing_are_synced_and_a_leave_crosses_too() {
    let node = trellis_node("pgearly").await;
    let scope_name = unique("scope");
    let scope = pg::scope(&scope_name);
    let early = mailbox::create::<()>();
    scope.join("early", early.pid()).unwrap();
    scope.join("early", early.pid()).unwrap();
    let mut erl = erlang_with_scope(&node, &scope_name).await;
    node.share_pg(&scope).unwrap();
    assert!(node.ping(&erl.name, WAIT).await);
    // Both listings arrive with the sync that answers Erlang's discover.
    assert_eq!(erl.line().await, "{join,early,2}");
    scope.leave("early", early.pid()).unwrap();
    assert_eq!(erl.line().await, "{leave,early,1}");
}
