//! [`CapacityLimiter`]: at most *n* borrowers at a time, *n* adjustable at
//! run time (Trio's `CapacityLimiter`).
//!
//! # How it works, and why it is correct
//!
//! The limiter composes a tokio [`Semaphore`] (the waiting, FIFO fairness
//! and wakeups) with a small mutex-protected `State` (bookkeeping); it has no
//! waiter list of its own. A [`CapacityToken`] owns one semaphore permit.
//!
//! Lowering the total below what is borrowed cannot take permits back from
//! their holders, so the limiter removes what is free at once
//! ([`Semaphore::forget_permits`]) and records the rest as a *deficit*: the
//! next tokens released are swallowed (their permits forgotten) instead of
//! being returned, until the deficit is paid. Raising the total first cancels
//! deficit, then adds permits, which wakes waiters in FIFO order.
//!
//! Invariants, where `free` is the semaphore's available permits and `held`
//! the number of live permits (tokens, and permits about to become tokens):
//!
//! 1. `free + held == total + deficit`.
//! 2. `deficit > 0` implies `free == 0`.
//! 3. `free` grows, and `deficit` changes, only while the state mutex is held
//!    (token release and [`CapacityLimiter::set_total_tokens`]); acquiring
//!    only makes `free` smaller and needs no lock.
//!
//! Each operation keeps 1: acquiring moves a permit from `free` to `held`;
//! releasing moves it back, or (with a deficit) removes it from `held` and
//! from `deficit`; lowering by `d` removes `f` permits from `free` and adds
//! `d - f` to `deficit`; raising by `d` removes `a` from `deficit` and adds
//! `d - a` to `free`. Invariant 2 follows from 3: the deficit only grows when
//! `forget_permits` found too few free permits (leaving `free == 0`), and
//! `free` cannot grow again until the deficit is paid. So while tokens are
//! over-borrowed nobody new gets one, and as soon as `held < total` the next
//! release frees a permit for the longest waiter. Since a free permit implies
//! no deficit and tokio hands released permits to queued waiters before
//! anyone else, [`CapacityLimiter::try_acquire`] never jumps the queue.
//!
//! The state mutex is a `std` mutex held for a few instructions and never
//! across an `.await`; no user code runs under it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Lets at most a given number of borrowers hold a token at once; the number
/// can change at run time (Trio's `CapacityLimiter`).
///
/// Use it to bound how many tasks do something expensive at the same time —
/// open connections, run subprocesses, use a thread pool. Each borrower
/// [acquires](Self::acquire) a [`CapacityToken`] and gives it back by dropping
/// it. Waiters are served first come, first served.
///
/// Unlike a [`Semaphore`], the limiter:
///
/// - can be resized with [`set_total_tokens`](Self::set_total_tokens):
///   raising the total lets waiters in at once; lowering it below what is
///   borrowed takes nothing away from current holders, but nobody new gets a
///   token until enough have been released;
/// - knows its borrowers, if you name them with
///   [`acquire_on_behalf_of`](Self::acquire_on_behalf_of): a borrower may hold
///   at most one token, and asking for a second is an error, not a deadlock.
///
/// Trio's plain `acquire()` names the current task as the borrower. Here
/// [`acquire`](Self::acquire) is anonymous, because in Rust one task often
/// runs several futures at once (`join!`, `select!`) that may each
/// legitimately hold a token; name borrowers explicitly where one-per-borrower
/// matters ([`Borrower::current_task`] gives Trio's default).
///
/// A `CapacityLimiter` is a cheap handle: clones share the same tokens.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::sync::CapacityLimiter;
///
/// let limiter = CapacityLimiter::new(1);
/// let first = limiter.acquire().await;
/// assert!(limiter.try_acquire().is_err()); // all tokens borrowed
///
/// limiter.set_total_tokens(2); // make room at run time
/// let second = limiter.try_acquire().unwrap();
/// assert_eq!(limiter.borrowed_tokens(), 2);
/// drop((first, second));
/// assert_eq!(limiter.available_tokens(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct CapacityLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
    /// `acquire*` futures currently waiting for a permit.
    waiting: AtomicUsize,
}

struct State {
    total: usize,
    /// Live tokens.
    borrowed: usize,
    /// Releases still to be swallowed after the total was lowered below
    /// `borrowed` (see the module docs).
    deficit: usize,
    /// Named borrowers: `true` while holding a token, `false` while waiting
    /// for one.
    borrowers: HashMap<Borrower, bool>,
}

impl CapacityLimiter {
    /// Creates a limiter with `total_tokens` tokens.
    ///
    /// A limiter with no tokens makes every borrower wait until
    /// [`set_total_tokens`](Self::set_total_tokens) adds some.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = trellis::sync::CapacityLimiter::new(10);
    /// assert_eq!(limiter.total_tokens(), 10);
    /// assert_eq!(limiter.available_tokens(), 10);
    /// ```
    ///
    /// # Panics
    ///
    /// If `total_tokens` exceeds [`Semaphore::MAX_PERMITS`]
    /// (`usize::MAX >> 3`).
    pub fn new(total_tokens: usize) -> Self {
        check_total(total_tokens);
        Self {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(total_tokens)),
                state: Mutex::new(State {
                    total: total_tokens,
                    borrowed: 0,
                    deficit: 0,
                    borrowers: HashMap::new(),
                }),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Borrows a token, waiting until one is free.
    ///
    /// Waiters are served in the order they started waiting, whichever
    /// method they used. The token goes back when the returned
    /// [`CapacityToken`] is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = trellis::sync::CapacityLimiter::new(1);
    /// let token = limiter.acquire().await;
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// drop(token);
    /// assert_eq!(limiter.borrowed_tokens(), 0);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `acquire` future gives up its place in the
    /// queue and holds no token.
    #[doc(alias = "borrow")]
    pub async fn acquire(&self) -> CapacityToken {
        let permit = self.inner.acquire_permit().await;
        self.inner.token(permit, None)
    }

    /// Borrows a token for `borrower`, waiting until one is free; a borrower
    /// may hold at most one token.
    ///
    /// The check happens before waiting: if `borrower` already holds a token
    /// of this limiter, or is already waiting for one, the call fails at once.
    /// [`Borrower::current_task`] names the calling task, as Trio's
    /// `acquire()` does.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::sync::{Borrower, CapacityLimiter, CapacityLimiterError};
    ///
    /// let limiter = CapacityLimiter::new(5);
    /// let token = limiter.acquire_on_behalf_of("job-1").await.unwrap();
    /// assert_eq!(token.borrower(), Some(&Borrower::from("job-1")));
    ///
    /// let again = limiter.acquire_on_behalf_of("job-1").await;
    /// assert!(matches!(again, Err(CapacityLimiterError::AlreadyBorrowing(_))));
    /// drop(token);
    /// assert!(limiter.acquire_on_behalf_of("job-1").await.is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityLimiterError::AlreadyBorrowing`] if `borrower` holds or
    /// waits for a token of this limiter.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future gives up its place in the queue, holds no
    /// token, and no longer counts `borrower` as waiting.
    pub async fn acquire_on_behalf_of(
        &self,
        borrower: impl Into<Borrower>,
    ) -> Result<CapacityToken, CapacityLimiterError> {
        let claim = Claim::new(&self.inner, borrower.into())?;
        let permit = self.inner.acquire_permit().await;
        Ok(claim.into_token(permit))
    }

    /// Borrows a token if one is free and nobody is waiting, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::sync::{CapacityLimiter, CapacityLimiterError};
    ///
    /// let limiter = CapacityLimiter::new(1);
    /// let token = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.try_acquire().unwrap_err(), CapacityLimiterError::NoTokens);
    /// drop(token);
    /// assert!(limiter.try_acquire().is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityLimiterError::NoTokens`] if every token is borrowed (or
    /// others are already waiting for one).
    #[doc(alias = "acquire_nowait")]
    pub fn try_acquire(&self) -> Result<CapacityToken, CapacityLimiterError> {
        let permit = self.inner.try_acquire_permit()?;
        Ok(self.inner.token(permit, None))
    }

    /// Borrows a token for `borrower` if one is free and nobody is waiting,
    /// without waiting; a borrower may hold at most one token.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::sync::{Borrower, CapacityLimiter, CapacityLimiterError};
    ///
    /// let limiter = CapacityLimiter::new(2);
    /// let _token = limiter.try_acquire_on_behalf_of(7u64).unwrap();
    /// let err = limiter.try_acquire_on_behalf_of(7u64).unwrap_err();
    /// assert_eq!(err, CapacityLimiterError::AlreadyBorrowing(Borrower::from(7u64)));
    /// assert_eq!(err.to_string(), "borrower 7 already holds or awaits a token");
    /// ```
    ///
    /// # Errors
    ///
    /// [`CapacityLimiterError::AlreadyBorrowing`] if `borrower` holds or
    /// waits for a token of this limiter; [`CapacityLimiterError::NoTokens`]
    /// if every token is borrowed (or others are already waiting for one).
    #[doc(alias = "acquire_on_behalf_of_nowait")]
    pub fn try_acquire_on_behalf_of(
        &self,
        borrower: impl Into<Borrower>,
    ) -> Result<CapacityToken, CapacityLimiterError> {
        let claim = Claim::new(&self.inner, borrower.into())?;
        let permit = self.inner.try_acquire_permit()?;
        Ok(claim.into_token(permit))
    }

    /// Returns how many tokens the limiter lends in total.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = trellis::sync::CapacityLimiter::new(3);
    /// assert_eq!(limiter.total_tokens(), 3);
    /// ```
    pub fn total_tokens(&self) -> usize {
        self.inner.lock().total
    }

    /// Changes how many tokens the limiter lends in total.
    ///
    /// Raising the total wakes as many waiters as there are new free tokens,
    /// longest-waiting first. Lowering it takes no token away from its holder:
    /// if more tokens are borrowed than the new total, nobody gets a token
    /// until enough have been released to bring the borrowed count below the
    /// total.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::sync::CapacityLimiter;
    ///
    /// let limiter = CapacityLimiter::new(2);
    /// let a = limiter.acquire().await;
    /// let b = limiter.acquire().await;
    /// limiter.set_total_tokens(1);
    /// assert_eq!(limiter.borrowed_tokens(), 2); // nobody lost a token
    /// drop(a);
    /// assert!(limiter.try_acquire().is_err()); // 1 borrowed, total 1: full
    /// drop(b);
    /// assert!(limiter.try_acquire().is_ok());
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `total_tokens` exceeds [`Semaphore::MAX_PERMITS`]
    /// (`usize::MAX >> 3`).
    pub fn set_total_tokens(&self, total_tokens: usize) {
        check_total(total_tokens);
        let mut state = self.inner.lock();
        if total_tokens > state.total {
            let raise = total_tokens - state.total;
            let paid = raise.min(state.deficit);
            state.deficit -= paid;
            self.inner.semaphore.add_permits(raise - paid);
        } else {
            let lower = state.total - total_tokens;
            let forgotten = self.inner.semaphore.forget_permits(lower);
            state.deficit += lower - forgotten;
        }
        state.total = total_tokens;
    }

    /// Returns how many tokens are borrowed now (may exceed the total after
    /// it was lowered).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = trellis::sync::CapacityLimiter::new(3);
    /// let _token = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// ```
    pub fn borrowed_tokens(&self) -> usize {
        self.inner.lock().borrowed
    }

    /// Returns how many more tokens could be borrowed now: the total minus
    /// the borrowed tokens, or zero if more are borrowed than the total.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = trellis::sync::CapacityLimiter::new(3);
    /// let _token = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.available_tokens(), 2);
    /// ```
    pub fn available_tokens(&self) -> usize {
        let state = self.inner.lock();
        state.total.saturating_sub(state.borrowed)
    }

    /// Returns the named borrowers that hold a token now, in no particular
    /// order (anonymous tokens from [`acquire`](Self::acquire) are not
    /// listed).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::sync::{Borrower, CapacityLimiter};
    ///
    /// let limiter = CapacityLimiter::new(3);
    /// let _named = limiter.try_acquire_on_behalf_of("db").unwrap();
    /// let _anonymous = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.borrowers(), [Borrower::from("db")]);
    /// ```
    pub fn borrowers(&self) -> Vec<Borrower> {
        self.inner
            .lock()
            .borrowers
            .iter()
            .filter(|&(_, &holding)| holding)
            .map(|(borrower, _)| borrower.clone())
            .collect()
    }

    /// Reports the limiter's state (Trio's `statistics()`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::sync::CapacityLimiter;
    ///
    /// let limiter = CapacityLimiter::new(1);
    /// let token = limiter.acquire().await;
    /// let waiter = tokio::spawn({
    ///     let limiter = limiter.clone();
    ///     async move { drop(limiter.acquire().await) }
    /// });
    /// tokio::task::yield_now().await; // the waiter queues up
    /// let stats = limiter.stats();
    /// assert_eq!((stats.borrowed_tokens, stats.total_tokens, stats.tasks_waiting), (1, 1, 1));
    /// drop(token);
    /// waiter.await.unwrap();
    /// # }
    /// ```
    #[doc(alias = "statistics")]
    pub fn stats(&self) -> CapacityLimiterStats {
        let state = self.inner.lock();
        CapacityLimiterStats {
            borrowed_tokens: state.borrowed,
            total_tokens: state.total,
            tasks_waiting: self.inner.waiting.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimiter")
            .field("stats", &self.stats())
            .finish()
    }
}

fn check_total(total_tokens: usize) {
    assert!(
        total_tokens <= Semaphore::MAX_PERMITS,
        "a CapacityLimiter holds at most {} tokens, not {total_tokens}",
        Semaphore::MAX_PERMITS
    );
}

/// The limiter never closes its semaphore, so acquiring cannot fail.
fn never_closed(result: Result<OwnedSemaphorePermit, AcquireError>) -> OwnedSemaphorePermit {
    match result {
        Ok(permit) => permit,
        Err(_) => unreachable!("a CapacityLimiter never closes its semaphore"),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::loom::lock(&self.state)
    }

    async fn acquire_permit(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(&self.semaphore).try_acquire_owned() {
            return permit;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = WaitingGuard(&self.waiting);
        never_closed(Arc::clone(&self.semaphore).acquire_owned().await)
    }

    fn try_acquire_permit(&self) -> Result<OwnedSemaphorePermit, CapacityLimiterError> {
        match Arc::clone(&self.semaphore).try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => Err(CapacityLimiterError::NoTokens),
            Err(TryAcquireError::Closed) => {
                unreachable!("a CapacityLimiter never closes its semaphore")
            }
        }
    }

    /// Turns a permit into a token, registering it (and a named borrower, as
    /// holding).
    fn token(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        borrower: Option<Borrower>,
    ) -> CapacityToken {
        let mut state = self.lock();
        state.borrowed += 1;
        if let Some(borrower) = &borrower {
            state.borrowers.insert(borrower.clone(), true);
        }
        CapacityToken {
            inner: Arc::clone(self),
            permit: Some(permit),
            borrower,
        }
    }
}

/// Decrements the waiting count when an `acquire*` future stops waiting.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A named borrower registered as waiting; unregistered on drop unless it
/// became a token.
struct Claim<'a> {
    inner: &'a Arc<Inner>,
    borrower: Option<Borrower>,
}

impl<'a> Claim<'a> {
    fn new(inner: &'a Arc<Inner>, borrower: Borrower) -> Result<Self, CapacityLimiterError> {
        let mut state = inner.lock();
        if state.borrowers.contains_key(&borrower) {
            return Err(CapacityLimiterError::AlreadyBorrowing(borrower));
        }
        state.borrowers.insert(borrower.clone(), false);
        Ok(Self {
            inner,
            borrower: Some(borrower),
        })
    }

    fn into_token(mut self, permit: OwnedSemaphorePermit) -> CapacityToken {
        let borrower = self.borrower.take();
        self.inner.token(permit, borrower)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(borrower) = &self.borrower {
            self.inner.lock().borrowers.remove(borrower);
        }
    }
}

/// A token borrowed from a [`CapacityLimiter`]; dropping it gives the token
/// back.
///
/// Returned by [`CapacityLimiter::acquire`] and its variants. It owns a
/// reference to the limiter, so it can be moved into another task and outlive
/// the handle it came from.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let limiter = trellis::sync::CapacityLimiter::new(1);
/// let token = limiter.acquire().await;
/// let worker = tokio::spawn(async move {
///     let _token = token; // released when the worker finishes
/// });
/// worker.await.unwrap();
/// assert_eq!(limiter.borrowed_tokens(), 0);
/// # }
/// ```
#[must_use = "the token is given back as soon as it is dropped"]
pub struct CapacityToken {
    inner: Arc<Inner>,
    /// Always `Some` until `drop`.
    permit: Option<OwnedSemaphorePermit>,
    borrower: Option<Borrower>,
}

impl CapacityToken {
    /// Returns the borrower this token was acquired for, if it was named.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::sync::{Borrower, CapacityLimiter};
    ///
    /// let limiter = CapacityLimiter::new(2);
    /// assert_eq!(limiter.try_acquire().unwrap().borrower(), None);
    /// let named = limiter.try_acquire_on_behalf_of("me").unwrap();
    /// assert_eq!(named.borrower(), Some(&Borrower::from("me")));
    /// ```
    pub fn borrower(&self) -> Option<&Borrower> {
        self.borrower.as_ref()
    }
}

impl Drop for CapacityToken {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.borrowed -= 1;
        if let Some(borrower) = &self.borrower {
            state.borrowers.remove(borrower);
        }
        if let Some(permit) = self.permit.take() {
            if state.deficit > 0 {
                // Pay off a lowered total: this token is not lent again.
                state.deficit -= 1;
                permit.forget();
            } else {
                // Back to the semaphore (and its longest waiter) while the
                // state lock is held: invariant 3 in the module docs.
                drop(permit);
            }
        }
    }
}

impl fmt::Debug for CapacityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityToken")
            .field("borrower", &self.borrower)
            .finish_non_exhaustive()
    }
}

/// Names who borrows a token from a [`CapacityLimiter`], so that one
/// borrower cannot hold two.
///
/// Make one from a number, a name or a tokio task id (`From` impls), or
/// with [`Borrower::current_task`]. Borrowers of different kinds never
/// compare equal: `Borrower::from(1u64) != Borrower::from("1")`.
///
/// # Examples
///
/// ```
/// use trellis::sync::Borrower;
///
/// assert_eq!(Borrower::from("conn-1"), Borrower::from(String::from("conn-1")));
/// assert_ne!(Borrower::from(1u64), Borrower::from("1"));
/// assert_eq!(Borrower::from(3u64).to_string(), "3");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Borrower(BorrowerKind);

#[derive(Clone, PartialEq, Eq, Hash)]
enum BorrowerKind {
    Number(u64),
    Name(Arc<str>),
    Task(tokio::task::Id),
}

impl Borrower {
    /// Names the tokio task that calls it (Trio's default borrower), or
    /// returns `None` outside a task.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use trellis::sync::Borrower;
    ///
    /// let here = tokio::spawn(async { Borrower::current_task() }).await.unwrap();
    /// assert!(here.is_some());
    /// assert_ne!(here, tokio::spawn(async { Borrower::current_task() }).await.unwrap());
    /// # }
    /// ```
    pub fn current_task() -> Option<Self> {
        tokio::task::try_id().map(Self::from)
    }
}

impl From<u64> for Borrower {
    fn from(number: u64) -> Self {
        Self(BorrowerKind::Number(number))
    }
}

impl From<&str> for Borrower {
    fn from(name: &str) -> Self {
        Self(BorrowerKind::Name(name.into()))
    }
}

impl From<String> for Borrower {
    fn from(name: String) -> Self {
        Self(BorrowerKind::Name(name.into()))
    }
}

impl From<Arc<str>> for Borrower {
    fn from(name: Arc<str>) -> Self {
        Self(BorrowerKind::Name(name))
    }
}

impl From<tokio::task::Id> for Borrower {
    fn from(task: tokio::task::Id) -> Self {
        Self(BorrowerKind::Task(task))
    }
}

impl fmt::Display for Borrower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BorrowerKind::Number(number) => write!(f, "{number}"),
            BorrowerKind::Name(name) => f.write_str(name),
            BorrowerKind::Task(task) => write!(f, "task {task}"),
        }
    }
}

impl fmt::Debug for Borrower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BorrowerKind::Number(number) => f.debug_tuple("Number").field(number).finish(),
            BorrowerKind::Name(name) => f.debug_tuple("Name").field(name).finish(),
            BorrowerKind::Task(task) => f.debug_tuple("Task").field(task).finish(),
        }
    }
}

/// A snapshot of a [`CapacityLimiter`] (Trio's `statistics()`); the named
/// borrowers are listed by [`CapacityLimiter::borrowers`].
///
/// # Examples
///
/// ```
/// let limiter = trellis::sync::CapacityLimiter::new(4);
/// let _token = limiter.try_acquire().unwrap();
/// let stats = limiter.stats();
/// assert_eq!(stats.borrowed_tokens, 1);
/// assert_eq!(stats.total_tokens, 4);
/// assert_eq!(stats.tasks_waiting, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct CapacityLimiterStats {
    /// Tokens borrowed now; may exceed `total_tokens` after the total was
    /// lowered.
    pub borrowed_tokens: usize,
    /// Tokens the limiter lends in total.
    pub total_tokens: usize,
    /// `acquire*` futures waiting for a token.
    pub tasks_waiting: usize,
}

/// Why a [`CapacityLimiter`] did not lend a token.
///
/// # Examples
///
/// ```
/// use trellis::sync::{CapacityLimiter, CapacityLimiterError};
///
/// let limiter = CapacityLimiter::new(0);
/// let err = limiter.try_acquire().unwrap_err();
/// assert_eq!(err, CapacityLimiterError::NoTokens);
/// assert_eq!(err.to_string(), "no token free");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityLimiterError {
    /// Every token is borrowed, or others are waiting first; only from the
    /// `try_*` methods (Trio's `WouldBlock`).
    #[error("no token free")]
    #[doc(alias = "WouldBlock")]
    NoTokens,
    /// This borrower already holds a token of this limiter, or is waiting for
    /// one (Trio raises `RuntimeError`).
    #[error("borrower {0} already holds or awaits a token")]
    AlreadyBorrowing(Borrower),
}
