//! The errors of nurseries: [`NurseryError`], [`TaskFailure`] and [`StartError`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use tokio::time::Instant;

/// A boxed error that can cross tasks: what a failed task, a crashed
/// process or a refused `init` carries.
///
/// Any `std::error::Error + Send + Sync`, a `String` or a `&str` converts
/// into it with `?` or `.into()`, and the original error is kept: downcast it
/// with `downcast_ref`, walk its
/// [`source`](StdError::source) chain.
///
/// # Examples
///
/// ```
/// use trellis::BoxError;
///
/// fn parse(s: &str) -> Result<u32, BoxError> {
///     Ok(s.parse::<u32>()?)
/// }
/// let err = parse("x").unwrap_err();
/// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// How one task failed: the error it returned, or the panic it raised.
#[derive(Debug)]
pub struct TaskFailure {
    task: Cow<'static, str>,
    kind: FailureKind,
}

#[derive(Debug)]
enum FailureKind {
    Error(BoxError),
    Panic(String),
}

impl TaskFailure {
    pub(crate) fn from_error(task: Cow<'static, str>, error: BoxError) -> Self {
        TaskFailure {
            task,
            kind: FailureKind::Error(error),
        }
    }

    pub(crate) fn from_panic(task: Cow<'static, str>, message: String) -> Self {
        TaskFailure {
            task,
            kind: FailureKind::Panic(message),
        }
    }

    /// The name of the task that failed (see [`SpawnOptions::name`](crate::SpawnOptions::name)).
    pub fn task(&self) -> &str {
        &self.task
    }

    /// Whether the task panicked (rather than returning an error).
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, FailureKind::Panic(_))
    }

    /// The panic message, if the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            FailureKind::Panic(message) => Some(message),
            FailureKind::Error(_) => None,
        }
    }

    /// The error the task returned, if it returned one.
    pub fn error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match &self.kind {
            FailureKind::Error(error) => Some(&**error),
            FailureKind::Panic(_) => None,
        }
    }

    /// Takes the error the task returned, if it returned one.
    pub fn into_error(self) -> Option<Box<dyn StdError + Send + Sync + 'static>> {
        match self.kind {
            FailureKind::Error(error) => Some(error),
            FailureKind::Panic(_) => None,
        }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FailureKind::Error(error) => write!(f, "task `{}` failed: {error}", self.task),
            FailureKind::Panic(message) => write!(f, "task `{}` panicked: {message}", self.task),
        }
    }
}

impl StdError for TaskFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            FailureKind::Error(error) => Some(&**error),
            FailureKind::Panic(_) => None,
        }
    }
}

/// Why a nursery did not finish cleanly, or refused a new task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NurseryError {
    /// One or more tasks (or the body) failed; every failure is here, in the
    /// order they happened. The nursery cancelled everything else first.
    #[error("{}", FailureList(.failures))]
    Failed {
        /// Every failure, in order.
        failures: Vec<TaskFailure>,
    },
    /// The nursery's deadline passed; it cancelled everything inside.
    ///
    /// A task that failed *while being cancelled* (a panic in a `Drop`, an
    /// error from a shielded cleanup) does not hide the timeout: its
    /// failure is kept here, in `cleanup`, and logged.
    #[error("nursery timed out{}", CleanupNote(.cleanup))]
    TimedOut {
        /// The deadline that passed.
        deadline: Instant,
        /// Failures of tasks while they were being cancelled, in order.
        cleanup: Vec<TaskFailure>,
    },
    /// The nursery was cancelled from inside
    /// ([`Nursery::cancel`](crate::Nursery::cancel), a master task ending,
    /// a shutdown) before its body produced a value, and its body's value
    /// is not `()` (a body returning `()` ends with `Ok(())`).
    #[error("nursery cancelled before its body finished")]
    Cancelled,
    /// The nursery has finished: it takes no new tasks.
    #[error("nursery is closed")]
    Closed,
    /// [`Nursery::join`](crate::Nursery::join) on a nursery's own handle:
    /// only forks can be joined (a nursery cannot wait for itself).
    #[error("only a fork can be joined")]
    NotAFork,
}

impl NurseryError {
    /// Every task failure this error carries: the failures of `Failed`,
    /// the cleanup failures of `TimedOut`, none otherwise.
    pub fn failures(&self) -> &[TaskFailure] {
        match self {
            NurseryError::Failed { failures } => failures,
            NurseryError::TimedOut { cleanup, .. } => cleanup,
            _ => &[],
        }
    }
}

struct CleanupNote<'a>(&'a [TaskFailure]);

impl fmt::Display for CleanupNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            [one] => write!(f, " (and, while cancelling: {one})"),
            many => write!(f, " (and {} tasks failed while cancelling)", many.len()),
        }
    }
}

struct FailureList<'a>(&'a [TaskFailure]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} tasks failed", many.len())?;
                for failure in many {
                    write!(f, "; {failure}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why [`Nursery::start`](crate::Nursery::start) returned no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The task failed before calling `started`; its failure comes to the
    /// starter and not to the nursery.
    #[error("{0}")]
    Failed(TaskFailure),
    /// The task returned without calling `started`.
    #[error("task `{task}` finished without calling `started`")]
    NotStarted {
        /// The task's name.
        task: Cow<'static, str>,
    },
    /// The task was cancelled before calling `started`.
    #[error("task `{task}` was cancelled before calling `started`")]
    Cancelled {
        /// The task's name.
        task: Cow<'static, str>,
    },
    /// The nursery has finished: it takes no new tasks.
    #[error("nursery is closed")]
    Closed,
}
