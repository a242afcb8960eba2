//! A Trellis node in an Erlang cluster: a hidden node `echo@<host>` whose
//! gen_server, registered as `echo`, answers any call `X` with `{echo, X}`.
//!
//! ```sh
//! epmd -daemon
//! cargo run --example dist_echo --features dist -- --sname echo --cookie COOKIE
//! # in another terminal:
//! erl -sname a -setcookie COOKIE
//! 1> net_adm:ping('echo@host').                  % host: `hostname -s`
//! pong
//! 2> gen_server:call({echo, 'echo@host'}, hello).
//! {echo,hello}
//! ```
//!
//! `--name echo@host.domain` starts a long-named node instead; without
//! `--cookie` the cookie is read from `$HOME/.erlang.cookie`. Ctrl-C stops
//! it. `RUST_LOG` chooses what is logged (default: `info`).

use std::error::Error;

use tracing::info;
use tracing_subscriber::EnvFilter;
use trellis::BoxError;
use trellis::dist::{self, DistNode, DistOptions, Term, tagged};
use trellis::gen_server::{self, Context, GenServer, Init, Response};

/// Answers any call `X` with `{echo, X}`.
#[derive(Debug)]
pub struct Echo;

impl GenServer for Echo {
    type Arg = ();
    type Call = Term;
    type Reply = Term;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        x: Term,
        _: &mut Context<Self>,
    ) -> Result<Response<Term>, BoxError> {
        Ok(Response::Reply(tagged("echo", vec![x])))
    }
}

/// Starts distribution with `options` and the [`Echo`] server in `n`,
/// exported to the cluster as `echo`.
///
/// # Errors
///
/// Those of [`dist::start`] and of starting the server.
pub async fn start(n: &trellis::Nursery, options: DistOptions) -> Result<DistNode, BoxError> {
    let node = dist::start(options).await?;
    let server = gen_server::start(n, Echo).await?;
    node.export("echo", server)?;
    Ok(node)
}

/// `--sname NAME` / `--name NAME@HOST` and `--cookie COOKIE` from `args`.
///
/// # Errors
///
/// A message for a missing name or an unknown flag.
pub fn options(mut args: impl Iterator<Item = String>) -> Result<DistOptions, String> {
    let mut options = None;
    let mut cookie = None;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sname" => options = Some(DistOptions::short(value)),
            "--name" => options = Some(DistOptions::long(value)),
            "--cookie" => cookie = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let options = options.ok_or("usage: dist_echo --sname NAME [--cookie COOKIE]")?;
    Ok(match cookie {
        Some(cookie) => options.cookie(cookie),
        None => options,
    })
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let options = options(std::env::args().skip(1))?;
    trellis::run(trellis::nursery(|n| async move {
        let node = start(&n, options).await?;
        info!(node = node.name(), "echo ready; press Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        node.shutdown();
        n.cancel();
        Ok::<_, BoxError>(())
    }))?;
    Ok(())
}
