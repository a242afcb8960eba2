//! [`AsyncValue`] and [`AsyncBool`]: a value that tasks can wait on until it
//! satisfies a predicate, or changes in a certain way.
//!
//! Unlike [`tokio::sync::watch`], whose receivers look at the value when
//! they get round to it (and may miss a value that came and went), every
//! predicate here is evaluated by [`AsyncValue::set`] itself, at the moment
//! of the change: a waiter gets the value (or the transition) that satisfied
//! it even if the value has changed again before the waiter runs. That is
//! trio-util's contract, and the reason `set` costs O(N) in the number of
//! registered waiters (see [`AsyncValue::set`]).
//!
//! # Invariants
//!
//! 1. Predicates run only while the value's lock is held, exactly once per
//!    change (plus once at registration for [`AsyncValue::wait_value`] and
//!    [`AsyncValue::eventual_values`]).
//! 2. Wakers are woken after the lock is released.
//! 3. A waiter entry lives in the slab from its first `Pending` until its
//!    future completes or is dropped.

use crate::loom::lock;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use slab::Slab;

type Predicate<T> = Box<dyn FnMut(&T) -> bool + Send>;
type TransitionPredicate<T> = Box<dyn FnMut(&T, &T) -> bool + Send>;
type SharedPredicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// A value that tasks can wait on (trio-util's `AsyncValue`).
///
/// [`set`](Self::set) changes it; [`wait_value`](Self::wait_value) waits
/// until it satisfies a predicate; [`wait_transition`](Self::wait_transition)
/// waits for a change that satisfies a predicate of `(new, old)`;
/// [`eventual_values`](Self::eventual_values) streams the matching values;
/// [`open_transform`](Self::open_transform) keeps a derived value up to date.
/// Setting the value it already has is not a change: nobody is woken.
///
/// An `AsyncValue` is a cheap handle: clones share the value.
///
/// Predicates are `'static + Send` closures, because `set` (from any task)
/// runs them. They run under the value's lock: a predicate must not use the
/// same `AsyncValue` (it would deadlock).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::util::AsyncValue;
///
/// let temperature = AsyncValue::new(20);
/// let alarm = tokio::spawn({
///     let temperature = temperature.clone();
///     async move { temperature.wait_value(|t| *t > 30).await }
/// });
/// tokio::task::yield_now().await;
/// temperature.set(35);
/// temperature.set(25); // changed again before the alarm task runs
/// assert_eq!(alarm.await.unwrap(), 35); // it still gets the value that matched
/// # }
/// ```
pub struct AsyncValue<T> {
    shared: Arc<Mutex<State<T>>>,
}

struct State<T> {
    value: T,
    waiters: Slab<Waiter<T>>,
}

enum Waiter<T> {
    Value {
        predicate: Predicate<T>,
        waker: Option<Waker>,
        hit: Option<T>,
    },
    Transition {
        predicate: TransitionPredicate<T>,
        waker: Option<Waker>,
        hit: Option<(T, T)>,
    },
    Stream {
        predicate: Predicate<T>,
        waker: Option<Waker>,
        latest: Option<T>,
    },
    Transitions {
        predicate: TransitionPredicate<T>,
        waker: Option<Waker>,
        hit: Option<(T, T)>,
        /// The consumer waits in `poll_next`: changes count only then.
        waiting: bool,
    },
    Derived(Box<dyn FnMut(&T) + Send>),
}

impl<T> Clone for AsyncValue<T> {
    fn clone(&self) -> Self {
        AsyncValue {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for AsyncValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("AsyncValue")
            .field("value", &state.value)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

impl<T: Default> Default for AsyncValue<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> AsyncValue<T> {
    /// A value nobody waits on yet.
    pub fn new(value: T) -> Self {
        AsyncValue {
            shared: Arc::new(Mutex::new(State {
                value,
                waiters: Slab::new(),
            })),
        }
    }

    /// How many waiters, streams and transforms are registered.
    pub fn waiters(&self) -> usize {
        lock(&self.shared).waiters.len()
    }
}

impl<T: Clone + PartialEq + Send + 'static> AsyncValue<T> {
    /// The current value (a clone).
    pub fn value(&self) -> T {
        lock(&self.shared).value.clone()
    }

    /// Sets the value; returns whether it changed.
    ///
    /// If `value` equals the current value, nothing happens. Otherwise every
    /// registered predicate is evaluated once, now, against the new value
    /// (and the old one, for transitions); the waiters whose predicate holds
    /// get the value that satisfied it and are woken, the others are not.
    ///
    /// Cost: with N registered waiters, one comparison, N predicate calls and
    /// at most N clones of the value, under one lock; then the matching
    /// waiters are woken. O(N), and nothing when nobody waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::util::AsyncValue;
    ///
    /// let v = AsyncValue::new(1);
    /// assert!(v.set(2));
    /// assert!(!v.set(2)); // not a change
    /// assert_eq!(v.value(), 2);
    /// ```
    pub fn set(&self, value: T) -> bool {
        let mut wake = Vec::new();
        {
            let mut state = lock(&self.shared);
            if state.value == value {
                return false;
            }
            let old = std::mem::replace(&mut state.value, value);
            let State {
                value: new,
                waiters,
            } = &mut *state;
            for (_, waiter) in waiters.iter_mut() {
                match waiter {
                    Waiter::Value {
                        predicate,
                        waker,
                        hit,
                    } => {
                        // Latest match wins, as in trio-util: a waiter that
                        // has not run yet gets the last value that matched.
                        if predicate(new) {
                            *hit = Some(new.clone());
                            wake.extend(waker.take());
                        }
                    }
                    Waiter::Transition {
                        predicate,
                        waker,
                        hit,
                    } => {
                        if predicate(new, &old) {
                            *hit = Some((new.clone(), old.clone()));
                            wake.extend(waker.take());
                        }
                    }
                    Waiter::Stream {
                        predicate,
                        waker,
                        latest,
                    } => {
                        if predicate(new) {
                            *latest = Some(new.clone());
                            wake.extend(waker.take());
                        }
                    }
                    Waiter::Transitions {
                        predicate,
                        waker,
                        hit,
                        waiting,
                    } => {
                        if *waiting && predicate(new, &old) {
                            *hit = Some((new.clone(), old.clone()));
                            wake.extend(waker.take());
                        }
                    }
                    Waiter::Derived(update) => update(new),
                }
            }
        }
        for waker in wake {
            waker.wake();
        }
        true
    }

    /// Waits until the value satisfies `predicate`; returns the value that
    /// did.
    ///
    /// The predicate is tested at once, then by [`set`](Self::set) at every
    /// change. The value returned is one that matched, even if the value
    /// has changed since: the latest matching one set before the waiter ran
    /// (as in trio-util). It is a checkpoint every time: a value that
    /// already matches is returned after one yield to the scheduler, so a
    /// loop over `wait_value` lets other tasks run and can be cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::util::AsyncValue;
    ///
    /// let v = AsyncValue::new(5);
    /// assert_eq!(v.wait_value(|x| *x > 3).await, 5); // already true: one yield
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future unregisters the predicate; a match it had seen
    /// but not yet returned is lost with it.
    pub fn wait_value<P>(&self, predicate: P) -> WaitValue<T>
    where
        P: FnMut(&T) -> bool + Send + 'static,
    {
        WaitValue {
            shared: Arc::clone(&self.shared),
            predicate: Some(Box::new(predicate)),
            key: None,
            ready: None,
        }
    }

    /// Waits for a change after which `predicate(new, old)` holds; returns
    /// `(new, old)`.
    ///
    /// Only changes made after the first poll count: the current value is
    /// not a transition, and transitions that happened while nobody waited
    /// are gone. When several matching changes happen before the waiter
    /// runs, it gets the latest one (as in trio-util). It always waits, so
    /// it is a checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::util::AsyncValue;
    ///
    /// let v = AsyncValue::new(1);
    /// let rising = tokio::spawn({
    ///     let v = v.clone();
    ///     async move { v.wait_transition(|new, old| new > old).await }
    /// });
    /// tokio::task::yield_now().await;
    /// v.set(0); // falling: ignored
    /// v.set(7);
    /// assert_eq!(rising.await.unwrap(), (7, 0));
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`wait_value`](Self::wait_value).
    pub fn wait_transition<P>(&self, predicate: P) -> WaitTransition<T>
    where
        P: FnMut(&T, &T) -> bool + Send + 'static,
    {
        WaitTransition {
            shared: Arc::clone(&self.shared),
            predicate: Some(Box::new(predicate)),
            key: None,
        }
    }

    /// A stream of the values that satisfy `predicate`: the current one if it
    /// does, then each new one that does (trio-util's `eventual_values`).
    ///
    /// A consumer that is slower than the changes sees the latest matching
    /// value, not every one: at most one value waits in the stream. A value
    /// is never yielded twice in a row: if the value goes `0 → 1 → 0` while
    /// the consumer is busy after `0`, nothing new is yielded. The stream
    /// never ends by itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use futures_util::StreamExt as _;
    /// use trellis::util::AsyncValue;
    ///
    /// let v = AsyncValue::new(2);
    /// let mut evens = v.eventual_values(|x| x % 2 == 0);
    /// assert_eq!(evens.next().await, Some(2));
    /// v.set(3);
    /// v.set(4);
    /// v.set(6); // 4 is overwritten: the consumer was not looking
    /// assert_eq!(evens.next().await, Some(6));
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// `next()` on the stream is cancel safe: a dropped `next()` loses
    /// nothing. Dropping the stream unregisters it.
    pub fn eventual_values<P>(&self, predicate: P) -> EventualValues<T>
    where
        P: FnMut(&T) -> bool + Send + 'static,
    {
        let mut predicate: Predicate<T> = Box::new(predicate);
        let mut state = lock(&self.shared);
        let latest = predicate(&state.value).then(|| state.value.clone());
        let key = state.waiters.insert(Waiter::Stream {
            predicate,
            waker: None,
            latest,
        });
        drop(state);
        EventualValues {
            shared: Arc::clone(&self.shared),
            key,
            last: None,
        }
    }

    /// Waits until the value has satisfied `predicate` for `held_for`
    /// without a break; returns the value then (trio-util's
    /// `wait_value(predicate, held_for=…)`).
    ///
    /// The hold starts when the predicate holds (at once, if it already
    /// does); a change that breaks the predicate during the hold restarts
    /// the wait, while changes between matching values do not. The value
    /// returned is the current one when the hold completes (trio-util
    /// returns the one that started the hold). With a zero `held_for` it is
    /// [`wait_value`](Self::wait_value). The predicate is `Fn + Sync`
    /// because it is registered twice (as itself and negated).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use trellis::util::AsyncValue;
    ///
    /// let load = AsyncValue::new(90);
    /// let start = Instant::now();
    /// let setter = load.clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     setter.set(95); // still high: the hold goes on
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     setter.set(10); // breaks it at 2 s
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     setter.set(99); // high again at 3 s
    /// });
    /// let high = load
    ///     .wait_value_held(|l| *l > 80, Duration::from_secs(3))
    ///     .await;
    /// assert_eq!(high, 99);
    /// assert_eq!(start.elapsed(), Duration::from_secs(6)); // 3 s + a 3 s hold
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future unregisters both predicates; nothing else is
    /// lost.
    pub fn wait_value_held<P>(
        &self,
        predicate: P,
        held_for: Duration,
    ) -> impl Future<Output = T> + Send + 'static
    where
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let value = self.clone();
        let predicate = Arc::new(predicate);
        async move { hold(&value, &predicate, held_for).await }
    }

    /// [`eventual_values`](Self::eventual_values) for values that satisfied
    /// `predicate` for `held_for` without a break (trio-util's
    /// `eventual_values(predicate, held_for=…)`).
    ///
    /// Each value is yielded once it has held for `held_for` (a break
    /// restarts the hold, as in [`wait_value_held`](Self::wait_value_held)),
    /// and, as with `eventual_values`, never twice in a row. Unlike
    /// `eventual_values` the stream does its waiting inside `next()`, so a
    /// value that comes and goes while the consumer is busy is not seen.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use futures_util::StreamExt as _;
    /// use trellis::util::AsyncValue;
    ///
    /// let temperature = AsyncValue::new(35);
    /// let mut hot = temperature.eventual_values_held(|t| *t > 30, Duration::from_secs(1));
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(hot.next().await, Some(35)); // after 1 s above 30
    /// let setter = temperature.clone();
    /// tokio::spawn(async move {
    ///     setter.set(20); // breaks the next hold at once
    ///     tokio::time::sleep(Duration::from_millis(500)).await;
    ///     setter.set(40);
    /// });
    /// assert_eq!(hot.next().await, Some(40));
    /// assert_eq!(start.elapsed(), Duration::from_millis(2500)); // 40 held from 1.5 s to 2.5 s
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped `next()` loses the hold in progress (the next `next()`
    /// starts a new one) but never a value already yielded.
    pub fn eventual_values_held<P>(&self, predicate: P, held_for: Duration) -> EventualValuesHeld<T>
    where
        P: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let predicate: SharedPredicate<T> = Arc::new(predicate);
        let state = (self.clone(), predicate, None::<T>);
        let stream =
            futures_util::stream::unfold(state, move |(value, predicate, last)| async move {
                loop {
                    let current = hold(&value, &predicate, held_for).await;
                    if last.as_ref() == Some(&current) {
                        // Already yielded: wait for a change first.
                        let seen = current.clone();
                        value.wait_value(move |v| *v != seen).await;
                        continue;
                    }
                    return Some((current.clone(), (value, predicate, Some(current))));
                }
            });
        EventualValuesHeld {
            inner: Box::pin(stream),
        }
    }

    /// A stream of `(new, old)` for the changes that satisfy `predicate`
    /// while the consumer waits in `next()` (trio-util's `transitions`).
    ///
    /// It is `loop { wait_transition(predicate).await }` with one
    /// registration for the whole loop: changes that happen while the
    /// consumer is busy in its loop body (or before its first `next()`) are
    /// not seen; when several matching changes happen before it runs, it
    /// gets the latest. Use it to trigger work on edges; for state that
    /// must be followed, [`eventual_values`](Self::eventual_values) is
    /// safer.
    ///
    /// Every registration is evaluated on its own, even when two streams
    /// use the same predicate: Rust closures have no identity to compare
    /// (two `|v| *v > 3` are different types, and `fn` pointer equality is
    /// not reliable), so trio-util's sharing of equal predicates is not
    /// done. A `set` costs one call per registered predicate.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use futures_util::StreamExt as _;
    /// use trellis::util::AsyncValue;
    ///
    /// let level = AsyncValue::new(0);
    /// let mut rises = level.transitions(|new, old| new > old);
    /// let setter = level.clone();
    /// tokio::spawn(async move {
    ///     setter.set(3);
    ///     setter.set(1); // a fall: not a match
    ///     setter.set(2); // the latest rise before the consumer runs
    /// });
    /// assert_eq!(rises.next().await, Some((2, 1)));
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped `next()` keeps a transition it had already received for
    /// the next `next()`. Dropping the stream unregisters it.
    pub fn transitions<P>(&self, predicate: P) -> Transitions<T>
    where
        P: FnMut(&T, &T) -> bool + Send + 'static,
    {
        let key = lock(&self.shared).waiters.insert(Waiter::Transitions {
            predicate: Box::new(predicate),
            waker: None,
            hit: None,
            waiting: false,
        });
        Transitions {
            shared: Arc::clone(&self.shared),
            key,
        }
    }

    /// A derived value, `transform(&value)`, recomputed by every change of
    /// this one while the returned [`Transform`] is alive (trio-util's
    /// `open_transform`).
    ///
    /// The derived value is an ordinary [`AsyncValue`] (the `Transform`
    /// dereferences to it; clone it to hand it out): waiters on it are woken
    /// only when the derived value itself changes. `transform` runs under
    /// this value's lock, inside `set`: keep it cheap, and keep it away
    /// from this value.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::util::AsyncValue;
    ///
    /// let celsius = AsyncValue::new(100.0_f64);
    /// let fahrenheit = celsius.open_transform(|c| c * 9.0 / 5.0 + 32.0);
    /// assert_eq!(fahrenheit.value(), 212.0);
    /// celsius.set(0.0);
    /// assert_eq!(fahrenheit.value(), 32.0);
    /// drop(fahrenheit); // stops following
    /// assert_eq!(celsius.waiters(), 0);
    /// ```
    pub fn open_transform<U, F>(&self, mut transform: F) -> Transform<T, U>
    where
        U: Clone + PartialEq + Send + 'static,
        F: FnMut(&T) -> U + Send + 'static,
    {
        let mut state = lock(&self.shared);
        let derived = AsyncValue::new(transform(&state.value));
        let target = derived.clone();
        let key = state.waiters.insert(Waiter::Derived(Box::new(move |value| {
            target.set(transform(value));
        })));
        drop(state);
        Transform {
            source: Arc::clone(&self.shared),
            key,
            derived,
        }
    }
}

impl<T: Clone + PartialEq + Send + 'static> AsyncValue<T> {
    /// Runs `update` on the current value now and then at every change
    /// (under this value's lock), until the returned guard is dropped: the
    /// hook under [`compose_values`](super::compose_values).
    pub(super) fn follow(&self, mut update: impl FnMut(&T) + Send + 'static) -> Follow<T> {
        let mut state = lock(&self.shared);
        update(&state.value);
        let key = state.waiters.insert(Waiter::Derived(Box::new(update)));
        drop(state);
        Follow {
            shared: Arc::clone(&self.shared),
            key,
        }
    }
}

/// Unregisters a [`AsyncValue::follow`] hook when dropped.
pub(super) struct Follow<T> {
    shared: Arc<Mutex<State<T>>>,
    key: usize,
}

impl<T> Drop for Follow<T> {
    fn drop(&mut self) {
        lock(&self.shared).waiters.try_remove(self.key);
    }
}

/// The future returned by [`AsyncValue::wait_value`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitValue<T> {
    shared: Arc<Mutex<State<T>>>,
    predicate: Option<Predicate<T>>,
    key: Option<usize>,
    /// The value that already matched at the first poll, returned after
    /// one yield.
    ready: Option<T>,
}

impl<T> fmt::Debug for WaitValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitValue")
            .field("registered", &self.key.is_some())
            .finish()
    }
}

// Nothing in these is pinned structurally: the held values move freely.
impl<T> Unpin for WaitValue<T> {}
impl<T> Unpin for EventualValues<T> {}

impl<T: Clone> Future for WaitValue<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        if let Some(value) = this.ready.take() {
            return Poll::Ready(value); // after the checkpoint
        }
        let mut state = lock(&this.shared);
        match this.key {
            None => {
                let Some(mut predicate) = this.predicate.take() else {
                    return Poll::Pending; // polled after completion
                };
                if predicate(&state.value) {
                    // Already true: still a checkpoint (yield once), so that
                    // a loop over `wait_value` can be cancelled and lets
                    // other tasks run.
                    this.ready = Some(state.value.clone());
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.key = Some(state.waiters.insert(Waiter::Value {
                    predicate,
                    waker: Some(cx.waker().clone()),
                    hit: None,
                }));
                Poll::Pending
            }
            Some(key) => {
                if let Some(Waiter::Value { waker, hit, .. }) = state.waiters.get_mut(key) {
                    if let Some(value) = hit.take() {
                        state.waiters.remove(key);
                        this.key = None;
                        return Poll::Ready(value);
                    }
                    store_waker(waker, cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for WaitValue<T> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(&self.shared).waiters.try_remove(key);
        }
    }
}

/// The future returned by [`AsyncValue::wait_transition`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitTransition<T> {
    shared: Arc<Mutex<State<T>>>,
    predicate: Option<TransitionPredicate<T>>,
    key: Option<usize>,
}

impl<T> fmt::Debug for WaitTransition<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitTransition")
            .field("registered", &self.key.is_some())
            .finish()
    }
}

impl<T> Future for WaitTransition<T> {
    type Output = (T, T);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(T, T)> {
        let this = &mut *self;
        let mut state = lock(&this.shared);
        match this.key {
            None => {
                let Some(predicate) = this.predicate.take() else {
                    return Poll::Pending; // polled after completion
                };
                this.key = Some(state.waiters.insert(Waiter::Transition {
                    predicate,
                    waker: Some(cx.waker().clone()),
                    hit: None,
                }));
                Poll::Pending
            }
            Some(key) => {
                if let Some(Waiter::Transition { waker, hit, .. }) = state.waiters.get_mut(key) {
                    if let Some(transition) = hit.take() {
                        state.waiters.remove(key);
                        this.key = None;
                        return Poll::Ready(transition);
                    }
                    store_waker(waker, cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for WaitTransition<T> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(&self.shared).waiters.try_remove(key);
        }
    }
}

/// The stream returned by [`AsyncValue::eventual_values`].
#[must_use = "streams do nothing unless polled"]
pub struct EventualValues<T> {
    shared: Arc<Mutex<State<T>>>,
    key: usize,
    /// The value yielded last: never yielded twice in a row.
    last: Option<T>,
}

impl<T> fmt::Debug for EventualValues<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventualValues").finish_non_exhaustive()
    }
}

impl<T: Clone + PartialEq> Stream for EventualValues<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let mut state = lock(&this.shared);
        match state.waiters.get_mut(this.key) {
            Some(Waiter::Stream { waker, latest, .. }) => match latest.take() {
                // The value went away and came back while the consumer was
                // busy: nothing new to report.
                Some(value) if this.last.as_ref() == Some(&value) => {
                    store_waker(waker, cx.waker());
                    Poll::Pending
                }
                Some(value) => {
                    this.last = Some(value.clone());
                    Poll::Ready(Some(value))
                }
                None => {
                    store_waker(waker, cx.waker());
                    Poll::Pending
                }
            },
            _ => Poll::Ready(None), // unreachable: the entry lives as long as we do
        }
    }
}

impl<T> Drop for EventualValues<T> {
    fn drop(&mut self) {
        lock(&self.shared).waiters.try_remove(self.key);
    }
}

/// Waits until `predicate` has held for `held_for`; returns the value then.
async fn hold<T, P>(value: &AsyncValue<T>, predicate: &Arc<P>, held_for: Duration) -> T
where
    T: Clone + PartialEq + Send + 'static,
    P: Fn(&T) -> bool + Send + Sync + ?Sized + 'static,
{
    loop {
        let first = {
            let p = Arc::clone(predicate);
            value.wait_value(move |v| p(v)).await
        };
        if held_for.is_zero() {
            return first;
        }
        let broken = {
            let p = Arc::clone(predicate);
            value.wait_value(move |v| !p(v))
        };
        if crate::move_on_after(held_for, broken).await.is_some() {
            continue; // broken during the hold: start again
        }
        let current = value.value();
        if predicate(&current) {
            return current;
        }
    }
}

/// The stream returned by [`AsyncValue::eventual_values_held`].
#[must_use = "streams do nothing unless polled"]
pub struct EventualValuesHeld<T> {
    inner: Pin<Box<dyn Stream<Item = T> + Send>>,
}

impl<T> fmt::Debug for EventualValuesHeld<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventualValuesHeld").finish_non_exhaustive()
    }
}

impl<T> Stream for EventualValuesHeld<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The stream returned by [`AsyncValue::transitions`].
#[must_use = "streams do nothing unless polled"]
pub struct Transitions<T> {
    shared: Arc<Mutex<State<T>>>,
    key: usize,
}

impl<T> fmt::Debug for Transitions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transitions").finish_non_exhaustive()
    }
}

impl<T> Stream for Transitions<T> {
    type Item = (T, T);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(T, T)>> {
        let mut state = lock(&self.shared);
        match state.waiters.get_mut(self.key) {
            Some(Waiter::Transitions {
                waker,
                hit,
                waiting,
                ..
            }) => match hit.take() {
                Some(transition) => {
                    *waiting = false; // busy in the loop body from now on
                    Poll::Ready(Some(transition))
                }
                None => {
                    *waiting = true;
                    store_waker(waker, cx.waker());
                    Poll::Pending
                }
            },
            _ => Poll::Ready(None), // unreachable: the entry lives as long as we do
        }
    }
}

impl<T> Drop for Transitions<T> {
    fn drop(&mut self) {
        lock(&self.shared).waiters.try_remove(self.key);
    }
}

/// A derived [`AsyncValue`] kept up to date while this guard lives; see
/// [`AsyncValue::open_transform`].
pub struct Transform<T, U> {
    source: Arc<Mutex<State<T>>>,
    key: usize,
    derived: AsyncValue<U>,
}

impl<T, U: fmt::Debug> fmt::Debug for Transform<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("derived", &self.derived)
            .finish()
    }
}

impl<T, U> Deref for Transform<T, U> {
    type Target = AsyncValue<U>;

    fn deref(&self) -> &AsyncValue<U> {
        &self.derived
    }
}

impl<T, U> Drop for Transform<T, U> {
    fn drop(&mut self) {
        lock(&self.source).waiters.try_remove(self.key);
    }
}

fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// An [`AsyncValue<bool>`] with the conveniences of trio-util's `AsyncBool`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::util::AsyncBool;
///
/// let connected = AsyncBool::new(false);
/// let watcher = tokio::spawn({
///     let connected = connected.clone();
///     async move { connected.wait_transition(None).await }
/// });
/// tokio::task::yield_now().await;
/// connected.set(true);
/// assert_eq!(watcher.await.unwrap(), (true, false));
/// connected.wait_value(true).await; // already true: returns after one yield
/// # }
/// ```
#[derive(Clone, Default)]
pub struct AsyncBool {
    value: AsyncValue<bool>,
}

impl fmt::Debug for AsyncBool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncBool").field(&self.value()).finish()
    }
}

impl AsyncBool {
    /// A flag with this initial value.
    pub fn new(value: bool) -> Self {
        AsyncBool {
            value: AsyncValue::new(value),
        }
    }

    /// The current value.
    pub fn value(&self) -> bool {
        self.value.value()
    }

    /// Sets the value; returns whether it changed (see [`AsyncValue::set`]).
    pub fn set(&self, value: bool) -> bool {
        self.value.set(value)
    }

    /// Waits until the flag equals `value` (after one yield if it already
    /// does: a checkpoint, like [`AsyncValue::wait_value`]).
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncValue::wait_value`].
    pub fn wait_value(&self, value: bool) -> WaitValue<bool> {
        self.value.wait_value(move |v| *v == value)
    }

    /// Waits for the flag to change to `Some(value)`, or to change at all
    /// with `None`; returns `(new, old)`.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncValue::wait_transition`].
    pub fn wait_transition(&self, value: Option<bool>) -> WaitTransition<bool> {
        self.value
            .wait_transition(move |new, _| value.is_none_or(|v| *new == v))
    }

    /// The underlying [`AsyncValue`], for predicates, streams and transforms.
    pub fn as_value(&self) -> &AsyncValue<bool> {
        &self.value
    }
}
