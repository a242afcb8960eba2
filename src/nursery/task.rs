//! (private) The driver of one nursery task: polls the task's future under
//! its scope node, catches its panics, reports how it ended to the nursery,
//! and leaves the task's value (or why there is none) for its
//! [`TaskHandle`](super::TaskHandle).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tracing::Span;

use super::stats::{self, Probe};
use super::status::StartHook;
use super::{ForkState, Shared, TaskError, TaskFailure, TaskOutput};
use crate::cancel::{
    BodyPoll, Cause, DeadlineTimer, InNode, Node, Verdict, WakerRegistration, drop_catching,
    poll_body_catching,
};

/// Facts about a task that its driver reports when it ends.
pub(super) struct TaskMeta {
    /// The fork the task was spawned through, if any.
    pub(super) fork: Option<Arc<ForkState>>,
    pub(super) bubble: bool,
    pub(super) master: bool,
    pub(super) awaited: bool,
}

pin_project! {
    /// A task's cancel grace, and the timer of its node that enforces it.
    pub(super) struct Grace {
        pub(super) period: Duration,
        #[pin]
        pub(super) timer: DeadlineTimer,
    }
}

/// How a task ended, as its nursery sees it.
pub(super) enum Outcome {
    Ok,
    Failed(TaskFailure),
    Cancelled,
}

pin_project! {
    /// Runs one task: polls its future under its node, catches its panics,
    /// and reports how it ended to the nursery. Its output is what the
    /// task's handle receives.
    pub(super) struct TaskDriver<F: Future> {
        #[pin]
        pub(super) body: Option<InNode<F>>,
        // The task's `tracing` span, entered around every poll and drop of
        // the body; `None` when no subscriber is interested.
        pub(super) span: Option<Box<Span>>,
        pub(super) node: Arc<Node>,
        pub(super) shared: Arc<Shared>,
        pub(super) meta: TaskMeta,
        pub(super) start: Option<StartHook>,
        // Whether the body has been polled once: the first poll happens
        // whatever the node's state (Trio: a task runs until its first
        // checkpoint, even in a cancelled nursery).
        pub(super) polled: bool,
        // A task with a cancel grace runs its node's timer: the grace
        // deadline of a graceful cancellation, then the cancellation.
        // Boxed: few tasks have one, and every task's future is smaller.
        pub(super) grace: Option<Pin<Box<Grace>>>,
        // Whether the node has joined its parent's children (lazily, at the
        // first `Pending`).
        pub(super) registered: bool,
        // The waker registered on the node (also at the first `Pending`).
        pub(super) registration: WakerRegistration,
        pub(super) done: bool,
        // `util::TaskStats`, when the nursery is instrumented.
        pub(super) probe: Option<Box<Probe>>,
    }

    impl<F: Future> PinnedDrop for TaskDriver<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if !*this.done {
                // Dropped unfinished (runtime shutdown): drop the body first,
                // so the nursery never sees a task end before its body.
                let _entered = this.span.as_deref().map(Span::enter);
                this.body.set(None);
                this.node.detach();
                this.shared
                    .task_done(this.node, this.meta, Outcome::Cancelled, this.start.take());
            }
        }
    }
}

impl<F> Future for TaskDriver<F>
where
    F: Future,
    F::Output: TaskOutput,
{
    type Output = Result<<F::Output as TaskOutput>::Value, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.probe.is_none() {
            return self.poll_task(cx);
        }
        // Instrumented: time the poll, with a waker that stamps wakes.
        let Some(mut probe) = self.as_mut().project().probe.take() else {
            return Poll::Pending; // unreachable: checked above
        };
        let started = Instant::now();
        let (waker, latency) = probe.before_poll(cx.waker(), started);
        let in_poll = stats::InPoll::enter(started);
        let polled = self.as_mut().poll_task(&mut Context::from_waker(waker));
        drop(in_poll);
        probe.after_poll(self.node.task_name(), latency, started);
        *self.as_mut().project().probe = Some(probe);
        polled
    }
}

impl<F> TaskDriver<F>
where
    F: Future,
    F::Output: TaskOutput,
{
    fn poll_task(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<<F::Output as TaskOutput>::Value, TaskError>> {
        let mut this = self.project();
        let _entered = this.span.as_deref().map(Span::enter);
        let first = !std::mem::replace(this.polled, true);
        if let Some(grace) = this.grace {
            grace.as_mut().project().timer.poll_fire(this.node, cx);
        }
        let mut polled = poll_body_catching(this.node, this.body.as_mut(), cx, first);
        if matches!(polled, BodyPoll::Pending | BodyPoll::Parked) {
            // The node learns how to wake us, and joins the tree, only once
            // we wait (a task done in one poll needs neither); after that a
            // poll registers nothing while the task's waker stays the same.
            // A cancellation that came before (the nursery's included: the
            // node inherits it when it registers) is in the verdict.
            let mut changed = this.registration.update(this.node, cx.waker());
            if !*this.registered {
                *this.registered = true;
                this.node.register();
                changed = true;
            }
            if changed && this.node.verdict() == Verdict::Drop {
                polled = drop_catching(this.body.as_mut());
            }
        }
        let name = this.node.task_name();
        let (outcome, output) = match polled {
            BodyPoll::Pending | BodyPoll::Parked => {
                StartHook::release_if_answered(this.start);
                return Poll::Pending;
            }
            BodyPoll::Dropped => match this.grace {
                Some(grace) if this.node.own_cause() == Some(Cause::Shutdown) => (
                    Outcome::Failed(TaskFailure::from_error(
                        name.clone(),
                        format!("could not cancel task `{name}` within {:?}", grace.period).into(),
                    )),
                    Err(TaskError::Reported { task: name.clone() }),
                ),
                _ => (
                    Outcome::Cancelled,
                    Err(TaskError::Cancelled { task: name.clone() }),
                ),
            },
            BodyPoll::Ready(Ok(out)) => match out.into_result() {
                Ok(value) => (Outcome::Ok, Ok(value)),
                Err(error) => (
                    Outcome::Failed(TaskFailure::from_error(name.clone(), error)),
                    Err(TaskError::Reported { task: name.clone() }),
                ),
            },
            BodyPoll::Ready(Err(panic)) => (
                Outcome::Failed(TaskFailure::from_panic(name.clone(), panic)),
                Err(TaskError::Reported { task: name.clone() }),
            ),
        };
        *this.done = true;
        this.node.detach();
        Poll::Ready(
            match this
                .shared
                .task_done(this.node, this.meta, outcome, this.start.take())
            {
                // Not bubbling: the failure is the handle's.
                Some(failure) => Err(TaskError::Failed(failure)),
                None => output,
            },
        )
    }
}
