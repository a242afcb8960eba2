//! Memory channels: Trio's `open_memory_channel` — cloneable, closable,
//! multi-producer multi-consumer handles over a bounded buffer or a
//! rendezvous.
//!
//! The public semantics are documented on [`channel()`] (the crate root
//! re-exports everything here): closing rules, which channel to pick, and
//! where this one differs from Trio. Channels sit in the structured
//! concurrency layer next to [`sync`](crate::sync): tasks of a nursery talk
//! through them; the OTP layer's mailboxes are addressed queues for processes.
//!
//! # How it is built
//!
//! On `flume`'s bounded channel (`bounded(0)` is a rendezvous there too),
//! which does the queueing, waiting and waking. This module adds Trio's
//! per-handle `close`: every open handle of one side shares one flume handle
//! through an `Arc`, and closing a handle drops its `Arc`, so flume ends the
//! channel exactly when the last open handle of a side goes. The weak
//! references kept in `Shared` let even a closed handle read the buffer for
//! `stats()`, and the open-handle counts are kept here.
//!
//! Trio's statistics also count the tasks waiting to send and to receive.
//! flume does not expose its waiting lists, and counting waits here costs two
//! atomic read-modify-writes per wait, which a consumer that keeps up with
//! its producer pays on nearly every value: it made the one-to-one
//! throughput benchmark up to twice as slow. [`ChannelStats`] leaves them
//! out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use flume::r#async::{RecvFut, SendFut};
use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_sink::Sink;

/// Capacities above this are clamped to it; no memory is reserved up front,
/// so such a channel is effectively unbounded. (flume computes `capacity + 1`
/// internally, which must not overflow.)
const MAX_CAPACITY: usize = isize::MAX as usize;

/// Opens a channel with room for `capacity` buffered values; `0` makes every
/// send a rendezvous with a receiver (Trio's `open_memory_channel`).
///
/// Returns one [`Sender`] and one [`Receiver`]. Clone them to give every task
/// its own handle; each value sent is received exactly once, by one of the
/// receivers, in the order the sends completed. A send waits while the
/// buffer is full; with `capacity == 0` there is no buffer, so a send waits
/// until a receiver is there to take the value (see [`Sender::send`]).
///
/// When a task is done with a handle it [closes](Sender::close) or drops it,
/// and the channel *ends* on each side when the other side's last handle
/// goes: receivers get [`RecvError::EndOfChannel`] once the buffer is
/// drained, senders get their value back in a [`SendError`]. That is how a
/// producer says "no more" and how a consumer that gives up unblocks its
/// producers — no sentinel values, no extra cancellation. Channels are the
/// normal way for tasks of a [`nursery`](crate::nursery()) to talk to each
/// other: spawn the producers with clones of the [`Sender`], let each drop its
/// clone when it returns, and the consumer's loop ends by itself when the
/// last producer is gone.
///
/// Capacities above `isize::MAX` are treated as `isize::MAX`. No memory is
/// reserved up front, so a huge capacity gives an effectively unbounded
/// channel (Trio's `open_memory_channel(math.inf)`).
///
/// # Which channel do I want?
///
/// | if you want… | use |
/// |---|---|
/// | Trio's memory channel: many producers, many consumers, close per handle, a rendezvous for `n = 0` | [`channel(n)`](channel()) |
/// | one consumer, with `reserve`/permits to send without losing a value to cancellation | [`tokio::sync::mpsc`] |
/// | every receiver sees every value | [`tokio::sync::broadcast`] |
/// | only the latest value matters | [`tokio::sync::watch`] |
/// | exactly one reply | [`tokio::sync::oneshot`] |
///
/// # When a channel ends
///
/// | what happened | [`Sender::send`] | [`Receiver::recv`] |
/// |---|---|---|
/// | this handle was closed | [`SendError::Closed`] (value back) | [`RecvError::Closed`] |
/// | every receiver closed or dropped | [`SendError::Disconnected`] (value back) | — |
/// | every sender closed or dropped | — | buffered values, then [`RecvError::EndOfChannel`] |
/// | another clone of the same side was closed | unaffected | unaffected |
///
/// # Differences from Trio
///
/// - **A cancelled send may have been delivered.** Trio's `send` is atomic
///   with respect to cancellation. Here, a `send` future dropped while it
///   waits has either already handed its value over (a receiver will get it)
///   or drops the value; see [`Sender::send`]'s "Cancel safety". Use
///   [`Sender::try_send`] to keep a value that cannot be sent at once.
/// - **Values left in the buffer when the last receiver goes** are dropped
///   when the last sender goes too, not at once.
/// - **Cloning a closed handle** gives another closed handle, instead of
///   raising `ClosedResourceError` (`Clone` cannot fail in Rust).
/// - **Statistics leave out the waiting tasks** (Trio's
///   `tasks_waiting_send`/`tasks_waiting_receive`): counting them would slow
///   down every wait; see [`ChannelStats`].
///
/// # Examples
///
/// The buffer in action:
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (tx, rx) = trellis::channel(2);
/// tx.send("a").await.unwrap();
/// tx.send("b").await.unwrap();
/// // The buffer is full: a third value does not fit.
/// assert!(tx.try_send("c").is_err());
/// assert_eq!(rx.recv().await, Ok("a"));
/// assert_eq!(rx.recv().await, Ok("b"));
/// # }
/// ```
///
/// Three producers and one consumer in a nursery; the consumer's loop ends
/// when the last producer returns and drops its sender:
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::{NurseryError, SendError, channel, nursery};
///
/// let total = nursery(|n| async move {
///     let (tx, rx) = channel::<u32>(4);
///     for id in 0..3 {
///         let tx = tx.clone();
///         n.spawn(async move {
///             for i in 0..10 {
///                 tx.send(id * 100 + i).await?;
///             }
///             Ok::<_, SendError<u32>>(())
///         });
///     }
///     drop(tx); // only the producers' clones keep the channel open
///
///     let mut total = 0;
///     while let Ok(v) = rx.recv().await {
///         total += v;
///     }
///     Ok::<_, NurseryError>(total)
/// })
/// .await
/// .unwrap();
/// assert_eq!(total, (0..3).map(|id| id * 1000 + 45).sum::<u32>());
/// # }
/// ```
#[doc(alias = "open_memory_channel")]
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity.min(MAX_CAPACITY);
    let (tx, rx) = flume::bounded(capacity);
    let tx = Arc::new(tx);
    let rx = Arc::new(rx);
    let shared = Arc::new(Shared {
        capacity,
        tx: Arc::downgrade(&tx),
        rx: Arc::downgrade(&rx),
        open_senders: AtomicUsize::new(1),
        open_receivers: AtomicUsize::new(1),
    });
    let sender = Sender {
        shared: Arc::clone(&shared),
        tx: Some(tx),
        sink: Mutex::new(None),
    };
    let receiver = Receiver {
        shared,
        rx: Some(rx),
        stream: Mutex::new(None),
    };
    (sender, receiver)
}

/// State shared by every handle of one channel: what [`ChannelStats`]
/// reports beyond the buffer.
///
/// All open handles of one side share one flume handle (an `Arc`); the weak
/// references let any handle, even a closed one, read the buffer length while
/// the channel lives. Dropping the last `Arc` of a side drops the flume handle,
/// and flume then ends the channel for the other side.
struct Shared<T> {
    capacity: usize,
    tx: Weak<flume::Sender<T>>,
    rx: Weak<flume::Receiver<T>>,
    open_senders: AtomicUsize,
    open_receivers: AtomicUsize,
}

impl<T> Shared<T> {
    fn stats(&self) -> ChannelStats {
        // Either side sees the same buffer; a side whose handles are all gone
        // cannot be read, and when both are gone nothing can use the buffer.
        let current_buffer_used = match self.tx.upgrade() {
            Some(tx) => tx.len(),
            None => self.rx.upgrade().map_or(0, |rx| rx.len()),
        };
        ChannelStats {
            current_buffer_used,
            max_buffer_size: self.capacity,
            open_send_channels: self.open_senders.load(Ordering::Relaxed),
            open_receive_channels: self.open_receivers.load(Ordering::Relaxed),
        }
    }
}

/// flume's `SendSink`, type-erased (see `Sender::sink`).
type FlumeSink<T> = Box<dyn Sink<T, Error = flume::SendError<T>> + Send + Unpin>;

/// flume's `RecvStream`, type-erased (see `Sender::sink`).
type FlumeStream<T> = Box<dyn Stream<Item = T> + Send + Unpin>;

/// The sending side of a [`channel`]: clone it for every producer, close or
/// drop it when done.
///
/// A `Sender` is a handle; clones share the channel. [`close`](Self::close)
/// (or dropping) ends *this* handle only: other clones keep sending, and the
/// receivers see [`RecvError::EndOfChannel`] once every sender handle is
/// closed or dropped and the buffer is drained.
///
/// For `T: Send + 'static`, `Sender` also implements
/// [`futures_sink::Sink`], so it works with `SinkExt::send`,
/// `StreamExt::forward` and friends. The sink holds at most one value between
/// `start_send` and the next `poll_ready`/`poll_flush`; closing the sink
/// (`SinkExt::close`) flushes that value and then [closes](Self::close) the
/// handle. Flush the sink before mixing it with [`send`](Self::send) on the
/// same handle, or values may overtake each other.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use futures_util::SinkExt;
///
/// let (mut tx, rx) = trellis::channel(4);
/// // Called as `SinkExt` functions: the inherent `send` and `close` win
/// // method-call syntax.
/// SinkExt::send(&mut tx, 1).await.unwrap();
/// SinkExt::close(&mut tx).await.unwrap(); // flushes, then closes the handle
/// assert_eq!(tx.stats().open_send_channels, 0);
/// assert_eq!(rx.recv().await, Ok(1));
/// assert_eq!(rx.recv().await, Err(trellis::RecvError::EndOfChannel));
/// # }
/// ```
#[doc(alias = "MemorySendChannel")]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    /// `None` once this handle is closed.
    tx: Option<Arc<flume::Sender<T>>>,
    /// The `Sink` state (flume's `SendSink`), made on first use. Boxed as a
    /// trait object so that only the `Sink` impl needs `T: 'static`. The
    /// mutex is never locked (only `get_mut` is used): it makes `Sender<T>:
    /// Sync` for every `T: Send`, since flume's sink holds an unsent `T` and
    /// is `Sync` only for `T: Sync`.
    sink: Mutex<Option<FlumeSink<T>>>,
}

impl<T> Sender<T> {
    /// Sends a value, waiting while the buffer is full (or, for a rendezvous
    /// channel, until a receiver takes it).
    ///
    /// With `capacity > 0` the send completes once the value is in the
    /// buffer. With `capacity == 0` it completes only once a receiver has
    /// taken the value, or is already waiting and has been handed it: a send
    /// with nobody receiving waits.
    ///
    /// Senders that wait are served in order: when room appears, the value
    /// that waited longest enters the buffer first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = trellis::channel(0);
    /// let producer = tokio::spawn(async move {
    ///     tx.send("hello").await.unwrap();
    ///     "delivered"
    /// });
    /// assert_eq!(rx.recv().await, Ok("hello"));
    /// assert_eq!(producer.await.unwrap(), "delivered");
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The value comes back inside the error ([`SendError::into_inner`]):
    ///
    /// - [`SendError::Closed`] if this handle was [closed](Self::close);
    /// - [`SendError::Disconnected`] if every receiver is closed or dropped,
    ///   including while this send waits.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe for the value. If the future is dropped before it
    /// completes, the value either has already been handed over — it entered
    /// the buffer, or a rendezvous receiver took it, while the future waited;
    /// it will be received as if the send had completed — or it is dropped
    /// with the future. It is never duplicated, and no other value is
    /// affected, but the caller cannot tell which happened. (Trio's `send` is
    /// atomic with respect to cancellation; this one is not.) To keep a value
    /// that cannot go at once, use [`try_send`](Self::try_send), which gives
    /// it back.
    // A hand-written future rather than an `async fn`: one state machine
    // less on every send, about 5% of the single-thread throughput.
    pub fn send(&self, value: T) -> impl Future<Output = Result<(), SendError<T>>> + '_ {
        SendFuture(match &self.tx {
            Some(tx) => SendState::Sending(tx.send_async(value)),
            None => SendState::Closed(value),
        })
    }

    /// Sends a value if that is possible without waiting.
    ///
    /// Succeeds if the buffer has room or, for a rendezvous channel, if a
    /// receiver is already waiting (it is handed the value).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::TrySendError;
    ///
    /// let (tx, rx) = trellis::channel(1);
    /// assert!(tx.try_send(1).is_ok());
    /// match tx.try_send(2) {
    ///     Err(TrySendError::Full(v)) => assert_eq!(v, 2),
    ///     other => panic!("expected a full buffer, got {other:?}"),
    /// }
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The value comes back inside the error ([`TrySendError::into_inner`]):
    /// [`TrySendError::Full`] if it would have to wait (for a rendezvous
    /// channel: if no receiver is waiting), [`TrySendError::Disconnected`] if
    /// every receiver is closed or dropped, [`TrySendError::Closed`] if this
    /// handle was closed.
    #[doc(alias = "send_nowait")]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let Some(tx) = &self.tx else {
            return Err(TrySendError::Closed(value));
        };
        tx.try_send(value).map_err(|err| match err {
            flume::TrySendError::Full(value) => TrySendError::Full(value),
            flume::TrySendError::Disconnected(value) => TrySendError::Disconnected(value),
        })
    }

    /// Closes this handle: it can no longer send, and it no longer keeps the
    /// channel open for the receivers.
    ///
    /// Closing a clone is the same as dropping it (Trio's `close` on one
    /// clone): other sender clones go on working, and the receivers get
    /// [`RecvError::EndOfChannel`] once every sender is closed or dropped and
    /// the buffer is drained. Closing twice does nothing. A value held by the
    /// [`Sink`] and not yet flushed is dropped; flush or close the sink instead
    /// to send it first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::{RecvError, SendError};
    ///
    /// let (mut tx, rx) = trellis::channel(4);
    /// let other = tx.clone();
    /// tx.send(1).await.unwrap();
    /// tx.close();
    /// assert_eq!(tx.send(2).await, Err(SendError::Closed(2)));
    ///
    /// // The clone still works, and still keeps the channel open.
    /// other.send(3).await.unwrap();
    /// drop(other);
    /// assert_eq!(rx.recv().await, Ok(1));
    /// assert_eq!(rx.recv().await, Ok(3));
    /// assert_eq!(rx.recv().await, Err(RecvError::EndOfChannel));
    /// # }
    /// ```
    #[doc(alias = "aclose")]
    pub fn close(&mut self) {
        *self.sink.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        if let Some(tx) = self.tx.take() {
            self.shared.open_senders.fetch_sub(1, Ordering::Relaxed);
            drop(tx);
        }
    }

    /// Reports the channel's buffer use and open handles (Trio's
    /// `statistics()`).
    ///
    /// Works on closed handles too. See [`ChannelStats`] for what each field
    /// counts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, _rx) = trellis::channel(8);
    /// let _tx2 = tx.clone();
    /// tx.send(()).await.unwrap();
    /// let stats = tx.stats();
    /// assert_eq!(stats.current_buffer_used, 1);
    /// assert_eq!(stats.max_buffer_size, 8);
    /// assert_eq!(stats.open_send_channels, 2);
    /// assert_eq!(stats.open_receive_channels, 1);
    /// # }
    /// ```
    #[doc(alias = "statistics")]
    pub fn stats(&self) -> ChannelStats {
        self.shared.stats()
    }

    /// Polls the `Sink`'s value in flight, if any.
    fn poll_sink(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        let sink = self.sink.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(sink) = sink.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        Pin::new(sink)
            .poll_flush(cx)
            .map_err(|flume::SendError(value)| SendError::Disconnected(value))
    }
}

/// The future of [`Sender::send`].
struct SendFuture<'a, T>(SendState<'a, T>);

enum SendState<'a, T> {
    Sending(SendFut<'a, T>),
    /// The handle was closed: the value goes back at the first poll.
    Closed(T),
    Done,
}

// The value is never pinned: it is only moved into flume or back out.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let SendState::Sending(fut) = &mut this.0 {
            let sent = std::task::ready!(Pin::new(fut).poll(cx));
            this.0 = SendState::Done;
            return Poll::Ready(
                sent.map_err(|flume::SendError(value)| SendError::Disconnected(value)),
            );
        }
        match std::mem::replace(&mut this.0, SendState::Done) {
            SendState::Closed(value) => Poll::Ready(Err(SendError::Closed(value))),
            _ => panic!("`Sender::send` future polled after it completed"),
        }
    }
}

impl<T> Clone for Sender<T> {
    /// Returns another handle on the same channel; cloning a closed handle
    /// gives a closed handle.
    fn clone(&self) -> Self {
        let tx = self.tx.as_ref().map(|tx| {
            self.shared.open_senders.fetch_add(1, Ordering::Relaxed);
            Arc::clone(tx)
        });
        Self {
            shared: Arc::clone(&self.shared),
            tx,
            sink: Mutex::new(None),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.tx.is_none())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Send + 'static> Sink<T> for Sender<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A closed handle is "ready": `start_send` then gives the value back.
        self.get_mut().poll_sink(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        let Some(tx) = &this.tx else {
            return Err(SendError::Closed(item));
        };
        let sink = this.sink.get_mut().unwrap_or_else(PoisonError::into_inner);
        let sink = sink.get_or_insert_with(|| Box::new(flume::Sender::clone(tx).into_sink()));
        Pin::new(sink)
            .start_send(item)
            .map_err(|flume::SendError(value)| SendError::Disconnected(value))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_sink(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(this.poll_sink(cx));
        this.close();
        Poll::Ready(flushed)
    }
}

/// The receiving side of a [`channel`]: clone it for every consumer, close or
/// drop it when done.
///
/// A `Receiver` is a handle; clones share the channel, and each value goes to
/// exactly one of them. [`close`](Self::close) (or dropping) ends *this*
/// handle only; once every receiver handle is closed or dropped, sends fail
/// and give their value back.
///
/// For `T: Send + 'static`, `Receiver` also implements
/// [`futures_core::Stream`]: the stream yields values until the channel ends
/// (every sender gone and the buffer drained) or this handle is closed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use futures_util::StreamExt;
///
/// let (tx, rx) = trellis::channel(4);
/// tokio::spawn(async move {
///     for i in 1..=3 {
///         tx.send(i).await.unwrap();
///     }
/// });
/// let all: Vec<i32> = rx.collect().await;
/// assert_eq!(all, [1, 2, 3]);
/// # }
/// ```
#[doc(alias = "MemoryReceiveChannel")]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// `None` once this handle is closed.
    rx: Option<Arc<flume::Receiver<T>>>,
    /// The `Stream` state (flume's `RecvStream`), made on first use; boxed and
    /// behind a never-locked mutex for the reasons given on `Sender::sink`.
    stream: Mutex<Option<FlumeStream<T>>>,
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting until one is there or the channel
    /// ends.
    ///
    /// Values come in the order their sends completed. Receivers that wait
    /// are served in order: the one that waited longest gets the next value.
    /// Values still buffered when the last sender goes are received first;
    /// only then does the channel end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::RecvError;
    ///
    /// let (tx, rx) = trellis::channel(4);
    /// tx.send('x').await.unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Ok('x'));
    /// assert_eq!(rx.recv().await, Err(RecvError::EndOfChannel));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`RecvError::EndOfChannel`] once every sender is closed or dropped
    ///   and the buffer is empty;
    /// - [`RecvError::Closed`] if this handle was [closed](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses no value. A value that was
    /// already handed to this waiting receiver, but not yet taken, stays in
    /// the channel and goes to the next receiver.
    #[doc(alias = "receive")]
    // A hand-written future for the same reason as `Sender::send`.
    pub fn recv(&self) -> impl Future<Output = Result<T, RecvError>> + '_ {
        RecvFuture(match &self.rx {
            Some(rx) => RecvState::Receiving(rx.recv_async()),
            None => RecvState::Closed,
        })
    }

    /// Receives a value if one is there, without waiting.
    ///
    /// For a rendezvous channel, a value is "there" when a sender is waiting
    /// with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::TryRecvError;
    ///
    /// let (tx, rx) = trellis::channel(4);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(7).await.unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(7));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfChannel));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if no value is there yet,
    /// [`TryRecvError::EndOfChannel`] once every sender is closed or dropped
    /// and the buffer is empty, [`TryRecvError::Closed`] if this handle was
    /// closed.
    #[doc(alias = "receive_nowait")]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let Some(rx) = &self.rx else {
            return Err(TryRecvError::Closed);
        };
        rx.try_recv().map_err(|err| match err {
            flume::TryRecvError::Empty => TryRecvError::Empty,
            flume::TryRecvError::Disconnected => TryRecvError::EndOfChannel,
        })
    }

    /// Closes this handle: it can no longer receive, and it no longer keeps
    /// the channel open for the senders.
    ///
    /// Closing a clone is the same as dropping it: other receiver clones go on
    /// receiving. Once every receiver is closed or dropped, every send —
    /// including those waiting — fails with [`SendError::Disconnected`] and
    /// gives its value back. Closing twice does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::{RecvError, SendError};
    ///
    /// let (tx, mut rx) = trellis::channel(4);
    /// rx.close();
    /// assert_eq!(rx.recv().await, Err(RecvError::Closed));
    /// assert_eq!(tx.send(1).await, Err(SendError::Disconnected(1)));
    /// # }
    /// ```
    #[doc(alias = "aclose")]
    pub fn close(&mut self) {
        *self
            .stream
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
        if let Some(rx) = self.rx.take() {
            self.shared.open_receivers.fetch_sub(1, Ordering::Relaxed);
            drop(rx);
        }
    }

    /// Reports the channel's buffer use and open handles (Trio's
    /// `statistics()`).
    ///
    /// Works on closed handles too. See [`ChannelStats`] for what each field
    /// counts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, mut rx) = trellis::channel::<u8>(0);
    /// let rx2 = rx.clone();
    /// rx.close();
    /// let stats = rx.stats(); // a closed handle still reports
    /// assert_eq!(stats.open_receive_channels, 1);
    /// assert_eq!(stats.max_buffer_size, 0);
    /// drop((tx, rx2));
    /// # }
    /// ```
    #[doc(alias = "statistics")]
    pub fn stats(&self) -> ChannelStats {
        self.shared.stats()
    }
}

/// The future of [`Receiver::recv`]. Fused by hand: polling flume's future
/// again after it completed would take another value.
struct RecvFuture<'a, T>(RecvState<'a, T>);

enum RecvState<'a, T> {
    Receiving(RecvFut<'a, T>),
    Closed,
    Done,
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let received = match &mut this.0 {
            RecvState::Receiving(fut) => std::task::ready!(Pin::new(fut).poll(cx))
                .map_err(|flume::RecvError::Disconnected| RecvError::EndOfChannel),
            RecvState::Closed => Err(RecvError::Closed),
            RecvState::Done => panic!("`Receiver::recv` future polled after it completed"),
        };
        this.0 = RecvState::Done;
        Poll::Ready(received)
    }
}

impl<T> Clone for Receiver<T> {
    /// Returns another handle on the same channel; cloning a closed handle
    /// gives a closed handle.
    fn clone(&self) -> Self {
        let rx = self.rx.as_ref().map(|rx| {
            self.shared.open_receivers.fetch_add(1, Ordering::Relaxed);
            Arc::clone(rx)
        });
        Self {
            shared: Arc::clone(&self.shared),
            rx,
            stream: Mutex::new(None),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("closed", &self.rx.is_none())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Send + 'static> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let Some(rx) = &this.rx else {
            return Poll::Ready(None);
        };
        let stream = this
            .stream
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let stream =
            stream.get_or_insert_with(|| Box::new(flume::Receiver::clone(rx).into_stream()));
        Pin::new(stream).poll_next(cx)
    }
}

impl<T: Send + 'static> FusedStream for Receiver<T> {
    fn is_terminated(&self) -> bool {
        self.rx
            .as_ref()
            .is_none_or(|rx| rx.is_disconnected() && rx.is_empty())
    }
}

/// A snapshot of a channel's state, as Trio's `statistics()` reports it.
///
/// Returned by [`Sender::stats`] and [`Receiver::stats`]. The fields are read
/// one after the other while other tasks may be using the channel, so under
/// concurrent use they are each accurate but not necessarily all from the same
/// instant.
///
/// Trio's `tasks_waiting_send` and `tasks_waiting_receive` are not reported:
/// the underlying queue does not expose its waiters, and counting every wait
/// in this wrapper cost up to half the throughput of a producer/consumer pair
/// (a consumer that keeps up waits for nearly every value). The struct is
/// `#[non_exhaustive]`, so they can be added later without breaking anyone.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (mut tx, rx) = trellis::channel::<()>(3);
/// tx.close();
/// let stats = rx.stats();
/// assert_eq!(stats.max_buffer_size, 3);
/// assert_eq!(stats.open_send_channels, 0);
/// assert_eq!(stats.open_receive_channels, 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct ChannelStats {
    /// Values in the buffer. A value handed to a waiting receiver that has not
    /// run yet still counts, so a rendezvous channel can briefly report 1.
    pub current_buffer_used: usize,
    /// The capacity the channel was opened with (`0` for a rendezvous).
    pub max_buffer_size: usize,
    /// Sender handles neither closed nor dropped.
    pub open_send_channels: usize,
    /// Receiver handles neither closed nor dropped.
    pub open_receive_channels: usize,
}

/// Why [`Sender::send`] (or the `Sink`) could not send a value; gives the
/// value back.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::SendError;
///
/// let (tx, rx) = trellis::channel(1);
/// drop(rx);
/// let err = tx.send(String::from("lost?")).await.unwrap_err();
/// assert!(matches!(err, SendError::Disconnected(_)));
/// assert_eq!(err.to_string(), "no receiver left");
/// assert_eq!(err.into_inner(), "lost?");
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// Every receiver is closed or dropped: nobody can receive the value
    /// (Trio's `BrokenResourceError`).
    #[error("no receiver left")]
    #[doc(alias = "BrokenResourceError")]
    Disconnected(T),
    /// This sender handle was closed (Trio's `ClosedResourceError`).
    #[error("sender closed")]
    #[doc(alias = "ClosedResourceError")]
    Closed(T),
}

impl<T> SendError<T> {
    /// Returns the value that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (mut tx, _rx) = trellis::channel(1);
    /// tx.close();
    /// assert_eq!(tx.send(42).await.unwrap_err().into_inner(), 42);
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Disconnected(value) | Self::Closed(value) => value,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is left out so that `T` need not be `Debug`.
        match self {
            Self::Disconnected(_) => f.write_str("Disconnected(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Why [`Sender::try_send`] could not send a value at once; gives the value
/// back.
///
/// # Examples
///
/// ```
/// use trellis::TrySendError;
///
/// // A rendezvous channel with no receiver waiting cannot take a value now.
/// let (tx, _rx) = trellis::channel(0);
/// let err = tx.try_send(1).unwrap_err();
/// assert!(matches!(err, TrySendError::Full(1)));
/// assert_eq!(err.to_string(), "channel full");
/// assert_eq!(err.into_inner(), 1);
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The send would have to wait: the buffer is full or, for a rendezvous
    /// channel, no receiver is waiting (Trio's `WouldBlock`).
    #[error("channel full")]
    #[doc(alias = "WouldBlock")]
    Full(T),
    /// Every receiver is closed or dropped (Trio's `BrokenResourceError`).
    #[error("no receiver left")]
    Disconnected(T),
    /// This sender handle was closed (Trio's `ClosedResourceError`).
    #[error("sender closed")]
    Closed(T),
}

impl<T> TrySendError<T> {
    /// Returns the value that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = trellis::channel(0);
    /// drop(rx);
    /// assert_eq!(tx.try_send("back").unwrap_err().into_inner(), "back");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Disconnected(value) | Self::Closed(value) => value,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is left out so that `T` need not be `Debug`.
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Disconnected(_) => f.write_str("Disconnected(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Why [`Receiver::recv`] returned no value.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::RecvError;
///
/// let (tx, rx) = trellis::channel::<()>(1);
/// drop(tx);
/// let err = rx.recv().await.unwrap_err();
/// assert_eq!(err, RecvError::EndOfChannel);
/// assert_eq!(err.to_string(), "end of channel");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Every sender is closed or dropped and the buffer is empty: no value
    /// will ever come (Trio's `EndOfChannel`).
    #[error("end of channel")]
    EndOfChannel,
    /// This receiver handle was closed (Trio's `ClosedResourceError`).
    #[error("receiver closed")]
    #[doc(alias = "ClosedResourceError")]
    Closed,
}

/// Why [`Receiver::try_recv`] returned no value.
///
/// # Examples
///
/// ```
/// use trellis::TryRecvError;
///
/// let (_tx, rx) = trellis::channel::<()>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// assert_eq!(TryRecvError::Empty.to_string(), "channel empty");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No value is there yet (Trio's `WouldBlock`).
    #[error("channel empty")]
    #[doc(alias = "WouldBlock")]
    Empty,
    /// Every sender is closed or dropped and the buffer is empty (Trio's
    /// `EndOfChannel`).
    #[error("end of channel")]
    EndOfChannel,
    /// This receiver handle was closed (Trio's `ClosedResourceError`).
    #[error("receiver closed")]
    Closed,
}
