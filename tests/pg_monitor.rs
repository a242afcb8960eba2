//! pg monitors: a group's monitor and a scope's monitor receive every join
//! and leave, in order, including the leaves of exiting processes.

use std::collections::HashMap;

use trellis::mailbox;
use trellis::pg::{self, PgEvent};

fn join(group: &str, pid: trellis::process::Pid) -> PgEvent {
    PgEvent::Join {
        group: group.into(),
        pids: vec![pid],
    }
}

fn leave(group: &str, pids: Vec<trellis::process::Pid>) -> PgEvent {
    PgEvent::Leave {
        group: group.into(),
        pids,
    }
}

#[tokio::test(start_paused = true)]
async fn a_group_monitor_gets_the_members_then_each_join_and_leave_of_that_group() {
    let scope = pg::scope("pg-monitor-group");
    let a = mailbox::create::<()>();
    let b = mailbox::create::<()>();
    scope.join("g", a.pid()).unwrap();
    let (mut monitor, now) = scope.monitor("g");
    assert_eq!(now, [a.pid()]);
    scope.join("other", b.pid()).unwrap(); // not this group
    scope.join("g", b.pid()).unwrap();
    scope.join("g", b.pid()).unwrap();
    scope.leave("g", a.pid()).unwrap();
    assert_eq!(monitor.next().await, Some(join("g", b.pid())));
    assert_eq!(monitor.next().await, Some(join("g", b.pid())));
    assert_eq!(monitor.next().await, Some(leave("g", vec![a.pid()])));
    assert_eq!(monitor.try_next(), None);
}

#[tokio::test(start_paused = true)]
async fn an_exit_reaches_monitors_as_one_leave_per_group_listing_each_join() {
    let scope = pg::scope("pg-monitor-exit");
    let a = mailbox::create::<()>();
    let pid = a.pid();
    scope.join("g", pid).unwrap();
    scope.join("g", pid).unwrap();
    scope.join("h", pid).unwrap();
    let (mut monitor, groups) = scope.monitor_scope();
    assert_eq!(
        groups,
        HashMap::from([("g".into(), vec![pid, pid]), ("h".into(), vec![pid])])
    );
    mailbox::destroy(a);
    assert_eq!(monitor.next().await, Some(leave("g", vec![pid, pid])));
    assert_eq!(monitor.next().await, Some(leave("h", vec![pid])));
    assert_eq!(monitor.try_next(), None);
}

#[tokio::test(start_paused = true)]
async fn a_scope_monitor_sees_every_group_and_a_dropped_monitor_sees_nothing() {
    let scope = pg::scope("pg-monitor-scope");
    let a = mailbox::create::<()>();
    let (mut all, groups) = scope.monitor_scope();
    assert!(groups.is_empty());
    let (dropped, _) = scope.monitor("x");
    drop(dropped);
    scope.join("x", a.pid()).unwrap();
    scope.join("y", a.pid()).unwrap();
    assert_eq!(all.next().await, Some(join("x", a.pid())));
    assert_eq!(all.next().await, Some(join("y", a.pid())));
}

#[tokio::test(start_paused = true)]
async fn monitors_of_another_scope_see_nothing() {
    let (mut elsewhere, _) = pg::scope("pg-monitor-elsewhere").monitor_scope();
    let a = mailbox::create::<()>();
    pg::scope("pg-monitor-here").join("g", a.pid()).unwrap();
    mailbox::destroy(a);
    assert_eq!(elsewhere.try_next(), None);
}
