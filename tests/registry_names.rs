//! The node-wide name registry: uniqueness, typed lookups, names released
//! however their process ends, and the duplicate-key registry.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use trellis::mailbox::{self, Address, Mailbox};
use trellis::process::{Down, ExitReason};
use trellis::registry::{self, DuplicateRegistry, RegistryError};
use trellis::{CancelScope, move_on_after};

#[tokio::test]
async fn a_name_resolves_to_its_process_with_the_right_type() {
    let mut inbox = mailbox::create::<u32>();
    registry::register("typed-inbox", inbox.pid()).unwrap();
    assert_eq!(registry::whereis("typed-inbox"), Some(inbox.pid()));
    let address: Address<u32> = registry::lookup("typed-inbox").unwrap();
    address.send(5).await.unwrap();
    assert_eq!(inbox.receive().await.unwrap(), 5);
    assert!(
        registry::registered()
            .iter()
            .any(|(name, pid)| &**name == "typed-inbox" && *pid == inbox.pid())
    );
}

#[tokio::test]
async fn a_lookup_with_the_wrong_type_is_an_error_value() {
    let inbox = mailbox::create::<u32>();
    registry::register("wrong-type", inbox.pid()).unwrap();
    let error = registry::lookup::<Address<String>>("wrong-type").unwrap_err();
    assert!(
        matches!(error, RegistryError::WrongType { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("wrong-type"), "{error}");
    let error = registry::lookup_pid::<Address<String>>(inbox.pid()).unwrap_err();
    assert!(
        matches!(error, RegistryError::WrongType { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_taken_name_is_refused_and_unregister_frees_it() {
    let first = mailbox::create::<()>();
    let second = mailbox::create::<()>();
    registry::register("taken", first.pid()).unwrap();
    let error = registry::register("taken", second.pid()).unwrap_err();
    assert!(matches!(error, RegistryError::NameAlreadyExists { .. }));
    assert_eq!(registry::unregister("taken").unwrap(), first.pid());
    assert!(matches!(
        registry::unregister("taken"),
        Err(RegistryError::NameNotFound { .. })
    ));
    registry::register("taken", second.pid()).unwrap();
    assert_eq!(registry::whereis("taken"), Some(second.pid()));
}

#[tokio::test]
async fn unregister_all_removes_every_name_of_a_process() {
    let inbox = mailbox::create::<()>();
    registry::register("many-1", inbox.pid()).unwrap();
    registry::register("many-2", inbox.pid()).unwrap();
    registry::unregister_all(inbox.pid());
    assert_eq!(registry::whereis("many-1"), None);
    assert_eq!(registry::whereis("many-2"), None);
    assert!(inbox.pid().is_local());
}

#[tokio::test]
async fn registering_a_dead_process_is_an_error() {
    let gone = mailbox::create::<()>();
    let pid = gone.pid();
    drop(gone);
    assert_eq!(
        registry::register("ghost", pid),
        Err(RegistryError::ProcessNotFound { pid })
    );
}

#[tokio::test]
async fn names_are_released_when_the_process_panics() {
    let task = tokio::spawn(async {
        let inbox = mailbox::create::<()>();
        registry::register("panicker", inbox.pid()).unwrap();
        tokio::task::yield_now().await;
        let fail = true;
        assert!(!fail, "process failed");
        drop(inbox);
    });
    assert!(task.await.is_err());
    assert_eq!(registry::whereis("panicker"), None);
}

#[tokio::test(start_paused = true)]
async fn names_are_released_when_the_process_is_cancelled() {
    let mut watch = mailbox::create::<Down>();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let scope = CancelScope::new();
    let canceller = scope.clone();
    let opened = async move {
        mailbox::open(Some("cancelled-one"), |inbox: Mailbox<()>| async move {
            tx.send(inbox.pid()).unwrap();
            std::future::pending::<()>().await;
        })
        .await
    };
    let cancel_soon = async {
        let pid = rx.await.unwrap();
        watch.monitor(pid);
        assert_eq!(registry::whereis("cancelled-one"), Some(pid));
        canceller.cancel();
    };
    let (outcome, ()) = tokio::join!(scope.run(opened), cancel_soon);
    assert!(outcome.is_none(), "the scope was cancelled");
    assert_eq!(registry::whereis("cancelled-one"), None);
    assert_eq!(watch.receive().await.unwrap().reason, ExitReason::Killed);
}

#[test]
fn two_processes_racing_for_one_name_exactly_one_wins() {
    for round in 0..200 {
        let name = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let contenders: Vec<_> = (0..2)
            .map(|_| {
                let barrier = barrier.clone();
                let name = name.clone();
                std::thread::spawn(move || {
                    let inbox = mailbox::create::<()>();
                    barrier.wait();
                    let won = registry::register(&name, inbox.pid()).is_ok();
                    (won, inbox)
                })
            })
            .collect();
        let results: Vec<(bool, Mailbox<()>)> =
            contenders.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(won, _)| *won).collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(registry::whereis(&name), Some(winners[0].1.pid()));
    }
}

#[tokio::test]
async fn duplicate_keys_hold_several_processes_until_they_end() {
    let topics = DuplicateRegistry::<String, Address<&'static str>>::new();
    let mut a = mailbox::create::<&'static str>();
    let mut b = mailbox::create::<&'static str>();
    topics
        .register("news".into(), a.pid(), a.address())
        .unwrap();
    topics
        .register("news".into(), b.pid(), b.address())
        .unwrap();
    topics
        .register("sport".into(), b.pid(), b.address())
        .unwrap();
    assert_eq!(topics.count(&"news".into()), 2);

    let mut sent = 0;
    topics.dispatch(&"news".into(), |_, to| {
        to.try_send("extra").unwrap();
        sent += 1;
    });
    assert_eq!(sent, 2);
    assert_eq!(a.receive().await.unwrap(), "extra");
    assert_eq!(b.receive().await.unwrap(), "extra");

    let b_pid = b.pid();
    drop(b);
    assert_eq!(
        topics
            .lookup(&"news".into())
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>(),
        [a.pid()]
    );
    assert_eq!(topics.count(&"sport".into()), 0);
    assert!(!topics.keys().contains(&"sport".to_string()));
    topics.unregister(&"news".into(), a.pid());
    assert_eq!(topics.count(&"news".into()), 0);
    assert!(matches!(
        topics.register("news".into(), b_pid, a.address()),
        Err(RegistryError::ProcessNotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn open_refuses_a_taken_name_without_running_its_body() {
    let holder = mailbox::create::<()>();
    registry::register("open-taken", holder.pid()).unwrap();
    let ran = move_on_after(Duration::from_secs(1), async {
        mailbox::open(Some("open-taken"), |_: Mailbox<()>| async { true }).await
    })
    .await
    .unwrap();
    assert!(matches!(
        ran,
        Err(mailbox::MailboxError::NameAlreadyExists { .. })
    ));
}
