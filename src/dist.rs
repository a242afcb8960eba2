//! Distribution: a Trellis node joins a real Erlang/Elixir cluster over the
//! Erlang distribution protocol (EPMD, handshake version 6, the external
//! term format), and two Trellis nodes talk to each other the same way.
//!
//! Behind the cargo feature `dist`. [`start`] makes this program a *hidden*
//! node (as C nodes and `erl_call` are): it registers its name with EPMD,
//! listens for peers, connects to others on demand, answers `net_adm:ping`
//! (a `net_kernel` responder), ticks, and declares a peer down when it
//! closes, sends a malformed frame, or stays silent for `net_ticktime`.
//!
//! Processes on the Erlang side are addressed by [`ErlPid`] or by
//! `{name, node}` ([`Dest`]); a [`DistMailbox`] is a Trellis process's
//! address on the cluster: it has its own Erlang pid, may be registered
//! under a name, receives messages, `DOWN`s and `EXIT`s as [`Incoming`], and
//! monitors and links to remote processes. [`DistNode::export`] makes a
//! Trellis [`gen_server`](crate::gen_server) answer `gen_server:call`s from
//! Erlang; [`DistNode::call`] calls an Erlang gen_server as `gen:call` does.
//! Terms cross as [`Term`]; typed values through serde ([`Serde`],
//! [`to_term`], [`from_term`]: structs as maps with atom keys, enum variants
//! as atoms and tagged tuples, strings as binaries) or through [`ToTerm`] /
//! [`FromTerm`] written by hand; the mappings are under [Terms](#terms).
//!
//! | Erlang/OTP | Trellis | differs |
//! |---|---|---|
//! | `erl -sname a -setcookie C -hidden` | [`start`]`(`[`DistOptions::short`]`("a").cookie("C"))` | always hidden: a published node gets `global` and `rex` traffic it would have to serve |
//! | `node()`, `nodes(hidden)` | [`DistNode::name`], [`DistNode::nodes`] | |
//! | `net_kernel:monitor_nodes(true)` / `monitor_node/2` | [`DistNode::monitor_nodes`] | events for every peer, as `monitor_nodes` |
//! | `net_adm:ping/1` | [`DistNode::ping`] | |
//! | `self()` of a process talking to the cluster, `register/2` | [`DistNode::mailbox`], [`DistNode::register`] | a mailbox is the remote face of a Trellis process, not the process itself |
//! | `Pid ! Msg`, `{Name, Node} ! Msg` | [`DistMailbox::send`] | |
//! | a busy distribution port (`dist_buf_busy_limit`, 1 MiB) suspends the sender | [`DistMailbox::send`] waits while over 1 MiB of one-way sends wait for the connection's writer | the same limit, not configurable; TCP and TLS connections alike |
//! | a message's term, made by the receiving process | decoded by the receiving task in [`DistMailbox::recv`], after the connection's reader checked it | a message waits as bytes in a 64 KiB buffer its connection shares with other messages |
//! | `erlang:monitor(process, P)`, `link/1` on a remote process | [`DistMailbox::monitor`], [`DistMailbox::link`] | `DOWN`/`EXIT` arrive as [`Incoming`] |
//! | a remote pid held by any process | [`DistNode::to_pid`]: a Trellis [`Pid`](crate::process::Pid) with node ≠ 0 | `Context::monitor`/`link`/`demonitor`/`unlink` and a mailbox's take it as a local pid; `Down`/`Exit` come as for a local one, reasons through [`reason_from_term`]; a node not connected is connected first (auto-connect), `noconnection` if that fails |
//! | `self()` of a Trellis process, as Erlang sees it | [`DistNode::erl_pid`] | Erlang may monitor and link it; messages to it are dropped (a Trellis process takes typed messages, not terms) |
//! | `gen_server:call({Name, Node}, Req)` | [`DistNode::call`] | a timeout is required (no `infinity`) |
//! | a gen_server registered on the node | [`DistNode::export`] | requests and replies convert through [`FromTerm`]/[`ToTerm`] ([`Serde`] for serde types) |
//! | `-proto_dist inet_tls` with `verify_peer`, `fail_if_no_peer_cert` | [`DistOptions::tls`]`(`[`DistTls::from_pem_files`]`(..))` | rustls (ring); every connection both ways |
//! | `pg:start(Scope)` on a node of the cluster | [`DistNode::share_pg`]`(&`[`pg::scope`](crate::pg::scope)`(..))` | groups cross as atoms; the Trellis scope sends `discover` itself (Erlang's scopes only discover visible nodes, and this one is hidden) |
//! | the distribution header's atom cache (`DFLAG_DIST_HDR_ATOM_CACHE`) | the same, both directions | over TLS, and for a call's `DEMONITOR_P` (which waits for the next frame), atoms cross as text in a header without references: those frames are encoded before their place in the write order is known |
//! | `spawn/4` on a remote node, `global`, `rex` (`rpc`), fragments (`DFLAG_FRAGMENTS`) | not provided | a hidden node is not asked for them; without the flag no peer fragments what it sends |
//!
//! # Terms
//!
//! With serde ([`Serde`], [`to_term`], [`from_term`]):
//!
//! | Rust (serde data model) | Erlang term | Elixir |
//! |---|---|---|
//! | `bool` | `true` / `false` | `true` / `false` |
//! | integers, floats | integer, float | integer, float |
//! | `String`, `&str`, `char` | binary (UTF-8) | `String.t()` |
//! | bytes (`serde_bytes`) | binary | binary |
//! | `None`, `()` | `undefined` (decodes `nil` too) | `nil` |
//! | `Some(x)`, newtype struct `N(x)` | `x` | `x` |
//! | `Vec<T>`, sequences | list | list |
//! | tuples, tuple structs | tuple | tuple |
//! | maps | map | map |
//! | struct `S { a, b }` | map with atom keys `#{a => .., b => ..}` | struct-like map (add `__struct__` for a real struct) |
//! | unit variant `E::GetAll` | atom `get_all` | `:get_all` |
//! | newtype variant `E::Add(x)` | `{add, x}` | `{:add, x}` |
//! | tuple variant `E::Put(k, v)` | `{put, K, V}` | `{:put, k, v}` |
//! | struct variant `E::Move { x, y }` | `{move, #{x => .., y => ..}}` | `{:move, %{x: .., y: ..}}` |
//!
//! Variant names become snake_case atoms (and back), as Erlang and Elixir
//! name their tags. Decoding also accepts charlists for strings and atoms
//! for strings and map keys.
//!
//! By hand ([`ToTerm`], [`FromTerm`]):
//!
//! | Rust | Erlang term | Elixir |
//! |---|---|---|
//! | [`Term`] | itself | itself |
//! | [`Atom`] | atom | atom |
//! | `bool` | `true` / `false` | `true` / `false` |
//! | `i32`, `i64`, `u32`, `u64`, `usize` | integer | integer |
//! | `f64` | float | float |
//! | `String`, `&str` | binary (UTF-8); decodes from a charlist too | `String.t()` |
//! | `Vec<T>` | proper list | list |
//! | `Option<T>` | `undefined` or the value; decodes `nil` too | `nil` or the value |
//! | `(A, B)`, `(A, B, C)` | tuple | tuple |
//! | `HashMap<K, V>` | map | map |
//! | [`ErlPid`], [`ErlRef`] | pid, reference | pid, reference |
//!
//! A Rust struct or enum maps by hand, in a few lines: a struct to a map
//! with atom keys (an Elixir struct adds `__struct__`) or to a record tuple
//! `{name, Field1, ...}`, an enum variant without data to an atom and one
//! with data to a tagged tuple `{variant, ...}`. The helpers [`atom`],
//! [`tuple()`] and [`tagged`] keep those impls short.
//!
//! # Remote pids
//!
//! [`DistNode::to_pid`] turns an Erlang pid of another node into a Trellis
//! [`Pid`](crate::process::Pid) whose node is an index into a table of
//! `(node, creation)` pairs seen through that `DistNode` (never reused: a
//! restarted node gets a new index). It prints as Erlang's `<3.81.0>`
//! (index, number, serial). A gen_server's
//! [`Context::monitor`](crate::gen_server::Context::monitor) and
//! [`Context::link`](crate::gen_server::Context::link) on it send
//! `MONITOR_P`/`LINK` over the node's connection; the `DOWN`/`EXIT` comes
//! back as the same [`Down`](crate::process::Down) /
//! [`Exit`](crate::process::Exit) a local process's end gives, with
//! [`reason_from_term`]'s [`ExitReason`](crate::process::ExitReason):
//! `noconnection` (as [`DistError::RemoteExit`]) when the node dies or goes
//! silent. A monitor or link on a pid of a node not connected connects
//! first, as Erlang's auto-connect does (within the set-up time, 7 s as
//! `net_setuptime`), and is `noconnection` only if that connection fails. An abnormal remote exit
//! stops a linked server that does not trap exits, as a local one does.
//! Local pids cost nothing more: every hook is behind one `is_local` branch.
//!
//! Every node of a cluster must use the same `net_ticktime`
//! ([`DistOptions::net_ticktime`]): a peer is declared down after that long
//! without a byte from it, and ticks are sent after a quarter of it.
//!
//! Security: a peer must know the cookie; one that does not is refused,
//! logged, and gets nothing. Every frame is checked by [`frame::decode`]
//! before anything is built from it; a malformed one closes that connection
//! only.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use erl_dist::DistributionFlags;
use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::loom::lock;

mod call;
mod conn;
pub mod frame;
mod header;
mod hot;
mod mailbox;
mod pg;
mod remote;
mod serde_term;
mod term;
mod tls;

pub use mailbox::DistMailbox;
pub use remote::{reason_from_term, reason_to_term};
pub use serde_term::{Serde, from_term, to_term};
pub use tls::DistTls;

pub use term::{
    Atom, ErlPid, ErlRef, FromTerm, Term, TermError, ToTerm, as_atom, as_tuple, atom, tagged,
    tuple, wire_safe,
};

/// The default `net_ticktime`, as Erlang's.
pub const DEFAULT_TICKTIME: Duration = Duration::from_secs(60);

/// The default largest frame accepted from a peer (256 MiB).
pub const DEFAULT_MAX_FRAME: usize = 256 * 1024 * 1024;

/// Why a distribution operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum DistError {
    /// A node name that is not `name` or `name@host`.
    #[error("invalid node name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No cookie was given and `$HOME/.erlang.cookie` could not be read.
    #[error("no cookie: none given and $HOME/.erlang.cookie unreadable")]
    NoCookie,
    /// EPMD could not be reached or refused the request (a name in use).
    #[error("epmd: {reason}")]
    Epmd {
        /// What went wrong.
        reason: String,
    },
    /// Listening for peers failed.
    #[error("listen: {reason}")]
    Listen {
        /// What went wrong.
        reason: String,
    },
    /// EPMD on the node's host does not know the node.
    #[error("node {node} not found")]
    NodeNotFound {
        /// The node.
        node: String,
    },
    /// The TCP connection to the node failed.
    #[error("connect to {node}: {reason}")]
    Connect {
        /// The node.
        node: String,
        /// What went wrong.
        reason: String,
    },
    /// The cookies differ: the peer hung up on our challenge reply, or sent
    /// a wrong digest.
    #[error("cookie rejected by {node}")]
    CookieRejected {
        /// The node.
        node: String,
    },
    /// The handshake failed for another reason.
    #[error("handshake with {node}: {reason}")]
    Handshake {
        /// The node.
        node: String,
        /// What went wrong.
        reason: String,
    },
    /// The connection to the node closed, or the node went silent.
    #[error("node {node} down: {reason}")]
    NodeDown {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The peer sent a frame that does not decode; its connection was closed.
    #[error("malformed frame from {node}: {error}")]
    Malformed {
        /// The node.
        node: String,
        /// What was wrong.
        error: frame::FrameError,
    },
    /// The name is already registered on this node.
    #[error("name {name} already registered")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// No process by that pid or name (Erlang's `noproc`).
    #[error("no process {to}")]
    NoProcess {
        /// The destination, printed.
        to: String,
    },
    /// The called process ended before it replied.
    #[error("{to} exited: {reason}")]
    Exited {
        /// The destination, printed.
        to: String,
        /// Its exit reason, printed.
        reason: String,
    },
    /// No reply within the timeout.
    #[error("call to {to} timed out after {timeout:?}")]
    Timeout {
        /// The destination, printed.
        to: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A reply or message did not have the expected shape.
    #[error("term: {0}")]
    Term(#[from] TermError),
    /// TLS set-up failed: a certificate or key, or a peer's TLS handshake.
    #[error("tls: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },
    /// The node was shut down.
    #[error("distribution stopped")]
    Stopped,
    /// A remote process ended (or sent an exit signal) with an Erlang
    /// reason that has no [`ExitReason`](crate::process::ExitReason) of its
    /// own, as `noconnection` or `{badarg, ...}`: carried in
    /// [`ExitReason::Error`](crate::process::ExitReason::Error) (see
    /// [`reason_from_term`]).
    #[error("remote exit: {reason}")]
    RemoteExit {
        /// The Erlang reason.
        reason: Term,
    },
}

/// How to start distribution: the node's name, cookie and timings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis::dist::DistOptions;
///
/// let options = DistOptions::short("echo").cookie("secret").net_ticktime(Duration::from_secs(8));
/// assert!(options.node_name().unwrap().starts_with("echo@"));
/// assert_eq!(DistOptions::long("a@example.org").node_name().unwrap(), "a@example.org");
/// ```
#[derive(Clone)]
pub struct DistOptions {
    name: String,
    long: bool,
    cookie: Option<String>,
    ticktime: Duration,
    epmd_port: Option<u16>,
    max_frame: usize,
    tls: Option<DistTls>,
}

impl fmt::Debug for DistOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cookie is a secret: never printed.
        f.debug_struct("DistOptions")
            .field("name", &self.name)
            .field("long", &self.long)
            .field("ticktime", &self.ticktime)
            .field("epmd_port", &self.epmd_port)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl DistOptions {
    /// A short name, as `erl -sname`: `name` alone gets `@` and this host's
    /// short name appended; `name@host` is kept.
    pub fn short(name: impl Into<String>) -> Self {
        DistOptions {
            name: name.into(),
            long: false,
            cookie: None,
            ticktime: DEFAULT_TICKTIME,
            epmd_port: None,
            max_frame: DEFAULT_MAX_FRAME,
            tls: None,
        }
    }

    /// A long name, as `erl -name`: `name@host.domain` (`name` alone gets
    /// this host's full name as the kernel reports it).
    pub fn long(name: impl Into<String>) -> Self {
        DistOptions {
            long: true,
            ..DistOptions::short(name)
        }
    }

    /// The cookie (else `$HOME/.erlang.cookie` is read, as Erlang does).
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookie = Some(cookie.into());
        self
    }

    /// `net_ticktime`: a tick is sent after a quarter of it without traffic,
    /// and a peer silent for all of it is declared down.
    pub fn net_ticktime(mut self, ticktime: Duration) -> Self {
        self.ticktime = ticktime.max(Duration::from_millis(40));
        self
    }

    /// The EPMD port. Default: `$ERL_EPMD_PORT` if set (as Erlang reads
    /// it), else 4369.
    pub fn epmd_port(mut self, port: u16) -> Self {
        self.epmd_port = Some(port);
        self
    }

    /// The largest frame accepted from a peer; a larger one closes its
    /// connection.
    pub fn max_frame_len(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Distribution over TLS, as Erlang's `-proto_dist inet_tls`: every
    /// connection, both ways, is TLS with mutual certificates. Every node of
    /// the cluster must use TLS too.
    pub fn tls(mut self, tls: DistTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The full node name these options give, `name@host`.
    ///
    /// # Errors
    ///
    /// [`DistError::InvalidName`] for an empty name or host.
    pub fn node_name(&self) -> Result<String, DistError> {
        let full = match self.name.split_once('@') {
            Some(_) => self.name.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".to_string());
                let host = if self.long {
                    host
                } else {
                    host.split('.').next().unwrap_or("localhost").to_string()
                };
                format!("{}@{}", self.name, host)
            }
        };
        match full.split_once('@') {
            Some((name, host)) if !name.is_empty() && !host.is_empty() && full.len() < 256 => {
                Ok(full)
            }
            _ => Err(DistError::InvalidName { name: full }),
        }
    }

    fn resolve_cookie(&self) -> Result<String, DistError> {
        if let Some(cookie) = &self.cookie {
            return Ok(cookie.clone());
        }
        let home = std::env::var_os("HOME").ok_or(DistError::NoCookie)?;
        let path = std::path::Path::new(&home).join(".erlang.cookie");
        let cookie = std::fs::read_to_string(path).map_err(|_| DistError::NoCookie)?;
        Ok(cookie.trim().to_string())
    }
}

/// What a [`DistMailbox`] receives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incoming {
    /// A message (`from` is the sender when the peer said, as with
    /// `SEND_SENDER` and registered sends).
    Message {
        /// The sender, if known.
        from: Option<ErlPid>,
        /// The message.
        term: Term,
    },
    /// A monitored process ended: Erlang's `{'DOWN', Ref, process, Pid,
    /// Reason}`; `reason` is `noproc` if it did not exist and
    /// `noconnection` if its node went down or silent.
    Down {
        /// The monitor, as [`DistMailbox::monitor`] returned it.
        monitor: ErlRef,
        /// The process (a pid, or the `{name, node}` tuple monitored).
        process: Term,
        /// Why it ended.
        reason: Term,
    },
    /// A linked process ended (or sent an exit signal): `{'EXIT', Pid,
    /// Reason}`; `noconnection` if its node went down.
    Exit {
        /// The linked process.
        from: ErlPid,
        /// Why.
        reason: Term,
    },
}

/// What a [`DistMailbox`]'s queue carries: an [`Incoming`], or a message
/// whose payload its receiver decodes ([`DistMailbox::recv`]), so that the
/// terms are made and freed on the receiver's thread.
pub(crate) enum Inbound {
    Ready(Incoming),
    Raw {
        from: Option<ErlPid>,
        payload: hot::RawTerm,
    },
}

impl Inbound {
    /// The [`Incoming`], a raw payload decoded here, on the receiver's
    /// thread. `None` (logged) for a payload that does not decode, which
    /// the reader's check makes impossible.
    fn into_incoming(self) -> Option<Incoming> {
        match self {
            Inbound::Ready(incoming) => Some(incoming),
            Inbound::Raw { from, payload } => match payload.decode() {
                Some(term) => Some(Incoming::Message { from, term }),
                None => {
                    tracing::error!("an undecodable payload passed the reader's check; dropped");
                    None
                }
            },
        }
    }
}

/// A node came up or went down ([`DistNode::monitor_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A connection to the node was set up (Erlang's `{nodeup, Node}`).
    Up(String),
    /// The connection closed (`{nodedown, Node}`), with why.
    Down {
        /// The node.
        node: String,
        /// Why: `connection_closed`, `net_tick_timeout`, a malformed frame...
        reason: String,
    },
}

/// Where a message or call goes: a pid, or a name on a node.
///
/// A Trellis [`Pid`](crate::process::Pid) of a remote process converts too
/// ([`Dest::Process`]); it resolves through the node that made it
/// ([`DistNode::to_pid`]).
///
/// # Examples
///
/// ```
/// use trellis::dist::{Dest, ErlPid};
///
/// let by_name = Dest::from(("echo", "echo@host"));
/// assert_eq!(by_name.to_string(), "{'echo','echo@host'}");
/// let by_pid = Dest::from(ErlPid::new("a@host", 42, 0, 1));
/// assert!(matches!(by_pid, Dest::Pid(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Dest {
    /// A process by pid (its node is in the pid).
    Pid(ErlPid),
    /// A registered name on a node: Erlang's `{Name, Node}`.
    Name {
        /// The registered name.
        name: String,
        /// The node, `name@host`.
        node: String,
    },
    /// A Trellis pid: a remote process's (from [`DistNode::to_pid`]),
    /// resolved to its [`ErlPid`] when used; a local process takes no terms.
    Process(crate::process::Pid),
}

impl Dest {
    fn node(&self) -> &str {
        match self {
            Dest::Pid(pid) => &pid.node.name,
            Dest::Name { node, .. } => node,
            Dest::Process(_) => "",
        }
    }

    fn as_term(&self) -> Term {
        match self {
            Dest::Pid(pid) => pid.to_term(),
            Dest::Name { name, node } => tuple(vec![atom(name), atom(node)]),
            Dest::Process(pid) => atom(&pid.to_string()),
        }
    }

    /// A [`Dest::Process`] of a remote process as its [`Dest::Pid`]
    /// through `inner`; the others as they are.
    fn resolve(self, inner: &Arc<Inner>) -> Result<Dest, DistError> {
        match self {
            Dest::Process(pid) if !pid.is_local() => remote::to_erl(inner, pid)
                .map(Dest::Pid)
                .ok_or_else(|| DistError::NoProcess {
                    to: pid.to_string(),
                }),
            Dest::Process(pid) => Err(DistError::NoProcess {
                to: pid.to_string(),
            }),
            other => Ok(other),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Process(pid) => write!(f, "{pid}"),
            other => write!(f, "{}", other.as_term()),
        }
    }
}

impl From<crate::process::Pid> for Dest {
    fn from(pid: crate::process::Pid) -> Self {
        Dest::Process(pid)
    }
}

impl From<ErlPid> for Dest {
    fn from(pid: ErlPid) -> Self {
        Dest::Pid(pid)
    }
}

impl From<&ErlPid> for Dest {
    fn from(pid: &ErlPid) -> Self {
        Dest::Pid(pid.clone())
    }
}

impl From<(&str, &str)> for Dest {
    fn from((name, node): (&str, &str)) -> Self {
        Dest::Name {
            name: name.to_string(),
            node: node.to_string(),
        }
    }
}

/// A connected peer: the queue of its writer.
#[derive(Clone)]
struct Conn {
    id: u64,
    /// The peer's creation (a restarted peer has a new one).
    creation: u32,
    /// Whether the node with the greater name opened this connection.
    by_greater: bool,
    out: conn::Out,
}

/// A monitor held by one of our mailboxes on a remote process.
struct Watch {
    mailbox: u32,
    node: String,
    process: Term,
}

/// A monitor a remote process holds on one of our mailboxes.
struct Watcher {
    pid: ErlPid,
    reference: ErlRef,
    target: PidOrAtom,
}

#[derive(Default)]
struct State {
    conns: HashMap<String, Conn>,
    connecting: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    mailboxes: HashMap<u32, mpsc::UnboundedSender<Inbound>>,
    names: HashMap<String, u32>,
    node_watchers: Vec<mpsc::UnboundedSender<NodeEvent>>,
    /// Monitors our mailboxes hold on remote processes, by reference ids.
    watching: HashMap<Vec<u32>, Watch>,
    /// Monitors remote processes hold on our mailboxes, by mailbox id.
    watched_by: HashMap<u32, Vec<Watcher>>,
    /// Remote processes linked to our mailboxes, by mailbox id.
    links: HashMap<u32, Vec<ErlPid>>,
    /// Monitors local Trellis processes hold on remote ones, by reference ids.
    proc_watching: HashMap<Vec<u32>, remote::ProcWatch>,
    /// Exported gen_servers' call handlers, by mailbox id.
    exports: HashMap<u32, call::Exported>,
    /// Links between local Trellis processes and remote ones, by node.
    proc_links: HashMap<String, Vec<remote::ProcLink>>,
    /// Monitors remote processes hold on local Trellis processes, by
    /// reference ids: the watcher's node (removed when demonitored).
    proc_watched: HashMap<Vec<u32>, remote::ProcWatched>,
    /// Local Trellis processes with an exit hook sending those monitors'
    /// `MONITOR_P_EXIT`s (one hook per process, however many monitors).
    proc_hooked: std::collections::HashSet<crate::process::Pid>,
    stopped: bool,
}

impl State {
    /// The mailbox registered as `name`, unless it is an exported
    /// gen_server's (whose calls [`Inner::dispatch`] answers).
    fn plain_mailbox(&self, name: &str) -> Option<u32> {
        self.names
            .get(name)
            .copied()
            .filter(|id| !self.exports.contains_key(id))
    }
}

pub(crate) struct Inner {
    name: String,
    creation: u32,
    cookie: String,
    flags: DistributionFlags,
    ticktime: Duration,
    epmd_port: u16,
    max_frame: usize,
    tls: Option<DistTls>,
    port: u16,
    next_id: AtomicU32,
    next_ref: AtomicU32,
    next_conn: AtomicU64,
    next_unlink: AtomicU64,
    state: Mutex<State>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Notified whenever a connection is installed.
    installed: tokio::sync::Notify,
}

/// The flags this node advertises: OTP 25's mandatory set, monitors by pid
/// and by name (without them OTP 25 sends no monitors), exit payloads,
/// `SEND_SENDER`, the distribution header's atom cache (see
/// `dist/header.rs`), and the digest bit as OTP 25's `dist.hrl` defines it.
fn our_flags() -> DistributionFlags {
    use DistributionFlags as F;
    F::EXTENDED_REFERENCES
        | F::FUN_TAGS
        | F::NEW_FUN_TAGS
        | F::EXTENDED_PIDS_PORTS
        | F::EXPORT_PTR_TAG
        | F::BIT_BINARIES
        | F::NEW_FLOATS
        | F::UTF8_ATOMS
        | F::MAP_TAGS
        | F::BIG_CREATION
        | F::HANDSHAKE_23
        | F::UNLINK_ID
        | F::V4_NC
        | F::DIST_MONITOR
        | F::DIST_MONITOR_NAME
        | F::EXIT_PAYLOAD
        | F::SEND_SENDER
        | F::DIST_HDR_ATOM_CACHE
        | F::from_bits_truncate(1 << 26)
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn atom(&self) -> Atom {
        Atom::from(self.name.as_str())
    }

    fn pid(&self, id: u32) -> ErlPid {
        ErlPid::new(self.name.as_str(), id, 0, self.creation)
    }

    fn make_ref(&self) -> ErlRef {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        ErlRef {
            node: self.atom(),
            id: vec![n, n.rotate_left(13) ^ 0x5bd1_e995, self.creation],
            creation: self.creation,
        }
    }

    /// The reference with ids `id`, made by this node.
    fn reference(&self, id: Vec<u32>) -> ErlRef {
        ErlRef {
            node: self.atom(),
            id,
            creation: self.creation,
        }
    }

    /// A fresh `UNLINK_ID` id.
    fn next_unlink_id(&self) -> Term {
        let id = self.next_unlink.fetch_add(1, Ordering::Relaxed);
        Term::from(eetf::BigInteger::from(id))
    }

    /// Forgets the link between the local `local` and the remote `remote`
    /// on `node`.
    fn forget_proc_link(
        &self,
        node: &str,
        local: crate::process::Pid,
        remote: crate::process::Pid,
    ) {
        if let Some(links) = self.state().proc_links.get_mut(node) {
            links.retain(|l| !(l.local == local && l.remote == remote));
        }
    }

    /// The local Trellis process `to` names (serial ≥ 1), if alive.
    fn local_process(self: &Arc<Self>, to: &ErlPid) -> Option<Arc<crate::process::Entry>> {
        let pid = remote::to_pid(self, to)?;
        crate::process::Entry::find(pid)
    }

    fn is_connected(&self, node: &str) -> bool {
        self.state().conns.contains_key(node)
    }

    fn is_connecting(&self, node: &str) -> bool {
        self.state()
            .connecting
            .get(node)
            .is_some_and(|m| m.try_lock().is_err())
    }

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(future).abort_handle();
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Runs `then` once `node` is connected: at once if it is, else after a
    /// connection attempt (made as a send would make it, within the set-up
    /// time) whatever its outcome; `then` checks the connection itself.
    fn when_connected(
        self: &Arc<Self>,
        node: String,
        then: impl FnOnce(&Arc<Self>, &str) + Send + 'static,
    ) {
        if self.is_connected(&node) || tokio::runtime::Handle::try_current().is_err() {
            then(self, &node);
            return;
        }
        let inner = self.clone();
        self.spawn(async move {
            if let Err(error) = inner.ensure_connected(&node).await {
                tracing::debug!(node, %error, "connect on demand failed");
            }
            then(&inner, &node);
        });
    }

    /// Queues `message` to `node`, if connected.
    fn send_to(&self, node: &str, message: Message) -> bool {
        let Some(conn) = self.state().conns.get(node).cloned() else {
            return false;
        };
        conn.out.send_message(message)
    }

    /// Queues `message` to `node` for the connection's writer, which
    /// gathers many frames per write (one-way sends nobody waits on); the
    /// connection, if queued.
    fn send_batched(&self, node: &str, message: Message) -> Option<conn::Out> {
        let out = self.state().conns.get(node).map(|c| c.out.clone())?;
        out.send_message_batched(message).then_some(out)
    }

    fn deliver(&self, id: u32, incoming: Incoming) {
        let tx = self.state().mailboxes.get(&id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(Inbound::Ready(incoming));
        }
    }

    /// Whether a message to `to` may reach its mailbox with its payload
    /// undecoded: a pid, or the name of a plain mailbox (`net_kernel`,
    /// exported gen_servers and unknown names are [`dispatch`](Self::dispatch)'s).
    fn takes_raw(&self, to: &PidOrAtom) -> bool {
        match to {
            PidOrAtom::Pid(_) => true,
            PidOrAtom::Atom(name) => self.state().plain_mailbox(&name.name).is_some(),
        }
    }

    /// Handles one frame from `peer` as its reader decoded it: a message
    /// for a plain mailbox ([`takes_raw`](Self::takes_raw)) goes there with
    /// its payload undecoded; the rest as [`dispatch`](Self::dispatch) does.
    fn dispatch_decoded(self: &Arc<Self>, peer: &str, decoded: frame::Decoded) {
        let delivery = match decoded {
            frame::Decoded::Message(message) => return self.dispatch(peer, message),
            frame::Decoded::Delivery(delivery) => delivery,
        };
        // The mailbox's sender, found under one lock.
        let tx = {
            let state = self.state();
            let id = match &delivery.to {
                PidOrAtom::Pid(pid) if pid.serial != 0 => {
                    tracing::debug!(node = peer, to = %pid, "message to a Trellis process dropped");
                    return;
                }
                PidOrAtom::Pid(pid) => pid.id,
                PidOrAtom::Atom(name) => match state.plain_mailbox(&name.name) {
                    Some(id) => id,
                    // Exported or gone since the reader looked.
                    None => {
                        drop(state);
                        return self.dispatch_payload_now(peer, delivery);
                    }
                },
            };
            state.mailboxes.get(&id).cloned()
        };
        if let Some(tx) = tx {
            let _ = tx.send(Inbound::Raw {
                from: delivery.from,
                payload: delivery.payload,
            });
        }
    }

    /// A delivery [`dispatch`](Self::dispatch) must see whole: its payload
    /// decoded on the reader, as other frames are.
    fn dispatch_payload_now(self: &Arc<Self>, peer: &str, delivery: hot::Delivery) {
        if let Some(message) = delivery.into_message() {
            self.dispatch(peer, message);
        }
    }

    /// Finds our mailbox by pid or name; `net_kernel` is always there.
    fn resolve_local(&self, target: &PidOrAtom) -> Option<u32> {
        let state = self.state();
        match target {
            PidOrAtom::Pid(pid) => state.mailboxes.contains_key(&pid.id).then_some(pid.id),
            PidOrAtom::Atom(a) if a.name == "net_kernel" => Some(0),
            PidOrAtom::Atom(a) => state.names.get(&a.name).copied(),
        }
    }

    /// Handles one control message from `peer`.
    fn dispatch(self: &Arc<Self>, peer: &str, message: Message) {
        match message {
            Message::Send(m) if m.to_pid.serial != 0 => {
                tracing::debug!(node = peer, to = %m.to_pid, "message to a Trellis process dropped");
            }
            Message::SendSender(m) if m.to_pid.serial != 0 => {
                tracing::debug!(node = peer, to = %m.to_pid, "message to a Trellis process dropped");
            }
            Message::Send(m) => self.deliver(
                m.to_pid.id,
                Incoming::Message {
                    from: None,
                    term: m.message,
                },
            ),
            Message::SendSender(m) => self.deliver(
                m.to_pid.id,
                Incoming::Message {
                    from: Some(m.from_pid),
                    term: m.message,
                },
            ),
            Message::RegSend(m) => {
                if m.to_name.name == "net_kernel" {
                    self.net_kernel(peer, m.message);
                } else {
                    let (id, exported) = {
                        let state = self.state();
                        let id = state.names.get(&m.to_name.name).copied();
                        let exported = id.and_then(|id| state.exports.get(&id).cloned());
                        (id, exported)
                    };
                    if let Some(exported) = exported.filter(|_| call::is_gen_call(&m.message)) {
                        if let Some((caller, tag, request)) = call::gen_call_parts(m.message) {
                            exported(caller, tag, request);
                        }
                    } else if let Some(id) = id {
                        self.deliver(
                            id,
                            Incoming::Message {
                                from: Some(m.from_pid),
                                term: m.message,
                            },
                        );
                    }
                }
            }
            Message::MonitorP(m) if matches!(&m.to_proc, PidOrAtom::Pid(p) if p.serial != 0) => {
                self.process_monitored(peer, m.from_pid, m.to_proc, m.reference);
            }
            Message::MonitorP(m) => match self.resolve_local(&m.to_proc) {
                Some(0) => {}
                Some(id) => {
                    self.state()
                        .watched_by
                        .entry(id)
                        .or_default()
                        .push(Watcher {
                            pid: m.from_pid,
                            reference: m.reference,
                            target: m.to_proc,
                        });
                }
                None => {
                    self.send_to(
                        peer,
                        Message::monitor_p_exit(m.to_proc, m.from_pid, m.reference, atom("noproc")),
                    );
                }
            },
            Message::DemonitorP(m) => {
                let mut state = self.state();
                state.proc_watched.remove(&m.reference.id);
                for watchers in state.watched_by.values_mut() {
                    watchers.retain(|w| w.reference != m.reference);
                }
            }
            Message::MonitorPExit(m) => self.monitor_fired(m.reference, m.to_pid, m.reason),
            Message::PayloadMonitorPExit(m) => self.monitor_fired(m.reference, m.to_pid, m.reason),
            Message::Link(m) if m.to_pid.serial != 0 => {
                let linked = self.local_process(&m.to_pid).is_some_and(|entry| {
                    let Some(from) = remote::to_pid(self, &m.from_pid) else {
                        return false;
                    };
                    entry.add_remote_link(from) && {
                        self.state()
                            .proc_links
                            .entry(peer.to_string())
                            .or_default()
                            .push(remote::ProcLink {
                                local: entry.pid(),
                                remote: from,
                            });
                        true
                    }
                });
                if !linked {
                    self.send_to(
                        peer,
                        Message::payload_exit(m.to_pid, m.from_pid, atom("noproc")),
                    );
                }
            }
            Message::Link(m) => {
                let linked = {
                    let mut state = self.state();
                    if state.mailboxes.contains_key(&m.to_pid.id) {
                        let links = state.links.entry(m.to_pid.id).or_default();
                        if !links.contains(&m.from_pid) {
                            links.push(m.from_pid.clone());
                        }
                        true
                    } else {
                        false
                    }
                };
                if !linked {
                    self.send_to(
                        peer,
                        Message::payload_exit(m.to_pid, m.from_pid, atom("noproc")),
                    );
                }
            }
            Message::UnlinkId(m) => {
                self.unlinked(&m.to_pid, &m.from_pid);
                self.send_to(peer, Message::unlink_id_ack(m.id, m.to_pid, m.from_pid));
            }
            Message::Unlink(m) => self.unlinked(&m.to_pid, &m.from_pid),
            Message::Exit(m) => self.exit_signal(m.from_pid, m.to_pid, m.reason, true),
            Message::PayloadExit(m) => self.exit_signal(m.from_pid, m.to_pid, m.reason, true),
            Message::Exit2(m) => self.exit_signal(m.from_pid, m.to_pid, m.reason, false),
            Message::PayloadExit2(m) => self.exit_signal(m.from_pid, m.to_pid, m.reason, false),
            Message::Tick | Message::UnlinkIdAck(_) | Message::NodeLink(_) => {}
            other => {
                tracing::debug!(node = peer, message = ?other, "distribution message ignored");
            }
        }
    }

    fn monitor_fired(&self, reference: ErlRef, to: ErlPid, reason: Term) {
        let process = self.state().proc_watching.remove(&reference.id);
        if let Some(watch) = process {
            if let Some(entry) = watch.entry.upgrade() {
                entry.remote_down(watch.monitor, watch.target, reason_from_term(reason));
            }
            return;
        }
        let watch = self.state().watching.remove(&reference.id);
        let process = watch.map_or_else(|| atom("undefined"), |w| w.process);
        self.deliver(
            to.id,
            Incoming::Down {
                monitor: reference,
                process,
                reason,
            },
        );
    }

    fn unlink_local(self: &Arc<Self>, id: u32, remote: &ErlPid) {
        if let Some(links) = self.state().links.get_mut(&id) {
            links.retain(|p| p != remote);
        }
    }

    /// An unlink, addressed to a local Trellis process or a mailbox.
    fn unlinked(self: &Arc<Self>, to: &ErlPid, from: &ErlPid) {
        if to.serial == 0 {
            return self.unlink_local(to.id, from);
        }
        if let (Some(entry), Some(remote)) = (self.local_process(to), remote::to_pid(self, from)) {
            entry.drop_remote_link(remote);
            self.forget_proc_link(&from.node.name, entry.pid(), remote);
        }
    }

    /// A remote process monitors the local Trellis process `to`: its
    /// `MONITOR_P_EXIT` goes out when that process ends (`noproc` at once
    /// if it has).
    fn process_monitored(
        self: &Arc<Self>,
        peer: &str,
        from: ErlPid,
        to: PidOrAtom,
        reference: ErlRef,
    ) {
        let PidOrAtom::Pid(pid) = &to else { return };
        let watched = self.local_process(pid).is_some_and(|entry| {
            let local = entry.pid();
            let hook = {
                let mut state = self.state();
                state.proc_watched.insert(
                    reference.id.clone(),
                    remote::ProcWatched {
                        node: peer.to_string(),
                        local,
                        from: from.clone(),
                        to: to.clone(),
                        reference: reference.clone(),
                    },
                );
                state.proc_hooked.insert(local)
            };
            if !hook {
                return true;
            }
            let inner = Arc::downgrade(self);
            let weak_entry = Arc::downgrade(&entry);
            entry.on_exit(Box::new(move |_| {
                let Some(inner) = inner.upgrade() else { return };
                let reason = weak_entry
                    .upgrade()
                    .and_then(|e| e.exit_reason())
                    .map_or_else(|| atom("noproc"), |r| reason_to_term(&r));
                inner.process_ended(local, &term::wire_safe(reason));
            }))
        });
        if !watched {
            self.state().proc_watched.remove(&reference.id);
            self.send_to(
                peer,
                Message::monitor_p_exit(to, from, reference, atom("noproc")),
            );
        }
    }

    /// The local Trellis process `local` ended with `reason`: every remote
    /// monitor of it gets its `MONITOR_P_EXIT`.
    fn process_ended(&self, local: crate::process::Pid, reason: &Term) {
        let fired: Vec<remote::ProcWatched> = {
            let mut state = self.state();
            state.proc_hooked.remove(&local);
            let ids: Vec<Vec<u32>> = state
                .proc_watched
                .iter()
                .filter(|(_, w)| w.local == local)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| state.proc_watched.remove(&id))
                .collect()
        };
        for w in fired {
            self.send_to(
                &w.node,
                Message::monitor_p_exit(w.to, w.from, w.reference, reason.clone()),
            );
        }
    }

    fn exit_signal(self: &Arc<Self>, from: ErlPid, to: ErlPid, reason: Term, linked: bool) {
        if to.serial != 0 {
            if let (Some(entry), Some(remote)) =
                (self.local_process(&to), remote::to_pid(self, &from))
            {
                if linked {
                    self.forget_proc_link(&from.node.name, entry.pid(), remote);
                }
                entry.remote_exit(remote, reason_from_term(reason), linked);
            }
            return;
        }
        if linked {
            self.unlink_local(to.id, &from);
        }
        self.deliver(to.id, Incoming::Exit { from, reason });
    }

    /// The `net_kernel` responder: answers `{is_auth, Node}` with `yes`, as
    /// `net_adm:ping` and Elixir's `Node.ping` expect.
    fn net_kernel(&self, peer: &str, message: Term) {
        let Some((caller, tag, request)) = call::gen_call_parts(message) else {
            return;
        };
        let answer = match as_tuple(&request).and_then(|t| t.first()).and_then(as_atom) {
            Some("is_auth") => atom("yes"),
            _ => atom("not_supported"),
        };
        self.send_to(
            peer,
            Message::send_sender(self.pid(0), caller, tuple(vec![tag, answer])),
        );
    }

    /// Sets up a connected peer: its writer and reader, the `nodeup` event.
    /// Returns false if the peer is already connected (the stream is dropped).
    ///
    /// If a connection to the node exists already, one of the two is kept
    /// the same way on both nodes: the new one if the peer restarted (a new
    /// creation), else the one the node with the greater name opened (OTP's
    /// rule for simultaneous connects). `outgoing`: we opened this one.
    fn install(
        self: &Arc<Self>,
        peer: String,
        stream: conn::DistStream,
        handshaken: conn::Peer,
        outgoing: bool,
    ) -> bool {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let by_greater = outgoing == (self.name > peer);
        let creation = handshaken.creation;
        let (out, read, writer) = conn::split(stream, self.ticktime / 4, handshaken.atom_cache);
        loop {
            let old = {
                let mut state = self.state();
                if state.stopped {
                    return false;
                }
                match state.conns.get(&peer) {
                    Some(old) if old.creation != creation || (by_greater && !old.by_greater) => {
                        Some(old.id)
                    }
                    Some(_) => return false,
                    None => {
                        state.conns.insert(
                            peer.clone(),
                            Conn {
                                id,
                                creation,
                                by_greater,
                                out: out.clone(),
                            },
                        );
                        state
                            .node_watchers
                            .retain(|w| w.send(NodeEvent::Up(peer.clone())).is_ok());
                        break;
                    }
                }
            };
            if let Some(old) = old {
                let replaced = DistError::NodeDown {
                    node: peer.clone(),
                    reason: "replaced by a new connection".into(),
                };
                self.connection_lost(&peer, old, &replaced);
            }
        }
        self.installed.notify_waiters();
        tracing::info!(node = %peer, "distribution connection up");
        let peer: Arc<str> = peer.into();
        self.spawn(writer);
        self.spawn_reader(peer, id, read);
        true
    }

    fn spawn_reader(
        self: &Arc<Self>,
        peer: Arc<str>,
        id: u64,
        read: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ) {
        let inner = self.clone();
        self.spawn(async move {
            let error = conn::read_loop(
                inner.clone(),
                peer.clone(),
                read,
                inner.ticktime,
                inner.max_frame,
            )
            .await;
            inner.connection_lost(&peer, id, &error);
        });
    }

    /// A connection ended: forget it, and tell every local watcher of a
    /// process on that node `noconnection`.
    fn connection_lost(&self, peer: &str, id: u64, error: &DistError) {
        let reason = match error {
            DistError::NodeDown { reason, .. } if reason == "net_tick_timeout" => reason.clone(),
            DistError::NodeDown { .. } => "connection_closed".to_string(),
            other => other.to_string(),
        };
        let (downs, exits, proc_downs, proc_exits) = {
            let mut state = self.state();
            if state.conns.get(peer).is_none_or(|c| c.id != id) {
                return;
            }
            if let Some(old) = state.conns.remove(peer) {
                old.out.close();
            }
            let mut downs = Vec::new();
            state.watching.retain(|reference, watch| {
                if watch.node == peer {
                    downs.push((reference.clone(), watch.mailbox, watch.process.clone()));
                    false
                } else {
                    true
                }
            });
            let mut exits = Vec::new();
            for (mailbox, links) in &mut state.links {
                links.retain(|pid| {
                    if pid.node.name == peer {
                        exits.push((*mailbox, pid.clone()));
                        false
                    } else {
                        true
                    }
                });
            }
            for watchers in state.watched_by.values_mut() {
                watchers.retain(|w| w.pid.node.name != peer);
            }
            let mut proc_downs = Vec::new();
            state.proc_watching.retain(|_, w| {
                if w.erl_target.node.name == peer {
                    proc_downs.push((w.entry.clone(), w.monitor, w.target));
                    false
                } else {
                    true
                }
            });
            let proc_exits = state.proc_links.remove(peer).unwrap_or_default();
            state.proc_watched.retain(|_, w| w.node != peer);
            let event = NodeEvent::Down {
                node: peer.to_string(),
                reason: reason.clone(),
            };
            state
                .node_watchers
                .retain(|w| w.send(event.clone()).is_ok());
            (downs, exits, proc_downs, proc_exits)
        };
        tracing::warn!(node = %peer, %reason, "distribution connection down");
        for (entry, monitor, target) in proc_downs {
            if let Some(entry) = entry.upgrade() {
                entry.remote_down(monitor, target, remote::no_connection());
            }
        }
        for link in proc_exits {
            if let Some(entry) = crate::process::Entry::find(link.local) {
                entry.remote_exit(link.remote, remote::no_connection(), true);
            }
        }
        for (ids, mailbox, process) in downs {
            self.deliver(
                mailbox,
                Incoming::Down {
                    monitor: ErlRef {
                        node: self.atom(),
                        id: ids,
                        creation: self.creation,
                    },
                    process,
                    reason: atom("noconnection"),
                },
            );
        }
        for (mailbox, from) in exits {
            self.deliver(
                mailbox,
                Incoming::Exit {
                    from,
                    reason: atom("noconnection"),
                },
            );
        }
    }

    /// Connects to `node` unless connected; one attempt at a time per node.
    async fn ensure_connected(self: &Arc<Self>, node: &str) -> Result<(), DistError> {
        if node == self.name {
            return Ok(());
        }
        let gate = {
            let mut state = self.state();
            if state.stopped {
                return Err(DistError::Stopped);
            }
            if state.conns.contains_key(node) {
                return Ok(());
            }
            state
                .connecting
                .entry(node.to_string())
                .or_default()
                .clone()
        };
        let _attempt = gate.lock().await;
        if self.is_connected(node) {
            return Ok(());
        }
        let stream = match tokio::time::timeout(conn::SETUP_TIME, conn::connect(self, node)).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => {
                if matches!(error, DistError::CookieRejected { .. }) {
                    tracing::warn!(node, "our cookie was rejected");
                }
                // Lost a simultaneous connect: the peer's attempt wins;
                // wait for it.
                if matches!(&error, DistError::Handshake { reason, .. } if reason == conn::SIMULTANEOUS)
                {
                    let deadline = tokio::time::Instant::now() + conn::SETUP_TIME;
                    loop {
                        let installed = self.installed.notified();
                        if self.is_connected(node) {
                            return Ok(());
                        }
                        if tokio::time::timeout_at(deadline, installed).await.is_err() {
                            break;
                        }
                    }
                }
                if self.is_connected(node) {
                    return Ok(());
                }
                return Err(error);
            }
            Err(_) => {
                return Err(DistError::Connect {
                    node: node.to_string(),
                    reason: "set-up timed out".into(),
                });
            }
        };
        let (stream, handshaken) = stream;
        self.install(node.to_string(), stream, handshaken, true);
        Ok(())
    }

    async fn send(self: &Arc<Self>, from: &ErlPid, to: &Dest, term: Term) -> Result<(), DistError> {
        let term = term::wire_safe(term);
        match to {
            // A Trellis process of this node: it takes no terms.
            Dest::Pid(pid) if pid.node.name == self.name && pid.serial != 0 => return Ok(()),
            Dest::Process(_) => return Ok(()),
            Dest::Pid(pid) if pid.node.name == self.name => {
                self.deliver(
                    pid.id,
                    Incoming::Message {
                        from: Some(from.clone()),
                        term,
                    },
                );
                return Ok(());
            }
            Dest::Name { name, node } if *node == self.name => {
                let id = self.state().names.get(name).copied();
                if let Some(id) = id {
                    self.deliver(
                        id,
                        Incoming::Message {
                            from: Some(from.clone()),
                            term,
                        },
                    );
                }
                return Ok(());
            }
            _ => {}
        }
        let node = to.node();
        if !self.is_connected(node) {
            self.ensure_connected(node).await?;
        }
        let message = match to {
            Dest::Pid(pid) => Message::send_sender(from.clone(), pid.clone(), term),
            Dest::Name { name, .. } => {
                Message::reg_send(from.clone(), Atom::from(name.as_str()), term)
            }
            Dest::Process(_) => return Ok(()),
        };
        if let Some(out) = self.send_batched(node, message) {
            // Sent; held back while the connection's queue is over its
            // limit (OTP's busy distribution port).
            out.wait_while_busy().await;
            Ok(())
        } else {
            Err(DistError::NodeDown {
                node: node.to_string(),
                reason: "not connected".into(),
            })
        }
    }

    fn new_mailbox(self: &Arc<Self>) -> Result<DistMailbox, DistError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.state();
        if state.stopped {
            return Err(DistError::Stopped);
        }
        state.mailboxes.insert(id, tx);
        Ok(DistMailbox {
            inner: self.clone(),
            id,
            pid: self.pid(id),
            rx,
        })
    }

    /// Removes mailbox `id`: its monitors on others end, its watchers get
    /// `DOWN` and its links `EXIT` with `reason`.
    fn close_mailbox(&self, id: u32, reason: Term) {
        let reason = term::wire_safe(reason);
        let (watchers, links, watching) = {
            let mut state = self.state();
            state.mailboxes.remove(&id);
            state.exports.remove(&id);
            state.names.retain(|_, v| *v != id);
            let mut watching = Vec::new();
            state.watching.retain(|reference, w| {
                if w.mailbox == id {
                    watching.push((reference.clone(), w.node.clone(), w.process.clone()));
                    false
                } else {
                    true
                }
            });
            (
                state.watched_by.remove(&id).unwrap_or_default(),
                state.links.remove(&id).unwrap_or_default(),
                watching,
            )
        };
        let me = self.pid(id);
        for w in watchers {
            let node = w.pid.node.name.clone();
            self.send_to(
                &node,
                Message::monitor_p_exit(w.target, w.pid, w.reference, reason.clone()),
            );
        }
        for pid in links {
            let node = pid.node.name.clone();
            self.send_to(
                &node,
                Message::payload_exit(me.clone(), pid, reason.clone()),
            );
        }
        for (ids, node, process) in watching {
            let target = match process {
                Term::Pid(pid) => PidOrAtom::Pid(pid),
                Term::Tuple(t) => match t.elements.first() {
                    Some(Term::Atom(a)) => PidOrAtom::Atom(a.clone()),
                    _ => continue,
                },
                _ => continue,
            };
            let reference = ErlRef {
                node: self.atom(),
                id: ids,
                creation: self.creation,
            };
            self.send_to(&node, Message::demonitor_p(me.clone(), target, reference));
        }
    }

    fn stop(&self) {
        let conns = {
            let mut state = self.state();
            state.stopped = true;
            std::mem::take(&mut state.conns)
        };
        for conn in conns.values() {
            conn.out.close();
        }
        drop(conns);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// A running distribution node: this program's membership in a cluster.
///
/// Cheap to clone; every clone is the same node. The node stops (EPMD
/// registration dropped, connections closed, its tasks aborted) on
/// [`DistNode::shutdown`] or when the last clone is dropped.
///
/// # Examples
///
/// Two Trellis nodes: one exports a gen_server, the other calls it as
/// Erlang's `gen_server:call({counter, Node}, ...)` would (EPMD must run).
///
/// ```
/// use std::time::Duration;
/// use trellis::BoxError;
/// use trellis::dist::{self, DistError, DistOptions};
/// use trellis::gen_server::{self, Context, GenServer, Init, Response};
///
/// struct Counter(i64);
///
/// impl GenServer for Counter {
///     type Arg = ();
///     type Call = i64; // from an Erlang integer
///     type Reply = i64; // back as one
///     type Cast = ();
///     type Info = ();
///     async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
///         Ok(Init::Ready)
///     }
///     async fn handle_call(&mut self, add: i64, _: &mut Context<Self>) -> Result<Response<i64>, BoxError> {
///         self.0 += add;
///         Ok(Response::Reply(self.0))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let id = std::process::id();
/// let server_node = dist::start(DistOptions::short(format!("doc_srv_{id}")).cookie("c")).await?;
/// let client_node = dist::start(DistOptions::short(format!("doc_cli_{id}")).cookie("c")).await?;
/// trellis::nursery(|n| async move {
///     let counter = gen_server::start(&n, Counter(0)).await?;
///     server_node.export("counter", counter)?;
///     let to = ("counter", server_node.name());
///     let wait = Duration::from_secs(5);
///     assert_eq!(client_node.call::<i64>(to, 2, wait).await?, 2);
///     assert_eq!(client_node.call::<i64>(to, 40, wait).await?, 42);
///     // A name nobody holds: `noproc` at once.
///     let missing = client_node.call::<i64>(("nobody", server_node.name()), 1, wait).await;
///     assert!(matches!(missing, Err(DistError::NoProcess { .. })));
///     n.cancel();
///     Ok::<_, BoxError>(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DistNode {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// Stops the node when the last [`DistNode`] clone goes.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl fmt::Debug for DistNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistNode")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .finish_non_exhaustive()
    }
}

/// Starts distribution: listens on an ephemeral port, registers the name
/// with EPMD as a hidden node, and serves peers until the returned
/// [`DistNode`] (every clone) is dropped or shut down.
///
/// Must run inside a tokio runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis::dist::{self, DistOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), trellis::dist::DistError> {
/// // Needs EPMD running (`epmd -daemon`), as Erlang nodes do.
/// let name = format!("doc_{}", std::process::id());
/// let a = dist::start(DistOptions::short(&name).cookie("secret")).await?;
/// let b = dist::start(DistOptions::short(format!("{name}_b")).cookie("secret")).await?;
/// assert!(a.name().starts_with("doc_"));
/// assert!(b.ping(a.name(), Duration::from_secs(5)).await);
/// assert_eq!(b.nodes(), vec![a.name().to_string()]);
/// a.shutdown();
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`DistError::InvalidName`], [`DistError::NoCookie`],
/// [`DistError::Listen`], and [`DistError::Epmd`] when EPMD is not running
/// or the name is taken.
pub async fn start(options: DistOptions) -> Result<DistNode, DistError> {
    let name = options.node_name()?;
    let cookie = options.resolve_cookie()?;
    let epmd_port = options.epmd_port.unwrap_or_else(|| {
        std::env::var("ERL_EPMD_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(4369)
    });
    let listener = TcpListener::bind(("0.0.0.0", 0))
        .await
        .map_err(|e| DistError::Listen {
            reason: e.to_string(),
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| DistError::Listen {
            reason: e.to_string(),
        })?
        .port();
    let alive = name
        .split_once('@')
        .map_or(name.as_str(), |(a, _)| a)
        .to_string();
    let (registration, creation) = conn::epmd_register(&alive, port, epmd_port).await?;
    let inner = Arc::new(Inner {
        name,
        creation,
        cookie,
        flags: our_flags(),
        ticktime: options.ticktime,
        epmd_port,
        max_frame: options.max_frame,
        tls: options.tls.clone(),
        port,
        next_id: AtomicU32::new(1),
        next_ref: AtomicU32::new(1),
        next_conn: AtomicU64::new(1),
        next_unlink: AtomicU64::new(1),
        state: Mutex::new(State::default()),
        tasks: Mutex::new(Vec::new()),
        installed: tokio::sync::Notify::new(),
    });
    remote::install();
    inner.spawn(keep_registered(registration, alive, port, epmd_port));
    let acceptor = inner.clone();
    inner.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let inner = acceptor.clone();
            acceptor.spawn(async move {
                match tokio::time::timeout(conn::SETUP_TIME, conn::accept(&inner, stream)).await {
                    Ok(Ok((peer, stream, handshaken))) => {
                        inner.install(peer, stream, handshaken, false);
                    }
                    Ok(Err(error @ DistError::CookieRejected { .. })) => {
                        tracing::warn!(%error, "peer refused: wrong cookie");
                    }
                    Ok(Err(error)) => tracing::info!(%error, "incoming handshake failed"),
                    Err(_) => tracing::info!("incoming handshake timed out"),
                }
            });
        }
    });
    tracing::info!(node = %inner.name, port, "distribution started");
    Ok(DistNode {
        _owner: Arc::new(Owner(inner.clone())),
        inner,
    })
}

/// Holds the EPMD registration; if EPMD closes it (a restart), registers
/// again, retrying each second.
async fn keep_registered(mut registration: TcpStream, alive: String, port: u16, epmd_port: u16) {
    loop {
        let mut byte = [0u8; 1];
        // EPMD never sends on this stream: a read returns only when it closes.
        let _ = tokio::io::AsyncReadExt::read(&mut registration, &mut byte).await;
        tracing::warn!("EPMD registration lost; registering again");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok((stream, _)) = conn::epmd_register(&alive, port, epmd_port).await {
                registration = stream;
                break;
            }
        }
    }
}

impl DistNode {
    /// This node's full name, `name@host`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The port this node listens on for peers.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The nodes connected now (Erlang's `nodes(connected)`).
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.inner.state().conns.keys().cloned().collect();
        nodes.sort();
        nodes
    }

    /// The Trellis [`Pid`](crate::process::Pid) of the Erlang pid `pid`:
    /// for a process of another node, a pid with a node index ≠ 0 that
    /// [`gen_server::Context::monitor`](crate::gen_server::Context::monitor),
    /// `link` and [`DistNode::call`] accept; for a Trellis process of this
    /// node, its local pid; `None` for this node's [`DistMailbox`]es.
    ///
    /// The same Erlang pid always gives the same `Pid` through the same
    /// `DistNode`; a restarted node (new creation) gets a new index, so an
    /// old pid never names a process of the new incarnation.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::dist::{self, DistOptions, ErlPid};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), trellis::dist::DistError> {
    /// let node = dist::start(DistOptions::short(format!("doc_pid_{}", std::process::id())).cookie("c")).await?;
    /// let erl = ErlPid::new("a@host", 81, 0, 7);
    /// let pid = node.to_pid(&erl).unwrap();
    /// assert!(!pid.is_local());
    /// assert_eq!(pid.to_string(), format!("<{}.81.0>", pid.node()));
    /// assert_eq!(node.to_pid(&erl), Some(pid));
    /// assert_eq!(node.erl_pid(pid), Some(erl));
    /// # Ok(()) }
    /// ```
    pub fn to_pid(&self, pid: &ErlPid) -> Option<crate::process::Pid> {
        remote::to_pid(&self.inner, pid)
    }

    /// The Erlang pid of `pid`: a remote process's own, or, for a local
    /// Trellis process, the pid Erlang processes reach it by (monitors and
    /// links on it work; messages to it are dropped, as it takes no terms).
    /// `None` for a remote pid another `DistNode` made.
    pub fn erl_pid(&self, pid: crate::process::Pid) -> Option<ErlPid> {
        remote::to_erl(&self.inner, pid)
    }

    /// Subscribes to node up/down events from now on (Erlang's
    /// `net_kernel:monitor_nodes(true)`).
    pub fn monitor_nodes(&self) -> NodeEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.state().node_watchers.push(tx);
        NodeEvents { rx }
    }

    /// Connects to `node` now rather than on the first send.
    ///
    /// # Errors
    ///
    /// [`DistError::NodeNotFound`], [`DistError::Connect`],
    /// [`DistError::CookieRejected`], [`DistError::Handshake`],
    /// [`DistError::Epmd`].
    pub async fn connect(&self, node: &str) -> Result<(), DistError> {
        self.inner.ensure_connected(node).await
    }

    /// Pings `node` as `net_adm:ping` does (a call to its `net_kernel`):
    /// `true` for `pong`, `false` for `pang`.
    pub async fn ping(&self, node: &str, timeout: Duration) -> bool {
        let request = tuple(vec![atom("is_auth"), atom(&self.inner.name)]);
        matches!(
            self.call(("net_kernel", node), request, timeout).await,
            Ok(Term::Atom(a)) if a.name == "yes"
        )
    }

    /// A new, unnamed mailbox with its own pid on this node.
    ///
    /// # Errors
    ///
    /// [`DistError::Stopped`] after shutdown.
    pub fn mailbox(&self) -> Result<DistMailbox, DistError> {
        self.inner.new_mailbox()
    }

    /// A new mailbox registered as `name` (Erlang's `register/2`), so that
    /// `{name, node}` reaches it.
    ///
    /// # Errors
    ///
    /// [`DistError::NameTaken`] if the name is in use; [`DistError::Stopped`].
    pub fn register(&self, name: &str) -> Result<DistMailbox, DistError> {
        if name == "net_kernel" {
            return Err(DistError::NameTaken { name: name.into() });
        }
        let mailbox = self.inner.new_mailbox()?;
        let mut state = self.inner.state();
        if state.names.contains_key(name) {
            return Err(DistError::NameTaken { name: name.into() });
        }
        state.names.insert(name.to_string(), mailbox.id);
        Ok(mailbox)
    }

    /// Stops the node: unregisters from EPMD, closes every connection,
    /// ends its tasks. Mailboxes receive nothing more.
    pub fn shutdown(&self) {
        self.inner.stop();
    }
}

/// Node up/down events ([`DistNode::monitor_nodes`]).
///
/// # Examples
///
/// ```
/// use trellis::dist::{self, DistOptions, NodeEvent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), trellis::dist::DistError> {
/// let id = std::process::id();
/// let a = dist::start(DistOptions::short(format!("doc_ev_a_{id}")).cookie("c")).await?;
/// let b = dist::start(DistOptions::short(format!("doc_ev_b_{id}")).cookie("c")).await?;
/// let mut events = a.monitor_nodes();
/// a.connect(b.name()).await?;
/// assert_eq!(events.recv().await, Some(NodeEvent::Up(b.name().to_string())));
/// b.shutdown();
/// let Some(NodeEvent::Down { node, .. }) = events.recv().await else { panic!() };
/// assert_eq!(node, b.name());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NodeEvents {
    rx: mpsc::UnboundedReceiver<NodeEvent>,
}

impl NodeEvents {
    /// The next event; `None` once the node stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is either returned or still queued.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        self.rx.recv().await
    }
}
