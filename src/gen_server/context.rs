//! [`Context`]: what a gen_server's callbacks can do besides answering —
//! reach their own server, defer a reply, stop, run tasks, set timers,
//! monitor and link.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;

use super::{Envelope, GenServer, ReplySender, ReplyTo, Server, server_loop};
use crate::cancel::panic_message;
use crate::mailbox::Address;
use crate::nursery::TaskOutput;
use crate::process::{self, ExitReason, MonitorRef, Pid};
use crate::{CancelScope, Nursery, NurseryError};

/// What callbacks can do besides answering: reach their own server, defer
/// a reply, run concurrent work, set timers, monitor and link.
pub struct Context<S: GenServer> {
    pub(super) server: Server<S>,
    /// The scope the server runs in, where its task group will hang.
    pub(super) scope: Option<Arc<crate::cancel::Node>>,
    pub(super) reply: Option<ReplySender<S::Reply>>,
    /// Set by [`Context::stop`]: the server stops once the callback returns.
    pub(super) stop: Option<ExitReason>,
    pub(super) trap_exits: bool,
}

impl<S: GenServer> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// Polls a task of the server `pid`: a panic in it stops the server,
    /// which a reply handle dropped by that panic must know.
    struct OwnedBy<F> {
        pid: Pid,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for OwnedBy<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let _owner = process::enter_task(*this.pid);
        this.inner.poll(cx)
    }
}

/// Cancels a timer made by [`Context::send_after`] or
/// [`Context::send_interval`] when asked; timers also end with the server.
#[derive(Debug, Clone)]
pub struct TimerRef {
    scope: CancelScope,
}

impl TimerRef {
    /// Cancels the timer; a message not yet sent never will be.
    pub fn cancel(&self) {
        self.scope.cancel();
    }
}

impl<S: GenServer> Context<S> {
    /// This server's pid.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// A handle to this server, to give to others. Calling or stopping
    /// the server through it from its own callbacks fails at once with
    /// [`GenServerError::CallingSelf`](super::GenServerError::CallingSelf); use [`stop`](Self::stop) instead.
    pub fn server(&self) -> &Server<S> {
        &self.server
    }

    /// Stops the server with `reason` once the running callback returns:
    /// a call being handled still gets the reply its callback returns, then
    /// `terminate` runs. From `init`, the start is refused with `reason`, as
    /// if `init` returned [`Init::Stop`](super::Init::Stop). A later `stop` replaces an earlier
    /// one; a callback returning a stop of its own wins over both.
    pub fn stop(&mut self, reason: ExitReason) {
        self.stop = Some(reason);
    }

    /// The address of this server's `handle_info`, for tasks and other
    /// processes to report back.
    pub fn info(&self) -> Address<S::Info> {
        self.server.info_address()
    }

    /// Takes the reply handle of the call being handled, to answer later
    /// with [`ReplyTo::reply`] (return [`Response::NoReply`](super::Response::NoReply)). `None` outside
    /// `handle_call` or if already taken.
    pub fn defer(&mut self) -> Option<ReplyTo<S::Reply>> {
        let pid = self.pid();
        self.reply.take().map(|sender| ReplyTo {
            sender: Some(sender),
            pid,
        })
    }

    /// Runs `task` concurrently in the server's own nursery: it cannot
    /// outlive the server (it is cancelled when the server stops), and if
    /// it fails or panics the server stops with that reason (its
    /// `terminate` runs).
    ///
    /// # Errors
    ///
    /// If the server is stopping.
    pub fn spawn<F>(&self, task: F) -> Result<(), NurseryError>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
    {
        let to = self.server.address.clone();
        let owner = self.pid();
        self.tasks()?.try_spawn(async move {
            let outcome = OwnedBy {
                pid: owner,
                inner: AssertUnwindSafe(task).catch_unwind(),
            };
            let reason = match outcome.await {
                Ok(output) => match output.into_result() {
                    Ok(_) => return,
                    Err(error) => ExitReason::error(error),
                },
                Err(payload) => ExitReason::Panic(panic_message(&*payload).into()),
            };
            let _ = to.send(Envelope::Stop(Box::new(reason))).await;
        })?;
        Ok(())
    }

    /// Sends `message` to this server's `handle_info` after `delay`
    /// (Erlang's `erlang:send_after/3` to self).
    ///
    /// # Errors
    ///
    /// If the server is stopping.
    pub fn send_after(&self, message: S::Info, delay: Duration) -> Result<TimerRef, NurseryError> {
        let to = self.server.address.clone();
        self.timer(async move {
            tokio::time::sleep(delay).await;
            let _ = to.send(Envelope::Info(message)).await;
        })
    }

    /// Sends `message()` to this server's `handle_info` every `period`,
    /// the first time after one period (Erlang's `timer:send_interval/2`).
    ///
    /// # Errors
    ///
    /// If the server is stopping.
    pub fn send_interval<F>(
        &self,
        period: Duration,
        mut message: F,
    ) -> Result<TimerRef, NurseryError>
    where
        F: FnMut() -> S::Info + Send + 'static,
    {
        let to = self.server.address.clone();
        self.timer(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if to.send(Envelope::Info(message())).await.is_err() {
                    return;
                }
            }
        })
    }

    /// The server's task group, made on first use (a server that never
    /// spawns pays nothing for it).
    fn tasks(&self) -> Result<Nursery, NurseryError> {
        self.server
            .address
            .entry()
            .tasks(|| server_loop::task_group(self.scope.as_ref()))
            .ok_or(NurseryError::Closed)
    }

    fn timer(
        &self,
        body: impl Future<Output = ()> + Send + 'static,
    ) -> Result<TimerRef, NurseryError> {
        let scope = CancelScope::new();
        let run = scope.run(body);
        self.tasks()?.try_spawn(async move {
            run.await;
        })?;
        Ok(TimerRef { scope })
    }

    /// Watches `pid`: [`GenServer::handle_down`](super::GenServer::handle_down) runs once when it ends (at
    /// once if it already has).
    pub fn monitor(&mut self, pid: Pid) -> MonitorRef {
        self.server.address.entry().monitor(pid)
    }

    /// Removes a monitor; its `Down` will not arrive. Returns whether it
    /// was still active.
    pub fn demonitor(&mut self, pid: Pid, monitor: MonitorRef) -> bool {
        self.server.address.entry().demonitor(pid, monitor)
    }

    /// Links this server with `pid`: an abnormal exit of either stops the
    /// other, unless it traps exits.
    pub fn link(&mut self, pid: Pid) {
        self.server.address.entry().link(pid);
    }

    /// Removes the link with `pid`.
    pub fn unlink(&mut self, pid: Pid) {
        self.server.address.entry().unlink(pid);
    }

    /// Receives linked processes' exits in [`GenServer::handle_exit`](super::GenServer::handle_exit)
    /// instead of stopping (Erlang's `process_flag(trap_exit, true)`).
    pub fn trap_exits(&mut self, trap: bool) {
        self.trap_exits = trap;
    }
}
