//! [`Condition`]: wait until shared state changes, Trio's `Condition` with the
//! lock owning the state.
//!
//! # Why no wakeup is lost
//!
//! Built from tokio's [`Mutex`] and [`Notify`]; nothing here is hand-written
//! synchronisation, only the order of the calls matters:
//!
//! 1. [`Condition::wait`] creates its `Notified` future and *enables* it —
//!    registering it with the `Notify` — while the caller still holds the
//!    lock, and only then drops the guard.
//! 2. A notifier changes the state while holding the lock, so it either ran
//!    before the waiter took the lock (and the waiter, checking the state
//!    under the lock, saw the change and did not wait) or after the waiter
//!    released it, by which time the waiter is registered and the
//!    `notify_*` call reaches it.
//!
//! `Notify::notify_one` stores a permit when nobody is registered, which
//! would make the *next* waiter return at once. A condition variable
//! notified with no waiters must do nothing, so step 1 consumes any such
//! stale permit before registering: it belongs to a notification that
//! happened before this waiter held the lock, whose state change the waiter
//! has therefore already seen.

use std::fmt;
use std::pin::pin;

use tokio::sync::{Mutex, MutexGuard, Notify, TryLockError};

/// Shared state plus a way to wait until it changes (Trio's `Condition`).
///
/// The condition owns a [`Mutex`] around the state. A task that needs the
/// state to satisfy some predicate locks it, checks the predicate, and if it
/// does not hold yet calls [`wait`](Self::wait) with its guard: the lock is
/// released while it waits and re-acquired before `wait` returns. A task that
/// changes the state does so under the lock and then calls
/// [`notify_one`](Self::notify_one) or [`notify_all`](Self::notify_all).
///
/// Waiters are woken in the order they started waiting. A notification with
/// nobody waiting does nothing. Always re-check the predicate after `wait`
/// returns (in a loop): another task may have taken the lock first and
/// changed the state again.
///
/// To share a condition between tasks, put it in an `Arc`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::Arc;
/// use trellis::sync::Condition;
///
/// let queue = Arc::new(Condition::new(Vec::new()));
/// let consumer = tokio::spawn({
///     let queue = Arc::clone(&queue);
///     async move {
///         let mut items = queue.lock().await;
///         while items.len() < 2 {
///             items = queue.wait(items).await;
///         }
///         items.drain(..).collect::<Vec<_>>()
///     }
/// });
/// for item in ["a", "b"] {
///     queue.lock().await.push(item);
///     queue.notify_all();
///     tokio::task::yield_now().await;
/// }
/// assert_eq!(consumer.await.unwrap(), ["a", "b"]);
/// # }
/// ```
pub struct Condition<T: ?Sized> {
    notify: Notify,
    lock: Mutex<T>,
}

impl<T> Condition<T> {
    /// Creates a condition whose lock protects `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = trellis::sync::Condition::new(0);
    /// assert_eq!(cond.into_inner(), 0);
    /// ```
    pub fn new(value: T) -> Self {
        Self {
            notify: Notify::new(),
            lock: Mutex::new(value),
        }
    }

    /// Consumes the condition and returns the state.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = trellis::sync::Condition::new(String::from("state"));
    /// assert_eq!(cond.into_inner(), "state");
    /// ```
    pub fn into_inner(self) -> T {
        self.lock.into_inner()
    }
}

impl<T: ?Sized> Condition<T> {
    /// Locks the state, waiting until the lock is free (Trio's `acquire`).
    ///
    /// The lock is FIFO-fair: tasks get it in the order they asked.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let cond = trellis::sync::Condition::new(1);
    /// *cond.lock().await += 1;
    /// assert_eq!(*cond.lock().await, 2);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `lock` future gives up its place in the queue.
    #[doc(alias = "acquire")]
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        self.lock.lock().await
    }

    /// Locks the state if the lock is free, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let cond = trellis::sync::Condition::new(());
    /// let guard = cond.lock().await;
    /// assert!(cond.try_lock().is_err());
    /// drop(guard);
    /// assert!(cond.try_lock().is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`TryLockError`] if another guard holds the lock (Trio's
    /// `WouldBlock`).
    #[doc(alias = "acquire_nowait")]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        self.lock.try_lock()
    }

    /// Releases the lock, waits for a notification, re-acquires the lock
    /// and returns the new guard.
    ///
    /// The waiter is registered for notifications *before* the lock is
    /// released, so a [`notify_one`](Self::notify_one) or
    /// [`notify_all`](Self::notify_all) made by a task that changed the state
    /// after taking the lock is never missed. After a notification, the
    /// waiter queues for the lock like any other task, so the state may have
    /// changed again by the time it gets it: check the predicate in a loop.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use trellis::sync::Condition;
    ///
    /// let ready = Arc::new(Condition::new(false));
    /// let waiter = tokio::spawn({
    ///     let ready = Arc::clone(&ready);
    ///     async move {
    ///         let mut guard = ready.lock().await;
    ///         while !*guard {
    ///             guard = ready.wait(guard).await;
    ///         }
    ///     }
    /// });
    /// tokio::task::yield_now().await; // the waiter is now waiting
    /// *ready.lock().await = true;
    /// ready.notify_one();
    /// waiter.await.unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `guard` is a guard of another mutex than this condition's (as
    /// [`std::sync::Condvar::wait`] does).
    ///
    /// # Cancel safety
    ///
    /// The guard moves into the future: if the future is dropped, at any
    /// point, the caller no longer holds the lock (a future dropped after
    /// re-acquiring it releases it again). A notification from `notify_one` that chose this waiter
    /// before it was dropped is passed on to the next waiter if the waiter had
    /// not yet woken; once it has woken and is queueing for the lock, the
    /// notification is spent.
    pub async fn wait<'a>(&'a self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        assert!(
            std::ptr::eq(MutexGuard::mutex(&guard), &self.lock),
            "Condition::wait called with a guard of another mutex"
        );
        let mut notified = pin!(self.notify.notified());
        // Register while the lock is held. `enable` returning true means the
        // future consumed a stale permit (see the module docs): take a fresh
        // one.
        while notified.as_mut().enable() {
            notified.set(self.notify.notified());
        }
        drop(guard);
        notified.await;
        self.lock.lock().await
    }

    /// Wakes the task that has waited longest in [`wait`](Self::wait), if
    /// any (Trio's `notify()`).
    ///
    /// Call it after changing the state under the lock; holding the lock
    /// while notifying is allowed but not needed. With nobody waiting it does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use trellis::sync::Condition;
    ///
    /// let tickets = Arc::new(Condition::new(0u32));
    /// let waiter = tokio::spawn({
    ///     let tickets = Arc::clone(&tickets);
    ///     async move {
    ///         let mut n = tickets.lock().await;
    ///         while *n == 0 {
    ///             n = tickets.wait(n).await;
    ///         }
    ///         *n -= 1;
    ///     }
    /// });
    /// tokio::task::yield_now().await;
    /// *tickets.lock().await += 1;
    /// tickets.notify_one();
    /// waiter.await.unwrap();
    /// assert_eq!(*tickets.lock().await, 0);
    /// # }
    /// ```
    #[doc(alias = "notify")]
    pub fn notify_one(&self) {
        self.notify.notify_one();
    }

    /// Wakes every task waiting in [`wait`](Self::wait).
    ///
    /// Tasks that start waiting after this call are not woken by it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use trellis::sync::Condition;
    ///
    /// let open = Arc::new(Condition::new(false));
    /// let mut waiters = Vec::new();
    /// for _ in 0..3 {
    ///     let open = Arc::clone(&open);
    ///     waiters.push(tokio::spawn(async move {
    ///         let mut guard = open.lock().await;
    ///         while !*guard {
    ///             guard = open.wait(guard).await;
    ///         }
    ///     }));
    /// }
    /// tokio::task::yield_now().await;
    /// *open.lock().await = true;
    /// open.notify_all();
    /// for w in waiters {
    ///     w.await.unwrap();
    /// }
    /// # }
    /// ```
    pub fn notify_all(&self) {
        self.notify.notify_waiters();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Condition<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &&self.lock)
            .finish_non_exhaustive()
    }
}
