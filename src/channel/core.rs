//! (private) The channel's shared state: one buffer, two FIFO queues of
//! waiting tasks, and the operations every handle and future runs on them.
//!
//! The public types in [`channel`](super) are thin: a handle is an
//! `Arc<Chan<T>>` plus its own [`Handle`] (an id and a closed flag); a future
//! is a handle reference plus its own operation state ([`SendOp`] or
//! [`RecvOp`]). Everything that more than one task touches lives in
//! [`State`], behind one mutex.
//!
//! # How a value travels
//!
//! - A send first looks for a waiting receiver: the longest-waiting one is
//!   *handed* the value (it is stored in that receiver's queue entry, which
//!   leaves the queue) and woken. Only when no receiver waits does the value
//!   go into the buffer, if there is room; otherwise the sender joins the
//!   senders' queue with its value.
//! - A receive takes the buffer's front; the room this makes goes at once to
//!   the longest-waiting sender, whose value moves into the buffer and whose
//!   entry leaves the queue. With an empty buffer (always, for a rendezvous)
//!   the value comes straight from the longest-waiting sender; with none, the
//!   receiver joins the receivers' queue.
//! - A receiver whose future is dropped after it was handed a value (or,
//!   for a rendezvous, while it yields with the value it took) gives the
//!   value back: to the next waiting receiver if there is one, else to the
//!   *front* of the buffer, so it is the next value received. The buffer can
//!   then hold more than its capacity (a rendezvous channel, one value); no
//!   sender enters it until it is below capacity again. If no receiver
//!   handle is open any more, the value is dropped.
//!
//! # Invariants
//!
//! 1. A queue entry is *linked* (in its queue, FIFO) exactly while its task
//!    waits, and then it holds the task's waker. A linked sender entry holds
//!    its value; a linked receiver entry holds none.
//! 2. Receivers wait only while the buffer is empty and no sender waits;
//!    senders wait only while the buffer holds `capacity` values or more (so
//!    both queues are never non-empty at once). Every operation that changes
//!    the buffer or a queue restores this before it unlocks.
//! 3. An unlinked entry is owned by the one future (or `Stream`/`Sink`
//!    state) that knows its key; only that owner removes it. A receiver entry
//!    unlinked with a value was handed it; without, it was *notified* (its
//!    handle closed or the channel ended) and the owner starts again. A
//!    sender entry unlinked without a value was *delivered*; with one, it was
//!    *refused* (its handle closed or every receiver gone) and the owner
//!    returns the value in the error.
//! 4. A value handed to a receiver is never lost: its owner returns it, or
//!    gives it back as described above when dropped.
//! 5. A handle's closed flag and the open-handle counts change only under
//!    the lock, and closing notifies every linked entry that the change ends:
//!    the handle's own entries, plus every entry of the other side when the
//!    last handle of a side closes. A task therefore never waits on a closed
//!    handle or an ended channel.
//!
//! # Lock order
//!
//! One lock per channel, never held with another one: no order to respect.
//! No user code runs under it: wakers are woken, and values (the buffer of
//! a channel whose last receiver closed, an unsent value of a dropped send)
//! are dropped, after it is released.

// `Arc` stays std's even under loom (as in `cancel/tree.rs`): the models go
// through the facade for the lock, which is what the interleavings are about;
// the per-handle closed flag is only written and read under that lock.
use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::{ChannelStats, RecvError, SendError, TryRecvError, TrySendError};
use crate::loom::{Mutex, MutexGuard};

/// "No node" in a [`WaitList`]'s links.
const NIL: usize = usize::MAX;

/// A FIFO queue of waiting tasks whose entries stay addressable by key after
/// they leave the queue (invariant 3): a doubly linked list threaded through
/// a slab, so joining, leaving from anywhere and serving the front are O(1)
/// and no wait allocates once the slab has grown.
pub(super) struct WaitList<E> {
    nodes: Slab<Node<E>>,
    head: usize,
    tail: usize,
    linked: usize,
}

struct Node<E> {
    /// The handle that waits (its id), so that closing it finds its waits.
    handle: u64,
    /// `Some` exactly while linked (invariant 1).
    waker: Option<Waker>,
    entry: E,
    prev: usize,
    next: usize,
}

impl<E> WaitList<E> {
    fn new() -> Self {
        Self {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
            linked: 0,
        }
    }

    /// Tasks waiting (linked entries).
    pub(super) fn len(&self) -> usize {
        self.linked
    }

    /// Links a new entry at the back; returns its key.
    fn push_back(&mut self, handle: u64, waker: Waker, entry: E) -> usize {
        let key = self.nodes.insert(Node {
            handle,
            waker: Some(waker),
            entry,
            prev: self.tail,
            next: NIL,
        });
        match self.tail {
            NIL => self.head = key,
            tail => self.nodes[tail].next = key,
        }
        self.tail = key;
        self.linked += 1;
        key
    }

    /// Unlinks `key` if it is linked; returns its waker then.
    fn unlink(&mut self, key: usize) -> Option<Waker> {
        let node = &mut self.nodes[key];
        let waker = node.waker.take()?;
        let (prev, next) = (node.prev, node.next);
        node.prev = NIL;
        node.next = NIL;
        match prev {
            NIL => self.head = next,
            prev => self.nodes[prev].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.nodes[next].prev = prev,
        }
        self.linked -= 1;
        Some(waker)
    }

    /// Unlinks the longest-waiting entry; returns its key, waker and entry.
    fn pop_front(&mut self) -> Option<(Waker, &mut E)> {
        let key = self.head;
        if key == NIL {
            return None;
        }
        let waker = self.unlink(key)?;
        Some((waker, &mut self.nodes[key].entry))
    }

    fn is_linked(&self, key: usize) -> bool {
        self.nodes[key].waker.is_some()
    }

    /// Stores `waker` in a linked entry unless it would wake the same task.
    fn update_waker(&mut self, key: usize, waker: &Waker) {
        if let Some(stored) = &mut self.nodes[key].waker
            && !stored.will_wake(waker)
        {
            stored.clone_from(waker);
        }
    }

    /// Removes an entry (unlinking it first if needed); returns what it held.
    fn remove(&mut self, key: usize) -> E {
        self.unlink(key);
        self.nodes.remove(key).entry
    }

    /// Unlinks every entry of `handle` (every entry if `None`); returns their
    /// wakers.
    fn unlink_all(&mut self, handle: Option<u64>) -> Vec<Waker> {
        let mut wakers = Vec::new();
        let mut key = self.head;
        while key != NIL {
            let node = &self.nodes[key];
            let next = node.next;
            if handle.is_none_or(|h| h == node.handle)
                && let Some(waker) = self.unlink(key)
            {
                wakers.push(waker);
            }
            key = next;
        }
        wakers
    }
}

/// One handle's own state: its id (for the waits it owns) and whether it is
/// closed. The flag changes only under the channel's lock (invariant 5).
#[derive(Debug)]
pub(super) struct Handle {
    id: u64,
    closed: AtomicBool,
}

impl Handle {
    /// Whether the handle is closed. Exact under the lock; a hint without it.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// The state behind the lock.
struct State<T> {
    buffer: VecDeque<T>,
    /// Waiting receivers; an entry holds the value handed to it.
    receivers: WaitList<Option<T>>,
    /// Waiting senders; an entry holds the value waiting to go.
    senders: WaitList<Option<T>>,
    open_senders: usize,
    open_receivers: usize,
    next_handle: u64,
}

/// What a channel is: its capacity and its locked state.
pub(super) struct Chan<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

/// Where a send stands.
pub(super) enum SendOp<T> {
    /// Not tried yet: holds the value.
    Start(T),
    /// Its entry `key` is in (or has left) the senders' queue.
    Waiting(usize),
    /// A rendezvous send that succeeded at once and yields once before it
    /// returns (a checkpoint).
    Yielding,
    /// Returned.
    Done,
}

/// Where a receive stands.
pub(super) enum RecvOp<T> {
    Start,
    /// Its entry `key` is in (or has left) the receivers' queue.
    Waiting(usize),
    /// A rendezvous receive that took a value at once and yields once before
    /// it returns it (a checkpoint); given back if dropped (invariant 4).
    Yielding(T),
    Done,
}

/// Wakes what an operation collected, after the lock is released.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> State<T> {
    fn new_handle(&mut self, closed: bool) -> Handle {
        let id = self.next_handle;
        self.next_handle += 1;
        Handle {
            id,
            closed: AtomicBool::new(closed),
        }
    }

    /// A send that does not wait: to the longest-waiting receiver, else into
    /// the buffer. Returns the receiver to wake.
    fn send_now(
        &mut self,
        capacity: usize,
        handle: &Handle,
        value: T,
    ) -> Result<Option<Waker>, TrySendError<T>> {
        if handle.is_closed() {
            return Err(TrySendError::Closed(value));
        }
        if self.open_receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if let Some((waker, slot)) = self.receivers.pop_front() {
            *slot = Some(value);
            return Ok(Some(waker));
        }
        if self.buffer.len() < capacity {
            self.buffer.push_back(value);
            return Ok(None);
        }
        Err(TrySendError::Full(value))
    }

    /// A receive that does not wait: the buffer's front (refilled from the
    /// longest-waiting sender), else a waiting sender's value. Returns the
    /// sender to wake.
    fn recv_now(
        &mut self,
        capacity: usize,
        handle: &Handle,
    ) -> Result<(T, Option<Waker>), TryRecvError> {
        if handle.is_closed() {
            return Err(TryRecvError::Closed);
        }
        if let Some(value) = self.buffer.pop_front() {
            let mut woken = None;
            if self.buffer.len() < capacity
                && let Some((waker, slot)) = self.senders.pop_front()
                && let Some(next) = slot.take()
            {
                self.buffer.push_back(next);
                woken = Some(waker);
            }
            return Ok((value, woken));
        }
        // An empty buffer with senders waiting: a rendezvous.
        while let Some((waker, slot)) = self.senders.pop_front() {
            if let Some(value) = slot.take() {
                return Ok((value, Some(waker)));
            }
        }
        if self.open_senders == 0 {
            return Err(TryRecvError::EndOfChannel);
        }
        Err(TryRecvError::Empty)
    }

    /// Gives back a value that a receiver took or was handed but will not
    /// return (invariant 4). Returns the receiver to wake, or the value to
    /// drop outside the lock when nobody can receive it any more.
    fn give_back(&mut self, value: T) -> (Option<Waker>, Option<T>) {
        if self.open_receivers == 0 {
            return (None, Some(value));
        }
        if let Some((waker, slot)) = self.receivers.pop_front() {
            *slot = Some(value);
            return (Some(waker), None);
        }
        self.buffer.push_front(value);
        (None, None)
    }
}

impl<T> Chan<T> {
    /// A channel with one open sender and one open receiver handle.
    pub(super) fn new(capacity: usize) -> (Self, Handle, Handle) {
        let mut state = State {
            buffer: VecDeque::new(),
            receivers: WaitList::new(),
            senders: WaitList::new(),
            open_senders: 1,
            open_receivers: 1,
            next_handle: 0,
        };
        let sender = state.new_handle(false);
        let receiver = state.new_handle(false);
        let chan = Self {
            capacity,
            state: Mutex::new(state),
        };
        (chan, sender, receiver)
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Poison-ignoring: no user code runs under this lock, and the
        // facade's mutex is loom's under the models (so not `crate::loom::lock`).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new handle of the side `of` belongs to: open (and counted) if `of`
    /// is open, closed otherwise.
    pub(super) fn clone_handle(&self, of: &Handle, sender: bool) -> Handle {
        let mut state = self.lock();
        let closed = of.is_closed();
        if !closed {
            if sender {
                state.open_senders += 1;
            } else {
                state.open_receivers += 1;
            }
        }
        state.new_handle(closed)
    }

    /// Closes a sender handle (idempotent); see invariant 5.
    pub(super) fn close_sender(&self, handle: &Handle) {
        let mut state = self.lock();
        if handle.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        state.open_senders -= 1;
        let mut wakers = state.senders.unlink_all(Some(handle.id));
        if state.open_senders == 0 {
            wakers.extend(state.receivers.unlink_all(None));
        }
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Closes a receiver handle (idempotent); see invariant 5. When it was
    /// the last, the buffer is dropped and every waiting sender refused.
    pub(super) fn close_receiver(&self, handle: &Handle) {
        let mut state = self.lock();
        if handle.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        state.open_receivers -= 1;
        let mut wakers = state.receivers.unlink_all(Some(handle.id));
        let mut dropped = VecDeque::new();
        if state.open_receivers == 0 {
            wakers.extend(state.senders.unlink_all(None));
            dropped = mem::take(&mut state.buffer);
        }
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        drop(dropped);
    }

    pub(super) fn try_send(&self, handle: &Handle, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.lock();
        let woken = state.send_now(self.capacity, handle, value)?;
        drop(state);
        wake(woken);
        Ok(())
    }

    pub(super) fn try_recv(&self, handle: &Handle) -> Result<T, TryRecvError> {
        let mut state = self.lock();
        let (value, woken) = state.recv_now(self.capacity, handle)?;
        drop(state);
        wake(woken);
        Ok(value)
    }

    /// Drives a send: see the module docs for the order in which a value
    /// travels. A rendezvous send that succeeds at once yields once.
    pub(super) fn poll_send(
        &self,
        handle: &Handle,
        op: &mut SendOp<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendError<T>>> {
        match mem::replace(op, SendOp::Done) {
            SendOp::Start(value) => {
                let mut state = self.lock();
                match state.send_now(self.capacity, handle, value) {
                    Ok(woken) => {
                        drop(state);
                        wake(woken);
                        if self.capacity == 0 {
                            *op = SendOp::Yielding;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(()))
                    }
                    Err(TrySendError::Full(value)) => {
                        let key =
                            state
                                .senders
                                .push_back(handle.id, cx.waker().clone(), Some(value));
                        *op = SendOp::Waiting(key);
                        Poll::Pending
                    }
                    Err(TrySendError::Disconnected(value)) => {
                        Poll::Ready(Err(SendError::Disconnected(value)))
                    }
                    Err(TrySendError::Closed(value)) => Poll::Ready(Err(SendError::Closed(value))),
                }
            }
            SendOp::Waiting(key) => {
                let mut state = self.lock();
                if state.senders.is_linked(key) {
                    state.senders.update_waker(key, cx.waker());
                    *op = SendOp::Waiting(key);
                    return Poll::Pending;
                }
                // Delivered, or refused (invariant 3).
                let refused = state.senders.remove(key);
                let disconnected = state.open_receivers == 0;
                drop(state);
                Poll::Ready(match refused {
                    None => Ok(()),
                    Some(value) if handle.is_closed() => Err(SendError::Closed(value)),
                    Some(value) if disconnected => Err(SendError::Disconnected(value)),
                    // Not reached (only closing refuses), but keeps the value.
                    Some(value) => Err(SendError::Closed(value)),
                })
            }
            SendOp::Yielding => Poll::Ready(Ok(())),
            SendOp::Done => panic!("`Sender::send` future polled after it completed"),
        }
    }

    /// Ends a send whose future is dropped: a waiting value leaves the queue
    /// and is dropped (outside the lock); a delivered one stays delivered.
    pub(super) fn cancel_send(&self, op: &mut SendOp<T>) {
        if let SendOp::Waiting(key) = mem::replace(op, SendOp::Done) {
            let unsent = self.lock().senders.remove(key);
            drop(unsent);
        }
    }

    /// Drives a receive. A rendezvous receive that succeeds at once yields
    /// once, holding the value (given back if dropped then).
    pub(super) fn poll_recv(
        &self,
        handle: &Handle,
        op: &mut RecvOp<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, RecvError>> {
        let mut state = match mem::replace(op, RecvOp::Done) {
            RecvOp::Start => self.lock(),
            RecvOp::Waiting(key) => {
                let mut state = self.lock();
                if state.receivers.is_linked(key) {
                    state.receivers.update_waker(key, cx.waker());
                    *op = RecvOp::Waiting(key);
                    return Poll::Pending;
                }
                if let Some(value) = state.receivers.remove(key) {
                    return Poll::Ready(Ok(value)); // handed
                }
                state // notified: start again
            }
            RecvOp::Yielding(value) => return Poll::Ready(Ok(value)),
            RecvOp::Done => panic!("`Receiver::recv` future polled after it completed"),
        };
        match state.recv_now(self.capacity, handle) {
            Ok((value, woken)) => {
                drop(state);
                wake(woken);
                if self.capacity == 0 {
                    *op = RecvOp::Yielding(value);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Ok(value))
            }
            Err(TryRecvError::Empty) => {
                let key = state
                    .receivers
                    .push_back(handle.id, cx.waker().clone(), None);
                *op = RecvOp::Waiting(key);
                Poll::Pending
            }
            Err(TryRecvError::EndOfChannel) => Poll::Ready(Err(RecvError::EndOfChannel)),
            Err(TryRecvError::Closed) => Poll::Ready(Err(RecvError::Closed)),
        }
    }

    /// Ends a receive whose future is dropped; a value it was handed or
    /// holds is given back (invariant 4).
    pub(super) fn cancel_recv(&self, op: &mut RecvOp<T>) {
        let value = match mem::replace(op, RecvOp::Done) {
            RecvOp::Waiting(key) => {
                let mut state = self.lock();
                match state.receivers.remove(key) {
                    Some(value) => {
                        let (woken, dropped) = state.give_back(value);
                        drop(state);
                        wake(woken);
                        drop(dropped);
                    }
                    None => drop(state),
                }
                return;
            }
            RecvOp::Yielding(value) => value,
            RecvOp::Start | RecvOp::Done => return,
        };
        let mut state = self.lock();
        let (woken, dropped) = state.give_back(value);
        drop(state);
        wake(woken);
        drop(dropped);
    }

    /// Whether a receive by `handle` whose state is `op` can never yield a
    /// value again (`FusedStream`).
    pub(super) fn recv_terminated(&self, handle: &Handle, op: &RecvOp<T>) -> bool {
        if matches!(op, RecvOp::Waiting(_) | RecvOp::Yielding(_)) {
            return false;
        }
        if handle.is_closed() {
            return true;
        }
        let state = self.lock();
        state.open_senders == 0 && state.buffer.is_empty() && state.senders.len() == 0
    }

    pub(super) fn stats(&self) -> ChannelStats {
        let state = self.lock();
        ChannelStats {
            current_buffer_used: state.buffer.len(),
            max_buffer_size: self.capacity,
            open_send_channels: state.open_senders,
            open_receive_channels: state.open_receivers,
            tasks_waiting_send: state.senders.len(),
            tasks_waiting_receive: state.receivers.len(),
        }
    }
}

#[cfg(all(test, trellis_loom))]
#[path = "tests/loom_channel.rs"]
mod loom_channel;

#[cfg(all(test, not(trellis_loom)))]
mod tests {
    use super::*;

    fn list_of(handles: &[u64]) -> (WaitList<u64>, Vec<usize>) {
        let mut list = WaitList::new();
        let keys = handles
            .iter()
            .map(|&h| list.push_back(h, Waker::noop().clone(), h))
            .collect();
        (list, keys)
    }

    /// Serves the whole list front first; returns the entries in order.
    fn drain(list: &mut WaitList<u64>) -> Vec<u64> {
        let mut served = Vec::new();
        while let Some((_, entry)) = list.pop_front() {
            served.push(*entry);
        }
        served
    }

    #[test]
    fn wait_list_serves_in_arrival_order_and_keeps_served_entries_addressable() {
        let (mut list, keys) = list_of(&[10, 20, 30]);
        assert_eq!(list.len(), 3);
        assert_eq!(drain(&mut list), [10, 20, 30]);
        assert_eq!(list.len(), 0);
        for (key, expected) in keys.into_iter().zip([10, 20, 30]) {
            assert!(!list.is_linked(key));
            assert_eq!(list.remove(key), expected);
        }
    }

    #[test]
    fn wait_list_unlinks_from_the_middle_and_both_ends() {
        for gone in 0..3 {
            let (mut list, keys) = list_of(&[1, 2, 3]);
            assert_eq!(list.remove(keys[gone]), gone as u64 + 1);
            let rest: Vec<u64> = (1..=3).filter(|&v| v != gone as u64 + 1).collect();
            assert_eq!(drain(&mut list), rest);
        }
    }

    #[test]
    fn wait_list_unlink_all_takes_one_handles_entries_or_every_entry() {
        let (mut list, keys) = list_of(&[7, 8, 7, 9, 7]);
        assert_eq!(list.unlink_all(Some(7)).len(), 3);
        assert_eq!(list.len(), 2);
        assert!(!list.is_linked(keys[0]) && !list.is_linked(keys[4]));
        // A newcomer goes behind the entries still waiting.
        list.push_back(7, Waker::noop().clone(), 70);
        assert_eq!(drain(&mut list), [8, 9, 70]);
        let (mut list, _) = list_of(&[1, 2]);
        assert_eq!(list.unlink_all(None).len(), 2);
        assert_eq!(list.len(), 0);
        assert!(list.pop_front().is_none());
    }

    #[test]
    fn a_waker_update_is_kept_only_for_linked_entries() {
        let (mut list, keys) = list_of(&[1, 2]);
        list.update_waker(keys[0], Waker::noop());
        assert!(list.is_linked(keys[0]));
        list.pop_front();
        list.update_waker(keys[0], Waker::noop()); // served: nothing to update
        assert!(!list.is_linked(keys[0]));
    }
}
