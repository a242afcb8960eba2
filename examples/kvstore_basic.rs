//! The key-value store of triotp's documentation, as a Trellis gen_server:
//! `get`, `set`, `stop` and `printstate`, reached by name from anywhere.
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
}

/// Requests that wait for an answer.
#[derive(Debug)]
pub enum Request {
    /// The value of a key.
    Get(String),
    /// Sets a key; answers with the previous value.
    Set(String, String),
}

/// Messages that do not.
#[derive(Debug)]
pub enum Notice {
    /// Prints the whole state to stdout.
    PrintState,
}

impl GenServer for KvStore {
    type Arg = ();
    type Call = Request;
    type Reply = Option<String>;
    type Cast = Notice;
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Request,
        _: &mut Context<Self>,
    ) -> Result<Response<Option<String>>, BoxError> {
        match request {
            Request::Get(key) => Ok(Response::Reply(self.data.get(&key).cloned())),
            Request::Set(key, value) => Ok(Response::Reply(self.data.insert(key, value))),
        }
    }

    async fn handle_cast(
        &mut self,
        Notice::PrintState: Notice,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        let mut keys: Vec<_> = self.data.iter().collect();
        keys.sort();
        println!("state: {keys:?}");
        Ok(Flow::Continue)
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Context<Self>) {
        println!("kvstore stopping ({reason}) with {} keys", self.data.len());
    }
}

/// The value of `key`.
pub async fn get(key: &str) -> Result<Option<String>, GenServerError> {
    gen_server::call::<KvStore>(NAME, Request::Get(key.into()), TIMEOUT).await
}

/// Sets `key` to `value`; returns the previous value.
pub async fn set(key: &str, value: &str) -> Result<Option<String>, GenServerError> {
    gen_server::call::<KvStore>(NAME, Request::Set(key.into(), value.into()), TIMEOUT).await
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
            println!("get(foo) = {:?}", get("foo").await?);
            println!("set(foo, bar) = {:?}", set("foo", "bar").await?);
            println!("set(foo, baz) = {:?}", set("foo", "baz").await?);
            println!("get(foo) = {:?}", get("foo").await?);
            print_state().await?;
            stop().await?;
            // Once stopped, calls fail with an error rather than hang.
            println!("get(foo) after stop = {}", get("foo").await.unwrap_err());
            Ok::<_, BoxError>(())
        })
        .await;
        outcome.map_err(BoxError::from)
    })
}
