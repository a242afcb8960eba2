//! The observer: the live supervision tree in a browser, a JSON API, a
//! stream of lifecycle events and Prometheus metrics, served over HTTP by
//! the node itself (Erlang's `observer`, plus a Prometheus exporter).
//!
//! Needs the cargo feature `observer`. Start it with
//! [`NodeOptions::observer`](crate::node::NodeOptions::observer) (or
//! [`start`] in any nursery); then open `http://127.0.0.1:PORT/`.
//!
//! | route | what it answers |
//! |---|---|
//! | `GET /` | the page: the tree as a diagram, live, with restart sparklines, top processes and a details pane (self-contained: no CDN) |
//! | `GET /api/tree` | the live tree as JSON: node, applications, supervisors (strategy, intensity and its use, uptime, restarts, exits by reason), children (id, pid, restart type, state, restarts, last exit reason, uptime), gen_servers (mailbox depth, messages handled, timed calls, time in handlers), nurseries (see below) |
//! | `GET /api/process/<n>` | one process (`<0.n>`) as JSON, 404 if it is not alive |
//! | `GET /api/events` | Server-Sent Events: one JSON [`Event`] per `data:` line |
//! | `GET /metrics` | Prometheus text format (see below) |
//! | `POST /api/process/<n>/kill` | with [actions](ObserverOptions::actions) only: an exit signal `killed` (a supervisor is stopped instead) |
//! | `POST /api/supervisor/<n>/children/<key>/restart` | with actions only: stops the child and starts it again (OTP's `restart_child`, without using intensity) |
//!
//! `nurseries` in `/api/tree` lists every live nursery of the process as
//! the scope tree nests them, from the nurseries opened outside any other
//! (`main`'s, a plain tokio task's): each with its `name`, `age_seconds`,
//! `cancelled`, `task_count` and its running `tasks` (at most 200 listed;
//! its forks' tasks included), each task with its `name`, `state`
//! (`running`, `shutting_down`, `cancelled`), `age_seconds` and the
//! `nurseries` opened inside it. A nursery opened in a nursery's body
//! (outside its tasks) is listed in its `nurseries`. Ages are known for
//! nurseries and tasks started once an observer has run in the process
//! (`null` before): from then on each task reads the clock once, when it
//! first waits. Nurseries hang where they are in the scope tree, not
//! under the supervisor or process that owns them; a task is listed from
//! its first wait (as [`Nursery::child_tasks`](crate::Nursery::child_tasks)).
//!
//! Actions also need the header `x-trellis-action: 1`, which a page from
//! another origin cannot send without the browser asking first (a CORS
//! preflight that the observer refuses).
//!
//! Metrics (`/metrics`): `trellis_processes`,
//! `trellis_supervisor_restarts_total`, `trellis_supervisor_exits_total`
//! (by `reason`), `trellis_supervisor_intensity_used` and
//! `trellis_supervisor_intensity_max`,
//! `trellis_supervisor_intensity_exceeded_total`,
//! `trellis_gen_server_mailbox_depth`, `trellis_gen_server_messages_total`,
//! `trellis_gen_server_handler_seconds_total`, and the histogram
//! `trellis_gen_server_call_duration_seconds` (time in `handle_call`),
//! `trellis_protocol_connections` (by `listen` addresses).
//!
//! Counters (`_total`) and the histogram are kept by a stable identity —
//! the `supervisor` label is the supervisor's name, the `name` label the
//! gen_server's registered name (`name=""`: every unnamed server together)
//! — and include the processes of that identity that have ended, so they
//! only grow across restarts (Prometheus would read a drop as a reset).
//! Ended processes are kept by name for the first 1000 names; beyond that
//! they count under `""` (a program that names a supervisor per connection
//! does not grow the observer's memory without bound).
//! Gauges (mailbox depth, intensity used and max) describe the live
//! processes and also carry a `pid` label.
//!
//! # What is exact and what is measured while watched
//!
//! | figure | kept |
//! |---|---|
//! | lifecycle events (`/api/events`) | built only while an event stream is open |
//! | supervisor restarts, exits by reason, intensity, children's last exit and uptime | always exact (while an observer runs, for last exit and uptime) |
//! | gen_server messages handled, mailbox depth | exact, for servers started while an observer runs |
//! | gen_server handler time, call-latency histogram | only for messages taken while the node is **watched** |
//!
//! The node is watched while a request to the observer is in flight (the
//! page's, the API's, a `/metrics` scrape), while an event stream is open
//! (the page keeps one; so does a [`subscribe`] handle), and for a
//! [scrape window](ObserverOptions::scrape_window) after each `/metrics`
//! scrape (2 minutes by default), so that the next scrape sees the calls
//! in between. Unwatched, a gen_server pays one relaxed atomic load and two
//! single-writer counters per message instead of two clock reads. So
//! between scrapes the histogram grows only inside each window: scraped at
//! least once per window, a node is timed all the time; scraped less
//! often, the histogram samples the window after each scrape, and its
//! `_count` is smaller than `trellis_gen_server_messages_total`'s calls.
//!
//! # Safe by default
//!
//! The observer binds to a loopback address unless
//! [`allow_remote`](ObserverOptions::allow_remote) says otherwise, and is
//! read-only unless [`actions`](ObserverOptions::actions) is set. When no
//! observer runs, the hooks inside supervisors and gen_servers cost one
//! relaxed atomic load each; when one runs and nobody looks, a gen_server
//! message costs one more load and two uncontended stores (measured in
//! BENCHMARKS.md, "observer").
//! Gen_server statistics and protocol servers' connection counts are kept
//! for the servers that start while an observer runs (start the observer
//! first, as the node does).
//!
//! # Compared with Erlang
//!
//! | Erlang/OTP | Trellis | why |
//! |---|---|---|
//! | `observer` (wx GUI), `observer_cli` | a web page served by the node | no GUI toolkit to install; a browser is everywhere |
//! | prometheus.erl exporters | `/metrics` built in | one feature flag instead of a library per node |
//! | `supervisor:restart_child` only for a terminated child | the restart action stops a running child first | what an operator means by "restart this" |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use trellis::observer::{self, ObserverOptions};
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//!
//! trellis::nursery(|n| async move {
//!     let obs = observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
//!     let mut conn = tokio::net::TcpStream::connect(obs.local_addr()).await?;
//!     conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
//!     let mut text = String::new();
//!     conn.read_to_string(&mut text).await?;
//!     assert!(text.contains("trellis_processes "));
//!     n.cancel();
//!     Ok::<_, trellis::BoxError>(())
//! })
//! .await
//! .unwrap();
//! # }
//! ```

pub(crate) mod bus;
#[cfg(feature = "observer")]
mod http;
#[cfg(feature = "observer")]
mod json;
#[cfg(feature = "observer")]
mod metrics;

#[cfg(feature = "observer")]
pub use bus::{Event, EventKind, Subscription, subscribe};
#[cfg(feature = "observer")]
pub use http::{Observer, ObserverError, ObserverOptions, serve, start};

/// The node's metrics now, in Prometheus's text format: what `/metrics`
/// answers, for programs that serve metrics from their own HTTP server.
///
/// Counts as a scrape: while an observer server runs, gen_servers time
/// their handlers for the default scrape window (2 minutes) after it (see
/// [`ObserverOptions::scrape_window`]).
///
/// # Examples
///
/// ```
/// let text = trellis::observer::metrics_text();
/// assert!(text.contains("# TYPE trellis_processes gauge"));
/// ```
#[cfg(feature = "observer")]
pub fn metrics_text() -> String {
    let text = metrics::render();
    bus::scraped(http::SCRAPE_WINDOW);
    text
}

/// The live tree now, as the JSON document `/api/tree` answers.
///
/// # Examples
///
/// ```
/// let tree = trellis::observer::tree_json();
/// assert!(tree.starts_with('{') && tree.contains("\"supervisors\""));
/// ```
#[cfg(feature = "observer")]
pub fn tree_json() -> String {
    json::tree().to_string()
}
