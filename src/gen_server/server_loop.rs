//! The receive loop of a gen_server and the order of things when it stops.
//!
//! Stop sequence (the module docs of `gen_server` promise it):
//!
//! 1. the loop decides the exit reason;
//! 2. `terminate(reason)` runs (async);
//! 3. the process ends: the reason is recorded, names are released,
//!    monitors and links are told ([`Entry::exit`]);
//! 4. the server's tasks are cancelled, then the state, the pending reply
//!    sender and the mailbox (with its queued calls) are dropped — every
//!    waiting caller now sees the recorded reason.
//!
//! When the whole future is dropped instead (cancellation), [`Serving`]
//! records `Killed` *before* anything inside is dropped, and [`Runner`]'s
//! `Drop` polls `terminate` once.
//!
//! The loop runs bare in the server's task: no nursery of its own until a
//! callback first spawns ([`Context::spawn`], timers). That first spawn makes
//! the server's task group ([`task_group`]): a nursery entered under the
//! scope the server runs in, kept in the process entry. Its tasks therefore
//! inherit the server's cancellation, shutdown requests and deadlines; the
//! group holds the task, so a cancellation from outside polls [`Serving`]
//! again, which then drops the loop and drives the group until its tasks are
//! done — as a nursery around the loop would. On a normal end, step 4 above
//! waits for the group before `serve` returns.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use futures_util::FutureExt as _;
use futures_util::future::Either;
use pin_project_lite::pin_project;

use super::{
    Context, Envelope, Flow, GenServer, GenServerError, GenServerOptions, Init, Response, Server,
};
use crate::cancel::{Node, current, panic_message, with_node};
use crate::mailbox::{self, Address, Mailbox};
use crate::observer::bus::{self, ServerStats};
use crate::process::{self, Entry, ExitReason, TaskGroup};
use crate::registry;
use crate::{BoxError, NurseryError, TaskStatus, nursery, wait_shutdown};

/// The server's whole life as one future. A plain function (not `async`),
/// so that the future holds only [`Serving`] (or the start error), not also
/// the arguments it was built from: it lives as long as the server.
///
/// `report` makes what `status` reports from the server's handle: the handle
/// itself for a gen_server, a wrapper of it for a behaviour built on one
/// (`gen_statem`).
pub(crate) fn serve<S: GenServer, H: Send + 'static>(
    server: S,
    arg: S::Arg,
    options: GenServerOptions,
    status: TaskStatus<H>,
    report: fn(Server<S>) -> H,
) -> impl Future<Output = Result<(), GenServerError>> + Send {
    match prepare(server, arg, options, status, report) {
        Ok(serving) => Either::Left(serving),
        Err(error) => Either::Right(std::future::ready(Err(error))),
    }
}

/// Creates the mailbox, registers the name, and builds the server's future.
fn prepare<S: GenServer, H: Send + 'static>(
    server: S,
    arg: S::Arg,
    options: GenServerOptions,
    status: TaskStatus<H>,
    report: fn(Server<S>) -> H,
) -> Result<Serving<impl Future<Output = Result<(), GenServerError>>>, GenServerError> {
    let mut mailbox = Mailbox::<Envelope<S>>::with_view(options.capacity, server_view::<S>);
    mailbox.convert_signals(
        |down| Envelope::Down(Box::new(down)),
        Some(|exit| Envelope::Exit(Box::new(exit))),
    );
    let entry = mailbox.entry().clone();
    if let Some(name) = &options.name {
        registry::register(&**name, entry.pid())?;
    }
    let runner = Runner {
        server,
        ctx: Context {
            server: Server {
                address: mailbox.address(),
            },
            // Set on the first poll (see `Serving`).
            scope: None,
            reply: None,
            stop: None,
            trap_exits: false,
        },
        terminating: false,
        finished: false,
        stats: bus::server_stats(entry.pid(), options.name.as_deref()),
    };
    Ok(Serving {
        entry,
        scope: None,
        polled: false,
        inner: Some(run(runner, mailbox, arg, status, report)),
    })
}

/// The handles a gen_server offers lookups, built from its mailbox's
/// address: its [`Server`] and the address of its `handle_info`.
fn server_view<S: GenServer>(base: &Arc<dyn Any + Send + Sync>, out: &mut dyn Any) {
    let Some(address) = mailbox::address_of::<Envelope<S>>(base) else {
        return;
    };
    if let Some(out) = out.downcast_mut::<Option<Server<S>>>() {
        *out = Some(Server { address });
    } else if let Some(out) = out.downcast_mut::<Option<Address<S::Info>>>() {
        *out = Some(address.view(Envelope::Info, super::unwrap_info::<S>));
    }
}

/// Makes the server's task group: a nursery under `scope`, entered at once
/// (so that it inherits the scope's cancellation and holds the task until
/// its tasks are done), whose body waits until the group is cancelled.
pub(super) fn task_group(scope: Option<&Arc<Node>>) -> TaskGroup {
    let mut handle = None;
    let mut future: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(nursery(|n| {
        handle = Some(n);
        async { std::future::pending::<Result<(), NurseryError>>().await }
    }));
    let mut cx = TaskContext::from_waker(Waker::noop());
    // The first poll attaches the group under `scope` and polls the body,
    // which waits; the server drives the group again when it ends.
    let _ = match scope {
        Some(node) => with_node(node.clone(), || future.as_mut().poll(&mut cx)),
        None => future.as_mut().poll(&mut cx),
    };
    TaskGroup {
        handle: handle.expect("nursery calls its body at once"),
        future,
    }
}

pin_project! {
    /// The server's future. Records `Killed` when dropped before the loop
    /// ends, before anything inside it (pending reply senders) is dropped.
    ///
    /// Once the server has spawned tasks, their group holds the task: a
    /// cancellation from outside then polls us again instead of dropping us.
    /// We drop the loop at once (as a nursery drops its body), and drive the
    /// group until its tasks are done; then the task's driver drops us.
    struct Serving<F> {
        entry: Arc<Entry>,
        // The scope the server runs in, its tasks' group hangs under it:
        // the current one at the first poll — the server's own task in a
        // nursery, not the scope of whoever built the future (a starter's
        // scope may end, or be cancelled, long before the server).
        scope: Option<Arc<Node>>,
        polled: bool,
        // `None` once the loop has finished or been dropped.
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for Serving<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _current = process::enter(this.entry.pid());
            if this.inner.is_some() {
                this.entry.mark_killed();
                this.entry.exit(ExitReason::Killed, registry::release);
            }
            // The loop first (its `Drop` polls `terminate` once), then the
            // tasks: dropping their group cancels them.
            this.inner.set(None);
            drop(this.entry.take_tasks());
        }
    }
}

impl<F: Future> Future for Serving<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if !*this.polled {
            *this.polled = true;
            *this.scope = current();
        }
        // While the server runs, a call or stop aimed at itself fails at once.
        let _current = process::enter(this.entry.pid());
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            let cancelled = this.scope.as_ref().is_some_and(|s| s.is_cancelled());
            if !(cancelled && this.entry.has_tasks()) {
                let output = std::task::ready!(inner.poll(cx));
                this.inner.set(None);
                return Poll::Ready(output);
            }
            this.entry.mark_killed();
            this.entry.exit(ExitReason::Killed, registry::release);
            this.inner.set(None);
        }
        // Cancelled from outside, the group never completes: its hold is
        // released once its tasks are done, and we are dropped.
        this.entry.poll_tasks(cx);
        Poll::Pending
    }
}

/// The server's state and context; polls `terminate` once if dropped
/// before the loop finished (cancellation).
struct Runner<S: GenServer> {
    server: S,
    ctx: Context<S>,
    terminating: bool,
    finished: bool,
    /// Set only if an observer ran when the server started: then each
    /// message is counted, and timed while the node is watched.
    stats: Option<Arc<ServerStats>>,
}

/// The server's life after `prepare`: `init` (with the start handshake),
/// then the receive loop, then the stop sequence.
///
/// `init` runs once, in a box of its own that also holds the start's
/// arguments (`arg`, `status`, `report`): the receive loop's future, which
/// lives as long as the server, holds none of them. The box is made on the
/// first poll, by the thread that runs the server and frees it, not by the
/// starter (a free from another thread contends on the allocator's lock).
fn run<S: GenServer, H: Send + 'static>(
    runner: Runner<S>,
    mailbox: Mailbox<Envelope<S>>,
    arg: S::Arg,
    status: TaskStatus<H>,
    report: fn(Server<S>) -> H,
) -> impl Future<Output = Result<(), GenServerError>> + Send {
    let init = async move { Box::pin(init(runner, mailbox, arg, status, report)).await };
    init.then(|started| match started {
        Ok((runner, mailbox)) => Either::Left(receive(runner, mailbox)),
        Err(ended) => Either::Right(std::future::ready(ended)),
    })
}

/// Runs `init` and answers the start handshake. `Ok` with what the receive
/// loop needs once the server has started; `Err` with the server's result
/// when it did not start (ignored, refused, crashed).
async fn init<S: GenServer, H: Send + 'static>(
    mut runner: Runner<S>,
    mailbox: Mailbox<Envelope<S>>,
    arg: S::Arg,
    status: TaskStatus<H>,
    report: fn(Server<S>) -> H,
) -> Result<(Runner<S>, Mailbox<Envelope<S>>), Result<(), GenServerError>> {
    let Runner { server, ctx, .. } = &mut runner;
    // Polled by `Serving` (its first poll): the scope the server runs in.
    ctx.scope = current();
    let refused = match AssertUnwindSafe(server.init(arg, ctx)).catch_unwind().await {
        // `Context::stop` during `init` refuses the start too.
        Ok(Ok(Init::Ready)) => ctx.stop.take().map(Some),
        Ok(Ok(Init::Stop(reason))) => Some(Some(reason)),
        Ok(Ok(Init::Ignore)) => Some(None),
        Ok(Err(error)) => Some(Some(ExitReason::error(error))),
        Err(payload) => Some(Some(panicked(payload))),
    };
    match refused {
        None => {
            status.started(report(ctx.server.clone()));
            Ok((runner, mailbox))
        }
        // Ignored: a normal end without `started`.
        Some(None) => {
            runner.finish(ExitReason::Normal);
            Err(Ok(()))
        }
        Some(Some(reason)) => {
            runner.finish(reason.clone());
            Err(Err(GenServerError::InitFailed { reason }))
        }
    }
}

/// The receive loop, then the stop sequence. A plain function returning an
/// `async move` block: an `async fn` would keep a second copy of its
/// by-value arguments in its state for the server's whole life.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice in its state"
)]
fn receive<S: GenServer>(
    mut runner: Runner<S>,
    mut mailbox: Mailbox<Envelope<S>>,
) -> impl Future<Output = Result<(), GenServerError>> + Send {
    async move {
        // Unpin: polled in place, without a pinned pointer in our state.
        let mut shutdown = wait_shutdown();
        let reason = loop {
            // Messages first; the shutdown signal is only looked at when the
            // mailbox is empty, which keeps its lock off the busy path.
            let Some(envelope) = poll_fn(|cx| {
                loop {
                    match mailbox.poll_receive_message(cx) {
                        Poll::Ready(Ok(envelope)) => return Poll::Ready(Some(envelope)),
                        // Signals arrive as envelopes (`convert_signals`), so
                        // `receive` has no error to report.
                        Poll::Ready(Err(_)) => continue,
                        Poll::Pending => return Pin::new(&mut shutdown).poll(cx).map(|()| None),
                    }
                }
            })
            .await
            else {
                break ExitReason::Shutdown;
            };
            // Observed: counted; timed only while someone watches (one
            // branch and one relaxed load otherwise).
            let timed = (runner.stats.is_some() && bus::watched()).then(|| {
                (
                    tokio::time::Instant::now(),
                    matches!(envelope, Envelope::Call(..)),
                )
            });
            let stop = runner.handle(envelope).await;
            if let Some(stats) = &runner.stats {
                let took = timed.map(|(started, call)| (started.elapsed(), call));
                stats.record(took, mailbox.queued());
            }
            if let Some(reason) = stop {
                break reason;
            }
            // `Context::stop` from the callback.
            if let Some(reason) = runner.ctx.stop.take() {
                break reason;
            }
        };
        // The stop sequence runs once: boxed, its state does not weigh on
        // the loop's for the server's whole life.
        Box::pin(stop(runner, mailbox, reason)).await
    }
}

/// Steps 2 to 4 of the stop sequence (see the module docs).
async fn stop<S: GenServer>(
    mut runner: Runner<S>,
    mailbox: Mailbox<Envelope<S>>,
    reason: ExitReason,
) -> Result<(), GenServerError> {
    let pid = runner.entry().pid();
    // From here on a cancellation (the grace period is over) must not run
    // `terminate` a second time.
    runner.terminating = true;
    let Runner { server, ctx, .. } = &mut runner;
    if let Err(payload) =
        Box::pin(AssertUnwindSafe(server.terminate(&reason, ctx)).catch_unwind()).await
    {
        tracing::error!(%pid, panic = %panic_message(&*payload), "gen_server terminate panicked");
    }
    runner.finish(reason.clone());
    // The reason is recorded: dropping the state, the pending reply and
    // the queued calls now tells every caller why.
    let entry = runner.entry().clone();
    drop(runner);
    drop(mailbox);
    // Then wait for the server's tasks (cancelled by `finish`).
    if let Some(group) = entry.take_tasks() {
        let _ = group.future.await;
    }
    if reason.is_abnormal() {
        Err(GenServerError::Exited { pid, reason })
    } else {
        Ok(())
    }
}

impl<S: GenServer> Runner<S> {
    /// The server's process entry (its address holds it).
    fn entry(&self) -> &Arc<Entry> {
        self.ctx.server.address.entry()
    }

    /// Handles one envelope; `Some(reason)` to stop.
    /// (Not an `async fn`, which would keep `envelope` twice.)
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep `envelope` twice in its state"
    )]
    fn handle(&mut self, envelope: Envelope<S>) -> impl Future<Output = Option<ExitReason>> + '_ {
        // Fields reached through `self`: the future keeps one reference.
        async move {
            match envelope {
                Envelope::Call(request, sender) => {
                    self.ctx.reply = Some(sender);
                    match AssertUnwindSafe(self.server.handle_call(request, &mut self.ctx))
                        .catch_unwind()
                        .await
                    {
                        Ok(Ok(Response::Reply(reply))) => {
                            if let Some(sender) = self.ctx.reply.take() {
                                let _ = sender.send(Ok(reply));
                            }
                            None
                        }
                        Ok(Ok(Response::NoReply)) => {
                            // Not deferred: the caller learns there is no reply.
                            self.ctx.reply = None;
                            None
                        }
                        Ok(Ok(Response::ReplyAndStop(reply, reason))) => {
                            if let Some(sender) = self.ctx.reply.take() {
                                let _ = sender.send(Ok(reply));
                            }
                            Some(reason)
                        }
                        // The pending sender stays in the context until the
                        // reason is recorded.
                        Ok(Ok(Response::Stop(reason))) => Some(reason),
                        // A crash (`?`): as a stop, with the error kept.
                        Ok(Err(error)) => Some(ExitReason::error(error)),
                        Err(payload) => Some(panicked(payload)),
                    }
                }
                Envelope::Cast(message) => flow(
                    AssertUnwindSafe(self.server.handle_cast(message, &mut self.ctx))
                        .catch_unwind()
                        .await,
                ),
                Envelope::Info(message) => flow(
                    AssertUnwindSafe(self.server.handle_info(message, &mut self.ctx))
                        .catch_unwind()
                        .await,
                ),
                Envelope::Down(down) => flow(
                    AssertUnwindSafe(self.server.handle_down(*down, &mut self.ctx))
                        .catch_unwind()
                        .await,
                ),
                Envelope::Exit(exit) if self.ctx.trap_exits => flow(
                    AssertUnwindSafe(self.server.handle_exit(*exit, &mut self.ctx))
                        .catch_unwind()
                        .await,
                ),
                Envelope::Exit(exit) => exit.reason.is_abnormal().then_some(exit.reason),
                Envelope::Stop(reason) => Some(*reason),
            }
        }
    }

    /// Ends the process with `reason` and cancels the server's tasks.
    fn finish(&mut self, reason: ExitReason) {
        self.finished = true;
        self.entry().exit(reason, registry::release);
        self.entry().cancel_tasks();
    }
}

impl<S: GenServer> Drop for Runner<S> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled: `terminate` gets one poll, so whatever it does before
        // its first yielding `.await` runs (unless it was already running).
        let reason = ExitReason::Killed;
        if !self.terminating {
            let terminate =
                AssertUnwindSafe(self.server.terminate(&reason, &mut self.ctx)).catch_unwind();
            let terminate = pin!(terminate);
            let _ = terminate.poll(&mut TaskContext::from_waker(Waker::noop()));
        }
        // The tasks are stopped by whoever drops us (`Serving`).
        self.finished = true;
        self.entry().exit(reason, registry::release);
    }
}

fn flow(outcome: Result<Result<Flow, BoxError>, Box<dyn Any + Send>>) -> Option<ExitReason> {
    match outcome {
        Ok(Ok(Flow::Continue)) => None,
        Ok(Ok(Flow::Stop(reason))) => Some(reason),
        Ok(Err(error)) => Some(ExitReason::error(error)),
        Err(payload) => Some(panicked(payload)),
    }
}

fn panicked(payload: Box<dyn Any + Send>) -> ExitReason {
    ExitReason::Panic(panic_message(&*payload).into())
}
