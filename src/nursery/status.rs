//! [`TaskStatus`]: the `start` handshake between a starting task and its starter.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::error::StartError;

type Slot<T> = Arc<Mutex<Option<oneshot::Sender<Result<T, StartError>>>>>;

/// Handed to a task run by [`Nursery::start`](crate::Nursery::start): call
/// [`started`](Self::started) once the task is ready, with the value the
/// starter is waiting for (Trio's `task_status.started(value)`).
///
/// Until then a failure of the task goes to the starter, not to the
/// nursery; after it the task is an ordinary nursery task.
pub struct TaskStatus<T> {
    slot: Slot<T>,
}

impl<T> fmt::Debug for TaskStatus<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus")
            .field("started", &self.is_started())
            .finish()
    }
}

impl<T> TaskStatus<T> {
    pub(crate) fn new() -> (Self, StartHook<T>, oneshot::Receiver<Result<T, StartError>>) {
        let (tx, rx) = oneshot::channel();
        let slot = Arc::new(Mutex::new(Some(tx)));
        (
            TaskStatus {
                slot: Arc::clone(&slot),
            },
            StartHook { slot },
            rx,
        )
    }

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
        TaskStatus {
            slot: Arc::new(Mutex::new(None)),
        }
    }

    /// Reports that the task has started, handing `value` to the starter.
    ///
    /// Calls after the first do nothing (Trio raises; a value that nobody can
    /// receive is simply dropped here).
    pub fn started(&self, value: T) {
        if let Some(tx) = take(&self.slot) {
            // The starter may have gone away (its future dropped): nothing to do.
            let _ = tx.send(Ok(value));
        }
    }

    /// Whether [`started`](Self::started) has been called.
    pub fn is_started(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

fn take<T>(slot: &Slot<T>) -> Option<oneshot::Sender<Result<T, StartError>>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// The task side's view of the handshake: lets the task's driver send the
/// starter an error if the task ends before it started.
pub(crate) struct StartHook<T> {
    slot: Slot<T>,
}

/// Type-erased [`StartHook`], kept by a task's driver.
pub(crate) trait PendingStart: Send {
    /// Ends the handshake with `error` if it is still pending. Returns the
    /// error back if the task had already started (the error is then the
    /// nursery's business).
    fn fail(self: Box<Self>, error: StartError) -> Option<StartError>;
}

impl<T: Send> PendingStart for StartHook<T> {
    fn fail(self: Box<Self>, error: StartError) -> Option<StartError> {
        match take(&self.slot) {
            Some(tx) => {
                let _ = tx.send(Err(error));
                None
            }
            None => Some(error),
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
