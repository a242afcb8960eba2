//! Forks (traio's `fork`): groups of tasks inside one nursery, with their
//! own cancellation and deadline, that the parent can join.
//!
//! The scope tree stores a nursery's and each fork's [`GroupLink`]
//! type-erased in their nodes; this module reads it back.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{NurseryError, Shared, TaskFailure};
use crate::cancel::{Kind, Node};
use crate::loom::lock;

/// Options of a fork, for [`Nursery::fork_with`](crate::Nursery::fork_with).
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`name`](Self::name) | `"fork"` | names the fork's failures and its timeout |
/// | [`bubble`](Self::bubble) | `true` | a failure in the fork fails the whole nursery at once; `false`: it cancels the fork only, and waits for [`join`](crate::Nursery::join) |
/// | [`move_on`](Self::move_on) | `false` | the fork's deadline passing is not an error (it only cancels the fork) |
/// | [`timeout`](Self::timeout) / [`deadline`](Self::deadline) | none | cancels the fork's tasks then; an error unless `move_on` |
#[derive(Clone, Debug)]
#[must_use]
pub struct ForkOptions {
    pub(super) name: Cow<'static, str>,
    pub(super) bubble: bool,
    pub(super) move_on: bool,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: Option<Duration>,
}

impl Default for ForkOptions {
    fn default() -> Self {
        ForkOptions {
            name: Cow::Borrowed("fork"),
            bubble: true,
            move_on: false,
            deadline: None,
            timeout: None,
        }
    }
}

impl ForkOptions {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the fork.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Whether a failure in the fork fails the whole nursery at once
    /// (default `true`, like a task's failure). With `false`, a failure
    /// cancels the fork's other tasks and is kept for
    /// [`join`](crate::Nursery::join); one nobody joins is reported by the
    /// nursery when it ends (and logged when it happens): never lost.
    pub fn bubble(mut self, bubble: bool) -> Self {
        self.bubble = bubble;
        self
    }

    /// Makes the fork's deadline a `move_on` one: when it passes, the
    /// fork's tasks are cancelled and nothing is reported. By default a
    /// fork's deadline passing is an error ([`NurseryError::TimedOut`]
    /// from `join`, or a failure of the nursery for a bubbling fork).
    pub fn move_on(mut self) -> Self {
        self.move_on = true;
        self
    }

    /// Cancels the fork `timeout` after it is opened.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cancels the fork at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// What the scope tree keeps, type-erased, in a nursery's or a fork's node.
pub(super) struct GroupLink {
    pub(super) shared: Weak<Shared>,
    pub(super) fork: Option<Arc<ForkState>>,
}

impl GroupLink {
    /// The link in `node`, if it is a nursery's or a fork's node.
    pub(super) fn of(node: &Node) -> Option<&GroupLink> {
        match node.kind() {
            Kind::Group(link) => link.as_any().downcast_ref::<GroupLink>(),
            _ => None,
        }
    }
}

/// The state of one fork: its live tasks and what went wrong in it.
#[derive(Debug)]
pub(crate) struct ForkState {
    pub(super) name: Cow<'static, str>,
    pub(super) bubble: bool,
    pub(super) move_on: bool,
    /// Tasks spawned through the fork that have not ended.
    live: AtomicUsize,
    /// Failures of a non-bubbling fork, for `join`.
    failures: Mutex<Vec<TaskFailure>>,
    /// The deadline that passed, for a fork that is not `move_on`.
    timed_out: Mutex<Option<Instant>>,
    done: Notify,
}

impl ForkState {
    pub(super) fn new(options: &ForkOptions) -> ForkState {
        ForkState {
            name: options.name.clone(),
            bubble: options.bubble,
            move_on: options.move_on,
            live: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            timed_out: Mutex::new(None),
            done: Notify::new(),
        }
    }

    pub(super) fn task_started(&self) {
        self.live.fetch_add(1, Ordering::SeqCst);
    }

    /// Records the end of one of the fork's tasks, with its failure if the
    /// fork keeps failures for `join`.
    pub(super) fn task_ended(&self, failure: Option<TaskFailure>) {
        if let Some(failure) = failure {
            lock(&self.failures).push(failure);
        }
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.done.notify_waiters();
        }
    }

    pub(super) fn timed_out(&self, deadline: Instant) {
        *lock(&self.timed_out) = Some(deadline);
    }

    /// Waits until the fork has no live task, then takes its result.
    pub(super) async fn join(&self) -> Result<(), NurseryError> {
        loop {
            let notified = self.done.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::SeqCst) == 0 {
                break;
            }
            notified.await;
        }
        crate::checkpoint().await;
        self.take_result()
    }

    /// The fork's result, taken (a later failure is a new one).
    fn take_result(&self) -> Result<(), NurseryError> {
        let failures = std::mem::take(&mut *lock(&self.failures));
        match lock(&self.timed_out).take() {
            Some(deadline) => Err(NurseryError::TimedOut {
                deadline,
                cleanup: failures,
            }),
            None if failures.is_empty() => Ok(()),
            None => Err(NurseryError::Failed { failures }),
        }
    }

    /// At the nursery's end: what no `join` took, as a failure of the
    /// nursery under the fork's name.
    pub(super) fn unjoined_failure(&self) -> Option<TaskFailure> {
        match self.take_result() {
            Ok(()) => None,
            Err(error) => Some(TaskFailure::from_error(self.name.clone(), Box::new(error))),
        }
    }
}
