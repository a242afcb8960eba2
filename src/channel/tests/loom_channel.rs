//! Loom models of the channel core (STYLE rule 11): each explores every
//! interleaving of two or three threads driving [`Chan`] operations directly (no
//! tokio runtime, no cooperative budget) and checks one of the module's
//! invariants. Run with
//!
//! ```text
//! RUSTFLAGS="--cfg trellis_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --lib --release loom_ -- --test-threads=1
//! ```
//!
//! A lost wakeup shows up as a task blocked in `loom::future::block_on`
//! that nothing wakes, which loom reports as a deadlock.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::thread;

use super::{Chan, Handle, RecvOp, SendOp};
use crate::channel::{RecvError, SendError, TryRecvError};

type Shared = Arc<(Chan<u32>, Handle, Handle)>;

fn open(capacity: usize) -> Shared {
    Arc::new(Chan::new(capacity))
}

/// `Sender::send` without the budget: polls to the end, cancels on drop.
async fn send(shared: &Shared, value: u32) -> Result<(), SendError<u32>> {
    let (chan, tx, _) = &**shared;
    let mut op = SendOp::Start(value);
    let sent = poll_fn(|cx| chan.poll_send(tx, &mut op, cx)).await;
    chan.cancel_send(&mut op);
    sent
}

/// `Receiver::recv` without the budget.
async fn recv(shared: &Shared) -> Result<u32, RecvError> {
    let (chan, _, rx) = &**shared;
    let mut op = RecvOp::Start;
    let received = poll_fn(|cx| chan.poll_recv(rx, &mut op, cx)).await;
    chan.cancel_recv(&mut op);
    received
}

/// Invariants 1–2: a value sent into a buffer while the receiver races to
/// wait for it reaches the receiver, whose wakeup is never lost.
#[test]
fn loom_channel_buffered_send_reaches_a_racing_receiver() {
    loom::model(|| {
        let shared = open(1);
        let sender = thread::spawn({
            let shared = Arc::clone(&shared);
            move || block_on(send(&shared, 1))
        });
        assert_eq!(block_on(recv(&shared)), Ok(1));
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(shared.0.stats().tasks_waiting_receive, 0);
    });
}

/// A rendezvous: whoever comes first waits, the other completes the
/// hand-off and wakes it; both finish.
#[test]
fn loom_channel_rendezvous_hands_off_in_either_order() {
    loom::model(|| {
        let shared = open(0);
        let receiver = thread::spawn({
            let shared = Arc::clone(&shared);
            move || block_on(recv(&shared))
        });
        assert_eq!(block_on(send(&shared, 5)), Ok(()));
        assert_eq!(receiver.join().unwrap(), Ok(5));
        let stats = shared.0.stats();
        assert_eq!(stats.current_buffer_used, 0);
        assert_eq!(stats.tasks_waiting_send + stats.tasks_waiting_receive, 0);
    });
}

/// Invariant 4: a receiver dropped after one poll, while a sender races to
/// hand it a value, never loses the value: it is either received by that
/// poll (and given back on drop) or sent into the buffer later, and it is
/// in the buffer exactly once at the end.
#[test]
fn loom_channel_cancelled_receiver_never_loses_a_handed_value() {
    loom::model(|| {
        let shared = open(1);
        let sender = thread::spawn({
            let shared = Arc::clone(&shared);
            move || shared.0.try_send(&shared.1, 9)
        });
        {
            let (chan, _, rx) = &*shared;
            let mut op = RecvOp::Start;
            let polled = chan.poll_recv(rx, &mut op, &mut Context::from_waker(Waker::noop()));
            match polled {
                // Took it from the buffer: nothing to give back.
                Poll::Ready(received) => {
                    assert_eq!(received, Ok(9));
                    // Put it back by hand so the ending check is uniform.
                    chan.lock().buffer.push_back(9);
                }
                Poll::Pending => chan.cancel_recv(&mut op),
            }
        }
        assert!(sender.join().unwrap().is_ok());
        let (chan, _, rx) = &*shared;
        assert_eq!(chan.try_recv(rx), Ok(9));
        assert_eq!(chan.try_recv(rx), Err(TryRecvError::Empty));
        assert_eq!(chan.stats().tasks_waiting_receive, 0);
    });
}

/// Invariant 5: closing the handle a receiver is blocked on wakes it with
/// `Closed`, whether the close comes before or after it starts waiting.
#[test]
fn loom_channel_close_wakes_a_receiver_blocked_on_the_same_handle() {
    loom::model(|| {
        let shared = open(1);
        let closer = thread::spawn({
            let shared = Arc::clone(&shared);
            move || shared.0.close_receiver(&shared.2)
        });
        assert_eq!(block_on(recv(&shared)), Err(RecvError::Closed));
        closer.join().unwrap();
        assert_eq!(shared.0.stats().tasks_waiting_receive, 0);
    });
}

/// Invariant 5, other side: when the last receiver closes, a sender blocked
/// on a full buffer is refused and gets its value back; the buffer is
/// dropped.
#[test]
fn loom_channel_last_receiver_closing_refuses_a_blocked_sender() {
    loom::model(|| {
        let shared = open(1);
        assert!(shared.0.try_send(&shared.1, 1).is_ok());
        let closer = thread::spawn({
            let shared = Arc::clone(&shared);
            move || shared.0.close_receiver(&shared.2)
        });
        assert_eq!(block_on(send(&shared, 2)), Err(SendError::Disconnected(2)));
        closer.join().unwrap();
        let stats = shared.0.stats();
        assert_eq!(
            (stats.current_buffer_used, stats.tasks_waiting_send),
            (0, 0)
        );
    });
}

/// Invariants 2–3: a sender waiting on a full buffer, dropped while a
/// receiver makes room, is either delivered (its value is in the buffer)
/// or leaves and drops its value: never both, never neither, and the queue
/// is empty either way.
#[test]
fn loom_channel_cancelled_sender_is_delivered_or_leaves_cleanly() {
    loom::model(|| {
        let (chan, tx, rx) = Chan::<Arc<()>>::new(1);
        let shared = Arc::new((chan, tx, rx));
        assert!(shared.0.try_send(&shared.1, Arc::new(())).is_ok());
        let receiver = thread::spawn({
            let shared = Arc::clone(&shared);
            move || shared.0.try_recv(&shared.2).is_ok()
        });
        let value = Arc::new(());
        {
            let (chan, tx, _) = &*shared;
            let mut op = SendOp::Start(Arc::clone(&value));
            let _ = chan.poll_send(tx, &mut op, &mut Context::from_waker(Waker::noop()));
            chan.cancel_send(&mut op);
        }
        assert!(receiver.join().unwrap());
        let (chan, _, rx) = &*shared;
        assert_eq!(chan.stats().tasks_waiting_send, 0);
        // Alive exactly while buffered: delivered, or dropped with its send.
        let copies = Arc::strong_count(&value) - 1;
        assert_eq!(copies, chan.stats().current_buffer_used);
        if copies == 1 {
            assert!(chan.try_recv(rx).is_ok_and(|v| Arc::ptr_eq(&v, &value)));
        }
        assert!(chan.try_recv(rx).is_err());
    });
}

/// Invariants 3–4 with two receivers: the first waiter is cancelled while
/// a value is handed to it; the value reaches the second waiter, which is
/// woken whichever way the race goes.
#[test]
fn loom_channel_value_handed_to_a_cancelled_waiter_reaches_the_next_one() {
    loom::model(|| {
        let shared = open(1);
        let (chan, _, rx) = &*shared;
        let mut first = RecvOp::Start;
        let polled = chan.poll_recv(rx, &mut first, &mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending(), "nothing sent yet: it waits");
        let second = thread::spawn({
            let shared = Arc::clone(&shared);
            move || block_on(recv(&shared))
        });
        let sender = thread::spawn({
            let shared = Arc::clone(&shared);
            move || shared.0.try_send(&shared.1, 4).is_ok()
        });
        chan.cancel_recv(&mut first);
        assert!(sender.join().unwrap());
        assert_eq!(second.join().unwrap(), Ok(4));
        assert_eq!(chan.try_recv(rx), Err(TryRecvError::Empty));
    });
}
