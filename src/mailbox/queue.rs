//! The private queue under a mailbox, of messages and signal nudges: a
//! tokio channel when bounded, a queue of our own when not, and views that
//! wrap one message type into another mailbox's (a gen_server's `info`).
//!
//! Why an unbounded queue of our own: every process has a mailbox for its
//! whole life, and most mailboxes are empty most of the time. tokio's
//! unbounded channel allocates about 1 KiB up front (its shared state,
//! aligned to 128 bytes, and a first block of 32 slots) — half of what an
//! idle gen_server cost. [`Unbounded`] is a `VecDeque` under a mutex held
//! for one push or pop, grown by the messages waiting, the receiver's waker
//! taken on each send as tokio's is. It lives inside the mailbox's
//! [`Link`] (what every address of the process shares), so a mailbox is one
//! allocation besides its process entry, and the receiver reaches it
//! through the same link. No sender count: the mailbox holds an address of
//! its own, so its queue never ends for lack of senders while it can be
//! read.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;

use crate::loom::lock;
use crate::process::Entry;

/// What travels through a mailbox's channel: a message, or a nudge that a
/// signal (link exit, monitor down) is waiting in the process entry.
pub(crate) enum Item<M> {
    Message(M),
    Signal,
}

/// What a process's addresses share: its entry and the sending side of its
/// queue (the queue itself when unbounded).
pub(crate) struct Link<M> {
    pub(crate) entry: Arc<Entry>,
    pub(crate) tx: Tx<M>,
}

/// The sending side, bounded or unbounded, or a view that wraps messages
/// into another mailbox's type (a gen_server's `info`).
pub(crate) enum Tx<M> {
    Bounded(mpsc::Sender<Item<M>>),
    Unbounded(Unbounded<M>),
    View(Arc<dyn Forward<M>>),
}

/// Sends `M` into a mailbox of another type.
pub(crate) trait Forward<M>: Send + Sync {
    fn try_send(&self, message: M) -> Result<(), (bool, M)>;
    fn send(&self, message: M) -> Pin<Box<dyn Future<Output = Result<(), M>> + Send + '_>>;
}

pub(super) struct View<M, N> {
    pub(super) inner: Arc<Link<N>>,
    pub(super) wrap: fn(M) -> N,
    pub(super) unwrap: fn(N) -> M,
}

impl<M: Send + 'static, N: Send + 'static> Forward<M> for View<M, N> {
    /// `Err((full, message))`.
    fn try_send(&self, message: M) -> Result<(), (bool, M)> {
        self.inner
            .tx
            .try_send((self.wrap)(message))
            .map_err(|(full, n)| (full, (self.unwrap)(n)))
    }

    fn send(&self, message: M) -> Pin<Box<dyn Future<Output = Result<(), M>> + Send + '_>> {
        Box::pin(async move {
            self.inner
                .tx
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
            Tx::Unbounded(queue) => queue
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
            Tx::Unbounded(queue) => queue
                .send(Item::Message(message))
                .map_err(Item::into_message),
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
            Tx::Unbounded(queue) => {
                let _ = queue.send(Item::Signal);
            }
            Tx::View(_) => {}
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match self {
            Tx::Bounded(tx) => tx.is_closed(),
            Tx::Unbounded(queue) => lock(&queue.state).closed,
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

/// The receiving side. Dropping it closes the queue and drops what is
/// waiting in it (a queued call's reply sender, so that its caller learns
/// the process has ended).
pub(crate) enum Rx<M> {
    Bounded(mpsc::Receiver<Item<M>>),
    /// The queue in this link's [`Tx::Unbounded`].
    Unbounded(Arc<Link<M>>),
}

/// A fresh mailbox channel, bounded with `Some(capacity)`: the link its
/// addresses share, made with its process entry by `entry` (which gets the
/// link, to wake the mailbox by), and its receiving side.
pub(crate) fn channel<M>(
    capacity: Option<usize>,
    entry: impl FnOnce(&Weak<Link<M>>) -> Arc<Entry>,
) -> (Arc<Link<M>>, Rx<M>) {
    match capacity {
        Some(capacity) => {
            let (tx, rx) = mpsc::channel(capacity);
            let link = Arc::new_cyclic(|link| Link {
                entry: entry(link),
                tx: Tx::Bounded(tx),
            });
            (link, Rx::Bounded(rx))
        }
        None => {
            let link = Arc::new_cyclic(|link| Link {
                entry: entry(link),
                tx: Tx::Unbounded(Unbounded::default()),
            });
            let rx = Rx::Unbounded(Arc::clone(&link));
            (link, rx)
        }
    }
}

impl<M> Rx<M> {
    /// The next item; `None` once a bounded channel has no sender left
    /// (which a mailbox, holding an address of its own, never sees).
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item<M>>> {
        match self {
            Rx::Bounded(rx) => rx.poll_recv(cx),
            Rx::Unbounded(link) => link.queue().poll_recv(cx).map(Some),
        }
    }

    /// Items waiting (messages and signal nudges).
    pub(super) fn len(&self) -> usize {
        match self {
            Rx::Bounded(rx) => rx.len(),
            Rx::Unbounded(link) => lock(&link.queue().state).items.len(),
        }
    }

    pub(super) fn try_recv(&mut self) -> Option<Item<M>> {
        match self {
            Rx::Bounded(rx) => rx.try_recv().ok(),
            Rx::Unbounded(link) => lock(&link.queue().state).items.pop_front(),
        }
    }
}

impl<M> Drop for Rx<M> {
    fn drop(&mut self) {
        if let Rx::Unbounded(link) = self {
            link.queue().close();
        }
    }
}

impl<M> Link<M> {
    /// The queue of a link made by [`channel`] with no capacity.
    fn queue(&self) -> &Unbounded<M> {
        match &self.tx {
            Tx::Unbounded(queue) => queue,
            Tx::Bounded(_) | Tx::View(_) => unreachable!("an unbounded receiver's link"),
        }
    }
}

/// An unbounded mailbox queue, kept in its mailbox's [`Link`].
pub(crate) struct Unbounded<M> {
    state: Mutex<State<M>>,
}

/// The most items an empty queue keeps room for while it waits.
const KEPT_CAPACITY: usize = 32;

struct State<M> {
    items: VecDeque<Item<M>>,
    /// The receiver's waker while it waits; taken by the send that wakes it.
    waker: Option<Waker>,
    /// The receiver is gone: sends fail.
    closed: bool,
}

impl<M> Default for Unbounded<M> {
    fn default() -> Self {
        Unbounded {
            state: Mutex::new(State {
                items: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        }
    }
}

impl<M> Unbounded<M> {
    /// Queues `item`, waking the receiver; hands it back if the receiver is
    /// gone.
    fn send(&self, item: Item<M>) -> Result<(), Item<M>> {
        let mut state = lock(&self.state);
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

    /// The next item, or `Pending` with the receiver's waker kept.
    ///
    /// Takes from tokio's cooperative budget as tokio's channels do, so that
    /// a process whose mailbox never empties still lets its worker run the
    /// other tasks.
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Item<M>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let mut state = lock(&self.state);
        if let Some(item) = state.items.pop_front() {
            coop.made_progress();
            return Poll::Ready(item);
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

    /// The receiver is gone: later sends fail, and what waits is dropped.
    fn close(&self) {
        let mut state = lock(&self.state);
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

    fn unbounded() -> (Arc<Link<u64>>, Rx<u64>) {
        channel(None, |_| Entry::new(None))
    }

    #[test]
    fn an_empty_queue_gives_back_the_room_a_burst_made() {
        let (link, mut rx) = unbounded();
        for i in 0..10_000 {
            link.tx.try_send(i).ok().unwrap();
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut received = 0;
        while let Poll::Ready(Some(Item::Message(i))) = rx.poll_recv(&mut cx) {
            assert_eq!(i, received);
            received += 1;
        }
        assert_eq!(received, 10_000);
        assert!(lock(&link.queue().state).items.capacity() <= KEPT_CAPACITY);
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_hands_the_message_back() {
        let (link, rx) = unbounded();
        link.tx.try_send(1).ok().unwrap();
        drop(rx);
        assert!(link.tx.is_closed());
        assert!(
            lock(&link.queue().state).items.is_empty(),
            "what waited is dropped"
        );
        assert!(matches!(link.tx.try_send(7), Err((false, 7))));
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send() {
        let (link, mut rx) = unbounded();
        let woken = Arc::new(Flag::default());
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        link.tx.try_send(3).ok().unwrap();
        assert!(woken.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(matches!(
            rx.poll_recv(&mut cx),
            Poll::Ready(Some(Item::Message(3)))
        ));
    }

    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
