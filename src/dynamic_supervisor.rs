//! Dynamic supervisors: supervisors that start with no children and get them
//! at run time (OTP's `DynamicSupervisor`, triotp's `dynamic_supervisor`).
//!
//! A dynamic supervisor is a supervisor (see [`crate::supervisor`]) with the
//! `OneForOne` strategy whose children come from [`start_child`]: one per
//! connection, per job, per session. It does not return when it has no
//! children; it runs until it is stopped (or its restart intensity trips).
//! Children that end and are not restarted are forgotten, so `which_children`
//! lists only live ones; a child that [ignores its start](crate::supervisor::StartedChild::is_ignored)
//! is not kept either.
//!
//! A dynamic supervisor given a [name](DynamicSupervisorOptions::name)
//! registers it in the node's [registry](crate::registry) while it runs, so
//! it can be reached from anywhere by that name — or by the [`Supervisor`]
//! handle its start returns, or by its pid: every function below takes any
//! of them (any `impl Into<ProcessRef<Supervisor>>`). The name is released when the supervisor
//! ends, however it ends; two dynamic supervisors cannot run under one name
//! at once. An unnamed one (label `"dynamic_supervisor"` in logs) is reached
//! by handle or pid.
//!
//! | you call | we do |
//! |---|---|
//! | [`start(&n, options)`](start) | run the supervisor in nursery `n`, register its name (if any), return its [`Supervisor`] handle |
//! | [`serve(options, status)`](serve) | the same, in the current task, for [`Nursery::start`](crate::Nursery::start) or a [`ChildSpec`] |
//! | [`start_child(sup, spec)`](start_child) | start the child, wait for its handshake, return its key and started value (or that it [ignored](crate::supervisor::StartedChild::is_ignored) its start) |
//! | [`terminate_child(sup, id)`](terminate_child) | stop it by its shutdown policy and forget it |
//! | [`which_children(sup)`](which_children), [`count_children(sup)`](count_children) | a snapshot |
//! | [`registry::lookup::<Supervisor>(name)`](crate::registry::lookup) | its handle |
//!
//! `sup` is a `&Supervisor`, a `Supervisor`, a name (`"jobs"`) or a
//! [`Pid`](crate::process::Pid); a name or pid that leads to no running
//! supervisor gives [`SupervisorError::NoSuchSupervisor`].
//!
//! Its children's starts, normal exits and stops are logged at `DEBUG` (a
//! busy server starts one per connection); failures, restarts after them and
//! intensity trips at `ERROR`, with the fields of
//! [`supervisor`](crate::supervisor#logging).
//!
//! | option | default |
//! |---|---|
//! | [`name`](DynamicSupervisorOptions::name) | none: not registered, `"dynamic_supervisor"` in logs |
//! | [`max_children`](DynamicSupervisorOptions::max_children) | unlimited |
//! | [`max_restarts`](DynamicSupervisorOptions::max_restarts) / [`max_seconds`](DynamicSupervisorOptions::max_seconds) | 3 in 5 s |
//! | [`backoff`](DynamicSupervisorOptions::backoff) | none |
//!
//! Children's shutdowns default as in [`supervisor`](crate::supervisor#shutdown):
//! 5 s for workers, then a kill.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
//! use trellis::supervisor::{ChildSpec, SupervisorError};
//! use trellis::TaskStatus;
//!
//! trellis::nursery(|n| async move {
//!     let options = DynamicSupervisorOptions::new().name("jobs").max_children(1);
//!     let sup = dynamic_supervisor::start(&n, options).await?;
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
//!     Ok::<_, trellis::BoxError>(())
//! })
//! .await
//! .unwrap();
//! # }
//! ```

use std::borrow::Cow;
use std::time::Duration;

use crate::nursery::TaskStatus;
use crate::registry::ProcessRef;
use crate::supervisor::{
    self, Backoff, ChildCount, ChildId, ChildInfo, ChildSpec, StartedChild, Strategy, Supervisor,
    SupervisorError, SupervisorOptions,
};

/// The options of a dynamic supervisor (see the [module table](self)).
#[derive(Clone, Debug)]
#[must_use]
pub struct DynamicSupervisorOptions {
    inner: SupervisorOptions,
    named: bool,
}

impl Default for DynamicSupervisorOptions {
    fn default() -> Self {
        DynamicSupervisorOptions {
            inner: SupervisorOptions::new().name("dynamic_supervisor"),
            named: false,
        }
    }
}

impl DynamicSupervisorOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the supervisor and registers the name while it runs (see the
    /// [module docs](self)); [`start`] fails with
    /// [`SupervisorError::NameTaken`] if the name is taken.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.inner = self.inner.name(name);
        self.named = true;
        self
    }

    /// At most this many children at a time; [`start_child`] past it fails
    /// with [`SupervisorError::MaxChildren`].
    pub fn max_children(mut self, max: usize) -> Self {
        self.inner.max_children = Some(max);
        self
    }

    /// See [`SupervisorOptions::max_restarts`].
    pub fn max_restarts(mut self, max_restarts: u32) -> Self {
        self.inner = self.inner.max_restarts(max_restarts);
        self
    }

    /// See [`SupervisorOptions::max_seconds`].
    pub fn max_seconds(mut self, window: Duration) -> Self {
        self.inner = self.inner.max_seconds(window);
        self
    }

    /// See [`SupervisorOptions::backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.inner = self.inner.backoff(backoff);
        self
    }

    fn into_supervisor_options(self) -> SupervisorOptions {
        self.inner
            .strategy(Strategy::OneForOne)
            .register(self.named)
    }
}

/// Starts a dynamic supervisor as a task of `nursery` and returns its
/// handle (the [`gen_server::start`](crate::gen_server::start) of dynamic
/// supervisors).
///
/// A [name](DynamicSupervisorOptions::name) is registered before the
/// handle is returned and released when the supervisor ends (returning,
/// failing, panicking or cancelled).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
///
/// trellis::nursery(|n| async move {
///     let sup = dynamic_supervisor::start(&n, DynamicSupervisorOptions::new()).await?;
///     assert_eq!(sup.name(), "dynamic_supervisor");
///     assert!(sup.which_children().is_empty());
///     sup.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Errors
///
/// [`SupervisorError::NameTaken`] if the name is registered already
/// (nothing runs), [`SupervisorError::InvalidOptions`] for a zero
/// `max_seconds`, [`SupervisorError::NotRunning`] if the nursery is closed.
///
/// # Cancel safety
///
/// As [`supervisor::start`].
pub async fn start(
    nursery: &crate::Nursery,
    options: DynamicSupervisorOptions,
) -> Result<Supervisor, SupervisorError> {
    let options = options.into_supervisor_options();
    let name = options.name.clone();
    let spawn = crate::SpawnOptions::new().name(name.clone());
    nursery
        .start_with(spawn, move |status| {
            supervisor::engine_run(Vec::new(), options, true, status)
        })
        .await
        .map_err(|error| supervisor::start_error(error, &name))
}

/// Runs a dynamic supervisor in the current task and reports its handle
/// through `status` at once: the body of [`start`], for
/// [`Nursery::start`](crate::Nursery::start) or a
/// [`ChildSpec::new`] (triotp's `dynamic_supervisor.start(opts, name,
/// task_status)`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
/// use trellis::supervisor::{ChildSpec, Supervisor, SupervisorOptions};
/// use trellis::TaskStatus;
///
/// // A dynamic supervisor as the child of a static one.
/// let pool = ChildSpec::new("pool", |status: TaskStatus<Supervisor>| {
///     dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("serve-pool"), status)
/// });
/// trellis::nursery(|n| async move {
///     let top = trellis::supervisor::start(&n, vec![pool], SupervisorOptions::new()).await?;
///     assert_eq!(dynamic_supervisor::count_children("serve-pool")?.active, 0);
///     top.stop().await?;
///     Ok::<_, trellis::BoxError>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Errors
///
/// [`SupervisorError::NameTaken`] if the name is registered already
/// (reported through the start handshake; nothing runs),
/// [`SupervisorError::IntensityExceeded`] if its children ended too often,
/// [`SupervisorError::InvalidOptions`] for a zero `max_seconds`.
///
/// # Cancel safety
///
/// As [`supervisor::serve`].
pub async fn serve(
    options: DynamicSupervisorOptions,
    status: TaskStatus<Supervisor>,
) -> Result<(), SupervisorError> {
    supervisor::engine_run(Vec::new(), options.into_supervisor_options(), true, status).await
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
    supervisor: impl Into<ProcessRef<Supervisor>>,
    spec: ChildSpec,
) -> Result<StartedChild, SupervisorError> {
    supervisor::resolve(supervisor)?.start_child(spec).await
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
    supervisor: impl Into<ProcessRef<Supervisor>>,
    id: ChildId,
) -> Result<(), SupervisorError> {
    supervisor::resolve(supervisor)?.terminate_child(id).await
}

/// The live children, in start order (see [`Supervisor::which_children`]).
///
/// # Errors
///
/// [`SupervisorError::NoSuchSupervisor`] for a name or pid that leads to no
/// running supervisor. A handle always answers (with an ended supervisor's
/// last state).
pub fn which_children(
    supervisor: impl Into<ProcessRef<Supervisor>>,
) -> Result<Vec<ChildInfo>, SupervisorError> {
    Ok(supervisor::resolve(supervisor)?.which_children())
}

/// Counts the children (see [`Supervisor::count_children`]).
///
/// # Errors
///
/// As [`which_children`].
pub fn count_children(
    supervisor: impl Into<ProcessRef<Supervisor>>,
) -> Result<ChildCount, SupervisorError> {
    Ok(supervisor::resolve(supervisor)?.count_children())
}
