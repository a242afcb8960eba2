//! Generic servers: OTP's `gen_server`, typed, on a Trellis mailbox.
//!
//! A gen_server is a process that owns some state and serves requests one at
//! a time from its mailbox. You write the callbacks; Trellis runs the receive
//! loop, the reply plumbing, the start handshake and the shutdown.
//!
//! | you call | we call back | it returns | and then |
//! |---|---|---|---|
//! | [`start`] / [`serve`] / [`Builder`] | [`GenServer::init`] | `Result<`[`Init`]`, BoxError>` | `Ok(Init::Ready)`: the starter gets the [`Server`] handle; `Ok(Init::Stop(reason))`, `Err(e)` or a panic: [`GenServerError::InitFailed`] with the reason; `Ok(Init::Ignore)`: [`GenServerError::Ignored`] (under `serve`: `Ok(())` without reporting started) |
//! | [`call`] / [`Server::call`] (the timeout is per call: [`DEFAULT_TIMEOUT`] is OTP's 5 s; [`INFINITY`] waits while the server lives) | [`GenServer::handle_call`] (required) | `Result<`[`Response`]`<Reply>, BoxError>` | `Reply(r)` is sent back; `NoReply` waits for [`Context::defer`]'s handle; `Stop`/`ReplyAndStop` stop; `Err(e)` crashes the server with [`ExitReason::Error`]`(e)` and the caller gets [`GenServerError::Exited`] with it |
//! | [`cast`] / [`Server::cast`] / [`Server::try_cast`] | [`GenServer::handle_cast`] (default: ignores) | `Result<`[`Flow`]`, BoxError>` | nothing is sent back; `Flow::Stop(reason)` stops; `Err(e)` crashes |
//! | [`Server::send_info`], [`mailbox::send`] to the server, [`Context::send_after`] | [`GenServer::handle_info`] (default: ignores) | `Result<Flow, BoxError>` | as `handle_cast` |
//! | [`Context::monitor`] target ends | [`GenServer::handle_down`] (default: ignores) | `Result<Flow, BoxError>` | as `handle_cast` |
//! | a linked process ends while [`Context::trap_exits`] | [`GenServer::handle_exit`] (default: stops on an abnormal exit, ignores normal ones) | `Result<Flow, BoxError>` | as `handle_cast` |
//! | [`Server::stop`] / [`Server::stop_with`], [`Context::stop`], any stop above | [`GenServer::terminate`] (default: does nothing) | `()` | the process ends; callers still waiting get [`GenServerError::Exited`] |
//!
//! Defaults: mailbox unbounded ([`Builder::bounded`] to bound it), no name
//! ([`Builder::name`]), no argument (`type Arg = ()`, [`Builder::arg`]
//! otherwise), exits not trapped, graceful shutdown within the grace period
//! of whoever stops it (a supervisor's child `Shutdown`, 5 s by default).
//!
//! # No hangs
//!
//! A caller never waits forever. If the server has exited, stops during the
//! call, panics, or drops the reply handle without answering, [`call`]
//! returns an error naming what happened ([`GenServerError::Exited`] with the
//! [`ExitReason`], or [`GenServerError::NoReply`]); past its timeout it
//! returns [`GenServerError::Timeout`]. A call made inside a
//! [cancel scope](crate::CancelScope) with a nearer deadline
//! ([`fail_after`](crate::fail_after), [`move_on_after`](crate::move_on_after))
//! gives up at that deadline: the scope cancels it.
//!
//! A server waiting on itself would hang: as OTP answers a call to self with
//! `calling_self`, every self-directed wait from `init`, a handler or
//! `terminate` — [`call`], [`Server::stop`], a cast into its own full
//! bounded mailbox — returns [`GenServerError::CallingSelf`] at once. To
//! stop from inside, use [`Context::stop`] or return a stop.
//!
//! # When the server stops
//!
//! | stop | `terminate` | exit reason |
//! |---|---|---|
//! | a callback returns `Stop(reason)`, or called [`Context::stop`]`(reason)` | runs, may await | `reason` |
//! | a callback returns `Err(e)` (a `?`) | runs, may await | `Error(e)`, the error value kept ([`process::ExitError`]) |
//! | every handle gone? | — (servers do not stop when unreferenced, as in OTP) | — |
//! | a task of its [`Context::spawn`] fails | runs, may await | `Error`/`Panic` of the task |
//! | a callback panics | runs, may await (the state may be half-updated) | `Panic(message)` |
//! | graceful shutdown of its scope ([`Nursery::shutdown`](crate::Nursery::shutdown), a supervisor) | runs, may await within the grace period | `Shutdown` |
//! | a linked process exits abnormally (not trapping exits) | runs, may await | the linked process's reason |
//! | cancelled or dropped (an outer cancel scope, the grace period over) | polled **once**: what it does before its first yielding `.await` runs | `Killed` |
//! | `init` refuses or ignores | **not** called (as in OTP) | the refusal's reason; `Normal` for `Ignore` |
//!
//! The fate of messages still queued when a server stops: each queued
//! `call` fails at once with [`GenServerError::Exited`] carrying the exit
//! reason; queued casts and infos are dropped. The name (if any) is released
//! after `terminate`, then monitors get their `Down` and links their `Exit`;
//! the monitors the server itself held are removed from their targets.
//!
//! # Where Trellis differs from OTP and triotp
//!
//! | OTP / triotp | Trellis | why |
//! |---|---|---|
//! | `call/2` defaults to a 5 s timeout | [`call`] takes the timeout explicitly ([`DEFAULT_TIMEOUT`] is OTP's 5 s) | a wait is visible where it is written |
//! | `{stop, Reason, State}` from any callback, crashes by exception | `Stop(reason)`, [`Context::stop`], or `Err(e)` through `?` | errors are values; `?` is Rust's crash |
//! | `gen_server:reply(From, R)` | [`Context::defer`] gives a [`ReplyTo`] to answer from anywhere | the caller's identity is a typed handle |
//! | a call to self exits the caller (`calling_self`) | [`GenServerError::CallingSelf`] as a value | no exits by exception |
//! | triotp: an exception as the reply is raised in the caller | make `Reply` a `Result`: the error reaches the caller as a value | typed replies |
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use trellis::BoxError;
//! use trellis::gen_server::{self, Builder, Context, Flow, GenServer, Init, Response};
//!
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl GenServer for Counter {
//!     type Arg = u64;
//!     type Call = ();
//!     type Reply = u64;
//!     type Cast = u64;
//!     type Info = ();
//!
//!     async fn init(&mut self, start: u64, _: &mut Context<Self>) -> Result<Init, BoxError> {
//!         self.0 = start;
//!         Ok(Init::Ready)
//!     }
//!
//!     async fn handle_call(&mut self, _: (), _: &mut Context<Self>) -> Result<Response<u64>, BoxError> {
//!         Ok(Response::Reply(self.0))
//!     }
//!
//!     async fn handle_cast(&mut self, add: u64, _: &mut Context<Self>) -> Result<Flow, BoxError> {
//!         // `?` crashes the server with the error as its exit reason.
//!         self.0 = self.0.checked_add(add).ok_or("counter overflow")?;
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! # trellis::run(async {
//! trellis::nursery(|n| async move {
//!     let counter = Builder::new(Counter::default()).arg(40).name("counter").start(&n).await?;
//!     counter.cast(2).await?;
//!     let by_name = gen_server::call::<Counter>("counter", (), Duration::from_secs(5)).await?;
//!     assert_eq!(by_name, 42);
//!     counter.stop().await?;
//!     Ok::<_, BoxError>(())
//! })
//! .await
//! .unwrap();
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::mailbox::{self, Address, MailboxError};
use crate::process::{self, Down, Exit, ExitReason, Pid};
use crate::registry::ProcessRef;
use crate::{BoxError, Nursery, SpawnOptions, StartError, TaskStatus};

mod context;
mod error;
pub(crate) mod server_loop;

pub use context::{Context, TimerRef};
pub use error::GenServerError;

/// The callbacks of a generic server.
///
/// Implement `init` and `handle_call`; every other callback has a default.
/// Callbacks are `async` and run one at a time: while one runs, the mailbox
/// waits. Work that takes long belongs in a task of [`Context::spawn`],
/// which can answer a deferred call or report back with
/// [`Context::info`].
pub trait GenServer: Send + Sized + 'static {
    /// What [`start`] passes to `init`.
    type Arg: Send + 'static;
    /// Requests [`call`] sends.
    type Call: Send + 'static;
    /// What [`call`] gets back. Make it a `Result` to return errors to the
    /// caller: an error sent as the reply reaches the caller as an error,
    /// and the server keeps running.
    type Reply: Send + 'static;
    /// Messages [`cast`] sends.
    type Cast: Send + 'static;
    /// Plain messages sent to the server's mailbox ([`Server::send_info`],
    /// [`mailbox::send`], timers).
    type Info: Send + 'static;

    /// Initialises the server before it serves anything.
    ///
    /// Its name (if any) is already registered; calls that arrive meanwhile
    /// wait in the mailbox.
    ///
    /// - `Ok(`[`Init::Ready`]`)`: the server serves; the starter gets its
    ///   [`Server`] handle.
    /// - `Ok(`[`Init::Stop`]`(reason))`: the start is refused (OTP's
    ///   `{stop, Reason}`): the server ends with `reason`, the starter gets
    ///   [`GenServerError::InitFailed`] with it.
    /// - `Ok(`[`Init::Ignore`]`)`: the server ends normally without
    ///   serving (OTP's `ignore`): [`start`] returns
    ///   [`GenServerError::Ignored`]; under [`serve`] the task returns
    ///   `Ok(())` without reporting started, which a supervisor takes as
    ///   "ignored".
    /// - `Err(error)` (a `?`), or a panic: as `Stop` with
    ///   [`ExitReason::Error`] (the error value) or [`ExitReason::Panic`].
    ///
    /// In every case but `Ready`, `terminate` is *not* called (as in OTP).
    fn init(
        &mut self,
        arg: Self::Arg,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Init, BoxError>> + Send;

    /// Handles a [`call`].
    ///
    /// - `Ok(`[`Response::Reply`]`(r))`: `r` is sent to the caller.
    /// - `Ok(`[`Response::NoReply`]`)`: nothing is sent now; answer later
    ///   through the handle from [`Context::defer`]. If the handle was not
    ///   taken, the caller gets [`GenServerError::NoReply`].
    /// - `Ok(`[`Response::Stop`]`(reason))`: the server stops; the caller
    ///   gets [`GenServerError::Exited`] with `reason`.
    /// - `Ok(`[`Response::ReplyAndStop`]`(r, reason))`: `r` is sent, then
    ///   the server stops.
    /// - `Err(error)` (a `?`): the server crashes with
    ///   [`ExitReason::Error`] carrying `error`; the caller gets
    ///   [`GenServerError::Exited`] with it. To answer with an error and go
    ///   on serving, make [`Reply`](GenServer::Reply) a `Result` instead.
    fn handle_call(
        &mut self,
        request: Self::Call,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Response<Self::Reply>, BoxError>> + Send;

    /// Handles a [`cast`]. Default: ignores it.
    ///
    /// `Ok(`[`Flow::Continue`]`)` serves on, `Ok(`[`Flow::Stop`]`(reason))`
    /// stops, `Err(error)` crashes the server with [`ExitReason::Error`].
    fn handle_cast(
        &mut self,
        message: Self::Cast,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        let _ = (message, ctx);
        async { Ok(Flow::Continue) }
    }

    /// Handles a plain message. Default: ignores it. Returns as
    /// [`handle_cast`](GenServer::handle_cast).
    fn handle_info(
        &mut self,
        message: Self::Info,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        let _ = (message, ctx);
        async { Ok(Flow::Continue) }
    }

    /// Handles the end of a process this server monitors
    /// ([`Context::monitor`]). Default: ignores it. Returns as
    /// [`handle_cast`](GenServer::handle_cast).
    fn handle_down(
        &mut self,
        down: Down,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        let _ = (down, ctx);
        async { Ok(Flow::Continue) }
    }

    /// Handles the end of a linked process while trapping exits
    /// ([`Context::trap_exits`]). Default: stops with the same reason if it
    /// is abnormal, ignores normal exits. Returns as
    /// [`handle_cast`](GenServer::handle_cast).
    fn handle_exit(
        &mut self,
        exit: Exit,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        let _ = ctx;
        async move {
            Ok(if exit.reason.is_abnormal() {
                Flow::Stop(exit.reason)
            } else {
                Flow::Continue
            })
        }
    }

    /// Runs once when the server stops, whatever the reason (see the module
    /// docs for when it may await). Default: does nothing.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// What [`GenServer::init`] decides (OTP's `{ok, State}`, `{stop, Reason}`,
/// `ignore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Serve: the starter gets the [`Server`] handle.
    #[doc(alias = "ok")]
    Ready,
    /// Refuse to start: the server ends with this reason and the starter
    /// gets [`GenServerError::InitFailed`] with it.
    Stop(ExitReason),
    /// End normally without serving: [`start`] returns
    /// [`GenServerError::Ignored`]; [`serve`] returns `Ok(())` without
    /// reporting started.
    Ignore,
}

/// What [`GenServer::handle_call`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<R> {
    /// Send this reply to the caller.
    Reply(R),
    /// Reply later, through [`Context::defer`]'s handle.
    NoReply,
    /// Stop the server; the caller gets [`GenServerError::Exited`].
    Stop(ExitReason),
    /// Send this reply, then stop the server.
    ReplyAndStop(R, ExitReason),
}

/// What a cast, info, down or exit callback decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving (OTP's `{noreply, State}`).
    #[doc(alias = "NoReply")]
    Continue,
    /// Stop the server with this reason.
    Stop(ExitReason),
}

/// Why a reply handle went away without a reply.
#[derive(Debug)]
pub(crate) struct Abandoned {
    /// Dropped while unwinding a panic: the server is about to exit.
    panicking: bool,
}

type ReplySender<R> = oneshot::Sender<Result<R, Abandoned>>;

/// What travels through a gen_server's mailbox.
pub(crate) enum Envelope<S: GenServer> {
    Call(S::Call, ReplySender<S::Reply>),
    Cast(S::Cast),
    Info(S::Info),
    // The rare variants are boxed, to keep the channel's slots small.
    Down(Box<Down>),
    Exit(Box<Exit>),
    /// Stop with this reason: a task of the server's context failed, or
    /// [`Server::stop`] was called.
    Stop(Box<ExitReason>),
}

/// A handle to a running gen_server: call it, cast to it, send it plain
/// messages. Cheap to clone, `Send + Sync`.
///
/// Look one up by name with [`registry::lookup`](crate::registry::lookup)`::<Server<S>>(name)`.
pub struct Server<S: GenServer> {
    address: Address<Envelope<S>>,
}

impl<S: GenServer> Clone for Server<S> {
    fn clone(&self) -> Self {
        Server {
            address: self.address.clone(),
        }
    }
}

impl<S: GenServer> fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Server").field(&self.pid()).finish()
    }
}

impl<S: GenServer> PartialEq for Server<S> {
    fn eq(&self, other: &Self) -> bool {
        self.pid() == other.pid()
    }
}

impl<S: GenServer> Eq for Server<S> {}

/// The default `call` timeout, as OTP's: 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A `call` timeout that never expires (OTP's `infinity`): no timer is
/// armed, which makes the call cheaper.
///
/// The call still returns at once if the server has exited, stops, panics
/// or drops the reply handle — it only waits for a server that is alive and
/// busy — and an enclosing cancel scope's deadline still applies.
pub const INFINITY: Duration = Duration::MAX;

impl<S: GenServer> Server<S> {
    /// The server's process id.
    pub fn pid(&self) -> Pid {
        self.address.pid()
    }

    /// Sends `request` and waits at most `timeout` for the reply (OTP's
    /// `gen_server:call/3`). There is no default timeout: pass
    /// [`DEFAULT_TIMEOUT`] (OTP's 5 s) or [`INFINITY`].
    ///
    /// # Errors
    ///
    /// [`GenServerError::Exited`] if the server has exited or stops before
    /// answering (including by panic or a handler's `Err`);
    /// [`GenServerError::NoReply`] if it dropped the reply handle;
    /// [`GenServerError::Timeout`] after `timeout` (never with
    /// [`INFINITY`]); [`GenServerError::CallingSelf`] from the server
    /// itself. An enclosing cancel scope's deadline also applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use trellis::gen_server::{self, Context, GenServer, GenServerError, Init, Response};
    ///
    /// /// Answers `true` at once; leaves `false` unanswered.
    /// struct Moody;
    ///
    /// impl GenServer for Moody {
    ///     type Arg = ();
    ///     type Call = bool;
    ///     type Reply = &'static str;
    ///     type Cast = ();
    ///     type Info = ();
    ///
    ///     async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
    ///         Ok(Init::Ready)
    ///     }
    ///
    ///     async fn handle_call(&mut self, answer: bool, ctx: &mut Context<Self>) -> Result<Response<&'static str>, trellis::BoxError> {
    ///         if answer {
    ///             return Ok(Response::Reply("yes"));
    ///         }
    ///         // Keep the reply handle without answering: the caller times out.
    ///         std::mem::forget(ctx.defer());
    ///         Ok(Response::NoReply)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// trellis::nursery(|n| async move {
    ///     let moody = gen_server::start(&n, Moody).await?;
    ///     assert_eq!(moody.call(true, Duration::from_secs(1)).await?, "yes");
    ///     let before = Instant::now();
    ///     let late = moody.call(false, Duration::from_secs(1)).await.unwrap_err();
    ///     assert!(matches!(late, GenServerError::Timeout { .. }));
    ///     assert_eq!(before.elapsed(), Duration::from_secs(1));
    ///     moody.stop().await?;
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the request was sent, the server still
    /// handles it and its reply is discarded.
    pub async fn call(
        &self,
        request: S::Call,
        timeout: Duration,
    ) -> Result<S::Reply, GenServerError> {
        if process::is_current(self.pid()) {
            return Err(GenServerError::CallingSelf { pid: self.pid() });
        }
        if timeout == INFINITY {
            // No timer: the no-hang guarantees for dead, stopping and
            // panicking servers hold without one.
            return self.round_trip(request).await;
        }
        // A coarse deadline, not a tokio timer per call (see `deadline`).
        match crate::deadline::timeout(timeout, pin!(self.round_trip(request))).await {
            Some(result) => result,
            None => Err(GenServerError::Timeout {
                pid: self.pid(),
                timeout,
            }),
        }
    }

    /// Sends the request and waits for its reply. Kept small: the rare paths
    /// (a full bounded mailbox, an abandoned reply) are boxed.
    async fn round_trip(&self, request: S::Call) -> Result<S::Reply, GenServerError> {
        let (tx, rx) = oneshot::channel();
        if let Err(error) = self.address.try_send(Envelope::Call(request, tx)) {
            let (error, envelope) = error.into_parts();
            if !matches!(error, MailboxError::Full { .. }) {
                return Err(GenServerError::from_send(error, self.pid()));
            }
            if let Err(error) = Box::pin(self.address.send(envelope)).await {
                return Err(GenServerError::from_send(error.into_parts().0, self.pid()));
            }
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(abandoned)) => Err(Box::pin(self.abandoned(abandoned)).await),
            Err(_) => Err(self.gone()),
        }
    }

    /// The error for a reply sender dropped with the server.
    fn gone(&self) -> GenServerError {
        match self.address.exit_reason() {
            Some(reason) => GenServerError::Exited {
                pid: self.pid(),
                reason,
            },
            // Only the server loop drops unanswered senders without a
            // reason, and it records the reason first.
            None => GenServerError::NoReply { pid: self.pid() },
        }
    }

    /// The error for a deferred reply handle dropped without an answer.
    async fn abandoned(&self, abandoned: Abandoned) -> GenServerError {
        if let Some(reason) = self.address.exit_reason() {
            return GenServerError::Exited {
                pid: self.pid(),
                reason,
            };
        }
        if abandoned.panicking {
            // Dropped by a panic that is about to stop the server: wait for
            // its exit reason (the caller's timeout still applies).
            let mut watch = mailbox::create::<Down>();
            watch.monitor(self.pid());
            if let Ok(down) = watch.receive().await {
                // Our address still reads the real reason if the server
                // ended before the monitor was set (`NoProcess`).
                let reason = self.address.exit_reason().unwrap_or(down.reason);
                return GenServerError::Exited {
                    pid: self.pid(),
                    reason,
                };
            }
        }
        GenServerError::NoReply { pid: self.pid() }
    }

    /// Sends `message` to `handle_cast`, waiting for room if the mailbox is
    /// bounded and full.
    ///
    /// # Errors
    ///
    /// [`GenServerError::Exited`] if the server has exited;
    /// [`GenServerError::CallingSelf`] if the server casts into its own
    /// full bounded mailbox (it would wait for itself).
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped while waiting for room in a full bounded
    /// mailbox, the message is dropped unsent. An unbounded mailbox never
    /// waits: the message is sent on the first poll.
    pub async fn cast(&self, message: S::Cast) -> Result<(), GenServerError> {
        self.send_envelope(Envelope::Cast(message)).await
    }

    /// Sends a cast or an info: without waiting first (always, when
    /// unbounded); the waiting send is boxed, so the future stays small.
    async fn send_envelope(&self, envelope: Envelope<S>) -> Result<(), GenServerError> {
        let Err(error) = self.address.try_send(envelope) else {
            return Ok(());
        };
        let (error, envelope) = error.into_parts();
        let result = match error {
            // Waiting for room in our own mailbox would wait forever.
            MailboxError::Full { pid } if process::is_current(pid) => {
                return Err(GenServerError::CallingSelf { pid });
            }
            MailboxError::Full { .. } => Box::pin(self.address.send(envelope))
                .await
                .map_err(|e| e.into_parts().0),
            error => Err(error),
        };
        result.map_err(|e| GenServerError::from_send(e, self.pid()))
    }

    /// Sends `message` to `handle_cast` without waiting.
    ///
    /// # Errors
    ///
    /// [`GenServerError::Full`] if the bounded mailbox is full,
    /// [`GenServerError::Exited`] if the server has exited.
    pub fn try_cast(&self, message: S::Cast) -> Result<(), GenServerError> {
        self.address
            .try_send(Envelope::Cast(message))
            .map_err(|e| GenServerError::from_send(e.into_parts().0, self.pid()))
    }

    /// Sends a plain message to `handle_info`.
    ///
    /// # Errors
    ///
    /// [`GenServerError::Exited`] if the server has exited;
    /// [`GenServerError::CallingSelf`] as for [`cast`](Self::cast).
    ///
    /// # Cancel safety
    ///
    /// As [`cast`](Self::cast): dropped while waiting for room, the message
    /// is dropped unsent.
    pub async fn send_info(&self, message: S::Info) -> Result<(), GenServerError> {
        self.send_envelope(Envelope::Info(message)).await
    }

    /// An address that sends plain messages to `handle_info` — what
    /// [`mailbox::send`] to the server's name finds.
    pub fn info_address(&self) -> Address<S::Info> {
        self.address.view(Envelope::Info, unwrap_info::<S>)
    }

    /// Asks the server to stop with [`ExitReason::Normal`] and waits until
    /// it has (its `terminate` has run). Stopping a server that has already
    /// ended is not an error.
    ///
    /// # Errors
    ///
    /// [`GenServerError::CallingSelf`] from inside the server itself (it
    /// would wait for itself): use [`Context::stop`] there.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the stop request was sent, the server
    /// still stops; only the wait for it is abandoned.
    pub async fn stop(&self) -> Result<(), GenServerError> {
        self.stop_with(ExitReason::Normal).await
    }

    /// Asks the server to stop with `reason` and waits until it has.
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    ///
    /// # Cancel safety
    ///
    /// As [`stop`](Self::stop).
    pub async fn stop_with(&self, reason: ExitReason) -> Result<(), GenServerError> {
        if process::is_current(self.pid()) {
            return Err(GenServerError::CallingSelf { pid: self.pid() });
        }
        let mut watch = mailbox::create::<Down>();
        watch.monitor(self.pid());
        if self
            .address
            .send(Envelope::Stop(Box::new(reason)))
            .await
            .is_ok()
        {
            let _ = watch.receive().await;
        }
        Ok(())
    }

    /// The exit reason, once the server has ended.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.address.exit_reason()
    }
}

pub(crate) fn unwrap_info<S: GenServer>(envelope: Envelope<S>) -> S::Info {
    match envelope {
        Envelope::Info(message) => message,
        // A view only ever hands back the envelopes it wrapped.
        _ => unreachable!("an info view returned another envelope"),
    }
}

impl<S: GenServer> From<Server<S>> for ProcessRef<Server<S>> {
    fn from(server: Server<S>) -> Self {
        ProcessRef::Handle(server)
    }
}

impl<S: GenServer> From<&Server<S>> for ProcessRef<Server<S>> {
    fn from(server: &Server<S>) -> Self {
        ProcessRef::Handle(server.clone())
    }
}

/// Calls the server `to` (a handle, a name or a pid) and waits at most
/// `timeout` for its reply. See [`Server::call`].
///
/// # Errors
///
/// As [`Server::call`], plus [`GenServerError::NameNotFound`],
/// [`GenServerError::ProcessNotFound`] and [`GenServerError::WrongType`] for
/// a name or pid that does not lead to an `S` server.
///
/// # Cancel safety
///
/// As [`Server::call`]: once sent, the request is handled and its reply
/// discarded.
pub async fn call<S: GenServer>(
    to: impl Into<ProcessRef<Server<S>>>,
    request: S::Call,
    timeout: Duration,
) -> Result<S::Reply, GenServerError> {
    to.into().resolve()?.call(request, timeout).await
}

/// Casts `message` to the server `to` (a handle, a name or a pid).
///
/// # Errors
///
/// As [`Server::cast`], plus the lookup errors of [`call`].
///
/// # Cancel safety
///
/// As [`Server::cast`]: dropped while waiting for room, the message is
/// dropped unsent.
pub async fn cast<S: GenServer>(
    to: impl Into<ProcessRef<Server<S>>>,
    message: S::Cast,
) -> Result<(), GenServerError> {
    to.into().resolve()?.cast(message).await
}

/// Answers a deferred call (OTP's `gen_server:reply/2`); the same as
/// [`ReplyTo::reply`].
///
/// # Errors
///
/// Gives the reply back if the caller is gone (it timed out or was
/// cancelled); the server is not affected.
pub fn reply<R>(to: ReplyTo<R>, reply: R) -> Result<(), R> {
    to.reply(reply)
}

/// The handle to answer a call later, from [`Context::defer`]: keep it in
/// the state or move it into a task, and [`reply`](ReplyTo::reply) when
/// ready.
///
/// Dropping it unanswered makes the caller's `call` return
/// [`GenServerError::NoReply`] at once — also when a panic in some other
/// task drops it — or [`GenServerError::Exited`] when the server itself is
/// stopping (a panic of the server or of one of its own
/// [`Context::spawn`] tasks).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis::gen_server::{self, Context, GenServer, Init, Response};
///
/// /// Answers each call from a task, after a delay, while serving others.
/// struct Slow;
///
/// impl GenServer for Slow {
///     type Arg = ();
///     type Call = u32;
///     type Reply = u32;
///     type Cast = ();
///     type Info = ();
///
///     async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
///         Ok(Init::Ready)
///     }
///
///     async fn handle_call(&mut self, n: u32, ctx: &mut Context<Self>) -> Result<Response<u32>, trellis::BoxError> {
///         let reply = ctx.defer().expect("in handle_call");
///         ctx.spawn(async move {
///             tokio::time::sleep(Duration::from_secs(1)).await;
///             let _ = reply.reply(n * 2);
///         })?;
///         Ok(Response::NoReply)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// trellis::nursery(|n| async move {
///     let slow = gen_server::start(&n, Slow).await?;
///     let (a, b) = tokio::join!(
///         slow.call(1, gen_server::DEFAULT_TIMEOUT),
///         slow.call(2, gen_server::DEFAULT_TIMEOUT),
///     );
///     assert_eq!((a?, b?), (2, 4));
///     slow.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
pub struct ReplyTo<R> {
    sender: Option<ReplySender<R>>,
    /// The server that took it: only its own panic means it is exiting.
    pid: Pid,
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo").finish_non_exhaustive()
    }
}

impl<R> ReplyTo<R> {
    /// Sends the reply.
    ///
    /// # Errors
    ///
    /// Gives the reply back if the caller is gone.
    pub fn reply(mut self, reply: R) -> Result<(), R> {
        let sender = self.sender.take().expect("a ReplyTo is answered once");
        sender.send(Ok(reply)).map_err(|r| match r {
            Ok(reply) => reply,
            Err(_) => unreachable!("we sent Ok"),
        })
    }

    /// Whether the caller is still waiting.
    pub fn is_waiting(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            // Dropped by a panic of the server itself (or of one of its
            // own tasks, which stops it): the caller waits for the exit
            // reason. A panic anywhere else is just an unanswered call.
            let _ = sender.send(Err(Abandoned {
                panicking: std::thread::panicking() && process::is_owned_by(self.pid),
            }));
        }
    }
}

/// How a gen_server is started: its registered name and its mailbox bound.
/// [`Builder::options`] and [`ChildSpec::gen_server`](crate::supervisor::ChildSpec::gen_server)
/// take one. `From<&str>` gives a name; `()`/`Default` neither.
///
/// # Examples
///
/// ```
/// use trellis::gen_server::GenServerOptions;
///
/// let options = GenServerOptions::new().name("cache").bounded(64);
/// assert_eq!(options.get_name(), Some("cache"));
/// assert_eq!(options.capacity(), Some(64));
/// let by_name: GenServerOptions = "cache".into();
/// assert_eq!(by_name.get_name(), Some("cache"));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GenServerOptions {
    name: Option<Arc<str>>,
    capacity: Option<usize>,
}

impl GenServerOptions {
    /// No name, unbounded mailbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the server under `name` before `init` runs. Default: none.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.name = Some(name.as_ref().into());
        self
    }

    /// Bounds the mailbox: casts and calls wait for room past `capacity`
    /// queued messages. Default: unbounded, as Erlang's.
    pub fn bounded(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The name set with [`name`](Self::name), if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The bound set with [`bounded`](Self::bounded), if any.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }
}

impl From<&str> for GenServerOptions {
    fn from(name: &str) -> Self {
        GenServerOptions::new().name(name)
    }
}

impl From<()> for GenServerOptions {
    fn from((): ()) -> Self {
        GenServerOptions::new()
    }
}

impl From<Option<&str>> for GenServerOptions {
    fn from(name: Option<&str>) -> Self {
        match name {
            Some(name) => GenServerOptions::new().name(name),
            None => GenServerOptions::new(),
        }
    }
}

/// Starts `server` as a task of `nursery` and returns its handle once
/// `init` has succeeded (triotp's `gen_server.start`), for a server without
/// an [`Arg`](GenServer::Arg), unnamed, with an unbounded mailbox. For a
/// name, an argument or a bound, use a [`Builder`].
///
/// The server then lives until it stops or the nursery is cancelled; an
/// abnormal stop fails the nursery like any task failure (a supervisor is
/// what restarts it).
///
/// # Errors
///
/// [`GenServerError::InitFailed`] or [`GenServerError::Ignored`] as `init`
/// decides; [`GenServerError::NotStarted`] if the nursery is closed or
/// cancelled.
///
/// # Cancel safety
///
/// If the future is dropped before `init` finished, the server is
/// cancelled with it (it ends [`Killed`](ExitReason::Killed)).
///
/// # Examples
///
/// ```
/// use trellis::gen_server::{self, Context, GenServer, Init, Response};
///
/// struct Ping;
///
/// impl GenServer for Ping {
///     type Arg = ();
///     type Call = ();
///     type Reply = &'static str;
///     type Cast = ();
///     type Info = ();
///
///     async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
///         Ok(Init::Ready)
///     }
///
///     async fn handle_call(&mut self, (): (), _: &mut Context<Self>) -> Result<Response<&'static str>, trellis::BoxError> {
///         Ok(Response::Reply("pong"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// trellis::nursery(|n| async move {
///     let ping = gen_server::start(&n, Ping).await?;
///     assert_eq!(ping.call((), gen_server::DEFAULT_TIMEOUT).await?, "pong");
///     ping.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
pub async fn start<S: GenServer<Arg = ()>>(
    nursery: &Nursery,
    server: S,
) -> Result<Server<S>, GenServerError> {
    Builder::new(server).start(nursery).await
}

/// Runs `server` (without an [`Arg`](GenServer::Arg)) in the current task:
/// the body to give [`Nursery::start`](crate::Nursery::start) or a
/// supervisor. Reports the [`Server`] handle through `status` once `init`
/// has succeeded, and returns when the server stops. For a name, an
/// argument or a bound, use [`Builder::serve`].
///
/// # Errors
///
/// `Ok(())` for a normal or shutdown stop, and when `init` ignored (then
/// without reporting started); otherwise [`GenServerError::Exited`] with
/// the reason, or [`GenServerError::InitFailed`] before `status` was
/// reported.
///
/// # Cancel safety
///
/// Dropping the future kills the server: its `terminate` is polled once and
/// it ends [`Killed`](ExitReason::Killed).
pub fn serve<S: GenServer<Arg = ()>>(
    server: S,
    status: TaskStatus<Server<S>>,
) -> impl Future<Output = Result<(), GenServerError>> + Send {
    Builder::new(server).serve(status)
}

/// Starts a gen_server with a name, an [`Arg`](GenServer::Arg), a mailbox
/// bound: [`start`](Builder::start) in a nursery, or
/// [`serve`](Builder::serve) in the current task.
///
/// `A` tracks the argument: a builder made by [`new`](Builder::new) holds
/// `()`, and [`arg`](Builder::arg) sets `S::Arg`; `start` and `serve` exist
/// once the builder holds an `S::Arg` (at once for servers whose `Arg` is
/// `()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis::gen_server::{self, Builder, Context, GenServer, Init, Response};
///
/// struct Counter(u64);
///
/// impl GenServer for Counter {
///     type Arg = u64;
///     type Call = ();
///     type Reply = u64;
///     type Cast = ();
///     type Info = ();
///
///     async fn init(&mut self, start: u64, _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
///         self.0 = start;
///         Ok(Init::Ready)
///     }
///
///     async fn handle_call(&mut self, (): (), _: &mut Context<Self>) -> Result<Response<u64>, trellis::BoxError> {
///         Ok(Response::Reply(self.0))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// trellis::nursery(|n| async move {
///     let counter = Builder::new(Counter(0))
///         .arg(41)
///         .name("builder-counter")
///         .bounded(64)
///         .start(&n)
///         .await?;
///     let by_name = gen_server::call::<Counter>("builder-counter", (), Duration::from_secs(1)).await?;
///     assert_eq!(by_name, 41);
///     counter.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use]
pub struct Builder<S: GenServer, A = ()> {
    server: S,
    arg: A,
    options: GenServerOptions,
}

impl<S: GenServer, A> fmt::Debug for Builder<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("server", &short_type_name::<S>())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S: GenServer> Builder<S, ()> {
    /// A builder for `server`: unnamed, unbounded, no argument yet.
    pub fn new(server: S) -> Self {
        Builder {
            server,
            arg: (),
            options: GenServerOptions::new(),
        }
    }
}

impl<S: GenServer, A> Builder<S, A> {
    /// The argument `init` gets. Required unless `S::Arg` is `()`.
    pub fn arg(self, arg: S::Arg) -> Builder<S, S::Arg> {
        Builder {
            server: self.server,
            arg,
            options: self.options,
        }
    }

    /// Registers the server under `name` before `init` runs. Default: none.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.options = self.options.name(name);
        self
    }

    /// Bounds the mailbox: casts and calls wait for room past `capacity`
    /// queued messages. Default: unbounded, as Erlang's.
    pub fn bounded(mut self, capacity: usize) -> Self {
        self.options = self.options.bounded(capacity);
        self
    }

    /// Replaces the name and bound with `options`.
    pub fn options(mut self, options: impl Into<GenServerOptions>) -> Self {
        self.options = options.into();
        self
    }
}

impl<S: GenServer> Builder<S, S::Arg> {
    /// Starts the server as a task of `nursery` and returns its handle once
    /// `init` has succeeded. See [`start`](fn@start).
    ///
    /// # Errors
    ///
    /// [`GenServerError::NameAlreadyExists`], [`GenServerError::InitFailed`],
    /// [`GenServerError::Ignored`], or [`GenServerError::NotStarted`] if the
    /// nursery is closed or cancelled.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before `init` finished, the server is
    /// cancelled with it.
    pub async fn start(self, nursery: &Nursery) -> Result<Server<S>, GenServerError> {
        let Builder {
            server,
            arg,
            options,
        } = self;
        start_in(
            nursery,
            server,
            arg,
            options,
            std::convert::identity,
            short_type_name::<S>(),
        )
        .await
    }

    /// Runs the server in the current task: the body to give
    /// [`Nursery::start`](crate::Nursery::start) or a supervisor. See
    /// [`serve`](fn@serve).
    ///
    /// # Errors
    ///
    /// As [`serve`](fn@serve), plus [`GenServerError::NameAlreadyExists`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the server.
    pub fn serve(
        self,
        status: TaskStatus<Server<S>>,
    ) -> impl Future<Output = Result<(), GenServerError>> + Send {
        // Not an `async fn`: its future would hold the builder besides the
        // server's state, for the server's whole life.
        server_loop::serve(
            self.server,
            self.arg,
            self.options,
            status,
            std::convert::identity,
        )
    }
}

/// Starts `server` as a task of `nursery` and returns what `report` makes
/// of its handle once `init` has succeeded: [`Builder::start`]'s body, and
/// gen_statem's (which reports its own handle). An unnamed server's task is
/// named `type_name`, without allocating.
pub(crate) async fn start_in<S: GenServer, H: Send + 'static>(
    nursery: &Nursery,
    server: S,
    arg: S::Arg,
    options: GenServerOptions,
    report: fn(Server<S>) -> H,
    type_name: &'static str,
) -> Result<H, GenServerError> {
    let spawn = SpawnOptions::new().name(match options.name.as_deref() {
        Some(name) => std::borrow::Cow::Owned(name.to_string()),
        None => std::borrow::Cow::Borrowed(type_name),
    });
    nursery
        .start_with(spawn, move |status| {
            server_loop::serve(server, arg, options, status, report)
        })
        .await
        .map_err(start_error)
}

/// The [`GenServerError`] for a failed [`Nursery::start_with`] of a server
/// loop (shared with the behaviours built on gen_server).
pub(crate) fn start_error(error: StartError) -> GenServerError {
    match error {
        StartError::Failed(failure) => match failure.into_error() {
            Some(error) => match error.downcast::<GenServerError>() {
                Ok(error) => *error,
                Err(other) => GenServerError::InitFailed {
                    reason: ExitReason::error(other),
                },
            },
            None => GenServerError::InitFailed {
                reason: ExitReason::Panic("init panicked".into()),
            },
        },
        // `serve` returns before `started` only when `init` ignored.
        StartError::NotStarted { .. } => GenServerError::Ignored,
        other => GenServerError::NotStarted {
            message: other.to_string().into(),
        },
    }
}

/// `S`'s type name without its path or generics, for task names.
pub(crate) fn short_type_name<S>() -> &'static str {
    crate::nursery::trimmed_type_name::<S>(|name| {
        let name = crate::nursery::trim_type_name(name);
        name.rsplit("::").next().unwrap_or(name)
    })
}
