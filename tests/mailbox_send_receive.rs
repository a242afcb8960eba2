//! Mailboxes: sending by address, name and pid; receiving with timeouts;
//! bounded back-pressure; errors that give the message back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use trellis::mailbox::{self, Destination, MailboxError};
use trellis::process::ExitReason;

#[tokio::test]
async fn messages_from_one_sender_arrive_in_order() {
    let mut inbox = mailbox::create::<u32>();
    let to = inbox.address();
    for i in 0..100 {
        to.send(i).await.unwrap();
    }
    for i in 0..100 {
        assert_eq!(inbox.receive().await.unwrap(), i);
    }
}

#[tokio::test]
async fn send_to_an_unknown_name_is_process_not_found_and_gives_the_message_back() {
    let error = mailbox::send("nobody", 7_u32).await.unwrap_err();
    assert_eq!(
        error.error(),
        &MailboxError::ProcessNotFound {
            to: Destination::Name("nobody".into())
        }
    );
    assert_eq!(error.into_inner(), 7);
}

#[tokio::test]
async fn send_to_an_unknown_pid_is_the_same_error_as_to_an_unknown_name() {
    let gone = mailbox::create::<u32>();
    let pid = gone.pid();
    drop(gone);
    let error = mailbox::send(pid, 1_u32).await.unwrap_err();
    assert_eq!(
        error.error(),
        &MailboxError::ProcessNotFound {
            to: Destination::Pid(pid)
        }
    );
    let by_try = mailbox::try_send("nobody", 1_u32).unwrap_err();
    assert!(matches!(
        by_try.error(),
        MailboxError::ProcessNotFound { .. }
    ));
}

#[tokio::test]
async fn unregistering_a_name_never_registered_is_name_not_found() {
    assert_eq!(
        mailbox::unregister("never-registered"),
        Err(MailboxError::NameNotFound {
            name: "never-registered".into()
        })
    );
}

#[tokio::test]
async fn send_accepts_an_address_a_pid_a_name_or_a_string() {
    let mut inbox = mailbox::create::<u32>();
    mailbox::register("refs-inbox", inbox.pid()).unwrap();
    let name = String::from("refs-inbox");
    mailbox::send(inbox.address(), 1_u32).await.unwrap();
    mailbox::send(&inbox.address(), 2_u32).await.unwrap();
    mailbox::send(inbox.pid(), 3_u32).await.unwrap();
    mailbox::send("refs-inbox", 4_u32).await.unwrap();
    mailbox::send(&name, 5_u32).await.unwrap();
    mailbox::send(name, 6_u32).await.unwrap();
    for expected in 1..=6 {
        assert_eq!(inbox.receive().await.unwrap(), expected);
    }
}

#[tokio::test]
async fn send_of_the_wrong_type_is_an_error() {
    let inbox = mailbox::create::<u32>();
    mailbox::register("typed-mailbox", inbox.pid()).unwrap();
    let error = mailbox::send("typed-mailbox", "text").await.unwrap_err();
    assert!(matches!(error.error(), MailboxError::WrongType { .. }));
    assert_eq!(error.into_inner(), "text");
}

#[tokio::test]
async fn an_address_outliving_its_mailbox_reports_the_exit() {
    let inbox = mailbox::create::<u32>();
    let to = inbox.address();
    mailbox::destroy(inbox);
    assert!(to.is_closed());
    let error = to.send(1).await.unwrap_err();
    assert_eq!(
        error.error(),
        &MailboxError::Exited {
            pid: to.pid(),
            reason: ExitReason::Normal
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_bounded_mailbox_applies_back_pressure() {
    let mut inbox = mailbox::create_bounded::<u32>(2);
    let to = inbox.address();
    to.send(1).await.unwrap();
    to.send(2).await.unwrap();
    let full = to.try_send(3).unwrap_err();
    assert_eq!(full.error(), &MailboxError::Full { pid: inbox.pid() });
    assert_eq!(full.into_inner(), 3);

    // `send` waits for room, and gets it when the receiver takes one.
    let sender = tokio::spawn(async move {
        to.send(3).await.unwrap();
        Instant::now()
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!sender.is_finished());
    let freed_at = Instant::now();
    assert_eq!(inbox.receive().await.unwrap(), 1);
    assert_eq!(sender.await.unwrap(), freed_at);
    assert_eq!(inbox.receive().await.unwrap(), 2);
    assert_eq!(inbox.receive().await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn receive_timeout_gives_up_after_the_timeout() {
    let mut inbox = mailbox::create::<u32>();
    let started = Instant::now();
    let error = inbox
        .receive_timeout(Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        MailboxError::Timeout {
            timeout: Duration::from_millis(20)
        }
    );
    assert_eq!(started.elapsed(), Duration::from_millis(20));
    inbox.address().send(4).await.unwrap();
    assert_eq!(
        inbox
            .receive_timeout(Duration::from_millis(20))
            .await
            .unwrap(),
        4
    );
}

#[tokio::test(start_paused = true)]
async fn receive_or_else_returns_the_fallback_on_timeout_only() {
    let mut inbox = mailbox::create::<&str>();
    let got = inbox
        .receive_or_else(Duration::from_millis(5), || async { "fallback" })
        .await;
    assert_eq!(got.unwrap(), "fallback");
    inbox.address().try_send("real").unwrap();
    let got = inbox
        .receive_or_else(Duration::from_millis(5), || async { "fallback" })
        .await;
    assert_eq!(got.unwrap(), "real");
}

#[tokio::test]
async fn receive_is_cancel_safe() {
    let mut inbox = mailbox::create::<u32>();
    let to = inbox.address();
    {
        let receiving = inbox.receive();
        tokio::pin!(receiving);
        assert!(futures_poll_once(receiving.as_mut()).await.is_none());
    }
    to.send(9).await.unwrap();
    assert_eq!(inbox.receive().await.unwrap(), 9);
}

/// Polls once; `None` if pending.
async fn futures_poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut fut).poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

#[tokio::test]
async fn open_registers_the_name_for_its_body_only() {
    let pid = mailbox::open(Some("scoped"), |inbox: mailbox::Mailbox<()>| async move {
        assert_eq!(trellis::registry::whereis("scoped"), Some(inbox.pid()));
        inbox.pid()
    })
    .await
    .unwrap();
    assert_eq!(trellis::registry::whereis("scoped"), None);
    assert!(!trellis::process::is_alive(pid));
}

#[tokio::test]
async fn a_receiver_whose_mailbox_never_empties_still_lets_other_tasks_run() {
    // Current-thread runtime: without tokio's cooperative budget, the
    // receiver would take all 10,000 messages in one poll before the
    // observer task ran once.
    let mut inbox = mailbox::create::<u32>();
    let to = inbox.address();
    for i in 0..10_000 {
        to.send(i).await.unwrap();
    }
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let receiver = tokio::spawn(async move {
        for i in 0..10_000 {
            assert_eq!(inbox.receive().await.unwrap(), i);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let observer = tokio::spawn({
        let received = Arc::clone(&received);
        async move { received.load(Ordering::Relaxed) }
    });
    let seen = observer.await.unwrap();
    receiver.await.unwrap();
    assert!(seen < 10_000, "the observer ran only after {seen} messages");
    assert_eq!(received.load(Ordering::Relaxed), 10_000);
}

#[tokio::test]
async fn dropping_a_mailbox_drops_the_messages_waiting_in_it() {
    let inbox = mailbox::create::<tokio::sync::oneshot::Sender<u32>>();
    let to = inbox.address();
    let (reply, answer) = tokio::sync::oneshot::channel();
    to.send(reply).await.unwrap();
    drop(inbox);
    // The sender queued in the mailbox is gone with it: the waiter learns
    // at once, instead of waiting for an answer that cannot come.
    assert!(answer.await.is_err());
    assert!(to.send(tokio::sync::oneshot::channel().0).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_from_many_senders_on_many_threads_all_arrive_in_each_senders_order() {
    const SENDERS: u32 = 4;
    const EACH: u32 = 10_000;
    let mut inbox = mailbox::create::<(u32, u32)>();
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let to = inbox.address();
            tokio::spawn(async move {
                for i in 0..EACH {
                    to.send((sender, i)).await.unwrap();
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let mut next = [0_u32; SENDERS as usize];
    for _ in 0..SENDERS * EACH {
        let (sender, i) = inbox.receive().await.unwrap();
        assert_eq!(i, next[sender as usize], "sender {sender} out of order");
        next[sender as usize] += 1;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(next.iter().all(|&n| n == EACH));
}
