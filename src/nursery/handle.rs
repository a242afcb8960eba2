//! [`TaskHandle`]: what [`Nursery::spawn`](crate::Nursery::spawn) returns —
//! a way to await one task's value, cancel that one task, and ask whether it
//! has finished, without taking the task out of its nursery.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use super::TaskFailure;
use crate::cancel::{Cause, Node};

/// A handle to one task of a nursery: await it for the task's value, cancel
/// that task alone, ask whether it has finished.
///
/// The task stays a task of its nursery whatever happens to the handle: the
/// nursery waits for it, a failure of a bubbling task fails the nursery, and
/// dropping the handle neither cancels nor detaches the task (as with
/// tokio's `JoinHandle`, and unlike a dropped nursery future).
///
/// Awaiting the handle gives `Ok(value)` — the task's output, or the `Ok`
/// value of a task returning a `Result` — or a [`TaskError`] saying why
/// there is none. A failure is reported exactly once: to the nursery for a
/// task that bubbles (the default; the handle then gets
/// [`TaskError::Reported`]), or to the handle for a task spawned with
/// [`SpawnOptions::bubble(false)`](crate::SpawnOptions::bubble) (the handle
/// gets [`TaskError::Failed`] with the failure itself). Spawn with
/// `bubble(false)` when the code that awaits the handle handles the error.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::{nursery, SpawnOptions, TaskError};
///
/// nursery(|n| async move {
///     let answer = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
///     assert_eq!(answer.await.unwrap(), 42);
///
///     // Handle an error here instead of failing the nursery:
///     let flaky = n.spawn_with(SpawnOptions::new().bubble(false), async {
///         Err::<(), _>("no route to host")
///     });
///     let err = flaky.await.unwrap_err();
///     assert!(matches!(err, TaskError::Failed(_)));
///
///     // Cancel one task, and only that one:
///     let sleeper = n.spawn(tokio::time::sleep(Duration::from_secs(3600)));
///     sleeper.cancel();
///     assert!(matches!(sleeper.await, Err(TaskError::Cancelled { .. })));
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Cancel safety
///
/// Awaiting is cancel safe: dropping the `.await` loses nothing, and the
/// task goes on; await the handle again (or not at all).
pub struct TaskHandle<T> {
    join: JoinHandle<Result<T, TaskError>>,
    node: Arc<Node>,
}

impl<T> TaskHandle<T> {
    pub(super) fn new(join: JoinHandle<Result<T, TaskError>>, node: Arc<Node>) -> Self {
        TaskHandle { join, node }
    }

    /// Cancels this task, and only this task (traio's `task.cancel()`): it
    /// is dropped at its next `.await` that yields, and its handle gets
    /// [`TaskError::Cancelled`]. A task with a
    /// [`cancel_grace`](crate::SpawnOptions::cancel_grace) is asked to stop
    /// first, as when its nursery is cancelled. A cancelled task is not a failure: its
    /// nursery carries on. Does nothing once the task has finished.
    pub fn cancel(&self) {
        if !self.node.shut_down_gracefully() {
            self.node.cancel(Cause::Explicit);
        }
    }

    /// Whether the task has finished (its value, or why there is none, is
    /// ready for the handle).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// The task's name (see [`SpawnOptions::name`](crate::SpawnOptions::name)).
    pub fn name(&self) -> &str {
        self.node.task_name()
    }

    /// Waits for the task and returns its value; the same as awaiting the
    /// handle.
    ///
    /// # Errors
    ///
    /// As [`TaskError`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that the handle is consumed: to wait
    /// again after a timeout, await `&mut handle` instead.
    pub async fn join(self) -> Result<T, TaskError> {
        self.await
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join)
            .poll(cx)
            .map(|joined| match joined {
                Ok(result) => result,
                // The runtime dropped the task (it shut down): as a cancellation.
                Err(_) => Err(TaskError::Cancelled {
                    task: self.node.task_name().clone(),
                }),
            })
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a [`TaskHandle`] has no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task failed and its failure went to its nursery (the task
    /// bubbles): the nursery's [`NurseryError`](crate::NurseryError)
    /// carries it, or [`Nursery::start`](crate::Nursery::start)'s
    /// [`StartError`](crate::StartError) if it failed before starting.
    #[error("task `{task}` failed (the failure went to its nursery)")]
    Reported {
        /// The task's name.
        task: Cow<'static, str>,
    },
    /// The task, spawned with
    /// [`SpawnOptions::bubble(false)`](crate::SpawnOptions::bubble), failed:
    /// here is the failure, which nothing else reports.
    #[error("{0}")]
    Failed(TaskFailure),
    /// The task was cancelled before it finished: by
    /// [`TaskHandle::cancel`], its nursery, or a scope around the nursery.
    #[error("task `{task}` was cancelled")]
    Cancelled {
        /// The task's name.
        task: Cow<'static, str>,
    },
}

impl TaskError {
    /// The name of the task.
    pub fn task(&self) -> &str {
        match self {
            TaskError::Reported { task } | TaskError::Cancelled { task } => task,
            TaskError::Failed(failure) => failure.task(),
        }
    }
}

/// One task of a nursery, as [`Nursery::child_tasks`](crate::Nursery::child_tasks)
/// lists it (Trio's `nursery.child_tasks`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's name (see [`SpawnOptions::name`](crate::SpawnOptions::name)).
    pub name: String,
    /// Where the task is in its life.
    pub state: TaskState,
}

/// Where a listed task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Running (or waiting at an `.await`), not asked to stop.
    Running,
    /// Asked to stop gracefully ([`Nursery::shutdown`](crate::Nursery::shutdown),
    /// a cancel grace): its [`wait_shutdown`](crate::wait_shutdown) has completed.
    ShuttingDown,
    /// Cancelled: it ends at its next `.await` that yields (or when the
    /// shields inside it finish).
    Cancelled,
}

impl TaskInfo {
    pub(super) fn of(node: &Node) -> TaskInfo {
        let state = if node.is_cancelled() {
            TaskState::Cancelled
        } else if node.is_shutdown_requested() {
            TaskState::ShuttingDown
        } else {
            TaskState::Running
        };
        TaskInfo {
            name: node.task_name().to_string(),
            state,
        }
    }
}
