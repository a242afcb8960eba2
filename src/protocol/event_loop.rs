//! The loop facade: what protocols reach for on the asyncio loop, backed by
//! a nursery.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::ProtocolError;
use crate::{CancelScope, Nursery, SpawnOptions, TaskHandle, TaskOutput};

/// What a protocol reaches for on the asyncio loop — background tasks,
/// `call_soon`, `call_later`, `time()` — backed by a nursery, so nothing it
/// starts outlives that nursery (trio-protocol's `Loop(nursery)`).
///
/// Inside a protocol's callbacks, [`Loop::current`] is backed by the nursery
/// the connection runs in: the server's nursery of connections, or the
/// nursery given to [`create_connection`](super::create_connection).
/// Closing the server or cancelling that nursery cancels the tasks and
/// timers too.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), trellis::NurseryError> {
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use trellis::protocol::Loop;
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let seen = log.clone();
/// trellis::nursery(|n| async move {
///     let event_loop = Loop::new(n);
///     let start = event_loop.time();
///     let l = log.clone();
///     let late = event_loop.call_later(Duration::from_secs(2), move || l.lock().unwrap().push("late")).unwrap();
///     let l = log.clone();
///     event_loop.call_later(Duration::from_secs(1), move || l.lock().unwrap().push("soon")).unwrap();
///     let l = log.clone();
///     event_loop.call_soon(move || l.lock().unwrap().push("now")).unwrap();
///     late.cancel();
///     tokio::time::sleep(Duration::from_secs(5)).await;
///     assert_eq!(event_loop.time() - start, Duration::from_secs(5));
/// })
/// .await?;
/// assert_eq!(*seen.lock().unwrap(), ["now", "soon"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Loop {
    nursery: Nursery,
}

impl Loop {
    /// A loop facade whose tasks and timers live in `nursery`.
    pub fn new(nursery: Nursery) -> Self {
        Loop { nursery }
    }

    /// The facade of the nursery the calling task runs in; inside a
    /// protocol callback, the connection's nursery.
    pub fn current() -> Option<Loop> {
        Nursery::current().map(Loop::new)
    }

    /// The nursery behind this facade.
    pub fn nursery(&self) -> &Nursery {
        &self.nursery
    }

    /// Spawns a background task (asyncio's `create_task`) and returns its
    /// [`TaskHandle`]: await it for the task's value, cancel it, ask whether
    /// it finished.
    ///
    /// The task follows the nursery's rules: if it fails, the nursery is
    /// cancelled and the failure reported, as for
    /// [`Nursery::spawn`]. Handle errors inside the task when a failure
    /// should stay its own.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
    #[doc(alias = "create_task")]
    pub fn spawn<F>(
        &self,
        task: F,
    ) -> Result<TaskHandle<<F::Output as TaskOutput>::Value>, ProtocolError>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
        <F::Output as TaskOutput>::Value: Send + 'static,
    {
        Ok(self.nursery.try_spawn(task)?)
    }

    /// Calls `callback` as soon as possible, in a task of its own.
    ///
    /// A callback that panics is logged, as asyncio logs exceptions of
    /// callbacks; it does not fail the nursery.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
    pub fn call_soon<F>(&self, callback: F) -> Result<TimerHandle, ProtocolError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.call_at(Instant::now(), callback)
    }

    /// Calls `callback` after `delay`, unless the returned handle is
    /// cancelled first; otherwise as [`call_soon`](Loop::call_soon).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
    pub fn call_later<F>(&self, delay: Duration, callback: F) -> Result<TimerHandle, ProtocolError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.call_at(Instant::now() + delay, callback)
    }

    /// Calls `callback` at `when`, unless the returned handle is cancelled
    /// first; otherwise as [`call_soon`](Loop::call_soon).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Nursery`] if the nursery no longer takes tasks.
    pub fn call_at<F>(&self, when: Instant, callback: F) -> Result<TimerHandle, ProtocolError>
    where
        F: FnOnce() + Send + 'static,
    {
        let scope = CancelScope::new();
        let timer = scope.run(async move {
            tokio::time::sleep_until(when).await;
            callback();
        });
        let options = SpawnOptions::new().name("protocol callback").bubble(false);
        self.nursery.try_spawn_with(options, async move {
            timer.await;
        })?;
        Ok(TimerHandle { scope })
    }

    /// The loop's clock (asyncio's `time()`): tokio's [`Instant::now`], so
    /// it follows a paused test clock.
    pub fn time(&self) -> Instant {
        Instant::now()
    }
}

/// Cancels a callback scheduled by [`Loop::call_soon`], [`Loop::call_later`]
/// or [`Loop::call_at`] (asyncio's `TimerHandle`).
#[derive(Clone, Debug)]
pub struct TimerHandle {
    scope: CancelScope,
}

impl TimerHandle {
    /// Cancels the callback if it has not run yet; its task ends at once.
    pub fn cancel(&self) {
        self.scope.cancel();
    }

    /// Whether [`cancel`](TimerHandle::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.scope.is_cancelled()
    }
}
