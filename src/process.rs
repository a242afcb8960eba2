//! Process identity and exit reasons: what every OTP module shares.
//!
//! In Trellis, as in Erlang, a *process* is a task with an identity: a
//! [`Pid`] that is cheap to copy, unique and never reused within a node. A
//! gen_server, a supervisor and any supervised function are processes. When a
//! process ends it ends with an [`ExitReason`], which monitors receive and
//! links act on, and which supervisors use to decide whether to restart.
//!
//! This is the lowest OTP module: mailbox addresses,
//! registry entries, gen_servers and supervisors all
//! build on it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The identifier of a process: cheap to copy, unique, never reused within a
/// node.
///
/// A `Pid` is node-qualified so that it can name a process on another node
/// once distribution arrives; today every pid is local (node `0`). Its
/// `Display` form follows Erlang's, `<node.id>`, e.g. `<0.42>`.
///
/// # Examples
///
/// ```
/// use trellis::process::Pid;
///
/// let a = Pid::new();
/// let b = Pid::new();
/// assert_ne!(a, b);
/// assert!(a.is_local());
/// assert_eq!(a.to_string(), format!("<0.{}>", a.id()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    node: u32,
    id: u64,
}

/// The last local process number handed out; 0 is never used.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Pid {
    /// Allocates a fresh local pid, never handed out before in this node.
    #[must_use]
    #[allow(clippy::new_without_default)] // a default pid would read as a constant
    pub fn new() -> Self {
        Pid {
            node: 0,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The process number within its node.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node index (`0` for the local node).
    pub fn node(&self) -> u32 {
        self.node
    }

    /// Whether the process lives on this node.
    pub fn is_local(&self) -> bool {
        self.node == 0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}>", self.node, self.id)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a process ended, as monitors, links and supervisors see it.
///
/// | reason | how it happens | abnormal? |
/// |---|---|---|
/// | [`Normal`](ExitReason::Normal) | the process returned successfully | no |
/// | [`Shutdown`](ExitReason::Shutdown) | it was asked to stop gracefully (a supervisor, a node) and did | no |
/// | [`Killed`](ExitReason::Killed) | it was cancelled or dropped without finishing (brutal kill, an outer cancel scope) | yes |
/// | [`Error`](ExitReason::Error) | it returned an error; carries the message | yes |
/// | [`Panic`](ExitReason::Panic) | it panicked; carries the panic message | yes |
///
/// An *abnormal* exit stops linked processes that do not trap exits and
/// makes a `Transient` child restart, as in OTP.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// The process finished its work.
    Normal,
    /// The process stopped because it was asked to.
    Shutdown,
    /// The process was cancelled before it finished.
    Killed,
    /// The process failed with an error; the message is its `Display` form.
    Error(Arc<str>),
    /// The process panicked; the payload's message.
    Panic(Arc<str>),
}

impl ExitReason {
    /// An [`Error`](ExitReason::Error) reason from any displayable error.
    pub fn error(error: impl fmt::Display) -> Self {
        ExitReason::Error(error.to_string().into())
    }

    /// Whether this exit counts as a failure (anything but `Normal` and
    /// `Shutdown`).
    ///
    /// ```
    /// use trellis::process::ExitReason;
    ///
    /// assert!(!ExitReason::Normal.is_abnormal());
    /// assert!(!ExitReason::Shutdown.is_abnormal());
    /// assert!(ExitReason::error("boom").is_abnormal());
    /// ```
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Error(message) => write!(f, "error: {message}"),
            ExitReason::Panic(message) => write!(f, "panic: {message}"),
        }
    }
}
