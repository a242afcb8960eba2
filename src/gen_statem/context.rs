//! [`Context`]: the actions a state machine's callbacks ask for (postpone,
//! insert events, timeouts) and what a gen_server's context offers (tasks,
//! monitors, links).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::machine::{Machine, TimerAction};
use super::{Event, GenStatem, Statem};
use crate::NurseryError;
use crate::gen_server::{self, ReplyTo};
use crate::mailbox::Address;
use crate::nursery::TaskOutput;
use crate::process::{MonitorRef, Pid};

/// The actions asked for by the callback running now; carried out when it
/// returns its [`Transition`](super::Transition).
pub(crate) struct Actions<M: GenStatem> {
    /// Whether any action below was asked for: most callbacks ask for
    /// none, and then nothing below is looked at.
    pub(super) pending: bool,
    pub(super) postpone: Option<Event<M>>,
    pub(super) next_events: Vec<Event<M>>,
    pub(super) event_timeout: Option<(Duration, M::Internal)>,
    pub(super) state_timeout: Option<TimerAction<M::Internal>>,
    pub(super) generic: Vec<(Cow<'static, str>, TimerAction<M::Internal>)>,
}

impl<M: GenStatem> Default for Actions<M> {
    fn default() -> Self {
        Actions {
            pending: false,
            postpone: None,
            next_events: Vec::new(),
            event_timeout: None,
            state_timeout: None,
            generic: Vec::new(),
        }
    }
}

impl<M: GenStatem> Actions<M> {
    pub(super) fn clear(&mut self) {
        self.pending = false;
        self.postpone = None;
        self.next_events.clear();
        self.event_timeout = None;
        self.state_timeout = None;
        self.generic.clear();
    }
}

/// What a state machine's callbacks can do besides returning a
/// [`Transition`](super::Transition): OTP's transition actions (postpone,
/// `next_event`, the three kinds of timeout, reply), and the gen_server
/// context's tasks, monitors and links.
///
/// Actions take effect when the callback returns, in OTP's order (see the
/// module docs); a [`Transition::Stop`](super::Transition::Stop) drops them.
///
/// # Examples
///
/// A machine that postpones work until it is `Ready`, inserts an internal
/// event, and times out of `Starting`:
///
/// ```
/// use std::time::Duration;
/// use trellis::BoxError;
/// use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
///
/// #[derive(Clone, Debug, PartialEq)]
/// enum Phase { Starting, Ready }
///
/// struct Service;
///
/// impl GenStatem for Service {
///     type Arg = ();
///     type State = Phase;
///     type Data = Vec<String>; // what happened, in order
///     type Call = ();
///     type Reply = Vec<String>;
///     type Cast = &'static str;
///     type Info = ();
///     type Internal = &'static str;
///
///     async fn init(&mut self, (): (), ctx: &mut Context<'_, Self>) -> Result<Init<Phase, Vec<String>>, BoxError> {
///         ctx.state_timeout(Duration::from_secs(3), "warmed up");
///         Ok(Init::Ready(Phase::Starting, Vec::new()))
///     }
///
///     async fn handle_event(&mut self, event: Event<Self>, phase: &Phase, log: &mut Vec<String>, ctx: &mut Context<'_, Self>)
///         -> Result<Transition<Phase>, BoxError>
///     {
///         Ok(match (phase, event) {
///             (_, Event::Call((), from)) => {
///                 ctx.reply(from, log.clone());
///                 Transition::Keep
///             }
///             (Phase::Starting, work @ Event::Cast(_)) => {
///                 ctx.postpone(work);
///                 Transition::Keep
///             }
///             (Phase::Starting, Event::StateTimeout(why)) => {
///                 ctx.next_event(Event::Internal(why));
///                 Transition::Next(Phase::Ready)
///             }
///             (Phase::Ready, Event::Internal(why)) => {
///                 log.push(format!("ready: {why}"));
///                 Transition::Keep
///             }
///             (Phase::Ready, Event::Cast(job)) => {
///                 log.push(format!("did {job}"));
///                 Transition::Keep
///             }
///             _ => Transition::Keep,
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// trellis::nursery(|n| async move {
///     let service = gen_statem::start(&n, Service).await?;
///     service.cast("a").await?;
///     service.cast("b").await?;
///     tokio::time::sleep(Duration::from_secs(4)).await;
///     let log = service.call((), gen_statem::DEFAULT_TIMEOUT).await?;
///     assert_eq!(log, ["ready: warmed up", "did a", "did b"]);
///     service.stop().await?;
///     Ok::<_, BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
pub struct Context<'a, M: GenStatem> {
    pub(super) server: &'a mut gen_server::Context<Machine<M>>,
    pub(super) actions: &'a mut Actions<M>,
}

impl<M: GenStatem> fmt::Debug for Context<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl<M: GenStatem> Context<'_, M> {
    /// This machine's pid.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// A handle to this machine, to give to others. Calling or stopping it
    /// through the handle from its own callbacks fails at once with
    /// [`GenServerError::CallingSelf`](crate::gen_server::GenServerError::CallingSelf).
    pub fn statem(&self) -> Statem<M> {
        Statem {
            server: self.server.server().clone(),
        }
    }

    /// The address of this machine's [`Event::Info`], for tasks and other
    /// processes to report back.
    pub fn info(&self) -> Address<M::Info> {
        self.server.info()
    }

    /// Answers a call now (OTP's `{reply, From, Reply}` action). A caller
    /// that is gone (timed out) is ignored, as in OTP.
    pub fn reply<R>(&mut self, to: ReplyTo<R>, reply: R) {
        let _ = to.reply(reply);
    }

    /// Postpones `event` (OTP's `postpone`): it is handled again after the
    /// next state change, before anything still queued, in the order the
    /// postponed events first arrived. A call keeps its caller waiting
    /// (within the caller's timeout). Not allowed in a state enter call.
    pub fn postpone(&mut self, event: Event<M>) {
        self.actions.pending = true;
        self.actions.postpone = Some(event);
    }

    /// Inserts `event` to be handled next (OTP's `{next_event, Type,
    /// Content}`), before any event already queued; several are handled in
    /// the order they were inserted. Usually an [`Event::Internal`]. Not
    /// allowed in a state enter call.
    pub fn next_event(&mut self, event: Event<M>) {
        self.actions.pending = true;
        self.actions.next_events.push(event);
    }

    /// Sets the event timeout (OTP's `{timeout, Time, Content}`): if no
    /// event arrives within `after`, [`Event::EventTimeout`]`(content)` is
    /// handled. Any event cancels it, including one already queued.
    pub fn event_timeout(&mut self, after: Duration, content: M::Internal) {
        self.actions.pending = true;
        self.actions.event_timeout = Some((after, content));
    }

    /// Sets the state timeout (OTP's `{state_timeout, Time, Content}`):
    /// unless the state changes first, [`Event::StateTimeout`]`(content)` is
    /// handled after `after`. Replaces a state timeout already running; set
    /// on a transition to a new state, it runs in that new state.
    pub fn state_timeout(&mut self, after: Duration, content: M::Internal) {
        self.actions.pending = true;
        self.actions.state_timeout = Some(TimerAction::Set(after, content));
    }

    /// Cancels the state timeout (OTP's `{state_timeout, cancel}`).
    pub fn cancel_state_timeout(&mut self) {
        self.actions.pending = true;
        self.actions.state_timeout = Some(TimerAction::Cancel);
    }

    /// Sets the generic timeout `name` (OTP's `{{timeout, Name}, Time,
    /// Content}`): [`Event::Timeout`]`(name, content)` is handled after
    /// `after`, whatever happens meanwhile, unless cancelled with
    /// [`cancel_timeout`](Self::cancel_timeout) or set again.
    pub fn timeout(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        after: Duration,
        content: M::Internal,
    ) {
        self.actions.pending = true;
        self.actions
            .generic
            .push((name.into(), TimerAction::Set(after, content)));
    }

    /// Cancels the generic timeout `name` (OTP's `{{timeout, Name}, cancel}`).
    pub fn cancel_timeout(&mut self, name: impl Into<Cow<'static, str>>) {
        self.actions.pending = true;
        self.actions
            .generic
            .push((name.into(), TimerAction::Cancel));
    }

    /// Runs `task` concurrently in the machine's own nursery, as
    /// [`gen_server::Context::spawn`]: it cannot outlive the machine, and
    /// its failure stops it.
    ///
    /// # Errors
    ///
    /// If the machine is stopping.
    pub fn spawn<F>(&self, task: F) -> Result<(), NurseryError>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
    {
        self.server.spawn(task)
    }

    /// Watches `pid`: [`Event::Down`] is handled once when it ends.
    pub fn monitor(&mut self, pid: Pid) -> MonitorRef {
        self.server.monitor(pid)
    }

    /// Removes a monitor; returns whether it was still active.
    pub fn demonitor(&mut self, pid: Pid, monitor: MonitorRef) -> bool {
        self.server.demonitor(pid, monitor)
    }

    /// Links this machine with `pid`, as [`gen_server::Context::link`].
    pub fn link(&mut self, pid: Pid) {
        self.server.link(pid);
    }

    /// Removes the link with `pid`.
    pub fn unlink(&mut self, pid: Pid) {
        self.server.unlink(pid);
    }

    /// Receives linked processes' exits as [`Event::Exit`] instead of
    /// stopping.
    pub fn trap_exits(&mut self, trap: bool) {
        self.server.trap_exits(trap);
    }
}
