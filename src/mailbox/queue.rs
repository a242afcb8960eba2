//! The private queue under a mailbox: a tokio channel, bounded or not, of
//! messages and signal nudges, and views that wrap one message type into
//! another mailbox's (a gen_server's `info`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

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
    Unbounded(mpsc::UnboundedSender<Item<M>>),
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
                .map_err(|e| (false, e.0.into_message())),
            Tx::View(view) => view.try_send(message),
        }
    }

    pub(super) async fn send(&self, message: M) -> Result<(), M> {
        match self {
            Tx::Bounded(tx) => tx
                .send(Item::Message(message))
                .await
                .map_err(|e| e.0.into_message()),
            Tx::Unbounded(tx) => tx
                .send(Item::Message(message))
                .map_err(|e| e.0.into_message()),
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
    Unbounded(mpsc::UnboundedReceiver<Item<M>>),
}

/// A fresh channel for a mailbox: bounded with `Some(capacity)`.
pub(crate) fn channel<M>(capacity: Option<usize>) -> (Tx<M>, Rx<M>) {
    match capacity {
        Some(capacity) => {
            let (tx, rx) = mpsc::channel(capacity);
            (Tx::Bounded(tx), Rx::Bounded(rx))
        }
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
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
            Rx::Unbounded(rx) => rx.try_recv().ok(),
        }
    }
}
