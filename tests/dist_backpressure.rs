//! One-way sends to a node that does not read: the sender is held back
//! once 1 MiB waits for the connection (OTP's busy distribution port), not
//! queued without bound, and goes on, nothing lost, when the node reads
//! again. Needs `erl` and `epmd` (Debian's `erlang-nox`).

#![cfg(feature = "dist")]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use trellis::dist::{self, DistOptions, Incoming, Term, ToTerm, atom, tuple};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

/// Registers `sink`: counts what it receives; `{count, From}` is answered
/// with `{count, N}`.
const SINK: &str = "register(sink, spawn(fun() -> \
         Loop = fun Loop(N) -> \
             receive \
                 {count, From} -> From ! {count, N}, Loop(N); \
                 _ -> Loop(N + 1) \
             end \
         end, \
         Loop(0) \
     end)), \
     dist_peer:print(ready).";

/// Polls `future` once: its output if it is ready at once.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_to_a_node_that_stops_reading_is_held_back_then_goes_on_losing_nothing() {
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("pusher")).cookie(COOKIE))
        .await
        .unwrap();
    let mut erl = ErlNode::start(&unique("stopped"), COOKIE, node.name(), SINK);
    erl.expect("ready").await;
    let mut mailbox = node.mailbox().unwrap();
    let sink = ("sink", erl.name.as_str());
    mailbox.send(sink, atom("hello")).await.unwrap();

    erl.signal("-STOP");
    // 16 KiB a message: past the kernel's socket buffers and the 1 MiB
    // limit long before 64 MiB.
    let payload = Term::from(eetf::Binary::from(vec![7u8; 16 * 1024]));
    let mut sent = 1u64;
    let mut held = loop {
        assert!(
            sent < 4096,
            "64 MiB sent to a node that reads nothing, and no send held back"
        );
        let mut send = Box::pin(mailbox.send(sink, payload.clone()));
        match poll_once(&mut send) {
            Poll::Ready(result) => {
                result.unwrap();
                sent += 1;
            }
            Poll::Pending => break send,
        }
    };
    // Still held while the node sleeps (nothing drains the queue).
    tokio::task::yield_now().await;
    assert!(
        poll_once(&mut held).is_pending(),
        "let go while nothing drained"
    );

    erl.signal("-CONT");
    tokio::time::timeout(WAIT, held)
        .await
        .expect("the held send goes on once the node reads")
        .unwrap();
    sent += 1;
    let ask = tuple(vec![atom("count"), mailbox.pid().to_term()]);
    mailbox.send(sink, ask).await.unwrap();
    let counted = loop {
        match tokio::time::timeout(WAIT, mailbox.recv()).await.unwrap() {
            Some(Incoming::Message { term, .. }) => break term,
            Some(_) => {}
            None => panic!("the node stopped"),
        }
    };
    assert_eq!(counted, tuple(vec![atom("count"), sent.to_term()]));
}
