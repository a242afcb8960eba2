//! kvstore: a Redis-protocol key-value server built only from Trellis parts —
//! a node, an application, supervisors, a dynamic supervisor of connection
//! handlers, gen_server shards holding the data, and the protocol layer.
//!
//! Each shard gen_server owns one table (OTP's idiom of an ETS table owned
//! by a process): it creates the table when it starts, runs the active
//! expiry on it, and takes it with it when it ends — a crashed shard is
//! restarted by its supervisor with a new, empty table. A connection is one
//! task (its protocol driver): it parses a read's requests, runs them on the
//! tables of the shards their keys hash to, directly under the tables'
//! locks (taken in shard order, so that multi-key commands and `MULTI`/
//! `EXEC` are atomic across shards), and writes the replies — no message
//! and no hand-off to another task per request, as `redis-server` parses,
//! executes and answers on one thread.
//!
//! ```sh
//! cargo run --release --example kvstore                   # 127.0.0.1:6380, one shard per core
//! cargo run --release --example kvstore -- --addr 0.0.0.0:7000 --shards 4
//! redis-cli -p 6380 set greeting hello                     # in another terminal
//! redis-benchmark -p 6380 -q -t set,get -n 100000 -c 50
//! ```
//!
//! It speaks RESP2 (and inline commands; `HELLO 3` is refused with
//! `-NOPROTO`, so RESP3 clients fall back) and serves the string and
//! keyspace commands: `GET`, `SET` (`EX`/`PX`/`EXAT`/`PXAT`/`KEEPTTL`,
//! `NX`/`XX`, `GET`), `SETNX`, `SETEX`, `PSETEX`, `GETSET`, `GETDEL`,
//! `GETEX`, `MGET`, `MSET`, `MSETNX`, `APPEND`, `STRLEN`, `GETRANGE`,
//! `SETRANGE`, `INCR`/`DECR`/`INCRBY`/`DECRBY`/`INCRBYFLOAT`, `DEL`,
//! `UNLINK`, `EXISTS`, `TOUCH`, `TYPE`, `EXPIRE`/`PEXPIRE`/`EXPIREAT`/
//! `PEXPIREAT` (`NX`/`XX`/`GT`/`LT`), `TTL`/`PTTL`, `EXPIRETIME`/
//! `PEXPIRETIME`, `PERSIST`, `RENAME`/`RENAMENX`, `KEYS`, `SCAN`,
//! `RANDOMKEY`, `DBSIZE`, `FLUSHDB`/`FLUSHALL`, `SELECT 0`, `MULTI`/`EXEC`/
//! `DISCARD`/`WATCH`/`UNWATCH`, `CLIENT ID|SETNAME|GETNAME|LIST|SETINFO`,
//! `INFO`, `PING`, `ECHO`, `HELLO`, `COMMAND`, `CONFIG GET`, `QUIT`; and
//! with `--enable-debug-command`, `DEBUG PANIC <key>` (crashes the shard
//! owning `<key>`: its supervisor restarts it, empty). Multi-key commands
//! and transactions are atomic across shards (see `commands.rs`). Other
//! data types' commands get Redis's unknown-command error. The data lives
//! in memory only. SIGINT/SIGTERM stop it gracefully.
//!
//! Files: `server.rs` (the supervision tree), `connection.rs` (one client),
//! `commands.rs` (requests → operations on the shards' tables → replies),
//! `shard.rs` (the gen_server owning a slice of the keys, and its table),
//! `resp.rs` (the wire format).

mod commands;
mod connection;
mod resp;
mod server;
mod shard;

use std::process::ExitCode;

use trellis::application::AppSpec;
use trellis::node::{self, NodeOptions};

use crate::resp::Limits;
use crate::server::{Config, kvstore_app};

const HELP: &str = "\
kvstore: a Redis-protocol key-value server built from Trellis parts

USAGE:
    cargo run --release --example kvstore -- [OPTIONS]

OPTIONS:
    --addr HOST:PORT         where to listen [default: 127.0.0.1:6380]
    --shards N               gen_server shards owning the data [default: the number of cores]
    --max-bulk BYTES         largest bulk string accepted [default: 536870912, as Redis]
    --max-connections N      most clients served at once [default: 10000, lowered to
                             the open-file limit less --reserved-fds, as Redis's maxclients]
    --reserved-fds N         descriptors kept out of the client cap [default: 32]
    --enable-debug-command   serve DEBUG PANIC <key>, which crashes that key's shard
    --observer HOST:PORT     serve the observer (live tree, /metrics) there [feature `observer`]
    -h, --help               print this help
";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        name: "kvstore".into(),
        addr: "127.0.0.1:6380".into(),
        shards: std::thread::available_parallelism().map_or(2, |n| n.get()),
        limits: Limits::default(),
        max_connections: 10_000,
        debug_command: false,
        reserved_fds: 32,
    };
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--enable-debug-command" => config.debug_command = true,
            "--addr" => config.addr = value("--addr")?,
            "--shards" => config.shards = number(&value("--shards")?, "--shards")?,
            "--max-bulk" => config.limits.max_bulk = number(&value("--max-bulk")?, "--max-bulk")?,
            "--reserved-fds" => {
                config.reserved_fds = number(&value("--reserved-fds")?, "--reserved-fds")?
            }
            "--max-connections" => {
                config.max_connections = number(&value("--max-connections")?, "--max-connections")?
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if config.shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    Ok(Some(config))
}

fn number(text: &str, name: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{name} expects a number, got {text:?}"))
}

/// Takes `--observer HOST:PORT` out of the arguments (the node's option,
/// not the application's).
fn observer_flag(
    args: impl Iterator<Item = String>,
) -> Result<(Option<std::net::SocketAddr>, Vec<String>), String> {
    let (mut observer, mut rest, mut args) = (None, Vec::new(), args);
    while let Some(arg) = args.next() {
        if arg == "--observer" {
            let addr = args.next().ok_or("--observer needs a value")?;
            observer = Some(
                addr.parse()
                    .map_err(|e| format!("--observer {addr:?}: {e}"))?,
            );
        } else {
            rest.push(arg);
        }
    }
    Ok((observer, rest))
}

fn main() -> ExitCode {
    let (observer, args) = match observer_flag(std::env::args().skip(1)) {
        Ok(split) => split,
        Err(error) => {
            eprintln!("kvstore: {error}");
            return ExitCode::from(2);
        }
    };
    let config = match parse_args(args.into_iter()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("kvstore: {error}");
            return ExitCode::from(2);
        }
    };
    let app = AppSpec::new(
        "kvstore",
        |config, status| kvstore_app(config, status, None),
        config,
    );
    let options = match observer {
        #[cfg(feature = "observer")]
        Some(addr) => NodeOptions::new().observer(addr),
        #[cfg(not(feature = "observer"))]
        Some(_) => {
            eprintln!("kvstore: --observer needs the cargo feature `observer`");
            return ExitCode::from(2);
        }
        None => NodeOptions::new(),
    };
    match trellis::run(node::run(vec![app], options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kvstore: {error}");
            ExitCode::FAILURE
        }
    }
}
