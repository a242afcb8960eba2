//! A state machine that does what it is told and logs every event it
//! handles, for the `gen_statem_*` tests. Each test file uses it with
//! `mod gen_statem_support;`, and only some of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use trellis::BoxError;
use trellis::Nursery;
use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
use trellis::process::ExitReason;

/// A shared, ordered list of what the machine handled.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub(crate) fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum S {
    A,
    B,
    C,
}

/// What the probe does with a cast or a call.
#[derive(Debug, Clone)]
pub(crate) enum Cmd {
    /// Nothing but the log line.
    Log(&'static str),
    /// `Transition::Next`.
    Goto(S),
    /// `Transition::Repeat`.
    Repeat,
    /// Postponed unless the state is the one given; logged when handled.
    PostponeUnless(S, &'static str),
    /// `next_event(Internal(tag))` for each tag.
    Insert(Vec<&'static str>),
    EventTimeout(u64, &'static str),
    StateTimeout(u64, &'static str),
    CancelStateTimeout,
    Timeout(&'static str, u64, &'static str),
    CancelTimeout(&'static str),
    /// What the next state enter call does besides logging.
    OnEnter(Box<Cmd>),
    /// Calls itself through its own handle; logs the error.
    CallSelf,
    /// `Transition::Stop(Normal)`.
    Stop,
    /// Returns an error.
    Crash,
    /// Each in turn; the last transition other than `Keep` wins.
    Seq(Vec<Cmd>),
}

/// The probe; `ENTER` is its `STATE_ENTER`.
pub(crate) struct Probe<const ENTER: bool> {
    pub log: Log,
    pub started: Instant,
}

impl<const ENTER: bool> Probe<ENTER> {
    pub(crate) fn new(log: &Log) -> Self {
        Probe {
            log: log.clone(),
            started: Instant::now(),
        }
    }

    fn at(&self) -> u128 {
        self.started.elapsed().as_millis()
    }

    /// Carries out `cmd` (for the event `event`, which postpone gives back).
    async fn act(
        &mut self,
        cmd: Cmd,
        event: &mut Option<Event<Self>>,
        state: S,
        data: &mut Data,
        ctx: &mut Context<'_, Self>,
    ) -> Result<Transition<S>, BoxError> {
        Ok(match cmd {
            Cmd::Log(_) => Transition::Keep,
            Cmd::Goto(to) => Transition::Next(to),
            Cmd::Repeat => Transition::Repeat,
            Cmd::PostponeUnless(ready, tag) => {
                if state == ready {
                    self.log.push(format!("{state:?} handled {tag}"));
                } else if let Some(event) = event.take() {
                    ctx.postpone(event);
                }
                Transition::Keep
            }
            Cmd::Insert(tags) => {
                for tag in tags {
                    ctx.next_event(Event::Internal(tag));
                }
                Transition::Keep
            }
            Cmd::EventTimeout(ms, tag) => {
                ctx.event_timeout(Duration::from_millis(ms), tag);
                Transition::Keep
            }
            Cmd::StateTimeout(ms, tag) => {
                ctx.state_timeout(Duration::from_millis(ms), tag);
                Transition::Keep
            }
            Cmd::CancelStateTimeout => {
                ctx.cancel_state_timeout();
                Transition::Keep
            }
            Cmd::Timeout(name, ms, tag) => {
                ctx.timeout(name, Duration::from_millis(ms), tag);
                Transition::Keep
            }
            Cmd::CancelTimeout(name) => {
                ctx.cancel_timeout(name);
                Transition::Keep
            }
            Cmd::OnEnter(cmd) => {
                data.on_enter = Some(*cmd);
                Transition::Keep
            }
            Cmd::CallSelf => {
                let error = ctx
                    .statem()
                    .call(Cmd::Log("self"), gen_statem::DEFAULT_TIMEOUT)
                    .await
                    .unwrap_err();
                self.log.push(format!("{state:?} {error}"));
                Transition::Keep
            }
            Cmd::Stop => Transition::Stop(ExitReason::Normal),
            Cmd::Crash => return Err("asked to crash".into()),
            Cmd::Seq(cmds) => {
                let mut last = Transition::Keep;
                for cmd in cmds {
                    let t = Box::pin(self.act(cmd, event, state, data, ctx)).await?;
                    if t != Transition::Keep {
                        last = t;
                    }
                }
                last
            }
        })
    }
}

/// The probe's data: what the next state enter call does.
#[derive(Default)]
pub(crate) struct Data {
    pub on_enter: Option<Cmd>,
}

impl<const ENTER: bool> GenStatem for Probe<ENTER> {
    type Arg = ();
    type State = S;
    type Data = Data;
    type Call = Cmd;
    type Reply = S;
    type Cast = Cmd;
    type Info = &'static str;
    type Internal = &'static str;

    const STATE_ENTER: bool = ENTER;

    async fn init(&mut self, (): (), _: &mut Context<'_, Self>) -> Result<Init<S, Data>, BoxError> {
        self.started = Instant::now();
        Ok(Init::Ready(S::A, Data::default()))
    }

    async fn handle_event(
        &mut self,
        event: Event<Self>,
        state: &S,
        data: &mut Data,
        ctx: &mut Context<'_, Self>,
    ) -> Result<Transition<S>, BoxError> {
        let state = *state;
        let at = self.at();
        match event {
            Event::Cast(cmd) => {
                self.log.push(format!("{state:?} cast {}", label(&cmd)));
                let mut event = Some(Event::Cast(cmd.clone()));
                self.act(cmd, &mut event, state, data, ctx).await
            }
            Event::Call(cmd, from) => {
                self.log.push(format!("{state:?} call {}", label(&cmd)));
                let mut event = Some(Event::Call(cmd.clone(), from));
                let transition = self.act(cmd, &mut event, state, data, ctx).await?;
                // Not postponed: answer with the state it goes to.
                if let Some(Event::Call(_, from)) = event {
                    let to = match &transition {
                        Transition::Next(to) => *to,
                        _ => state,
                    };
                    ctx.reply(from, to);
                }
                Ok(transition)
            }
            Event::Info(tag) => {
                self.log.push(format!("{state:?} info {tag}"));
                Ok(Transition::Keep)
            }
            Event::Internal(tag) => {
                self.log.push(format!("{state:?} internal {tag}"));
                Ok(Transition::Keep)
            }
            Event::EventTimeout(tag) => {
                self.log
                    .push(format!("{state:?} event-timeout {tag} @{at}"));
                Ok(Transition::Keep)
            }
            Event::StateTimeout(tag) => {
                self.log
                    .push(format!("{state:?} state-timeout {tag} @{at}"));
                Ok(Transition::Keep)
            }
            Event::Timeout(name, tag) => {
                self.log
                    .push(format!("{state:?} timeout {name} {tag} @{at}"));
                Ok(Transition::Keep)
            }
            Event::Enter(old) => {
                self.log.push(format!("{state:?} enter from {old:?}"));
                match data.on_enter.take() {
                    Some(cmd) => self.act(cmd, &mut None, state, data, ctx).await,
                    None => Ok(Transition::Keep),
                }
            }
            other => {
                self.log.push(format!("{state:?} other {other:?}"));
                Ok(Transition::Keep)
            }
        }
    }

    async fn terminate(
        &mut self,
        reason: &ExitReason,
        state: &S,
        _: &mut Data,
        _: &mut Context<'_, Self>,
    ) {
        self.log.push(format!("{state:?} terminate {reason}"));
    }
}

/// A short name for a command, for the log.
pub(crate) fn label(cmd: &Cmd) -> String {
    match cmd {
        Cmd::Log(tag) => (*tag).to_string(),
        Cmd::Goto(to) => format!("goto {to:?}"),
        Cmd::PostponeUnless(_, tag) => format!("postponable {tag}"),
        Cmd::Seq(cmds) => cmds.iter().map(label).collect::<Vec<_>>().join("+"),
        other => format!("{other:?}"),
    }
}

/// Starts a probe in `n`.
pub(crate) async fn start<const ENTER: bool>(
    n: &Nursery,
    log: &Log,
) -> gen_statem::Statem<Probe<ENTER>> {
    gen_statem::start(n, Probe::<ENTER>::new(log))
        .await
        .unwrap()
}

/// Waits until the probe has handled everything sent before (a call is
/// handled after them), without logging it.
pub(crate) async fn sync<const ENTER: bool>(statem: &gen_statem::Statem<Probe<ENTER>>, log: &Log) {
    let before = log.entries().len();
    statem
        .call(Cmd::Log("sync"), gen_statem::INFINITY)
        .await
        .unwrap();
    // Drop the sync's own line (the last one it wrote).
    let mut entries = log.0.lock().unwrap();
    if let Some(at) = entries.iter().rposition(|e| e.ends_with("call sync")) {
        if at >= before {
            entries.remove(at);
        }
    }
}
