//! pg dispatch: to every member, to one at random, round-robin; errors for
//! an empty group and a member that cannot take the message.

use std::collections::HashMap;

use trellis::mailbox;
use trellis::pg::{self, PgError};

#[tokio::test(start_paused = true)]
async fn send_all_reaches_each_listing_of_each_member() {
    let scope = pg::scope("pg-dispatch-all");
    let mut a = mailbox::create::<u32>();
    let mut b = mailbox::create::<u32>();
    scope.join("g", a.pid()).unwrap();
    scope.join("g", b.pid()).unwrap();
    scope.join("g", b.pid()).unwrap();
    assert_eq!(scope.send_all("g", 7_u32), 3);
    assert_eq!(a.receive().await.unwrap(), 7);
    assert_eq!(b.receive().await.unwrap(), 7);
    assert_eq!(b.receive().await.unwrap(), 7);
    assert!(a.try_receive().is_none());
    assert_eq!(scope.send_all("nobody", 1_u32), 0);
}

#[test]
fn round_robin_takes_members_in_turn() {
    let scope = pg::scope("pg-dispatch-rr");
    let inboxes: Vec<_> = (0..3).map(|_| mailbox::create::<u32>()).collect();
    for inbox in &inboxes {
        scope.join("g", inbox.pid()).unwrap();
    }
    let picked: Vec<_> = (0..6_u32)
        .map(|i| scope.send_round_robin("g", i).unwrap())
        .collect();
    let pids: Vec<_> = inboxes.iter().map(|i| i.pid()).collect();
    assert_eq!(
        picked,
        [pids[0], pids[1], pids[2], pids[0], pids[1], pids[2]]
    );
    assert_eq!(scope.pick_round_robin("g"), Some(pids[0]));
}

#[test]
fn random_picks_spread_over_every_member() {
    let scope = pg::scope("pg-dispatch-random");
    let inboxes: Vec<_> = (0..4).map(|_| mailbox::create::<u32>()).collect();
    for inbox in &inboxes {
        scope.join("g", inbox.pid()).unwrap();
    }
    let mut counts = HashMap::new();
    for i in 0..400_u32 {
        *counts
            .entry(scope.send_random("g", i).unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|&n| n > 40), "{counts:?}");
}

#[test]
fn an_empty_group_and_a_wrong_mailbox_type_are_errors() {
    let scope = pg::scope("pg-dispatch-errors");
    assert_eq!(
        scope.send_random("g", 1_u32),
        Err(PgError::NoMembers { group: "g".into() })
    );
    assert_eq!(scope.pick_random("g"), None);
    assert_eq!(scope.pick_round_robin("g"), None);
    let words = mailbox::create::<String>();
    scope.join("g", words.pid()).unwrap();
    assert!(matches!(
        scope.send_round_robin("g", 1_u32),
        Err(PgError::SendFailed { pid, .. }) if pid == words.pid()
    ));
}
