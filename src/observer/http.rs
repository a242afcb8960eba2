//! The observer's HTTP server (hyper, HTTP/1.1): routes, the event stream
//! and the actions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::bus::{self, Enabled, Subscription, Watching};
use super::{json, metrics};
use crate::nursery::{Nursery, TaskStatus};
use crate::process::{Entry, ExitReason, Pid, local_pid};
use crate::supervisor::{ChildId, Supervisor};

/// The page, with its script and styles inline: no file, no CDN.
const PAGE: &str = include_str!("page.html");

/// How the observer listens and what it allows.
///
/// | option | default |
/// |---|---|
/// | [`new(addr)`](Self::new) | the address to listen on (port 0: any free port) |
/// | [`actions`](Self::actions) | `false`: read-only |
/// | [`allow_remote`](Self::allow_remote) | `false`: only a loopback address is accepted |
/// | [`scrape_window`](Self::scrape_window) | 2 minutes: how long handler timing stays on after a `/metrics` scrape |
///
/// # Examples
///
/// ```
/// use trellis::observer::ObserverOptions;
///
/// let options = ObserverOptions::new("127.0.0.1:9000".parse().unwrap()).actions(true);
/// assert!(options.actions_enabled());
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ObserverOptions {
    addr: SocketAddr,
    actions: bool,
    allow_remote: bool,
    scrape_window: Duration,
}

/// The default [`ObserverOptions::scrape_window`].
pub(super) const SCRAPE_WINDOW: Duration = Duration::from_secs(120);

impl ObserverOptions {
    /// Listen on `addr`, read-only, loopback only (checked when the
    /// observer starts).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::observer::ObserverOptions;
    ///
    /// let options = ObserverOptions::new("[::1]:0".parse().unwrap());
    /// assert!(options.addr().ip().is_loopback());
    /// ```
    pub fn new(addr: SocketAddr) -> Self {
        ObserverOptions {
            addr,
            actions: false,
            allow_remote: false,
            scrape_window: SCRAPE_WINDOW,
        }
    }

    /// Whether the page and the API may stop and kill processes and restart
    /// children (default `false`).
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::observer::ObserverOptions;
    ///
    /// let options = ObserverOptions::new("127.0.0.1:0".parse().unwrap());
    /// assert!(!options.actions_enabled());
    /// assert!(options.actions(true).actions_enabled());
    /// ```
    pub fn actions(mut self, enabled: bool) -> Self {
        self.actions = enabled;
        self
    }

    /// Whether a non-loopback address is accepted (default `false`: such an
    /// address is refused with [`ObserverError::NotLoopback`]). The observer
    /// has no authentication: put it behind something that has.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::observer::{self, ObserverOptions};
    ///
    /// trellis::nursery(|n| async move {
    ///     // Every interface: refused unless allowed.
    ///     let any = ObserverOptions::new("0.0.0.0:0".parse()?);
    ///     assert!(observer::start(&n, any.clone()).await.is_err());
    ///     let obs = observer::start(&n, any.allow_remote(true)).await?;
    ///     assert!(obs.local_addr().ip().is_unspecified());
    ///     n.cancel();
    ///     Ok::<_, trellis::BoxError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn allow_remote(mut self, allowed: bool) -> Self {
        self.allow_remote = allowed;
        self
    }

    /// How long gen_servers keep timing their handlers after a `/metrics`
    /// scrape (default 2 minutes).
    ///
    /// Handler time and the call-latency histogram are measured only while
    /// someone watches the node (see the [module docs](super#what-is-exact-and-what-is-measured-while-watched)).
    /// A scrape is a short request: to give the next scrape the latencies
    /// of the time in between, each scrape keeps timing on for this long.
    /// A node scraped more often than this is timed all the time; with a
    /// window shorter than the scrape interval the histogram samples the
    /// part of each interval just after a scrape. `Duration::ZERO`: only
    /// open requests and event streams turn timing on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use trellis::observer::ObserverOptions;
    ///
    /// let options = ObserverOptions::new("127.0.0.1:0".parse().unwrap());
    /// assert_eq!(options.scrape_window_length(), Duration::from_secs(120));
    /// let options = options.scrape_window(Duration::from_secs(30));
    /// assert_eq!(options.scrape_window_length(), Duration::from_secs(30));
    /// ```
    pub fn scrape_window(mut self, window: Duration) -> Self {
        self.scrape_window = window;
        self
    }

    /// The scrape window (see [`scrape_window`](Self::scrape_window)).
    pub fn scrape_window_length(&self) -> Duration {
        self.scrape_window
    }

    /// The address to listen on.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::observer::ObserverOptions;
    ///
    /// let addr = "127.0.0.1:9000".parse().unwrap();
    /// assert_eq!(ObserverOptions::new(addr).addr(), addr);
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether actions are enabled (see [`actions`](Self::actions)).
    pub fn actions_enabled(&self) -> bool {
        self.actions
    }
}

/// Why the observer did not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserverError {
    /// The address is not a loopback address and
    /// [`allow_remote`](ObserverOptions::allow_remote) is off.
    #[error("observer address {addr} is not a loopback address")]
    NotLoopback {
        /// The address refused.
        addr: SocketAddr,
    },
    /// Binding or accepting failed.
    #[error("observer on {addr}: {source}")]
    Io {
        /// The address it listens on.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The nursery it was started in is closed or cancelled.
    #[error("observer did not start: {0}")]
    Start(String),
}

/// A running observer, from [`start`]: where it listens.
#[derive(Clone, Debug)]
pub struct Observer {
    addr: SocketAddr,
}

impl Observer {
    /// The bound address (the real port when asked for port 0); see
    /// [`start`] for an example.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Starts the observer as a task of `nursery` and returns once it listens.
///
/// It serves until the nursery is cancelled (a node cancels it when it
/// stops). See the [module docs](super) for the routes.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::observer::{self, ObserverError, ObserverOptions};
///
/// trellis::nursery(|n| async move {
///     let obs = observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
///     assert_ne!(obs.local_addr().port(), 0);
///     // Not loopback, not allowed:
///     let remote = ObserverOptions::new("0.0.0.0:0".parse()?);
///     assert!(matches!(observer::start(&n, remote).await, Err(ObserverError::NotLoopback { .. })));
///     n.cancel();
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Errors
///
/// [`ObserverError::NotLoopback`], [`ObserverError::Io`] if binding fails,
/// [`ObserverError::Start`] if the nursery is closed.
///
/// # Cancel safety
///
/// Dropping the future before it returns stops the observer.
pub async fn start(nursery: &Nursery, options: ObserverOptions) -> Result<Observer, ObserverError> {
    check(&options)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = nursery
        .start_with(
            crate::SpawnOptions::new().name("observer"),
            move |status: TaskStatus<SocketAddr>| async move {
                let result = serve(options, status).await;
                let _ = tx.send(result);
            },
        )
        .await;
    match started {
        Ok(addr) => Ok(Observer { addr }),
        Err(error) => match rx.await {
            Ok(Err(error)) => Err(error),
            _ => Err(ObserverError::Start(error.to_string())),
        },
    }
}

fn check(options: &ObserverOptions) -> Result<(), ObserverError> {
    if !options.allow_remote && !options.addr.ip().is_loopback() {
        return Err(ObserverError::NotLoopback { addr: options.addr });
    }
    Ok(())
}

/// Serves the observer: binds, reports the bound address through `status`,
/// then serves until cancelled. The form to use as a supervised child
/// ([`ChildSpec::new`](crate::supervisor::ChildSpec::new)).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::observer::{self, ObserverOptions};
///
/// trellis::nursery(|n| async move {
///     let options = ObserverOptions::new("127.0.0.1:0".parse()?);
///     let addr = n.start(|status| observer::serve(options, status)).await?;
///     assert!(addr.ip().is_loopback());
///     n.cancel();
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Errors
///
/// As [`start`].
///
/// # Cancel safety
///
/// Dropping the future stops the observer and closes its connections.
pub async fn serve(
    options: ObserverOptions,
    status: TaskStatus<SocketAddr>,
) -> Result<(), ObserverError> {
    check(&options)?;
    let addr = options.addr;
    let io = |source| ObserverError::Io { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(io)?;
    let local = listener.local_addr().map_err(io)?;
    let _enabled = Enabled::new();
    let state = Arc::new(State {
        actions: options.actions,
        scrape_window: options.scrape_window,
    });
    status.started(local);
    tracing::info!(%local, actions = options.actions, "observer listening");
    let nursery_options = crate::NurseryOptions::new().name("observer");
    let result = crate::nursery_with(nursery_options, |n| async move {
        n.spawn_with(
            // In the background: it ends with the server.
            crate::SpawnOptions::new()
                .name("observer scrape window")
                .awaited(false),
            bus::close_scrape_windows(),
        );
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(source) => {
                    return Err::<(), _>(ObserverError::Io {
                        addr: local,
                        source,
                    });
                }
            };
            let state = Arc::clone(&state);
            n.spawn_with(
                crate::SpawnOptions::new().name("observer connection"),
                async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move {
                            // A request in flight watches the node (an event
                            // stream keeps watching through its subscription).
                            let _watching = Watching::new();
                            Ok::<_, Infallible>(route(&state, request).await)
                        }
                    });
                    // A client that goes away is not the observer's failure.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                },
            );
        }
    })
    .await;
    result.map_err(|error| ObserverError::Start(error.to_string()))
}

struct State {
    actions: bool,
    scrape_window: Duration,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &serde_json::json!({ "error": message }))
}

async fn route(state: &State, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (request.method(), parts.as_slice()) {
        (&Method::GET, [""]) => full(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (&Method::GET, ["api", "tree"]) => {
            let mut tree = json::tree();
            tree["actions"] = state.actions.into();
            json_response(StatusCode::OK, &tree)
        }
        (&Method::GET, ["api", "process", n]) => match parse_pid(n) {
            Some(pid) => match json::process(pid) {
                Some(value) => json_response(StatusCode::OK, &value),
                None => error(StatusCode::NOT_FOUND, "no such process"),
            },
            None => error(StatusCode::BAD_REQUEST, "a pid is a number"),
        },
        (&Method::GET, ["api", "events"]) => events(bus::subscribe()),
        (&Method::GET, ["metrics"]) => {
            let text = metrics::render();
            bus::scraped(state.scrape_window);
            full(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        (&Method::POST, ["api", ..]) => {
            if !state.actions {
                return error(StatusCode::FORBIDDEN, "actions are disabled");
            }
            if request.headers().get("x-trellis-action").is_none() {
                return error(
                    StatusCode::FORBIDDEN,
                    "actions need the header x-trellis-action",
                );
            }
            action(&parts[1..]).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

fn parse_pid(text: &str) -> Option<Pid> {
    text.parse().ok().filter(|n| *n != 0).map(local_pid)
}

/// The actions: kill a process, stop a supervisor, restart a child.
async fn action(parts: &[&str]) -> Response<Body> {
    match parts {
        ["process", n, verb @ ("kill" | "stop")] => {
            let Some(pid) = parse_pid(n) else {
                return error(StatusCode::BAD_REQUEST, "a pid is a number");
            };
            let Some(registered) = Entry::find_registered(pid) else {
                return error(StatusCode::NOT_FOUND, "no such process");
            };
            if let Some(sup) = registered.endpoint::<Supervisor>() {
                tracing::info!(%pid, "observer: stopping supervisor");
                return match sup.stop().await {
                    Ok(()) => json_response(StatusCode::OK, &serde_json::json!({ "ok": true })),
                    Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
                };
            }
            let reason = if *verb == "kill" {
                ExitReason::Killed
            } else {
                ExitReason::Shutdown
            };
            tracing::info!(%pid, %reason, "observer: exit signal");
            registered.entry.send_exit(pid, reason);
            json_response(StatusCode::OK, &serde_json::json!({ "ok": true }))
        }
        ["supervisor", n, "children", key, "restart"] => {
            let (Some(pid), Ok(key)) = (parse_pid(n), key.parse::<u64>()) else {
                return error(StatusCode::BAD_REQUEST, "pid and key are numbers");
            };
            let Some(sup) = Entry::find_registered(pid).and_then(|r| r.endpoint::<Supervisor>())
            else {
                return error(StatusCode::NOT_FOUND, "no such supervisor");
            };
            tracing::info!(supervisor = %sup.name(), child = key, "observer: restarting child");
            match sup.restart_child(ChildId(key)).await {
                Ok(()) => json_response(StatusCode::OK, &serde_json::json!({ "ok": true })),
                Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such action"),
    }
}

/// `GET /api/events`: Server-Sent Events, one JSON event per message, and
/// a comment every 15 s so proxies keep the connection.
fn events(subscription: Subscription) -> Response<Body> {
    let hello = Bytes::from_static(b"retry: 1000\n: trellis observer events\n\n");
    let first = stream::iter([Ok::<_, Infallible>(Frame::data(hello))]);
    let rest = stream::unfold(subscription, |mut sub| async move {
        let chunk = tokio::select! {
            event = sub.next() => {
                let event = event?;
                format!("id: {}\ndata: {}\n\n", event.seq, json::event(&event))
            }
            () = tokio::time::sleep(Duration::from_secs(15)) => ": keep-alive\n\n".to_owned(),
        };
        Some((Ok(Frame::data(Bytes::from(chunk))), sub))
    });
    let body = StreamBody::new(futures_util::StreamExt::chain(first, rest));
    let mut response = Response::new(body.boxed());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    response
}
