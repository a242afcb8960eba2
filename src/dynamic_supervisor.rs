//! Dynamic supervisors: supervisors that start with no children and get them
//! at run time (OTP's `DynamicSupervisor`, triotp's `dynamic_supervisor`).
//!
//! A dynamic supervisor is a supervisor (see [`crate::supervisor`]) with the
//! `OneForOne` strategy whose children come from [`start_child`]: one per
//! connection, per job, per session. It does not return when it has no
//! children; it runs until it is stopped (or its restart intensity trips).
//! Children that end and are not restarted are forgotten, so `which_children`
//! lists only live ones.
//!
//! A dynamic supervisor registers its name in the node's
//! [registry](crate::registry) while it runs, so it can be reached from
//! anywhere by that name — or by the [`Supervisor`] handle its start reports,
//! or by its pid: every function below takes any of them (a
//! [`SupervisorRef`]). The name is released when the supervisor ends, however
//! it ends; two dynamic supervisors cannot run under one name at once.
//!
//! | you call | we do |
//! |---|---|
//! | [`start(options, name, status)`](start) | register `name`, report a [`Supervisor`] handle at once |
//! | [`start_child(sup, spec)`](start_child) | start the child, wait for its handshake, return its key and started value |
//! | [`terminate_child(sup, id)`](terminate_child) | stop it by its shutdown policy and forget it |
//! | [`which_children(sup)`](which_children), [`count_children(sup)`](count_children) | a snapshot |
//! | [`registry::lookup::<Supervisor>(name)`](crate::registry::lookup) | its handle |
//!
//! `sup` is a `&Supervisor`, a `Supervisor`, a name (`"jobs"`) or a
//! [`Pid`](crate::process::Pid); a name or pid that leads to no running
//! supervisor gives [`SupervisorError::NoSuchSupervisor`].
//!
//! Its children's starts, normal exits and stops are logged at `DEBUG` (a
//! busy server starts one per connection); restarts, failures and intensity
//! trips at the levels of [`supervisor`](crate::supervisor#logging).
//!
//! | option | default |
//! |---|---|
//! | [`max_children`](Options::max_children) | unlimited |
//! | [`max_restarts`](Options::max_restarts) / [`max_seconds`](Options::max_seconds) | 3 in 5 s |
//! | [`backoff`](Options::backoff) | none |
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use trellis::dynamic_supervisor::{self, Options};
//! use trellis::supervisor::{ChildSpec, SupervisorError};
//! use trellis::TaskStatus;
//!
//! trellis::nursery(|n| async move {
//!     let sup = n
//!         .start(|status| dynamic_supervisor::start(Options::new().max_children(1), "jobs", status))
//!         .await?;
//!     let job = ChildSpec::new("job", |status: TaskStatus<&'static str>| async move {
//!         status.started("ready");
//!         trellis::wait_shutdown().await;
//!     });
//!     // By name, from anywhere…
//!     let started = dynamic_supervisor::start_child("jobs", job.clone()).await?;
//!     assert_eq!(started.downcast::<&str>().unwrap(), "ready");
//!     // …or by handle.
//!     assert!(matches!(
//!         dynamic_supervisor::start_child(&sup, job).await,
//!         Err(SupervisorError::MaxChildren { .. })
//!     ));
//!     assert_eq!(dynamic_supervisor::count_children("jobs")?.active, 1);
//!     sup.stop().await?;
//!     // The name went with it.
//!     assert!(matches!(
//!         dynamic_supervisor::count_children("jobs"),
//!         Err(SupervisorError::NoSuchSupervisor { .. })
//!     ));
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! })
//! .await
//! .unwrap();
//! # }
//! ```

use std::borrow::Cow;
use std::time::Duration;

use crate::nursery::TaskStatus;
use crate::supervisor::{
    self, Backoff, ChildCount, ChildId, ChildInfo, ChildSpec, StartedChild, Strategy, Supervisor,
    SupervisorError, SupervisorRef,
};

/// The options of a dynamic supervisor (see the [module table](self)).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Options {
    inner: supervisor::Options,
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most this many children at a time; [`start_child`] past it fails
    /// with [`SupervisorError::MaxChildren`].
    pub fn max_children(mut self, max: usize) -> Self {
        self.inner.max_children = Some(max);
        self
    }

    /// See [`supervisor::Options::max_restarts`].
    pub fn max_restarts(mut self, max_restarts: u32) -> Self {
        self.inner = self.inner.max_restarts(max_restarts);
        self
    }

    /// See [`supervisor::Options::max_seconds`].
    pub fn max_seconds(mut self, window: Duration) -> Self {
        self.inner = self.inner.max_seconds(window);
        self
    }

    /// See [`supervisor::Options::backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.inner = self.inner.backoff(backoff);
        self
    }
}

/// Runs a dynamic supervisor registered as `name`; reports its handle at
/// once.
///
/// The name is registered before the handle is reported and released when
/// the supervisor ends (returning, failing, panicking or cancelled).
///
/// # Errors
///
/// [`SupervisorError::NameTaken`] if `name` is registered already (reported
/// through the start handshake; nothing runs),
/// [`SupervisorError::IntensityExceeded`] if its children ended too often,
/// [`SupervisorError::InvalidOptions`] for a zero `max_seconds`.
///
/// # Cancel safety
///
/// As [`supervisor::start`].
pub async fn start(
    options: Options,
    name: impl Into<Cow<'static, str>>,
    status: TaskStatus<Supervisor>,
) -> Result<(), SupervisorError> {
    let options = options
        .inner
        .name(name)
        .strategy(Strategy::OneForOne)
        .register(true);
    supervisor::engine_run(Vec::new(), options, true, status).await
}

/// Starts a child under `supervisor` (a handle, a name or a pid; see
/// [`Supervisor::start_child`]).
///
/// # Errors
///
/// [`SupervisorError::NoSuchSupervisor`] for a name or pid that leads to no
/// running supervisor; otherwise as [`Supervisor::start_child`].
///
/// # Cancel safety
///
/// As [`Supervisor::start_child`].
pub async fn start_child(
    supervisor: impl Into<SupervisorRef>,
    spec: ChildSpec,
) -> Result<StartedChild, SupervisorError> {
    supervisor.into().resolve()?.start_child(spec).await
}

/// Stops a child and forgets it (see [`Supervisor::terminate_child`]).
///
/// # Errors
///
/// [`SupervisorError::NoSuchSupervisor`] for a name or pid that leads to no
/// running supervisor; otherwise as [`Supervisor::terminate_child`].
///
/// # Cancel safety
///
/// As [`Supervisor::terminate_child`].
pub async fn terminate_child(
    supervisor: impl Into<SupervisorRef>,
    id: ChildId,
) -> Result<(), SupervisorError> {
    supervisor.into().resolve()?.terminate_child(id).await
}

/// The live children, in start order (see [`Supervisor::which_children`]).
///
/// # Errors
///
/// [`SupervisorError::NoSuchSupervisor`] for a name or pid that leads to no
/// running supervisor. A handle always answers (with an ended supervisor's
/// last state).
pub fn which_children(
    supervisor: impl Into<SupervisorRef>,
) -> Result<Vec<ChildInfo>, SupervisorError> {
    Ok(supervisor.into().resolve()?.which_children())
}

/// Counts the children (see [`Supervisor::count_children`]).
///
/// # Errors
///
/// As [`which_children`].
pub fn count_children(supervisor: impl Into<SupervisorRef>) -> Result<ChildCount, SupervisorError> {
    Ok(supervisor.into().resolve()?.count_children())
}
