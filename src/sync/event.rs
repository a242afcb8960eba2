//! [`Event`]: a flag that is set once and that tasks can wait for.
//!
//! A hand-written primitive, because Trio's `Event` reports how many tasks
//! wait for it (`statistics().tasks_waiting`), which no tokio type exposes:
//! a flag plus a slab of waiting tasks' wakers under one mutex.
//!
//! # Invariants
//!
//! 1. `set` goes from `false` to `true` once, under the lock; at that moment
//!    every waker in `waiters` is taken out (and woken after the lock is
//!    released), so the slab is empty ever after.
//! 2. A waiter checks the flag under the lock before it stores its waker: it
//!    is either woken by `set` or sees the flag. After the flag is set no
//!    waker is stored, so a waiter never touches its stale key again.
//!
//! One lock, never held with another, no user code under it: no lock order.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::loom::{AtomicBool, Mutex, MutexGuard, Ordering};

/// A flag that starts unset, is set once, and wakes every task waiting for
/// it (Trio's `Event`).
///
/// [`set`](Self::set) is idempotent and never waits; [`wait`](Self::wait)
/// returns after one yield if the event is already set (it is a
/// checkpoint). [`stats`](Self::stats) counts the waiting tasks. An event cannot be reset:
/// make a new one instead (Trio's reasoning: a reset races with the waiters
/// it should have woken). An `Event` is a cheap handle: clones share the same
/// flag, so give one to every task that sets or waits.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::sync::Event;
///
/// let started = Event::new();
/// let task = tokio::spawn({
///     let started = started.clone();
///     async move {
///         started.set();
///         "running"
///     }
/// });
/// started.wait().await;
/// assert!(started.is_set());
/// assert_eq!(task.await.unwrap(), "running");
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Read without the lock by `is_set`; written under it (invariant 1).
    set: AtomicBool,
    /// The wakers of the tasks waiting; emptied for good by `set`.
    waiters: Mutex<Slab<Waker>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Slab<Waker>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Event {
    /// Creates an unset event.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = trellis::sync::Event::new();
    /// assert!(!event.is_set());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event, waking every task waiting for it.
    ///
    /// Setting an event that is already set does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = trellis::sync::Event::new();
    /// event.set();
    /// event.set();
    /// assert!(event.is_set());
    /// ```
    pub fn set(&self) {
        if self.is_set() {
            return;
        }
        let mut waiters = self.inner.lock();
        self.inner.set.store(true, Ordering::Release);
        let woken: Vec<Waker> = waiters.drain().collect();
        drop(waiters);
        woken.into_iter().for_each(Waker::wake);
    }

    /// Returns whether the event has been set.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = trellis::sync::Event::new();
    /// let clone = event.clone();
    /// clone.set();
    /// assert!(event.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::Acquire)
    }

    /// Waits until the event is set.
    ///
    /// It is a checkpoint, as every Trellis `async` operation: if the event
    /// is already set it still yields once (so a loop over it lets other
    /// tasks run and can be cancelled) and then returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::sync::Event;
    ///
    /// let event = Event::new();
    /// // Not set yet: waiting times out.
    /// let waited = tokio::time::timeout(Duration::from_secs(1), event.wait()).await;
    /// assert!(waited.is_err());
    /// event.set();
    /// event.wait().await;
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future has no effect on the event or on
    /// other waiters.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        WaitFuture {
            event: self,
            state: WaitState::Start,
        }
    }

    /// Reports how many tasks wait for the event (Trio's `statistics()`).
    ///
    /// A task counts from the first time its [`wait`](Self::wait) finds the
    /// event unset until the event is set or the wait is dropped; once the
    /// event is set the count is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::sync::Event;
    ///
    /// let event = Event::new();
    /// let waiter = tokio::spawn({
    ///     let event = event.clone();
    ///     async move { event.wait().await }
    /// });
    /// tokio::task::yield_now().await; // the waiter starts waiting
    /// assert_eq!(event.stats().tasks_waiting, 1);
    /// event.set();
    /// assert_eq!(event.stats().tasks_waiting, 0);
    /// waiter.await.unwrap();
    /// # }
    /// ```
    #[doc(alias = "statistics")]
    pub fn stats(&self) -> EventStats {
        EventStats {
            tasks_waiting: self.inner.lock().len(),
        }
    }
}

/// A snapshot of an [`Event`]'s state, as Trio's `Event.statistics()`
/// reports it; returned by [`Event::stats`].
///
/// # Examples
///
/// ```
/// let event = trellis::sync::Event::new();
/// assert_eq!(event.stats().tasks_waiting, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct EventStats {
    /// Tasks blocked in [`Event::wait`].
    pub tasks_waiting: usize,
}

/// The future of [`Event::wait`].
struct WaitFuture<'a> {
    event: &'a Event,
    state: WaitState,
}

enum WaitState {
    /// Not polled yet.
    Start,
    /// Found the event set at its first poll and yielded once.
    Yielded,
    /// Its waker is stored under this key.
    Waiting(usize),
    Done,
}

impl Future for WaitFuture<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = &this.event.inner;
        match this.state {
            WaitState::Start if inner.set.load(Ordering::Acquire) => {
                this.state = WaitState::Yielded;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            WaitState::Yielded | WaitState::Done => {
                this.state = WaitState::Done;
                return Poll::Ready(());
            }
            WaitState::Start | WaitState::Waiting(_) => {}
        }
        let mut waiters = inner.lock();
        if inner.set.load(Ordering::Acquire) {
            this.state = WaitState::Done; // `set` emptied the slab
            return Poll::Ready(());
        }
        match this.state {
            WaitState::Waiting(key) => {
                if let Some(stored) = waiters.get_mut(key)
                    && !stored.will_wake(cx.waker())
                {
                    stored.clone_from(cx.waker());
                }
            }
            _ => this.state = WaitState::Waiting(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for WaitFuture<'_> {
    fn drop(&mut self) {
        if let WaitState::Waiting(key) = self.state {
            let inner = &self.event.inner;
            let mut waiters = inner.lock();
            // Once set, the slab is empty and the key stale (invariant 2).
            if !inner.set.load(Ordering::Acquire) {
                waiters.try_remove(key);
            }
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

#[cfg(all(test, trellis_loom))]
mod loom_event {
    //! Loom models of [`Event`] (run as described in
    //! `src/cancel/tests/loom_tree.rs`): a waiter racing `set` is never left
    //! asleep (loom reports a deadlock if it is), and a dropped waiter
    //! leaves no waker behind.

    use loom::future::block_on;
    use loom::thread;

    use super::Event;

    #[test]
    fn loom_event_set_wakes_a_racing_waiter() {
        loom::model(|| {
            let event = Event::new();
            let setter = thread::spawn({
                let event = event.clone();
                move || event.set()
            });
            block_on(event.wait());
            setter.join().unwrap();
            assert_eq!(event.stats().tasks_waiting, 0);
        });
    }

    #[test]
    fn loom_event_dropped_waiter_leaves_no_waker() {
        use std::future::Future;
        use std::pin::pin;
        use std::task::{Context, Waker};

        loom::model(|| {
            let event = Event::new();
            let setter = thread::spawn({
                let event = event.clone();
                move || event.set()
            });
            {
                let mut wait = pin!(event.wait());
                let _ = wait.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            }
            assert_eq!(event.stats().tasks_waiting, 0);
            setter.join().unwrap();
            assert!(event.is_set());
        });
    }
}
