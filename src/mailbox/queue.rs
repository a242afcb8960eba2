//! The private queue under a mailbox, of messages and signal nudges: a
//! tokio channel when bounded, a queue of our own when not, and views that
//! wrap one message type into another mailbox's (a gen_server's `info`).
//!
//! Why an unbounded queue of our own: every process has a mailbox for its
//! whole life, and most mailboxes are empty most of the time. tokio's
//! unbounded channel allocates about 1 KiB up front (its shared state,
//! aligned to 128 bytes, and a first block of 32 slots) — half of what an
//! idle gen_server cost. [`Unbounded`] is one allocation of under 100 bytes
//! whose buffer grows with the messages waiting (a `VecDeque` under a
//! mutex held for one push or pop), the receiver's waker taken on each
//! send as tokio's is.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;

use crate::loom::lock;

/// What travels through a mailbox's channel: a message, or a nudge that a
/// signal (link exit, monitor down) is waiting in the process entry.
pub(crate) enum Item<M> {
    Message(M),
    Signal,
}

/// The sending half, bounded or unbounded, or a view that wraps messages
/// into another mailbox's type (a gen_server's `info`).
pub(crate) enum Tx<M> {
    Bounded(mpsc::Sender<Item<M>>),
    Unbounded(Unbounded<M>),
    View(Arc<dyn Forward<M>>),
}

impl<M> Clone for Tx<M> {
    fn clone(&self) -> Self {
        match self {
            Tx::Bounded(tx) => Tx::Bounded(tx.clone()),
            Tx::Unbounded(tx) => Tx::Unbounded(tx.clone()),
            Tx::View(view) => Tx::View(view.clone()),
        }
    }
}

/// Sends `M` into a mailbox of another type.
pub(crate) trait Forward<M>: Send + Sync {
    fn try_send(&self, message: M) -> Result<(), (bool, M)>;
    fn send(&self, message: M) -> Pin<Box<dyn Future<Output = Result<(), M>> + Send + '_>>;
}

pub(super) struct View<M, N> {
    pub(super) inner: Tx<N>,
    pub(super) wrap: fn(M) -> N,
    pub(super) unwrap: fn(N) -> M,
}

impl<M: Send + 'static, N: Send + 'static> Forward<M> for View<M, N> {
    /// `Err((full, message))`.
    fn try_send(&self, message: M) -> Result<(), (bool, M)> {
        self.inner
            .try_send((self.wrap)(message))
            .map_err(|(full, n)| (full, (self.unwrap)(n)))
    }

    fn send(&self, message: M) -> Pin<Box<dyn Future<Output = Result<(), M>> + Send + '_>> {
        Box::pin(async move {
            self.inner
                .send((self.wrap)(message))
                .await
                .map_err(self.unwrap)
        })
    }
}

impl<M: Send + 'static> Tx<M> {
    /// `Err((full, message))`.
    pub(super) fn try_send(&self, message: M) -> Result<(), (bool, M)> {
        match self {
            Tx::Bounded(tx) => tx.try_send(Item::Message(message)).map_err(|e| match e {
                mpsc::error::TrySendError::Full(item) => (true, item.into_message()),
                mpsc::error::TrySendError::Closed(item) => (false, item.into_message()),
            }),
            Tx::Unbounded(tx) => tx
                .send(Item::Message(message))
                .map_err(|item| (false, item.into_message())),
            Tx::View(view) => view.try_send(message),
        }
    }

    pub(super) async fn send(&self, message: M) -> Result<(), M> {
        match self {
            Tx::Bounded(tx) => tx
                .send(Item::Message(message))
                .await
                .map_err(|e| e.0.into_message()),
            Tx::Unbounded(tx) => tx.send(Item::Message(message)).map_err(Item::into_message),
            Tx::View(view) => view.send(message).await,
        }
    }

    pub(super) fn nudge(&self) {
        match self {
            Tx::Bounded(tx) => {
                // Full: the receiver is busy and checks signals before its
                // next message anyway.
                let _ = tx.try_send(Item::Signal);
            }
            Tx::Unbounded(tx) => {
                let _ = tx.send(Item::Signal);
            }
            Tx::View(_) => {}
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match self {
            Tx::Bounded(tx) => tx.is_closed(),
            Tx::Unbounded(tx) => tx.is_closed(),
            Tx::View(_) => false,
        }
    }
}

impl<M> Item<M> {
    fn into_message(self) -> M {
        match self {
            Item::Message(message) => message,
            // Only messages are ever handed back by a failed send of a
            // message.
            Item::Signal => unreachable!("a failed message send returned a signal"),
        }
    }
}

pub(crate) enum Rx<M> {
    Bounded(mpsc::Receiver<Item<M>>),
    Unbounded(UnboundedRx<M>),
}

/// A fresh channel for a mailbox: bounded with `Some(capacity)`.
pub(crate) fn channel<M>(capacity: Option<usize>) -> (Tx<M>, Rx<M>) {
    match capacity {
        Some(capacity) => {
            let (tx, rx) = mpsc::channel(capacity);
            (Tx::Bounded(tx), Rx::Bounded(rx))
        }
        None => {
            let (tx, rx) = unbounded();
            (Tx::Unbounded(tx), Rx::Unbounded(rx))
        }
    }
}

impl<M> Rx<M> {
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item<M>>> {
        match self {
            Rx::Bounded(rx) => rx.poll_recv(cx),
            Rx::Unbounded(rx) => rx.poll_recv(cx),
        }
    }

    /// Items waiting (messages and signal nudges).
    pub(super) fn len(&self) -> usize {
        match self {
            Rx::Bounded(rx) => rx.len(),
            Rx::Unbounded(rx) => rx.len(),
        }
    }

    pub(super) fn try_recv(&mut self) -> Option<Item<M>> {
        match self {
            Rx::Bounded(rx) => rx.try_recv().ok(),
            Rx::Unbounded(rx) => rx.try_recv(),
        }
    }
}

/// The sending half of an unbounded mailbox queue. Cloning it counts one
/// more sender: the receiver sees the end of the queue once every sender
/// is gone and the queue is empty.
pub(crate) struct Unbounded<M> {
    shared: Arc<Shared<M>>,
}

/// The receiving half of an unbounded mailbox queue. Dropping it closes the
/// queue and drops what is waiting in it (a queued call's reply sender, so
/// that its caller learns the process has ended).
pub(crate) struct UnboundedRx<M> {
    shared: Arc<Shared<M>>,
}

/// The most items an empty queue keeps room for while it waits.
const KEPT_CAPACITY: usize = 32;

struct Shared<M> {
    state: Mutex<State<M>>,
    senders: AtomicUsize,
}

struct State<M> {
    items: VecDeque<Item<M>>,
    /// The receiver's waker while it waits; taken by the send that wakes it.
    waker: Option<Waker>,
    /// The receiver is gone: sends fail.
    closed: bool,
}

fn unbounded<M>() -> (Unbounded<M>, UnboundedRx<M>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waker: None,
            closed: false,
        }),
        senders: AtomicUsize::new(1),
    });
    (
        Unbounded {
            shared: Arc::clone(&shared),
        },
        UnboundedRx { shared },
    )
}

impl<M> Unbounded<M> {
    /// Queues `item`, waking the receiver; hands it back if the receiver is
    /// gone.
    fn send(&self, item: Item<M>) -> Result<(), Item<M>> {
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Err(item);
        }
        state.items.push_back(item);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }
}

impl<M> Clone for Unbounded<M> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Unbounded {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> Drop for Unbounded<M> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: a waiting receiver learns the queue ended.
            let waker = lock(&self.shared.state).waker.take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<M> UnboundedRx<M> {
    /// The next item; `None` once every sender is gone and nothing waits.
    ///
    /// Takes from tokio's cooperative budget as tokio's channels do, so that
    /// a process whose mailbox never empties still lets its worker run the
    /// other tasks.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item<M>>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let mut state = lock(&self.shared.state);
        if let Some(item) = state.items.pop_front() {
            coop.made_progress();
            return Poll::Ready(Some(item));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        // Empty, about to wait: a buffer grown by a burst is given back, so
        // that a process idle after a backlog does not keep it for life.
        if state.items.capacity() > KEPT_CAPACITY {
            state.items = VecDeque::new();
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            slot @ None => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn try_recv(&mut self) -> Option<Item<M>> {
        lock(&self.shared.state).items.pop_front()
    }

    fn len(&self) -> usize {
        lock(&self.shared.state).items.len()
    }
}

impl<M> Drop for UnboundedRx<M> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        state.waker = None;
        let items = std::mem::take(&mut state.items);
        drop(state);
        // Outside the lock: dropping a message may run user code.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[test]
    fn an_empty_queue_gives_back_the_room_a_burst_made() {
        let (tx, mut rx) = unbounded::<u64>();
        for i in 0..10_000 {
            tx.send(Item::Message(i)).ok().unwrap();
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut received = 0;
        while let Poll::Ready(Some(Item::Message(i))) = rx.poll_recv(&mut cx) {
            assert_eq!(i, received);
            received += 1;
        }
        assert_eq!(received, 10_000);
        assert!(lock(&rx.shared.state).items.capacity() <= KEPT_CAPACITY);
    }

    #[test]
    fn the_receiver_sees_the_end_once_every_sender_is_gone() {
        let (tx, mut rx) = unbounded::<u64>();
        let other = tx.clone();
        let mut cx = Context::from_waker(Waker::noop());
        tx.send(Item::Message(1)).ok().unwrap();
        drop(tx);
        assert!(matches!(
            rx.poll_recv(&mut cx),
            Poll::Ready(Some(Item::Message(1)))
        ));
        assert!(rx.poll_recv(&mut cx).is_pending());
        drop(other);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_hands_the_item_back() {
        let (tx, rx) = unbounded::<u64>();
        drop(rx);
        assert!(tx.is_closed());
        assert!(matches!(tx.send(Item::Message(7)), Err(Item::Message(7))));
    }
}
