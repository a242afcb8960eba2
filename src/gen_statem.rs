//! Generic state machines: OTP's `gen_statem`, typed, run as a gen_server.
//!
//! A gen_statem is a process with a *state* (usually an enum: which phase
//! of a protocol, whether a door is locked) and *data* (everything else),
//! kept apart. Every message becomes an [`Event`]; one callback,
//! [`GenStatem::handle_event`], gets the event with the current state and
//! the data, and returns a [`Transition`]: keep the state, go to another,
//! or stop. Through its [`Context`] it also asks for OTP's *transition
//! actions*: postpone the event until the state changes, insert events,
//! set timeouts that the state machine itself cancels.
//!
//! Under the hood a statem is a [gen_server]: the same
//! mailbox, call plumbing, start handshake and stop sequence. So
//! [`Statem::call`] has gen_server's no-hang guarantees (a dead, stopping or
//! panicking machine answers with an error at once; the timeout is per
//! call; an enclosing [cancel scope](crate::CancelScope)'s deadline applies),
//! errors are [`GenServerError`]s, names go through the
//! [registry], and [`child_spec`] supervises it like any
//! gen_server.
//!
//! # Events
//!
//! | you (or the machine) do | we call [`GenStatem::handle_event`] with | and then |
//! |---|---|---|
//! | [`start`] / [`Builder`] | — [`GenStatem::init`] returns [`Init::Ready`]`(state, data)` | with [`GenStatem::STATE_ENTER`], [`Event::Enter`]`(state)` (the initial state enter call), then the events `init` inserted; then the starter gets the [`Statem`] handle |
//! | [`call`] / [`Statem::call`] | [`Event::Call`]`(request, from)` | answer with [`Context::reply`] or `from.reply(..)`, now or later (keep `from` in the data); dropping `from` unanswered makes the call fail with [`GenServerError::NoReply`] |
//! | [`cast`] / [`Statem::cast`] | [`Event::Cast`]`(message)` | |
//! | [`Statem::send_info`], [`mailbox::send`](crate::mailbox::send) to its name or pid | [`Event::Info`]`(message)` | |
//! | [`Context::next_event`] | [`Event::Internal`]`(content)` (or whichever event was inserted) | handled before anything queued |
//! | [`Context::event_timeout`] ran out | [`Event::EventTimeout`]`(content)` | |
//! | [`Context::state_timeout`] ran out | [`Event::StateTimeout`]`(content)` | |
//! | [`Context::timeout`]`(name, ..)` ran out | [`Event::Timeout`]`(name, content)` | |
//! | the state changed (or [`Transition::Repeat`]), with [`GenStatem::STATE_ENTER`] | [`Event::Enter`]`(old_state)` | the state enter call: no state change, postpone or `next_event` allowed |
//! | a [`Context::monitor`]ed process ended | [`Event::Down`] | |
//! | a linked process ended while [`Context::trap_exits`] | [`Event::Exit`] | |
//! | [`Statem::stop`], [`Transition::Stop`], `Err(e)` from a callback, a panic, shutdown | — [`GenStatem::terminate`] | as gen_server's stop sequence |
//!
//! # Transition actions
//!
//! | OTP action | Trellis | cancelled by |
//! |---|---|---|
//! | `{reply, From, Reply}` | [`Context::reply`]`(from, r)` or `from.reply(r)` ([`ReplyTo`]) | — |
//! | `postpone` | [`Context::postpone`]`(event)` (the event is handed back) | — : re-delivered after the next state change |
//! | `{next_event, internal, C}` | [`Context::next_event`]`(Event::Internal(c))` | — |
//! | `{timeout, T, C}` (event timeout) | [`Context::event_timeout`]`(t, c)` | any event |
//! | `{state_timeout, T, C}` | [`Context::state_timeout`]`(t, c)`, [`Context::cancel_state_timeout`] | a state change; setting it again |
//! | `{{timeout, Name}, T, C}` | [`Context::timeout`]`(name, t, c)`, [`Context::cancel_timeout`] | only cancelling or setting it again |
//! | `{keep_state, Data}` / `keep_state_and_data` | [`Transition::Keep`] (the data is changed in place) | |
//! | `{next_state, S, Data}` | [`Transition::Next`]`(s)` | |
//! | `repeat_state` | [`Transition::Repeat`] (runs the state enter call again) | |
//! | `{stop, Reason}` | [`Transition::Stop`]`(reason)` | |
//! | `hibernate` | — | not needed |
//!
//! After a callback returns, in this order: a postponed event joins the
//! postponed list; on a state change (a [`Transition::Next`] to a state not
//! equal to the current one) the state timeout is cancelled and every
//! postponed event is queued again, oldest first, before the mailbox; the
//! inserted events go before all of those; then the timeouts are set; then,
//! with [`GenStatem::STATE_ENTER`], the state enter call runs. Every timer
//! runs on tokio's clock, so tests on a paused clock are deterministic.
//!
//! # Callback modes
//!
//! OTP has two: `handle_event_function` (one function, the state as a
//! value) and `state_functions` (one function per state). In Rust both are
//! [`GenStatem::handle_event`]: match on `(state, event)` together for the
//! first, or match on the state alone and hand each arm to a method of its
//! own for the second — the compiler then checks that every state has its
//! function, where OTP finds a missing one at run time.
//!
//! ```
//! use trellis::BoxError;
//! use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! enum Job { Idle, Busy }
//!
//! struct Worker;
//!
//! impl GenStatem for Worker {
//!     type Arg = ();
//!     type State = Job;
//!     type Data = u32; // jobs done
//!     type Call = ();
//!     type Reply = (Job, u32);
//!     type Cast = &'static str; // "start" or "done"
//!     type Info = ();
//!     type Internal = ();
//!
//!     async fn init(&mut self, (): (), _: &mut Context<'_, Self>) -> Result<Init<Job, u32>, BoxError> {
//!         Ok(Init::Ready(Job::Idle, 0))
//!     }
//!
//!     // state_functions: one method per state.
//!     async fn handle_event(&mut self, event: Event<Self>, state: &Job, done: &mut u32, ctx: &mut Context<'_, Self>)
//!         -> Result<Transition<Job>, BoxError>
//!     {
//!         if let Event::Call((), from) = event {
//!             ctx.reply(from, (state.clone(), *done));
//!             return Ok(Transition::Keep);
//!         }
//!         match state {
//!             Job::Idle => Ok(self.idle(event)),
//!             Job::Busy => Ok(self.busy(event, done, ctx)),
//!         }
//!     }
//! }
//!
//! impl Worker {
//!     fn idle(&mut self, event: Event<Self>) -> Transition<Job> {
//!         match event {
//!             Event::Cast("start") => Transition::Next(Job::Busy),
//!             _ => Transition::Keep,
//!         }
//!     }
//!
//!     fn busy(&mut self, event: Event<Self>, done: &mut u32, ctx: &mut Context<'_, Self>) -> Transition<Job> {
//!         match event {
//!             Event::Cast("done") => {
//!                 *done += 1;
//!                 Transition::Next(Job::Idle)
//!             }
//!             // A second "start" waits until this job is done.
//!             start @ Event::Cast("start") => {
//!                 ctx.postpone(start);
//!                 Transition::Keep
//!             }
//!             _ => Transition::Keep,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! trellis::nursery(|n| async move {
//!     let worker = gen_statem::start(&n, Worker).await?;
//!     for cast in ["start", "start", "done"] {
//!         worker.cast(cast).await?;
//!     }
//!     // The postponed "start" came back once the first job was done.
//!     assert_eq!(worker.call((), gen_statem::DEFAULT_TIMEOUT).await?, (Job::Busy, 1));
//!     worker.stop().await?;
//!     Ok::<_, BoxError>(())
//! })
//! .await
//! .unwrap();
//! # }
//! ```
//!
//! # Where Trellis differs from OTP
//!
//! | OTP | Trellis | why |
//! |---|---|---|
//! | `callback_mode()` returns `state_functions` or `handle_event_function` | one [`GenStatem::handle_event`]; per-state functions are a `match` on the state | no macros; exhaustiveness is checked by the compiler |
//! | `callback_mode()` adds `state_enter` | the constant [`GenStatem::STATE_ENTER`] | known at compile time, as OTP's is fixed per module |
//! | `{next_state, S, Data, Actions}`: actions as a returned list | actions through [`Context`], the transition as the return value | no list to allocate per event; the event is moved into [`Context::postpone`] |
//! | `State` and `Data` are any terms | [`GenStatem::State`] is a type you choose (an enum), compared with `PartialEq` to tell a state change | typed states |
//! | the timeout content is any term; `{timeout, Name}` names are terms | the content is [`GenStatem::Internal`]; names are strings | one typed channel for what the machine sends itself |
//! | the initial state enter call runs after `start` has returned | it runs before (`start` returns once it and the events `init` inserted are handled) | a start that returns means the machine is in its initial state, entered |
//! | `gen_statem:call/3` defaults to `infinity` | the timeout is explicit ([`DEFAULT_TIMEOUT`], [`INFINITY`]) | as gen_server: a wait is visible where it is written |
//! | an event timeout of 0 fires at once if nothing is queued | a 0 event timeout is an ordinary timer: it fires after the messages already queued, which cancel it | one rule for every event timeout |
//! | `reply` actions are sent after the callback returns | [`Context::reply`] sends at once | the caller's handle is a value; nothing is lost by sending early |
//! | errors of `call` are exits | [`GenServerError`] values (a statem is a gen_server underneath, and says so in the message) | errors are values |
//!
//! # Examples
//!
//! A switch that turns itself off after a while in the `On` state:
//!
//! ```
//! use std::time::Duration;
//! use trellis::BoxError;
//! use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! enum Light { Off, On }
//!
//! struct Switch;
//!
//! impl GenStatem for Switch {
//!     type Arg = ();
//!     type State = Light;
//!     type Data = u32; // how many times it was switched on
//!     type Call = ();
//!     type Reply = (Light, u32);
//!     type Cast = ();
//!     type Info = ();
//!     type Internal = ();
//!
//!     async fn init(&mut self, (): (), _: &mut Context<'_, Self>) -> Result<Init<Light, u32>, BoxError> {
//!         Ok(Init::Ready(Light::Off, 0))
//!     }
//!
//!     async fn handle_event(
//!         &mut self,
//!         event: Event<Self>,
//!         state: &Light,
//!         count: &mut u32,
//!         ctx: &mut Context<'_, Self>,
//!     ) -> Result<Transition<Light>, BoxError> {
//!         Ok(match (state, event) {
//!             (Light::Off, Event::Cast(())) => {
//!                 *count += 1;
//!                 ctx.state_timeout(Duration::from_secs(10), ());
//!                 Transition::Next(Light::On)
//!             }
//!             (Light::On, Event::Cast(())) | (Light::On, Event::StateTimeout(())) => {
//!                 Transition::Next(Light::Off)
//!             }
//!             (_, Event::Call((), from)) => {
//!                 ctx.reply(from, (state.clone(), *count));
//!                 Transition::Keep
//!             }
//!             _ => Transition::Keep,
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! trellis::nursery(|n| async move {
//!     let switch = gen_statem::start(&n, Switch).await?;
//!     switch.cast(()).await?;
//!     assert_eq!(switch.call((), gen_statem::DEFAULT_TIMEOUT).await?, (Light::On, 1));
//!     tokio::time::sleep(Duration::from_secs(11)).await;
//!     assert_eq!(switch.call((), gen_statem::DEFAULT_TIMEOUT).await?, (Light::Off, 1));
//!     switch.stop().await?;
//!     Ok::<_, BoxError>(())
//! })
//! .await
//! .unwrap();
//! # }
//! ```
//!
//! `examples/door_lock.rs` is OTP's own door lock, and
//! `examples/statem_conn.rs` a connection state machine over the
//! [protocol](crate::protocol) layer.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::gen_server::{self, Server};
use crate::mailbox::Address;
use crate::process::{Down, Exit, ExitReason, Pid};
use crate::registry::{self, ProcessRef, RegistryError};
use crate::supervisor::ChildSpec;
use crate::{BoxError, Nursery, TaskStatus};

mod context;
mod error;
mod machine;

pub(crate) use context::Actions;
pub use context::Context;
pub use error::GenStatemError;
use machine::{Machine, MachineCast};

// What talking to a statem shares with gen_server, re-exported so that a
// statem's users need only this module.
pub use crate::gen_server::{DEFAULT_TIMEOUT, GenServerError, GenServerOptions, INFINITY, ReplyTo};

/// The callbacks of a state machine.
///
/// Implement `init` and `handle_event`; `terminate` has a default. The
/// implementing type holds what does not change between states
/// (configuration); the state and the data are the associated types, made
/// by `init`. Callbacks are `async` and run one at a time.
pub trait GenStatem: Send + Sized + 'static {
    /// What [`start`] passes to `init`.
    type Arg: Send + 'static;
    /// The state: usually an enum. A [`Transition::Next`] to a state that is
    /// not `==` to the current one is a state change.
    type State: Clone + PartialEq + fmt::Debug + Send + Sync + 'static;
    /// Everything else the machine keeps (OTP's `Data`).
    type Data: Send + Sync + 'static;
    /// Requests [`call`] sends.
    type Call: Send + 'static;
    /// What [`call`] gets back.
    type Reply: Send + 'static;
    /// Messages [`cast`] sends.
    type Cast: Send + 'static;
    /// Plain messages sent to the machine's mailbox.
    type Info: Send + 'static;
    /// What the machine sends itself: [`Event::Internal`] events inserted
    /// with [`Context::next_event`], and the content of its timeouts.
    type Internal: Send + 'static;

    /// Whether the machine gets [`Event::Enter`] on every state change
    /// and for its initial state (OTP's `state_enter` callback mode).
    /// Default: `false`.
    const STATE_ENTER: bool = false;

    /// Makes the initial state and data.
    ///
    /// - `Ok(`[`Init::Ready`]`(state, data))`: the machine runs; actions
    ///   asked for through `ctx` (timeouts, inserted events) take effect,
    ///   then the initial state enter call runs (with
    ///   [`STATE_ENTER`](Self::STATE_ENTER)), then the inserted events are
    ///   handled; then the starter gets its [`Statem`].
    /// - `Ok(`[`Init::Stop`]`(reason))`, `Ok(`[`Init::Ignore`]`)`, `Err`,
    ///   a panic: as [`GenServer::init`](crate::gen_server::GenServer::init).
    fn init(
        &mut self,
        arg: Self::Arg,
        ctx: &mut Context<'_, Self>,
    ) -> impl Future<Output = Result<Init<Self::State, Self::Data>, BoxError>> + Send;

    /// Handles one event in `state` (see the module docs for the events
    /// and the actions).
    ///
    /// `Ok(transition)` says what the state becomes; `Err(error)` (a `?`)
    /// crashes the machine with [`ExitReason::Error`], and a caller waiting
    /// on a call gets [`GenServerError::Exited`] with it.
    fn handle_event(
        &mut self,
        event: Event<Self>,
        state: &Self::State,
        data: &mut Self::Data,
        ctx: &mut Context<'_, Self>,
    ) -> impl Future<Output = Result<Transition<Self::State>, BoxError>> + Send;

    /// Runs once when the machine stops after a successful `init`, as
    /// [`GenServer::terminate`](crate::gen_server::GenServer::terminate).
    /// Its timers are already cancelled. Default: does nothing.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        state: &Self::State,
        data: &mut Self::Data,
        ctx: &mut Context<'_, Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, state, data, ctx);
        async {}
    }
}

/// What [`GenStatem::init`] decides (OTP's `{ok, State, Data}`,
/// `{stop, Reason}`, `ignore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init<S, D> {
    /// Run, in this state with this data.
    #[doc(alias = "ok")]
    Ready(S, D),
    /// Refuse to start: [`GenServerError::InitFailed`] with this reason.
    Stop(ExitReason),
    /// End normally without running: [`GenServerError::Ignored`].
    Ignore,
}

/// What a callback decides about the state.
///
/// # Examples
///
/// `Next` to the state it is in is not a change: no state enter call,
/// postponed events stay postponed; `Repeat` runs the enter call again.
///
/// ```
/// use trellis::BoxError;
/// use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
///
/// struct Entries;
///
/// impl GenStatem for Entries {
///     type Arg = ();
///     type State = u8;
///     type Data = Vec<(u8, u8)>; // (from, to) of each enter call
///     type Call = ();
///     type Reply = Vec<(u8, u8)>;
///     type Cast = Transition<u8>;
///     type Info = ();
///     type Internal = ();
///     const STATE_ENTER: bool = true;
///
///     async fn init(&mut self, (): (), _: &mut Context<'_, Self>) -> Result<Init<u8, Vec<(u8, u8)>>, BoxError> {
///         Ok(Init::Ready(0, Vec::new()))
///     }
///
///     async fn handle_event(&mut self, event: Event<Self>, state: &u8, entries: &mut Vec<(u8, u8)>, ctx: &mut Context<'_, Self>)
///         -> Result<Transition<u8>, BoxError>
///     {
///         Ok(match event {
///             Event::Enter(from) => {
///                 entries.push((from, *state));
///                 Transition::Keep
///             }
///             Event::Cast(transition) => transition,
///             Event::Call((), from) => {
///                 ctx.reply(from, entries.clone());
///                 Transition::Keep
///             }
///             _ => Transition::Keep,
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// trellis::nursery(|n| async move {
///     let m = gen_statem::start(&n, Entries).await?;
///     for t in [Transition::Next(1), Transition::Next(1), Transition::Keep, Transition::Repeat] {
///         m.cast(t).await?;
///     }
///     let entries = m.call((), gen_statem::DEFAULT_TIMEOUT).await?;
///     assert_eq!(entries, [(0, 0), (0, 1), (1, 1)]);
///     m.stop().await?;
///     Ok::<_, BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition<S> {
    /// Stay in the state (OTP's `keep_state`): no state change, no state
    /// enter call.
    #[doc(alias = "keep_state")]
    #[doc(alias = "keep_state_and_data")]
    Keep,
    /// Go to this state (OTP's `next_state`). A state change if it is not
    /// `==` to the current one; otherwise as [`Keep`](Self::Keep).
    #[doc(alias = "next_state")]
    Next(S),
    /// Stay, but run the state enter call again (OTP's `repeat_state`); not a
    /// state change: postponed events stay postponed, the state timeout
    /// keeps running. Inside a state enter call, as `Keep`.
    #[doc(alias = "repeat_state")]
    Repeat,
    /// Stop the machine with this reason. Pending actions are dropped;
    /// answer a caller first with [`Context::reply`] for OTP's
    /// `stop_and_reply`.
    Stop(ExitReason),
}

/// One event for [`GenStatem::handle_event`] (OTP's event type and
/// content together).
pub enum Event<M: GenStatem> {
    /// A [`call`]: answer through `from` (OTP's `{call, From}`), now or
    /// later; keep `from` in the data, or postpone the whole event.
    /// Dropping `from` unanswered makes the call fail at once with
    /// [`GenServerError::NoReply`] — also in a callback that then stops or
    /// crashes the machine, where the caller may see `NoReply` before the
    /// exit. A `from` kept (postponed, or in the data) when the machine
    /// stops gives the caller [`GenServerError::Exited`] with the reason,
    /// as gen_server's pending calls do.
    Call(M::Call, ReplyTo<M::Reply>),
    /// A [`cast`].
    Cast(M::Cast),
    /// A plain message (OTP's `info`).
    Info(M::Info),
    /// An event inserted with [`Context::next_event`] (OTP's `internal`).
    Internal(M::Internal),
    /// The event timeout ran out (OTP's `timeout`).
    EventTimeout(M::Internal),
    /// The state timeout ran out (OTP's `state_timeout`).
    StateTimeout(M::Internal),
    /// The generic timeout of this name ran out (OTP's `{timeout, Name}`).
    Timeout(Cow<'static, str>, M::Internal),
    /// The state enter call (OTP's `enter`), with the state before; for the
    /// initial state, the initial state itself. Only with
    /// [`GenStatem::STATE_ENTER`].
    Enter(M::State),
    /// A monitored process ended.
    Down(Down),
    /// A linked process ended while trapping exits.
    Exit(Exit),
}

impl<M: GenStatem> fmt::Debug for Event<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Call(..) => f.write_str("Call(..)"),
            Event::Cast(_) => f.write_str("Cast(..)"),
            Event::Info(_) => f.write_str("Info(..)"),
            Event::Internal(_) => f.write_str("Internal(..)"),
            Event::EventTimeout(_) => f.write_str("EventTimeout(..)"),
            Event::StateTimeout(_) => f.write_str("StateTimeout(..)"),
            Event::Timeout(name, _) => write!(f, "Timeout({name:?}, ..)"),
            Event::Enter(old) => write!(f, "Enter({old:?})"),
            Event::Down(down) => write!(f, "Down({:?})", down.pid),
            Event::Exit(exit) => write!(f, "Exit({:?})", exit.pid),
        }
    }
}

/// A handle to a running state machine: call it, cast to it, send it plain
/// messages, stop it. Cheap to clone, `Send + Sync`.
pub struct Statem<M: GenStatem> {
    server: Server<Machine<M>>,
}

impl<M: GenStatem> Clone for Statem<M> {
    fn clone(&self) -> Self {
        Statem {
            server: self.server.clone(),
        }
    }
}

impl<M: GenStatem> fmt::Debug for Statem<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Statem").field(&self.pid()).finish()
    }
}

impl<M: GenStatem> PartialEq for Statem<M> {
    fn eq(&self, other: &Self) -> bool {
        self.pid() == other.pid()
    }
}

impl<M: GenStatem> Eq for Statem<M> {}

impl<M: GenStatem> Statem<M> {
    fn wrap(server: Server<Machine<M>>) -> Self {
        Statem { server }
    }

    /// The machine's process id.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// Sends `request` as an [`Event::Call`] and waits at most `timeout`
    /// for the reply, as [`gen_server::Server::call`] (a postponed call
    /// keeps waiting, within the timeout).
    ///
    /// # Errors
    ///
    /// As [`gen_server::Server::call`]: [`GenServerError::Exited`],
    /// [`GenServerError::NoReply`], [`GenServerError::Timeout`],
    /// [`GenServerError::CallingSelf`].
    ///
    /// # Cancel safety
    ///
    /// Once sent, the request is handled and its reply discarded.
    pub async fn call(
        &self,
        request: M::Call,
        timeout: Duration,
    ) -> Result<M::Reply, GenServerError> {
        self.server.call(request, timeout).await
    }

    /// Sends `message` as an [`Event::Cast`].
    ///
    /// # Errors
    ///
    /// As [`gen_server::Server::cast`].
    ///
    /// # Cancel safety
    ///
    /// As [`gen_server::Server::cast`].
    pub async fn cast(&self, message: M::Cast) -> Result<(), GenServerError> {
        self.server.cast(MachineCast::Cast(message)).await
    }

    /// Sends `message` as an [`Event::Cast`] without waiting.
    ///
    /// # Errors
    ///
    /// As [`gen_server::Server::try_cast`].
    pub fn try_cast(&self, message: M::Cast) -> Result<(), GenServerError> {
        self.server.try_cast(MachineCast::Cast(message))
    }

    /// Sends `message` as an [`Event::Info`].
    ///
    /// # Errors
    ///
    /// As [`gen_server::Server::send_info`].
    ///
    /// # Cancel safety
    ///
    /// As [`gen_server::Server::send_info`].
    pub async fn send_info(&self, message: M::Info) -> Result<(), GenServerError> {
        self.server.send_info(message).await
    }

    /// An address that sends [`Event::Info`]s.
    pub fn info_address(&self) -> Address<M::Info> {
        self.server.info_address()
    }

    /// Stops the machine with [`ExitReason::Normal`] and waits until it has.
    ///
    /// # Errors
    ///
    /// As [`gen_server::Server::stop`].
    ///
    /// # Cancel safety
    ///
    /// As [`gen_server::Server::stop`].
    pub async fn stop(&self) -> Result<(), GenServerError> {
        self.server.stop().await
    }

    /// Stops the machine with `reason` and waits until it has.
    ///
    /// # Errors
    ///
    /// As [`gen_server::Server::stop`].
    ///
    /// # Cancel safety
    ///
    /// As [`gen_server::Server::stop`].
    pub async fn stop_with(&self, reason: ExitReason) -> Result<(), GenServerError> {
        self.server.stop_with(reason).await
    }

    /// The exit reason, once the machine has ended.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.server.exit_reason()
    }
}

impl<M: GenStatem> From<Statem<M>> for ProcessRef<Statem<M>> {
    fn from(statem: Statem<M>) -> Self {
        ProcessRef::Handle(statem)
    }
}

impl<M: GenStatem> From<&Statem<M>> for ProcessRef<Statem<M>> {
    fn from(statem: &Statem<M>) -> Self {
        ProcessRef::Handle(statem.clone())
    }
}

/// The [`Statem`] `to` refers to.
fn resolve<M: GenStatem>(to: ProcessRef<Statem<M>>) -> Result<Statem<M>, GenServerError> {
    let found = match to {
        ProcessRef::Handle(statem) => return Ok(statem),
        ProcessRef::Name(name) => registry::lookup::<Server<Machine<M>>>(&*name),
        ProcessRef::Pid(pid) => registry::lookup_pid::<Server<Machine<M>>>(pid),
    };
    found.map(Statem::wrap).map_err(|error| match error {
        RegistryError::WrongType { subject, .. } => GenServerError::WrongType {
            subject,
            expected: std::any::type_name::<Statem<M>>(),
        },
        error => error.into(),
    })
}

/// Calls the machine `to` (a handle, a name or a pid). See [`Statem::call`].
///
/// # Errors
///
/// As [`Statem::call`], plus [`GenServerError::NameNotFound`],
/// [`GenServerError::ProcessNotFound`] and [`GenServerError::WrongType`].
///
/// # Cancel safety
///
/// As [`Statem::call`].
pub async fn call<M: GenStatem>(
    to: impl Into<ProcessRef<Statem<M>>>,
    request: M::Call,
    timeout: Duration,
) -> Result<M::Reply, GenServerError> {
    resolve(to.into())?.call(request, timeout).await
}

/// Casts `message` to the machine `to` (a handle, a name or a pid).
///
/// # Errors
///
/// As [`Statem::cast`], plus the lookup errors of [`call`].
///
/// # Cancel safety
///
/// As [`Statem::cast`].
pub async fn cast<M: GenStatem>(
    to: impl Into<ProcessRef<Statem<M>>>,
    message: M::Cast,
) -> Result<(), GenServerError> {
    resolve(to.into())?.cast(message).await
}

/// Starts `machine` (without an [`Arg`](GenStatem::Arg)) as a task of
/// `nursery` and returns its handle once `init` (and the initial state
/// enter call) are done. For a name, an argument or a bound, use a
/// [`Builder`].
///
/// # Errors
///
/// As [`gen_server::start`].
///
/// # Cancel safety
///
/// As [`gen_server::start`].
pub async fn start<M: GenStatem<Arg = ()>>(
    nursery: &Nursery,
    machine: M,
) -> Result<Statem<M>, GenServerError> {
    Builder::new(machine).start(nursery).await
}

/// Starts a state machine with a name, an [`Arg`](GenStatem::Arg), a
/// mailbox bound; as [`gen_server::Builder`].
///
/// # Examples
///
/// ```
/// use trellis::BoxError;
/// use trellis::gen_statem::{self, Builder, Context, Event, GenStatem, Init, Transition};
///
/// struct Echo;
///
/// impl GenStatem for Echo {
///     type Arg = u32;
///     type State = ();
///     type Data = u32;
///     type Call = ();
///     type Reply = u32;
///     type Cast = ();
///     type Info = ();
///     type Internal = ();
///
///     async fn init(&mut self, n: u32, _: &mut Context<'_, Self>) -> Result<Init<(), u32>, BoxError> {
///         Ok(Init::Ready((), n))
///     }
///
///     async fn handle_event(&mut self, event: Event<Self>, _: &(), n: &mut u32, ctx: &mut Context<'_, Self>)
///         -> Result<Transition<()>, BoxError>
///     {
///         if let Event::Call((), from) = event {
///             ctx.reply(from, *n);
///         }
///         Ok(Transition::Keep)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// trellis::nursery(|n| async move {
///     let echo = Builder::new(Echo).arg(7).name("statem-echo").start(&n).await?;
///     let by_name = gen_statem::call::<Echo>("statem-echo", (), gen_statem::DEFAULT_TIMEOUT).await?;
///     assert_eq!(by_name, 7);
///     echo.stop().await?;
///     Ok::<_, BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use]
pub struct Builder<M: GenStatem, A = ()> {
    machine: M,
    arg: A,
    options: GenServerOptions,
}

impl<M: GenStatem, A> fmt::Debug for Builder<M, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("machine", &gen_server::short_type_name::<M>())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<M: GenStatem> Builder<M, ()> {
    /// A builder for `machine`: unnamed, unbounded, no argument yet.
    pub fn new(machine: M) -> Self {
        Builder {
            machine,
            arg: (),
            options: GenServerOptions::new(),
        }
    }
}

impl<M: GenStatem, A> Builder<M, A> {
    /// The argument `init` gets. Required unless `M::Arg` is `()`.
    pub fn arg(self, arg: M::Arg) -> Builder<M, M::Arg> {
        Builder {
            machine: self.machine,
            arg,
            options: self.options,
        }
    }

    /// Registers the machine under `name` before `init` runs.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.options = self.options.name(name);
        self
    }

    /// Bounds the mailbox. Default: unbounded. Timers deliver through the
    /// mailbox too: with a bound, a full mailbox delays them.
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

impl<M: GenStatem> Builder<M, M::Arg> {
    /// Starts the machine as a task of `nursery`. See [`start`](fn@start).
    ///
    /// # Errors
    ///
    /// As [`gen_server::Builder::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`gen_server::Builder::start`].
    pub async fn start(self, nursery: &Nursery) -> Result<Statem<M>, GenServerError> {
        let Builder {
            machine,
            arg,
            options,
        } = self;
        gen_server::start_in(
            nursery,
            Machine::new(machine),
            arg,
            options,
            Statem::wrap,
            gen_server::short_type_name::<M>(),
        )
        .await
    }

    /// Runs the machine in the current task: the body to give
    /// [`Nursery::start`](crate::Nursery::start) or a supervisor.
    ///
    /// # Errors
    ///
    /// As [`gen_server::Builder::serve`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the machine.
    pub fn serve(
        self,
        status: TaskStatus<Statem<M>>,
    ) -> impl Future<Output = Result<(), GenServerError>> + Send {
        gen_server::server_loop::serve(
            Machine::new(self.machine),
            self.arg,
            self.options,
            status,
            Statem::wrap,
        )
    }
}

/// A supervisor child that is a state machine: every (re)start builds a
/// fresh machine with `machine()` and serves it with a clone of `arg`, as
/// [`ChildSpec::gen_server`]. The started value is its [`Statem`].
///
/// # Examples
///
/// ```
/// # use trellis::BoxError;
/// # use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
/// # struct Idle;
/// # impl GenStatem for Idle {
/// #     type Arg = (); type State = (); type Data = (); type Call = (); type Reply = ();
/// #     type Cast = (); type Info = (); type Internal = ();
/// #     async fn init(&mut self, _: (), _: &mut Context<'_, Self>) -> Result<Init<(), ()>, BoxError> { Ok(Init::Ready((), ())) }
/// #     async fn handle_event(&mut self, _: Event<Self>, _: &(), _: &mut (), _: &mut Context<'_, Self>) -> Result<Transition<()>, BoxError> { Ok(Transition::Keep) }
/// # }
/// let spec = gen_statem::child_spec("idle", || Idle, (), "idle");
/// assert_eq!(spec.id(), "idle");
/// ```
pub fn child_spec<M, F>(
    id: impl Into<Cow<'static, str>>,
    machine: F,
    arg: M::Arg,
    options: impl Into<GenServerOptions>,
) -> ChildSpec
where
    M: GenStatem,
    M::Arg: Clone + Sync,
    F: Fn() -> M + Send + Sync + 'static,
{
    let options: Arc<GenServerOptions> = Arc::new(options.into());
    ChildSpec::new(id, move |status: TaskStatus<Statem<M>>| {
        Builder::new(machine())
            .arg(arg.clone())
            .options((*options).clone())
            .serve(status)
    })
}
