//! OTP's door lock, as a Trellis gen_statem: a code lock that opens when
//! the right digits are pressed and locks itself again after 10 seconds.
//!
//! Written in the `state_functions` style: `handle_event` matches on the
//! state and hands each state to a method of its own. It uses a state enter
//! call (lock or unlock on entering a state), a state timeout (re-locking
//! the open door, cancelled if the door is locked by hand), an event
//! timeout (forgetting a half-typed code after 30 seconds without a
//! button), and postpone (a button pressed while the door is open is kept
//! for when it locks again, as the OTP guide's later version does).
//!
//! Run it with `cargo run --example door_lock`.

use std::time::Duration;

use trellis::BoxError;
use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Statem, Transition};

/// How long the door stays open.
pub const OPEN_FOR: Duration = Duration::from_secs(10);
/// How long a half-typed code is remembered without a button pressed.
pub const FORGET_AFTER: Duration = Duration::from_secs(30);

/// The door's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Locked: buttons build up the code.
    Locked,
    /// Open: locks again after [`OPEN_FOR`].
    Open,
}

/// What the lock can be asked.
#[derive(Debug)]
pub enum Request {
    /// The state and how many digits are typed so far.
    Status,
    /// Locks the door now, if open.
    Lock,
}

/// The lock: its code is fixed, the rest is data.
#[derive(Debug)]
pub struct DoorLock {
    code: Vec<u8>,
}

/// The lock's data: the digits typed so far, and what the door did.
#[derive(Debug, Default)]
pub struct Typed {
    buttons: Vec<u8>,
    /// `"locked"`/`"unlocked"`, each time the door does it.
    pub history: Vec<&'static str>,
}

/// The state-timeout content, and the event-timeout content.
#[derive(Debug)]
pub enum Tick {
    /// Time to lock the open door.
    Lock,
    /// Time to forget the digits typed.
    Forget,
}

impl GenStatem for DoorLock {
    type Arg = ();
    type State = Door;
    type Data = Typed;
    type Call = Request;
    type Reply = (Door, usize, Vec<&'static str>);
    type Cast = u8;
    type Info = ();
    type Internal = Tick;

    const STATE_ENTER: bool = true;

    async fn init(
        &mut self,
        (): (),
        _: &mut Context<'_, Self>,
    ) -> Result<Init<Door, Typed>, BoxError> {
        Ok(Init::Ready(Door::Locked, Typed::default()))
    }

    async fn handle_event(
        &mut self,
        event: Event<Self>,
        state: &Door,
        data: &mut Typed,
        ctx: &mut Context<'_, Self>,
    ) -> Result<Transition<Door>, BoxError> {
        // Status calls are answered the same in every state.
        if let Event::Call(Request::Status, from) = event {
            ctx.reply(from, (*state, data.buttons.len(), data.history.clone()));
            return Ok(Transition::Keep);
        }
        match state {
            Door::Locked => self.locked(event, data, ctx),
            Door::Open => self.open(event, data, ctx),
        }
    }
}

impl DoorLock {
    /// A lock that opens with `code`.
    pub fn new(code: &[u8]) -> Self {
        DoorLock {
            code: code.to_vec(),
        }
    }

    fn locked(
        &mut self,
        event: Event<Self>,
        data: &mut Typed,
        ctx: &mut Context<'_, Self>,
    ) -> Result<Transition<Door>, BoxError> {
        Ok(match event {
            Event::Enter(_) => {
                data.buttons.clear();
                data.history.push("locked");
                Transition::Keep
            }
            Event::Cast(digit) => {
                data.buttons.push(digit);
                if data.buttons == self.code {
                    data.buttons.clear();
                    Transition::Next(Door::Open)
                } else {
                    if data.buttons.len() >= self.code.len() {
                        // Wrong: keep the last digits, as a keypad does.
                        let extra = data.buttons.len() + 1 - self.code.len();
                        data.buttons.drain(..extra);
                    }
                    ctx.event_timeout(FORGET_AFTER, Tick::Forget);
                    Transition::Keep
                }
            }
            Event::EventTimeout(Tick::Forget) => {
                data.buttons.clear();
                Transition::Keep
            }
            Event::Call(Request::Lock, from) => {
                ctx.reply(
                    from,
                    (Door::Locked, data.buttons.len(), data.history.clone()),
                );
                Transition::Keep
            }
            _ => Transition::Keep,
        })
    }

    fn open(
        &mut self,
        event: Event<Self>,
        data: &mut Typed,
        ctx: &mut Context<'_, Self>,
    ) -> Result<Transition<Door>, BoxError> {
        Ok(match event {
            Event::Enter(_) => {
                data.history.push("unlocked");
                ctx.state_timeout(OPEN_FOR, Tick::Lock);
                Transition::Keep
            }
            Event::StateTimeout(Tick::Lock) => Transition::Next(Door::Locked),
            Event::Call(Request::Lock, from) => {
                ctx.reply(from, (Door::Locked, 0, data.history.clone()));
                Transition::Next(Door::Locked)
            }
            // A button while open: handled once the door has locked again.
            button @ Event::Cast(_) => {
                ctx.postpone(button);
                Transition::Keep
            }
            _ => Transition::Keep,
        })
    }
}

/// Starts a lock with `code` in `nursery`.
///
/// # Errors
///
/// If the nursery is closed.
pub async fn start(
    nursery: &trellis::Nursery,
    code: &[u8],
) -> Result<Statem<DoorLock>, gen_statem::GenServerError> {
    gen_statem::start(nursery, DoorLock::new(code)).await
}

/// Presses a button.
///
/// # Errors
///
/// If the lock has stopped.
pub async fn button(lock: &Statem<DoorLock>, digit: u8) -> Result<(), gen_statem::GenServerError> {
    lock.cast(digit).await
}

/// The door's state and how many digits are typed.
///
/// # Errors
///
/// If the lock has stopped.
pub async fn status(lock: &Statem<DoorLock>) -> Result<(Door, usize), gen_statem::GenServerError> {
    let (door, typed, _) = lock
        .call(Request::Status, gen_statem::DEFAULT_TIMEOUT)
        .await?;
    Ok((door, typed))
}

/// What the door did so far: `"locked"`/`"unlocked"`, in order.
///
/// # Errors
///
/// If the lock has stopped.
pub async fn history(
    lock: &Statem<DoorLock>,
) -> Result<Vec<&'static str>, gen_statem::GenServerError> {
    let (_, _, history) = lock
        .call(Request::Status, gen_statem::DEFAULT_TIMEOUT)
        .await?;
    Ok(history)
}

/// Locks the door now.
///
/// # Errors
///
/// If the lock has stopped.
pub async fn lock(lock: &Statem<DoorLock>) -> Result<(), gen_statem::GenServerError> {
    lock.call(Request::Lock, gen_statem::DEFAULT_TIMEOUT)
        .await
        .map(drop)
}

#[allow(dead_code)] // the test drives the API without `main`
fn main() -> Result<(), BoxError> {
    trellis::run(async {
        trellis::nursery(|n| async move {
            let door = start(&n, &[1, 2, 3]).await?;
            for digit in [9, 1, 2, 3] {
                button(&door, digit).await?;
            }
            println!("after 9 1 2 3: {:?}", status(&door).await?);
            println!("waiting {OPEN_FOR:?} for the door to lock itself");
            tokio::time::sleep(OPEN_FOR + Duration::from_millis(100)).await;
            println!("then: {:?}", status(&door).await?);
            println!("history: {:?}", history(&door).await?);
            door.stop().await?;
            Ok::<_, BoxError>(())
        })
        .await?;
        Ok(())
    })
}
