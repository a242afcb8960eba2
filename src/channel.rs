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
//! Trellis's own code, because Trio's rules need a channel that can hand a
//! value to one particular waiting task, which the crates of the field
//! (flume, async-channel, tokio's mpsc) do not do: they put every value in a
//! shared queue and wake a receiver that then races every other receiver
//! for it. Here one mutex guards a buffer (`VecDeque`) and two FIFO queues of
//! waiting tasks, receivers and senders (`core.rs`, whose header lists the
//! invariants and the lock order). A send to a channel with receivers
//! waiting stores the value *in the longest-waiting receiver's queue entry*
//! and wakes it, so the value cannot be stolen and fan-out is round-robin in
//! wait order; a receive that makes room in the buffer moves the
//! longest-waiting sender's value in at once. Queue entries live in a slab
//! linked as a list: a wait allocates nothing once the slab has grown, and a
//! dropped future leaves the queue in O(1). Wakers are woken and unsent
//! values dropped after the lock is released. Loom models
//! (`channel/tests/loom_channel.rs`) check hand-off, cancellation and
//! closing under every interleaving.
//!
//! Every `send`/`recv` is a checkpoint in Trio's sense, but cheaply: on a
//! rendezvous channel each one yields at least once; on a buffered channel
//! each one spends one unit of tokio's cooperative budget
//! ([`tokio::task::coop`]), so a loop that never has to wait still yields
//! every so often (every 128 operations on tokio's scheduler) and can be
//! cancelled there, with no cost on the operations in between.
//!
//! # Trio → Trellis
//!
//! | Trio | Trellis | notes |
//! |---|---|---|
//! | `open_memory_channel(n)` | [`channel(n)`](channel()) | `n` a `usize`; huge = unbounded |
//! | `MemorySendChannel`, `MemoryReceiveChannel` | [`Sender`], [`Receiver`] | `clone()` as in Trio |
//! | `send`, `receive` | [`Sender::send`], [`Receiver::recv`] | a checkpoint each (see above) |
//! | `send_nowait`, `receive_nowait` | [`Sender::try_send`], [`Receiver::try_recv`] | |
//! | `close`, `aclose` | [`Sender::close`], [`Receiver::close`], dropping | takes `&self`: a task blocked on the same handle wakes with the closed error |
//! | `async for` | [`Receiver`] is a `Stream`; [`Sender`] a `Sink` | |
//! | `statistics()` | [`Sender::stats`], [`Receiver::stats`] → [`ChannelStats`] | same fields, Rust case |
//! | `WouldBlock`, `EndOfChannel`, `BrokenResourceError`, `ClosedResourceError` | [`TrySendError::Full`]/[`TryRecvError::Empty`], [`RecvError::EndOfChannel`], [`SendError::Disconnected`], `Closed` variants | values come back in send errors |
//!
//! Deliberate differences are listed on [`channel()`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_sink::Sink;
use tokio::task::coop;

mod core;

use self::core::{Chan, Handle, RecvOp, SendOp};

/// Capacities above this are clamped to it; no memory is reserved up front,
/// so such a channel is effectively unbounded.
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
/// Waiting tasks are served in the order they started waiting, as in Trio: a
/// value sent while receivers wait goes straight to the one that waited
/// longest (it is not put in the buffer, and no other receiver, not even a
/// [`try_recv`](Receiver::try_recv), can take it first), so values spread
/// round-robin over a pool of waiting workers; and when the buffer has room
/// again, the sender that waited longest gets it.
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
/// | Trio's memory channel: many producers, many consumers served in order, close per handle, a rendezvous for `n = 0` | [`channel(n)`](channel()) |
/// | one consumer, with `reserve`/permits to send without losing a value to cancellation | [`tokio::sync::mpsc`] |
/// | every receiver sees every value | [`tokio::sync::broadcast`] |
/// | only the latest value matters | [`tokio::sync::watch`] |
/// | exactly one reply | [`tokio::sync::oneshot`] |
///
/// # When a channel ends
///
/// | what happened | [`Sender::send`] | [`Receiver::recv`] |
/// |---|---|---|
/// | this handle was closed (even while the call waited) | [`SendError::Closed`] (value back) | [`RecvError::Closed`] |
/// | every receiver closed or dropped | [`SendError::Disconnected`] (value back) | — |
/// | every sender closed or dropped | — | buffered values, then [`RecvError::EndOfChannel`] |
/// | another clone of the same side was closed | unaffected | unaffected |
///
/// When the last receiver goes, the values still in the buffer are dropped
/// at once, as in Trio.
///
/// # Differences from Trio
///
/// - **A cancelled send may have been delivered.** Trio's `send` is atomic
///   with respect to cancellation. Here, a `send` future dropped while it
///   waits has either already handed its value over (a receiver will get it)
///   or drops the value; see [`Sender::send`]'s "Cancel safety". Use
///   [`Sender::try_send`] to keep a value that cannot be sent at once.
/// - **A cancelled receive gives its value back**, possibly past the
///   capacity: a receiver that was handed a value but is dropped before it
///   returns it passes the value to the next waiting receiver, or puts it
///   back at the *front* of the buffer, even if that makes the buffer hold
///   more than its capacity (one value, on a rendezvous channel) until it is
///   received. (Trio cannot cancel a task once it has been handed a value;
///   dropping a future in Rust can always happen, and losing the value would
///   be worse.)
/// - **Buffered operations are checkpoints through tokio's budget**: a
///   `send`/`recv` on a buffered channel that can finish at once yields only
///   when the task's cooperative budget is spent, not every time (Trio
///   yields every time). It costs nothing measurable and still lets a busy
///   loop be cancelled and let other tasks run. Rendezvous operations yield
///   every time.
/// - **Cloning a closed handle** gives another closed handle, instead of
///   raising `ClosedResourceError` (`Clone` cannot fail in Rust).
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
    let (chan, sender, receiver) = Chan::new(capacity.min(MAX_CAPACITY));
    let chan = Arc::new(chan);
    let sender = Sender {
        chan: Arc::clone(&chan),
        handle: sender,
        sink: Mutex::new(None),
    };
    let receiver = Receiver {
        chan,
        handle: receiver,
        stream: Mutex::new(RecvOp::Start),
    };
    (sender, receiver)
}

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
/// `StreamExt::forward` and friends. `start_send` sends at once when it can;
/// otherwise the sink holds the value, already in line behind the senders
/// waiting before it, until the next `poll_ready`/`poll_flush` sees it
/// through. Closing the sink (`SinkExt::close`) flushes that value and then
/// [closes](Self::close) the handle. Flush the sink before mixing it with
/// [`send`](Self::send) on the same handle, or values may overtake each
/// other.
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
    chan: Arc<Chan<T>>,
    handle: Handle,
    /// The `Sink`'s send in flight, if any. The mutex is never locked (only
    /// `get_mut` is used): it makes `Sender<T>: Sync` for every `T: Send`,
    /// since the state may hold an unsent `T`.
    sink: Mutex<Option<SendOp<T>>>,
}

impl<T> Sender<T> {
    /// Sends a value, waiting while the buffer is full (or, for a rendezvous
    /// channel, until a receiver takes it).
    ///
    /// If receivers are waiting, the value goes straight to the one that
    /// waited longest. Otherwise, with `capacity > 0`, the send completes once
    /// the value is in the buffer; with `capacity == 0` it completes only
    /// once a receiver has taken the value: a send with nobody receiving
    /// waits. Senders that wait are served in order: when room appears, the
    /// value that waited longest enters the buffer first.
    ///
    /// It is a checkpoint: on a rendezvous channel it always yields at least
    /// once (after handing the value over, when a receiver was waiting); on
    /// a buffered channel it spends one unit of tokio's cooperative budget and
    /// yields when the budget is spent.
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
    /// - [`SendError::Closed`] if this handle was [closed](Self::close),
    ///   including by another task while this send waits;
    /// - [`SendError::Disconnected`] if every receiver is closed or dropped,
    ///   including while this send waits.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe for the value. If the future is dropped before it
    /// completes, the value either has already been handed over — it entered
    /// the buffer or went to a receiver while the future waited, or the
    /// future was dropped at the yield that follows a rendezvous hand-off; it
    /// will be received as if the send had completed — or it is dropped
    /// with the future. It is never duplicated, and no other value is
    /// affected, but the caller cannot tell which happened. (Trio's `send` is
    /// atomic with respect to cancellation; this one is not.) To keep a value
    /// that cannot go at once, use [`try_send`](Self::try_send), which gives
    /// it back.
    pub fn send(&self, value: T) -> impl Future<Output = Result<(), SendError<T>>> + '_ {
        SendFuture {
            sender: self,
            op: SendOp::Start(value),
        }
    }

    /// Sends a value if that is possible without waiting.
    ///
    /// Succeeds if a receiver is waiting (the longest-waiting one is handed
    /// the value) or the buffer has room. Not a checkpoint: it never yields.
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
        self.chan.try_send(&self.handle, value)
    }

    /// Closes this handle: it can no longer send, and it no longer keeps the
    /// channel open for the receivers.
    ///
    /// Closing a clone is the same as dropping it (Trio's `close` on one
    /// clone): other sender clones go on working, and the receivers get
    /// [`RecvError::EndOfChannel`] once every sender is closed or dropped and
    /// the buffer is drained. Closing twice does nothing. It takes `&self`,
    /// so one task can close a handle that another task is blocked on:
    /// that task's [`send`](Self::send) wakes and gives its value back in
    /// [`SendError::Closed`]. A value held by the [`Sink`] and not yet sent
    /// stays unsent: the sink's next flush gives it back in the same error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::{RecvError, SendError};
    ///
    /// let (tx, rx) = trellis::channel(4);
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
    pub fn close(&self) {
        self.chan.close_sender(&self.handle);
    }

    /// Reports the channel's buffer use, open handles and waiting tasks
    /// (Trio's `statistics()`).
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
    /// assert_eq!(stats.tasks_waiting_send, 0);
    /// # }
    /// ```
    #[doc(alias = "statistics")]
    pub fn stats(&self) -> ChannelStats {
        self.chan.stats()
    }

    /// Polls the `Sink`'s send in flight, if any, to its end.
    fn poll_sink(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        let sink = self.sink.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(op) = sink.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let sent = ready!(self.chan.poll_send(&self.handle, op, cx));
        *sink = None;
        Poll::Ready(sent)
    }
}

/// The future of [`Sender::send`].
struct SendFuture<'a, T> {
    sender: &'a Sender<T>,
    op: SendOp<T>,
}

// The value is never pinned: it is only moved into the channel or back out.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let budget = ready!(coop::poll_proceed(cx));
        let sent = this
            .sender
            .chan
            .poll_send(&this.sender.handle, &mut this.op, cx);
        if sent.is_ready() {
            budget.made_progress();
        }
        sent
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        self.sender.chan.cancel_send(&mut self.op);
    }
}

// A handle is never pinned structurally: the `Sink`'s unsent value is only
// moved into the channel or back out.
impl<T> Unpin for Sender<T> {}

impl<T> Clone for Sender<T> {
    /// Returns another handle on the same channel; cloning a closed handle
    /// gives a closed handle.
    fn clone(&self) -> Self {
        Self {
            chan: Arc::clone(&self.chan),
            handle: self.chan.clone_handle(&self.handle, true),
            sink: Mutex::new(None),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let sink = self.sink.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(op) = sink.as_mut() {
            self.chan.cancel_send(op);
        }
        self.close();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.handle.is_closed())
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
        match this.chan.try_send(&this.handle, item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(item)) => Err(SendError::Closed(item)),
            Err(TrySendError::Disconnected(item)) => Err(SendError::Disconnected(item)),
            // Joins the queue at the next `poll_ready`/`poll_flush`.
            Err(TrySendError::Full(item)) => {
                *this.sink.get_mut().unwrap_or_else(PoisonError::into_inner) =
                    Some(SendOp::Start(item));
                Ok(())
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_sink(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let flushed = ready!(this.poll_sink(cx));
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
    chan: Arc<Chan<T>>,
    handle: Handle,
    /// The `Stream`'s receive in progress (`Start` when none). Behind a
    /// never-locked mutex for the reason given on `Sender::sink`.
    stream: Mutex<RecvOp<T>>,
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting until one is there or the channel
    /// ends.
    ///
    /// Values come in the order their sends completed. Receivers that wait
    /// are served in order: the one that waited longest is handed the next
    /// value sent, and no other receiver can take it. Values still buffered
    /// when the last sender goes are received first; only then does the
    /// channel end.
    ///
    /// It is a checkpoint: on a rendezvous channel it always yields at least
    /// once; on a buffered channel it spends one unit of tokio's cooperative
    /// budget and yields when the budget is spent.
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
    /// - [`RecvError::Closed`] if this handle was [closed](Self::close),
    ///   including by another task while this receive waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses no value. A value that was
    /// already handed to this waiting receiver, but not yet returned, goes to
    /// the next waiting receiver or, if none waits, back to the front of the
    /// buffer — even past the channel's capacity — so it is the next value
    /// received. It is dropped only if no receiver handle is open any more.
    #[doc(alias = "receive")]
    pub fn recv(&self) -> impl Future<Output = Result<T, RecvError>> + '_ {
        RecvFuture {
            receiver: self,
            op: RecvOp::Start,
        }
    }

    /// Receives a value if one is there, without waiting.
    ///
    /// For a rendezvous channel, a value is "there" when a sender is waiting
    /// with it. A value already handed to a waiting receiver is not there
    /// any more: it belongs to that receiver. Not a checkpoint: it never
    /// yields.
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
        self.chan.try_recv(&self.handle)
    }

    /// Closes this handle: it can no longer receive, and it no longer keeps
    /// the channel open for the senders.
    ///
    /// Closing a clone is the same as dropping it: other receiver clones go on
    /// receiving. Once every receiver is closed or dropped, the buffered
    /// values are dropped and every send — including those waiting — fails
    /// with [`SendError::Disconnected`] and gives its value back. Closing
    /// twice does nothing. It takes `&self`, so one task can close a handle
    /// that another task is blocked on: that task's [`recv`](Self::recv)
    /// wakes with [`RecvError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::{RecvError, SendError};
    ///
    /// let (tx, rx) = trellis::channel(4);
    /// rx.close();
    /// assert_eq!(rx.recv().await, Err(RecvError::Closed));
    /// assert_eq!(tx.send(1).await, Err(SendError::Disconnected(1)));
    /// # }
    /// ```
    #[doc(alias = "aclose")]
    pub fn close(&self) {
        self.chan.close_receiver(&self.handle);
    }

    /// Reports the channel's buffer use, open handles and waiting tasks
    /// (Trio's `statistics()`).
    ///
    /// Works on closed handles too. See [`ChannelStats`] for what each field
    /// counts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, rx) = trellis::channel::<u8>(0);
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
        self.chan.stats()
    }
}

/// The future of [`Receiver::recv`].
struct RecvFuture<'a, T> {
    receiver: &'a Receiver<T>,
    op: RecvOp<T>,
}

// The value is never pinned: it is only moved out of the channel.
impl<T> Unpin for RecvFuture<'_, T> {}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let budget = ready!(coop::poll_proceed(cx));
        let received = this
            .receiver
            .chan
            .poll_recv(&this.receiver.handle, &mut this.op, cx);
        if received.is_ready() {
            budget.made_progress();
        }
        received
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        self.receiver.chan.cancel_recv(&mut self.op);
    }
}

// Never pinned structurally: the `Stream`'s value is only moved out.
impl<T> Unpin for Receiver<T> {}

impl<T> Clone for Receiver<T> {
    /// Returns another handle on the same channel; cloning a closed handle
    /// gives a closed handle.
    fn clone(&self) -> Self {
        Self {
            chan: Arc::clone(&self.chan),
            handle: self.chan.clone_handle(&self.handle, false),
            stream: Mutex::new(RecvOp::Start),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let stream = self
            .stream
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        self.chan.cancel_recv(stream);
        self.close();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("closed", &self.handle.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Send + 'static> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let budget = ready!(coop::poll_proceed(cx));
        let stream = this
            .stream
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let received = ready!(this.chan.poll_recv(&this.handle, stream, cx));
        budget.made_progress();
        *stream = RecvOp::Start;
        Poll::Ready(received.ok())
    }
}

impl<T: Send + 'static> FusedStream for Receiver<T> {
    fn is_terminated(&self) -> bool {
        let stream = crate::loom::lock(&self.stream);
        self.chan.recv_terminated(&self.handle, &stream)
    }
}

/// A snapshot of a channel's state, as Trio's `statistics()` reports it.
///
/// Returned by [`Sender::stats`] and [`Receiver::stats`]; all fields are read
/// under the channel's lock, so they come from one instant.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (tx, rx) = trellis::channel::<()>(3);
/// tx.close();
/// let stats = rx.stats();
/// assert_eq!(stats.max_buffer_size, 3);
/// assert_eq!(stats.open_send_channels, 0);
/// assert_eq!(stats.open_receive_channels, 1);
/// assert_eq!(stats.tasks_waiting_receive, 0);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct ChannelStats {
    /// Values in the buffer. A value handed straight to a waiting receiver
    /// is not in the buffer; a value given back by a cancelled receiver is,
    /// so this can briefly exceed `max_buffer_size` (see [`channel()`]).
    pub current_buffer_used: usize,
    /// The capacity the channel was opened with (`0` for a rendezvous).
    pub max_buffer_size: usize,
    /// Sender handles neither closed nor dropped.
    pub open_send_channels: usize,
    /// Receiver handles neither closed nor dropped.
    pub open_receive_channels: usize,
    /// Tasks waiting in [`Sender::send`] (or a `Sink` flush) for room or a
    /// receiver.
    pub tasks_waiting_send: usize,
    /// Tasks waiting in [`Receiver::recv`] (or a `Stream`) for a value; a
    /// receiver that has been handed a value no longer counts.
    pub tasks_waiting_receive: usize,
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
    /// let (tx, _rx) = trellis::channel(1);
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
