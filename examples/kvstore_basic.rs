//! The key-value store of triotp's documentation, as a Trellis gen_server,
//! running its whole script: `set`, `get` (the value just set), a command
//! the store does not know (answered with an error, the store goes on), and
//! `stop`, which prints the state.
//!
//! It shows the shape of every gen_server: a struct for the state, the
//! `GenServer` callbacks, and a small client API of plain async functions
//! that hide `call`/`cast` behind names (as an Erlang module would export
//! `get/1` and `set/2`).
//!
//! ```sh
//! cargo run --example kvstore_basic
//! ```

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;
use trellis::BoxError;
use trellis::gen_server::{self, Context, Flow, GenServer, GenServerError, Init, Response, Server};
use trellis::process::ExitReason;

/// The name the store registers under.
pub const NAME: &str = "kvstore";
const TIMEOUT: Duration = Duration::from_secs(5);

/// The store's state.
#[derive(Debug, Default)]
pub struct KvStore {
    data: HashMap<String, String>,
    /// Where `terminate` also sends the state it prints.
    on_stop: Option<oneshot::Sender<String>>,
}

impl KvStore {
    /// A store that also sends the state it prints on stop to the
    /// returned receiver.
    pub fn reporting() -> (KvStore, oneshot::Receiver<String>) {
        let (tx, rx) = oneshot::channel();
        let store = KvStore {
            data: HashMap::new(),
            on_stop: Some(tx),
        };
        (store, rx)
    }

    /// The state, keys in order.
    fn state(&self) -> String {
        let mut pairs: Vec<_> = self.data.iter().collect();
        pairs.sort();
        format!("{pairs:?}")
    }
}

/// Requests that wait for an answer.
#[derive(Debug)]
pub enum Request {
    /// The value of a key.
    Get(String),
    /// Sets a key; answers with the previous value.
    Set(String, String),
    /// Any other command, by name: the store answers with
    /// [`UnknownCommand`] and goes on (triotp's `case _`).
    Other(String),
}

/// The store's answer to a command it does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command {0:?}")]
pub struct UnknownCommand(pub String);

/// What the client API returns: the store's own error, or a failed call.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The store does not know the command.
    #[error(transparent)]
    Unknown(#[from] UnknownCommand),
    /// The call itself failed (no store, stopped, timed out).
    #[error(transparent)]
    Call(#[from] GenServerError),
}

/// Messages that do not wait.
#[derive(Debug)]
pub enum Notice {
    /// Prints the whole state to stdout.
    PrintState,
}

impl GenServer for KvStore {
    type Arg = ();
    type Call = Request;
    /// An error reply reaches the caller as an error; the store goes on.
    type Reply = Result<Option<String>, UnknownCommand>;
    type Cast = Notice;
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Request,
        _: &mut Context<Self>,
    ) -> Result<Response<Self::Reply>, BoxError> {
        Ok(Response::Reply(match request {
            Request::Get(key) => Ok(self.data.get(&key).cloned()),
            Request::Set(key, value) => Ok(self.data.insert(key, value)),
            Request::Other(command) => Err(UnknownCommand(command)),
        }))
    }

    async fn handle_cast(
        &mut self,
        Notice::PrintState: Notice,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        println!("state: {}", self.state());
        Ok(Flow::Continue)
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Context<Self>) {
        let state = self.state();
        println!("kvstore stopping ({reason}) with state {state}");
        if let Some(report) = self.on_stop.take() {
            let _ = report.send(state);
        }
    }
}

/// The value of `key`.
pub async fn get(key: &str) -> Result<Option<String>, KvError> {
    Ok(gen_server::call::<KvStore>(NAME, Request::Get(key.into()), TIMEOUT).await??)
}

/// Sets `key` to `value`; returns the previous value.
pub async fn set(key: &str, value: &str) -> Result<Option<String>, KvError> {
    let request = Request::Set(key.into(), value.into());
    Ok(gen_server::call::<KvStore>(NAME, request, TIMEOUT).await??)
}

/// Sends any command by name (what a text protocol would pass on).
pub async fn command(name: &str) -> Result<Option<String>, KvError> {
    let request = Request::Other(name.into());
    Ok(gen_server::call::<KvStore>(NAME, request, TIMEOUT).await??)
}

/// Prints the state (a cast: returns without waiting for the print).
pub async fn print_state() -> Result<(), GenServerError> {
    gen_server::cast::<KvStore>(NAME, Notice::PrintState).await
}

/// Stops the store and waits until it has stopped (its `terminate` ran and
/// its name is free).
pub async fn stop() -> Result<(), GenServerError> {
    let store: Server<KvStore> = trellis::registry::lookup(NAME)?;
    store.stop().await
}

#[allow(dead_code)] // the test drives the client API without `main`
fn main() -> Result<(), BoxError> {
    trellis::run(async {
        let outcome = trellis::nursery(|n| async move {
            gen_server::Builder::new(KvStore::default())
                .name(NAME)
                .start(&n)
                .await?;
            println!("set(foo, bar) = {:?}", set("foo", "bar").await?);
            println!("get(foo) = {:?}", get("foo").await?);
            // An unknown command is answered with an error; the store goes on.
            println!("unknown = {}", command("frobnicate").await.unwrap_err());
            println!("get(foo) = {:?}", get("foo").await?);
            print_state().await?;
            // Prints the state on its way out.
            stop().await?;
            // Once stopped, calls fail with an error rather than hang.
            println!("get(foo) after stop = {}", get("foo").await.unwrap_err());
            Ok::<_, BoxError>(())
        })
        .await;
        outcome.map_err(BoxError::from)
    })
}
