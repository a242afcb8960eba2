//! [`TaskStatus`]: the `start` handshake between a starting task and its starter.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::error::StartError;

/// The handshake between a starting task and its starter, in one allocation
/// shared by the task's [`TaskStatus`], its driver's [`StartHook`] and the
/// starter's [`Started`].
struct Handshake<T> {
    state: Mutex<State<T>>,
    /// Set once answered: the task's driver then lets go of the handshake
    /// without taking the lock (see [`StartHook::release_if_answered`]).
    answered: AtomicBool,
}

enum State<T> {
    /// No answer yet.
    Waiting {
        /// The starter's waker, once it has polled.
        starter: Option<Waker>,
        /// The starter went away: an answer is dropped.
        starter_gone: bool,
    },
    /// Answered; the answer until the starter takes it.
    Answered(Option<Result<T, StartError>>),
}

impl<T> Handshake<T> {
    fn new() -> Arc<Self> {
        Arc::new(Handshake {
            state: Mutex::new(State::Waiting {
                starter: None,
                starter_gone: false,
            }),
            answered: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        crate::loom::lock(&self.state)
    }

    /// Gives the starter `answer` if nobody answered yet; hands it back
    /// otherwise.
    fn answer(&self, answer: Result<T, StartError>) -> Result<(), Result<T, StartError>> {
        let mut state = self.lock();
        let State::Waiting {
            starter,
            starter_gone,
        } = &mut *state
        else {
            return Err(answer);
        };
        let starter = starter.take();
        // An answer nobody will read is dropped after the lock (its `Drop`
        // may look at this handshake).
        let (kept, unread) = if *starter_gone {
            (None, Some(answer))
        } else {
            (Some(answer), None)
        };
        *state = State::Answered(kept);
        self.answered.store(true, Ordering::Release);
        drop(state);
        drop(unread);
        if let Some(waker) = starter {
            waker.wake();
        }
        Ok(())
    }
}

/// Handed to a task run by [`Nursery::start`](crate::Nursery::start): call
/// [`started`](Self::started) once the task is ready, with the value the
/// starter is waiting for (Trio's `task_status.started(value)`).
///
/// Until then a failure of the task goes to the starter, not to the
/// nursery; after it the task is an ordinary nursery task.
pub struct TaskStatus<T> {
    /// `None` for an [ignored](Self::ignored) status: nobody to answer, and
    /// nothing allocated for it.
    handshake: Option<Arc<Handshake<T>>>,
}

impl<T> fmt::Debug for TaskStatus<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus")
            .field("started", &self.is_started())
            .finish()
    }
}

impl<T: Send + 'static> TaskStatus<T> {
    /// A new handshake: the task's status, its driver's hook, and the
    /// starter's future.
    pub(crate) fn new() -> (Self, StartHook, Started<T>) {
        let handshake = Handshake::new();
        (
            TaskStatus {
                handshake: Some(Arc::clone(&handshake)),
            },
            StartHook {
                handshake: Arc::clone(&handshake) as Arc<dyn Answer>,
            },
            Started { handshake },
        )
    }
}

impl<T> TaskStatus<T> {
    /// A status nobody waits for (Trio's `TASK_STATUS_IGNORED`): lets a
    /// function written for [`Nursery::start`](crate::Nursery::start) run
    /// with a plain [`spawn`](crate::Nursery::spawn) or `.await`.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::TaskStatus;
    ///
    /// async fn serve(status: TaskStatus<u16>) {
    ///     status.started(8080);
    /// }
    /// # trellis::RunOptions::new().current_thread().run(async {
    /// serve(TaskStatus::ignored()).await; // no starter: the value is dropped
    /// # }).unwrap();
    /// ```
    pub fn ignored() -> Self {
        TaskStatus { handshake: None }
    }

    /// Reports that the task has started, handing `value` to the starter.
    ///
    /// Takes the status by value: a task starts once, and a second call does
    /// not compile (Trio raises `RuntimeError` at run time):
    ///
    /// ```compile_fail
    /// async fn serve(status: trellis::TaskStatus<u16>) {
    ///     status.started(8080);
    ///     status.started(8081); // error: use of moved value
    /// }
    /// ```
    ///
    /// With no starter waiting ([`ignored`](Self::ignored), or a starter
    /// that gave up), the value is dropped at once.
    pub fn started(self, value: T) {
        // Already answered, or nobody waits: the value is dropped.
        if let Some(handshake) = &self.handshake {
            let _ = handshake.answer(Ok(value));
        }
    }

    /// Whether [`started`](Self::started) has been called (always `true`
    /// for an [ignored](Self::ignored) status: nobody waits for it).
    pub fn is_started(&self) -> bool {
        self.handshake
            .as_ref()
            .is_none_or(|handshake| matches!(*handshake.lock(), State::Answered(_)))
    }
}

/// The starter's side of the handshake: the task's value once it started,
/// or why it did not.
pub(crate) struct Started<T> {
    handshake: Arc<Handshake<T>>,
}

impl<T> Future for Started<T> {
    type Output = Result<T, StartError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.handshake.lock();
        match &mut *state {
            State::Waiting { starter, .. } => {
                match starter {
                    Some(waker) => waker.clone_from(cx.waker()),
                    None => *starter = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            // Polled again after it was taken: as a closed handshake.
            State::Answered(answer) => {
                Poll::Ready(answer.take().unwrap_or(Err(StartError::Closed)))
            }
        }
    }
}

impl<T> Drop for Started<T> {
    fn drop(&mut self) {
        let mut state = self.handshake.lock();
        let unread = match &mut *state {
            State::Waiting { starter_gone, .. } => {
                *starter_gone = true;
                None
            }
            // An answer nobody will read: dropped now, not with the task
            // (and after the lock).
            State::Answered(answer) => answer.take(),
        };
        drop(state);
        drop(unread);
    }
}

/// Type-erased answering side of a [`Handshake`].
trait Answer: Send + Sync {
    /// Ends the handshake with `error` if it is still waiting. Returns the
    /// error back if the task had already started (the error is then the
    /// nursery's business).
    fn fail(&self, error: StartError) -> Option<StartError>;

    /// Whether the handshake has been answered (either way).
    fn is_answered(&self) -> bool;
}

impl<T: Send> Answer for Handshake<T> {
    fn fail(&self, error: StartError) -> Option<StartError> {
        match self.answer(Err(error)) {
            // Given back: already answered.
            Err(Err(error)) => Some(error),
            _ => None,
        }
    }

    fn is_answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }
}

/// The task side's view of the handshake, kept by the task's driver (or a
/// supervisor's child): lets it tell the starter why the task ended before
/// it started. Dropped unused, it tells the starter the handshake closed.
pub(crate) struct StartHook {
    // Not an `Option` (taken on use): a task's driver keeps an
    // `Option<StartHook>`, which then costs no more than the `Arc`.
    handshake: Arc<dyn Answer>,
}

impl StartHook {
    /// Ends the handshake with `error` if it is still waiting. Returns the
    /// error back if the task had already started.
    /// (`Drop` then finds the handshake answered, and leaves it.)
    pub(crate) fn fail(self, error: StartError) -> Option<StartError> {
        self.handshake.fail(error)
    }

    /// Drops the hook in `slot` once its handshake is answered: it has
    /// nothing left to do, and a task that lives long would otherwise keep
    /// the handshake's allocation for its whole life. Called by whoever
    /// holds the hook after each poll of the task (a task's driver, a
    /// supervised child).
    pub(crate) fn release_if_answered(slot: &mut Option<StartHook>) {
        if slot
            .as_ref()
            .is_some_and(|hook| hook.handshake.is_answered())
        {
            *slot = None;
        }
    }
}

impl Drop for StartHook {
    fn drop(&mut self) {
        if !self.handshake.is_answered() {
            let _ = self.handshake.fail(StartError::Closed);
        }
    }
}

/// The start error for a task that ended, without failing, before it started.
pub(crate) fn not_started(task: Cow<'static, str>, cancelled: bool) -> StartError {
    if cancelled {
        StartError::Cancelled { task }
    } else {
        StartError::NotStarted { task }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_now<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_starter_gets_the_value_and_the_task_end_goes_to_the_nursery() {
        let (status, hook, mut started) = TaskStatus::<u32>::new();
        assert!(poll_now(&mut started).is_pending());
        assert!(!status.is_started());
        let looks_back = TaskStatus {
            handshake: status.handshake.clone(),
        };
        status.started(7);
        assert!(looks_back.is_started());
        // The task ending later hands its error back: it is the nursery's.
        let error = hook.fail(StartError::Closed);
        assert!(matches!(error, Some(StartError::Closed)));
        assert!(matches!(poll_now(&mut started), Poll::Ready(Ok(7))));
    }

    #[test]
    fn a_hook_dropped_before_the_task_started_closes_the_handshake() {
        let (_status, hook, mut started) = TaskStatus::<u32>::new();
        drop(hook);
        assert!(matches!(
            poll_now(&mut started),
            Poll::Ready(Err(StartError::Closed))
        ));
    }

    #[test]
    fn a_failure_before_started_goes_to_the_starter() {
        let (status, hook, mut started) = TaskStatus::<u32>::new();
        let cancelled = StartError::Cancelled {
            task: Cow::Borrowed("t"),
        };
        assert!(hook.fail(cancelled).is_none());
        status.started(1); // too late: dropped
        assert!(matches!(
            poll_now(&mut started),
            Poll::Ready(Err(StartError::Cancelled { .. }))
        ));
    }

    /// Counts its drops, and looks at its own handshake while dropped.
    struct Probe {
        drops: Arc<AtomicUsize>,
        status: Option<TaskStatus<Probe>>,
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            if let Some(status) = &self.status {
                let _ = status.is_started(); // must not deadlock
            }
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_value_nobody_waits_for_is_dropped_at_once_outside_the_lock() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (status, _hook, started) = TaskStatus::<Probe>::new();
        drop(started);
        let looks_back = TaskStatus {
            handshake: status.handshake.clone(),
        };
        let observer = TaskStatus {
            handshake: status.handshake.clone(),
        };
        status.started(Probe {
            drops: Arc::clone(&drops),
            status: Some(looks_back),
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(observer.is_started());
    }

    #[test]
    fn an_answer_left_unread_is_dropped_with_the_starter() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (status, _hook, started) = TaskStatus::<Probe>::new();
        let looks_back = TaskStatus {
            handshake: status.handshake.clone(),
        };
        status.started(Probe {
            drops: Arc::clone(&drops),
            status: Some(looks_back),
        });
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(started);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
