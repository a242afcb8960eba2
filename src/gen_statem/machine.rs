//! The gen_server a gen_statem runs as: [`Machine`] keeps the state, the
//! data, the postponed events, the queue of inserted events and the timers,
//! and turns each mailbox message into events for [`GenStatem::handle_event`].
//!
//! One mailbox message is handled to the end in one gen_server callback:
//! the event itself, then the events it inserted (`next_event`) and the
//! postponed events a state change re-delivers, in OTP's order — so inserted
//! and re-delivered events always come before the next mailbox message.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt as _;

use super::{Actions, Context, Event, GenStatem, GenStatemError, Init, Transition};
use crate::gen_server::{self, Flow, GenServer, Response};
use crate::process::{Down, Exit, ExitReason};
use crate::{BoxError, CancelScope};

/// The gen_server under every gen_statem.
pub(crate) struct Machine<M: GenStatem> {
    pub(super) callbacks: M,
    /// `None` until `init` returns `Ready`.
    pub(super) core: Option<(M::State, M::Data)>,
    pub(super) actions: Actions<M>,
    /// Events postponed in the current state, oldest first.
    postponed: VecDeque<Event<M>>,
    /// Events to handle before the next mailbox message.
    queue: VecDeque<Event<M>>,
    timers: Timers,
}

impl<M: GenStatem> Machine<M> {
    pub(super) fn new(callbacks: M) -> Self {
        Machine {
            callbacks,
            core: None,
            actions: Actions::default(),
            postponed: VecDeque::new(),
            queue: VecDeque::new(),
            timers: Timers::default(),
        }
    }
}

/// What the machine casts to itself besides its users' casts.
pub(crate) enum MachineCast<M: GenStatem> {
    /// A user's cast.
    Cast(M::Cast),
    /// A timer went off.
    Timeout(Box<Fired<M>>),
}

/// A timer's message: which timer, and which arming of it.
pub(crate) struct Fired<M: GenStatem> {
    kind: TimerKind,
    generation: u64,
    content: M::Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TimerKind {
    Event,
    State,
    Generic(Cow<'static, str>),
}

/// One armed timer.
struct Timer {
    generation: u64,
    scope: CancelScope,
}

/// The armed timers. A timer's message carries the generation it was armed
/// with: a message from a cancelled (or re-armed) timer that was already
/// queued is dropped on arrival.
#[derive(Default)]
struct Timers {
    next: u64,
    event: Option<Timer>,
    state: Option<Timer>,
    generic: HashMap<Cow<'static, str>, Timer>,
}

impl Timers {
    fn slot(&mut self, kind: &TimerKind) -> Option<&mut Option<Timer>> {
        match kind {
            TimerKind::Event => Some(&mut self.event),
            TimerKind::State => Some(&mut self.state),
            TimerKind::Generic(_) => None,
        }
    }

    fn cancel(&mut self, kind: &TimerKind) {
        let timer = match self.slot(kind) {
            Some(slot) => slot.take(),
            None => match kind {
                TimerKind::Generic(name) => self.generic.remove(name),
                _ => None,
            },
        };
        if let Some(timer) = timer {
            timer.scope.cancel();
        }
    }

    /// Whether `fired` comes from the timer armed now; disarms it if so.
    fn take_if_current(&mut self, kind: &TimerKind, generation: u64) -> bool {
        let current = match kind {
            TimerKind::Generic(name) => self.generic.get(name).map(|t| t.generation),
            _ => self
                .slot(kind)
                .and_then(|slot| slot.as_ref().map(|t| t.generation)),
        };
        if current != Some(generation) {
            return false;
        }
        match kind {
            TimerKind::Generic(name) => {
                self.generic.remove(name);
            }
            _ => {
                if let Some(slot) = self.slot(kind) {
                    *slot = None;
                }
            }
        }
        true
    }

    /// Arms `kind` (replacing the timer armed before, if any).
    fn arm<M: GenStatem>(
        &mut self,
        kind: TimerKind,
        after: Duration,
        content: M::Internal,
        ctx: &gen_server::Context<Machine<M>>,
    ) {
        self.cancel(&kind);
        self.next += 1;
        let generation = self.next;
        let scope = CancelScope::new();
        let server = ctx.server().clone();
        let fired = Box::new(Fired {
            kind: kind.clone(),
            generation,
            content,
        });
        let run = scope.run(async move {
            tokio::time::sleep(after).await;
            let _ = server.cast(MachineCast::Timeout(fired)).await;
        });
        // Fails only while the server stops: the timer would not fire.
        if ctx
            .spawn(async move {
                run.await;
            })
            .is_err()
        {
            return;
        }
        let timer = Timer { generation, scope };
        match kind {
            TimerKind::Generic(name) => {
                self.generic.insert(name, timer);
            }
            kind => {
                if let Some(slot) = self.slot(&kind) {
                    *slot = Some(timer);
                }
            }
        }
    }

    fn cancel_all(&mut self) {
        self.cancel(&TimerKind::Event);
        self.cancel(&TimerKind::State);
        for (_, timer) in self.generic.drain() {
            timer.scope.cancel();
        }
    }
}

/// What comes after a callback's transition.
enum Step<S> {
    Continue,
    Stop(ExitReason),
    /// Run the state enter call; the state before.
    Enter(S),
}

/// A timer action a callback asked for.
pub(super) enum TimerAction<T> {
    Set(Duration, T),
    Cancel,
}

impl<M: GenStatem> Machine<M> {
    /// Handles `event`, then every event it inserts or re-delivers.
    async fn dispatch(
        &mut self,
        event: Event<M>,
        gctx: &mut gen_server::Context<Self>,
    ) -> Result<Flow, BoxError> {
        let mut event = event;
        loop {
            // Any event cancels the event timeout.
            if self.timers.event.is_some() {
                self.timers.cancel(&TimerKind::Event);
            }
            let Some((state, data)) = self.core.as_mut() else {
                return Ok(Flow::Continue);
            };
            let mut ctx = Context {
                server: gctx,
                actions: &mut self.actions,
            };
            let transition = self
                .callbacks
                .handle_event(event, state, data, &mut ctx)
                .await?;
            // The common case, kept inline: stay, no action asked.
            let step = if matches!(transition, Transition::Keep) && !self.actions.pending {
                Step::Continue
            } else {
                self.commit(transition, gctx)
            };
            match step {
                Step::Continue => match self.queue.pop_front() {
                    Some(next) => event = next,
                    None => return Ok(Flow::Continue),
                },
                Step::Stop(reason) => return Ok(Flow::Stop(reason)),
                // The state enter call is boxed: its future (a second
                // `handle_event`) does not weigh on every event's.
                Step::Enter(old) => {
                    if let Some(reason) = Box::pin(self.enter(old, gctx)).await? {
                        return Ok(Flow::Stop(reason));
                    }
                    match self.queue.pop_front() {
                        Some(next) => event = next,
                        None => return Ok(Flow::Continue),
                    }
                }
            }
        }
    }

    /// Carries out a callback's transition and actions: what comes next.
    fn commit(
        &mut self,
        transition: Transition<M::State>,
        gctx: &gen_server::Context<Self>,
    ) -> Step<M::State> {
        let Some((state, _)) = self.core.as_mut() else {
            return Step::Continue;
        };
        let (changed, enter) = match transition {
            Transition::Keep => (None, false),
            Transition::Next(next) if next == *state => (None, false),
            Transition::Next(next) => (Some(std::mem::replace(state, next)), true),
            Transition::Repeat => (None, true),
            Transition::Stop(reason) => {
                self.actions.clear();
                return Step::Stop(reason);
            }
        };
        if self.actions.pending {
            if let Some(event) = self.actions.postpone.take() {
                self.postponed.push_back(event);
            }
        }
        if changed.is_some() {
            // A state change cancels the state timeout and re-delivers the
            // postponed events, oldest first, before the mailbox's.
            if self.timers.state.is_some() {
                self.timers.cancel(&TimerKind::State);
            }
            while let Some(event) = self.postponed.pop_back() {
                self.queue.push_front(event);
            }
        }
        if self.actions.pending {
            // Inserted events go before everything queued, in the order given.
            for event in self.actions.next_events.drain(..).rev() {
                self.queue.push_front(event);
            }
            self.apply_timers(gctx);
        }
        if enter && M::STATE_ENTER {
            let old = match changed {
                Some(old) => old,
                None => self.core.as_ref().map(|(s, _)| s.clone()).expect("ready"),
            };
            return Step::Enter(old);
        }
        Step::Continue
    }

    /// Runs the state enter call (`Event::Enter(old)`).
    pub(super) async fn enter(
        &mut self,
        old: M::State,
        gctx: &mut gen_server::Context<Self>,
    ) -> Result<Option<ExitReason>, BoxError> {
        let Some((state, data)) = self.core.as_mut() else {
            return Ok(None);
        };
        let mut ctx = Context {
            server: gctx,
            actions: &mut self.actions,
        };
        let transition = self
            .callbacks
            .handle_event(Event::Enter(old), state, data, &mut ctx)
            .await?;
        if self.actions.postpone.is_some() {
            self.actions.clear();
            return Err(GenStatemError::InvalidStateEnter {
                what: "postpone in a state enter call",
            }
            .into());
        }
        if !self.actions.next_events.is_empty() {
            self.actions.clear();
            return Err(GenStatemError::InvalidStateEnter {
                what: "next_event in a state enter call",
            }
            .into());
        }
        match transition {
            Transition::Keep | Transition::Repeat => {}
            Transition::Next(next) if Some(&next) == self.core.as_ref().map(|(s, _)| s) => {}
            Transition::Next(_) => {
                self.actions.clear();
                return Err(GenStatemError::InvalidStateEnter {
                    what: "a state change in a state enter call",
                }
                .into());
            }
            Transition::Stop(reason) => {
                self.actions.clear();
                return Ok(Some(reason));
            }
        }
        self.apply_timers(gctx);
        Ok(None)
    }

    /// Arms and cancels the timers the last callback asked for.
    fn apply_timers(&mut self, gctx: &gen_server::Context<Self>) {
        self.actions.pending = false;
        if let Some(action) = self.actions.state_timeout.take() {
            match action {
                TimerAction::Set(after, content) => {
                    self.timers.arm(TimerKind::State, after, content, gctx);
                }
                TimerAction::Cancel => self.timers.cancel(&TimerKind::State),
            }
        }
        if !self.actions.generic.is_empty() {
            for (name, action) in std::mem::take(&mut self.actions.generic) {
                match action {
                    TimerAction::Set(after, content) => {
                        self.timers
                            .arm(TimerKind::Generic(name), after, content, gctx);
                    }
                    TimerAction::Cancel => self.timers.cancel(&TimerKind::Generic(name)),
                }
            }
        }
        if let Some((after, content)) = self.actions.event_timeout.take() {
            self.timers.arm(TimerKind::Event, after, content, gctx);
        }
    }

    /// The event of a timer's message, unless the timer was cancelled or
    /// set again since (its message was already on its way).
    fn fired(&mut self, fired: Fired<M>) -> Option<Event<M>> {
        let Fired {
            kind,
            generation,
            content,
        } = fired;
        if !self.timers.take_if_current(&kind, generation) {
            return None;
        }
        Some(match kind {
            TimerKind::Event => Event::EventTimeout(content),
            TimerKind::State => Event::StateTimeout(content),
            TimerKind::Generic(name) => Event::Timeout(name, content),
        })
    }

    /// After `init`: the initial state enter call, then the inserted events.
    pub(super) async fn after_init(
        &mut self,
        gctx: &mut gen_server::Context<Self>,
    ) -> Result<Option<ExitReason>, BoxError> {
        if let Some(event) = self.actions.postpone.take() {
            // Nothing to postpone in `init`: handle it as inserted.
            self.actions.next_events.insert(0, event);
        }
        for event in self.actions.next_events.drain(..).rev() {
            self.queue.push_front(event);
        }
        self.apply_timers(gctx);
        if M::STATE_ENTER {
            let initial = self.core.as_ref().map(|(s, _)| s.clone()).expect("ready");
            if let Some(reason) = self.enter(initial, gctx).await? {
                return Ok(Some(reason));
            }
        }
        if let Some(event) = self.queue.pop_front() {
            return match self.dispatch(event, gctx).await? {
                Flow::Continue => Ok(None),
                Flow::Stop(reason) => Ok(Some(reason)),
            };
        }
        Ok(None)
    }
}

impl<M: GenStatem> GenServer for Machine<M> {
    type Arg = M::Arg;
    type Call = M::Call;
    type Reply = M::Reply;
    type Cast = MachineCast<M>;
    type Info = M::Info;

    async fn init(
        &mut self,
        arg: M::Arg,
        gctx: &mut gen_server::Context<Self>,
    ) -> Result<gen_server::Init, BoxError> {
        let mut ctx = Context {
            server: gctx,
            actions: &mut self.actions,
        };
        match self.callbacks.init(arg, &mut ctx).await? {
            Init::Ready(state, data) => self.core = Some((state, data)),
            Init::Stop(reason) => return Ok(gen_server::Init::Stop(reason)),
            Init::Ignore => return Ok(gen_server::Init::Ignore),
        }
        // Runs once: boxed, so that it does not weigh on the server's future.
        Ok(match Box::pin(self.after_init(gctx)).await? {
            None => gen_server::Init::Ready,
            Some(reason) => gen_server::Init::Stop(reason),
        })
    }

    // The handlers below return `dispatch`'s future itself (not an `async`
    // block around it): one state machine less to poll per event.
    fn handle_call(
        &mut self,
        request: M::Call,
        gctx: &mut gen_server::Context<Self>,
    ) -> impl Future<Output = Result<Response<M::Reply>, BoxError>> + Send {
        let from = gctx.defer().expect("in handle_call");
        self.dispatch(Event::Call(request, from), gctx).map(|flow| {
            flow.map(|flow| match flow {
                Flow::Continue => Response::NoReply,
                Flow::Stop(reason) => Response::Stop(reason),
            })
        })
    }

    async fn handle_cast(
        &mut self,
        message: MachineCast<M>,
        gctx: &mut gen_server::Context<Self>,
    ) -> Result<Flow, BoxError> {
        match message {
            MachineCast::Cast(message) => self.dispatch(Event::Cast(message), gctx).await,
            MachineCast::Timeout(fired) => match self.fired(*fired) {
                Some(event) => self.dispatch(event, gctx).await,
                None => Ok(Flow::Continue),
            },
        }
    }

    fn handle_info(
        &mut self,
        message: M::Info,
        gctx: &mut gen_server::Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        self.dispatch(Event::Info(message), gctx)
    }

    fn handle_down(
        &mut self,
        down: Down,
        gctx: &mut gen_server::Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        self.dispatch(Event::Down(down), gctx)
    }

    fn handle_exit(
        &mut self,
        exit: Exit,
        gctx: &mut gen_server::Context<Self>,
    ) -> impl Future<Output = Result<Flow, BoxError>> + Send {
        self.dispatch(Event::Exit(exit), gctx)
    }

    async fn terminate(&mut self, reason: &ExitReason, gctx: &mut gen_server::Context<Self>) {
        self.timers.cancel_all();
        let Some((state, data)) = self.core.as_mut() else {
            return;
        };
        let mut ctx = Context {
            server: gctx,
            actions: &mut self.actions,
        };
        self.callbacks
            .terminate(reason, state, data, &mut ctx)
            .await;
    }
}
