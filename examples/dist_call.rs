//! A Trellis node calling into an Erlang (or Elixir) node: it asks the
//! peer's `application_controller` gen_server which applications run there,
//! decoding the reply into typed Rust values, then shows that calling a
//! name nobody holds fails at once with `noproc`.
//!
//! ```sh
//! epmd -daemon
//! erl -sname a -setcookie COOKIE            # or: iex --sname a --cookie COOKIE
//! # in another terminal (host: `hostname -s`):
//! cargo run --example dist_call --features dist -- --sname caller --cookie COOKIE --peer a@host
//! ```

use std::error::Error;
use std::time::Duration;

use trellis::dist::{self, Atom, DistError, DistNode, DistOptions, Term, atom};

/// How long each call may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// One running application: name, description, version, as
/// `application:which_applications()` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its version.
    pub version: String,
}

/// The applications running on `peer`: a `gen_server:call` to its
/// `application_controller`, the reply decoded from
/// `[{Name, Description, Version}]` (an atom and two charlists each).
///
/// # Errors
///
/// Those of [`DistNode::call`].
pub async fn which_applications(node: &DistNode, peer: &str) -> Result<Vec<App>, DistError> {
    let apps: Vec<(Atom, String, String)> = node
        .call(
            ("application_controller", peer),
            atom("which_applications"),
            TIMEOUT,
        )
        .await?;
    Ok(apps
        .into_iter()
        .map(|(name, description, version)| App {
            name: name.name,
            description,
            version,
        })
        .collect())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let (mut options, mut cookie, mut peer) = (None, None, None);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--sname" => options = Some(DistOptions::short(value)),
            "--name" => options = Some(DistOptions::long(value)),
            "--cookie" => cookie = Some(value),
            "--peer" => peer = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let usage = "usage: dist_call --sname NAME --cookie COOKIE --peer NODE";
    let (Some(mut options), Some(peer)) = (options, peer) else {
        return Err(usage.into());
    };
    if let Some(cookie) = cookie {
        options = options.cookie(cookie);
    }
    trellis::run(async move {
        let node = dist::start(options).await?;
        for app in which_applications(&node, &peer).await? {
            println!("{:<12} {:<10} {}", app.name, app.version, app.description);
        }
        match node
            .call::<Term>(("no_such_server", peer.as_str()), atom("hi"), TIMEOUT)
            .await
        {
            Err(DistError::NoProcess { to }) => println!("calling {to}: noproc, at once"),
            other => println!("calling no_such_server: {other:?}"),
        }
        node.shutdown();
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    })
}
