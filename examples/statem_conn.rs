//! A connection state machine over the protocol layer: each connection's
//! [`Protocol`] splits the bytes into lines and casts them to a gen_statem
//! of its own, which holds the [`Transport`] and answers.
//!
//! The line protocol:
//!
//! | state | line | answer | next state |
//! |---|---|---|---|
//! | `Greeting` | `HELLO <name>` | `OK hello <name>` | `Ready` |
//! | `Greeting` | anything else | `ERR say hello` | `Greeting` |
//! | `Greeting` | (nothing for [`LOGIN_WITHIN`]: a state timeout) | `ERR login timeout`, closes | — |
//! | `Ready` | `PING` | `PONG` | `Ready` |
//! | `Ready` | `QUIT` | `BYE`, closes | — |
//! | `Ready` | anything else | `ERR unknown command` | `Ready` |
//! | `Ready` | (nothing for [`IDLE_FOR`]: an event timeout) | `BYE idle`, closes | — |
//! | any | (the peer went away) | — | the machine stops |
//!
//! Written in the `handle_event_function` style: one `match` on the state
//! and the event together.
//!
//! Run it with `cargo run --example statem_conn`, then
//! `nc 127.0.0.1 <port>` and type `HELLO you`, `PING`, `QUIT`.

use std::time::Duration;

use tokio::sync::mpsc;
use trellis::BoxError;
use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
use trellis::process::ExitReason;
use trellis::protocol::{Loop, Protocol, Transport};

/// How long a new connection may take to say hello.
pub const LOGIN_WITHIN: Duration = Duration::from_secs(5);
/// How long a logged-in connection may stay silent.
pub const IDLE_FOR: Duration = Duration::from_secs(30);

/// The connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for `HELLO`.
    Greeting,
    /// Logged in as this name.
    Ready(String),
}

/// What the protocol tells the machine.
#[derive(Debug)]
pub enum Input {
    /// One line, without its newline.
    Line(String),
    /// The peer went away.
    Lost,
}

/// One connection's state machine.
#[derive(Debug)]
pub struct Conn {
    transport: Transport,
}

impl Conn {
    fn say(&self, line: &str) {
        // A closing transport refuses writes: the peer is gone anyway.
        let _ = self.transport.write(format!("{line}\n").as_bytes());
    }
}

impl GenStatem for Conn {
    type Arg = ();
    type State = Phase;
    type Data = ();
    type Call = ();
    type Reply = Phase;
    type Cast = Input;
    type Info = ();
    type Internal = ();

    async fn init(
        &mut self,
        (): (),
        ctx: &mut Context<'_, Self>,
    ) -> Result<Init<Phase, ()>, BoxError> {
        ctx.state_timeout(LOGIN_WITHIN, ());
        Ok(Init::Ready(Phase::Greeting, ()))
    }

    async fn handle_event(
        &mut self,
        event: Event<Self>,
        phase: &Phase,
        (): &mut (),
        ctx: &mut Context<'_, Self>,
    ) -> Result<Transition<Phase>, BoxError> {
        Ok(match (phase, event) {
            (_, Event::Call((), from)) => {
                ctx.reply(from, phase.clone());
                Transition::Keep
            }
            (_, Event::Cast(Input::Lost)) => Transition::Stop(ExitReason::Normal),
            (Phase::Greeting, Event::Cast(Input::Line(line))) => {
                match line.strip_prefix("HELLO ") {
                    Some(name) if !name.trim().is_empty() => {
                        let name = name.trim().to_string();
                        self.say(&format!("OK hello {name}"));
                        ctx.event_timeout(IDLE_FOR, ());
                        Transition::Next(Phase::Ready(name))
                    }
                    _ => {
                        self.say("ERR say hello");
                        Transition::Keep
                    }
                }
            }
            (Phase::Greeting, Event::StateTimeout(())) => {
                self.say("ERR login timeout");
                self.transport.close();
                Transition::Stop(ExitReason::Normal)
            }
            (Phase::Ready(_), Event::Cast(Input::Line(line))) => match line.as_str() {
                "PING" => {
                    self.say("PONG");
                    ctx.event_timeout(IDLE_FOR, ());
                    Transition::Keep
                }
                "QUIT" => {
                    self.say("BYE");
                    self.transport.close();
                    Transition::Stop(ExitReason::Normal)
                }
                _ => {
                    self.say("ERR unknown command");
                    ctx.event_timeout(IDLE_FOR, ());
                    Transition::Keep
                }
            },
            (Phase::Ready(_), Event::EventTimeout(())) => {
                self.say("BYE idle");
                self.transport.close();
                Transition::Stop(ExitReason::Normal)
            }
            _ => Transition::Keep,
        })
    }
}

/// The protocol of one connection: lines in, to the connection's machine.
#[derive(Debug, Default)]
pub struct LineProtocol {
    to_machine: Option<mpsc::UnboundedSender<Input>>,
    partial: Vec<u8>,
}

impl Protocol for LineProtocol {
    fn connection_made(&mut self, transport: Transport) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.to_machine = Some(tx);
        let Some(event_loop) = Loop::current() else {
            transport.abort();
            return;
        };
        let nursery = event_loop.nursery().clone();
        // The machine lives in the connection's nursery; a task forwards
        // the protocol's lines to it (callbacks are synchronous).
        let started = event_loop.spawn(async move {
            let conn = gen_statem::start(&nursery, Conn { transport }).await?;
            while let Some(input) = rx.recv().await {
                if conn.cast(input).await.is_err() {
                    break; // the machine has stopped (QUIT, a timeout)
                }
            }
            Ok::<_, BoxError>(())
        });
        if started.is_err() {
            self.to_machine = None;
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if let Some(tx) = &self.to_machine {
                let _ = tx.send(Input::Line(line));
            }
        }
    }

    fn connection_lost(&mut self, _error: Option<std::io::Error>) {
        if let Some(tx) = self.to_machine.take() {
            let _ = tx.send(Input::Lost);
        }
    }
}

#[allow(dead_code)] // the test drives the protocol without `main`
fn main() -> Result<(), BoxError> {
    trellis::run(async {
        trellis::nursery(|n| async move {
            let server =
                trellis::protocol::create_server(&n, LineProtocol::default, "127.0.0.1:0").await?;
            println!("listening on {}", server.local_addrs()[0]);
            println!("try: nc <that address>, then HELLO you, PING, QUIT");
            server.serve_forever().await;
            Ok::<_, BoxError>(())
        })
        .await?;
        Ok(())
    })
}
