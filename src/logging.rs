//! Logging: triotp's `LogLevel` and log formats, on `tracing`.
//!
//! Trellis logs through `tracing` events and spans (supervisors log every
//! start, restart, failure and intensity trip with the supervisor and child
//! ids; nurseries name their tasks' spans). This module only chooses how they
//! are printed: [`init`] installs a `tracing-subscriber` formatter for the
//! whole process at a [`LogLevel`] in a [`LogFormat`].
//! [`node::run`](crate::node::run) calls it for you; a program that installs
//! its own subscriber needs nothing from here.
//!
//! | triotp | Trellis |
//! |---|---|
//! | `LogLevel.DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, `NONE` | [`LogLevel`] (`Trace` added; `Critical` is `Error`) |
//! | `getLogger(name)` | `tracing::info!(target: "name", …)` or a span |
//!
//! # Examples
//!
//! ```
//! use trellis::logging::{self, LogFormat, LogLevel};
//!
//! assert_eq!("compact".parse::<LogFormat>().unwrap(), LogFormat::Compact);
//! assert_eq!("warn".parse::<LogLevel>().unwrap(), LogLevel::Warn);
//! // Installs a global subscriber (once per process).
//! let _ = logging::init(LogLevel::Info, LogFormat::Text);
//! ```

use std::fmt;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How much to log; each level includes the ones above it.
///
/// Default: `Info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogLevel {
    /// Everything, including per-task spans.
    Trace,
    /// Supervisor internals (backoff, stops).
    Debug,
    /// Starts, restarts, stops.
    #[default]
    Info,
    /// Child failures.
    #[doc(alias = "Warning")]
    Warn,
    /// Intensity trips, failed starts.
    #[doc(alias = "Critical")]
    Error,
    /// Nothing.
    None,
}

impl LogLevel {
    /// The `tracing` filter for this level.
    pub fn to_filter(self) -> LevelFilter {
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::None => LevelFilter::OFF,
        }
    }
}

/// How log lines look. Default: `Text`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// `tracing-subscriber`'s full human-readable format.
    #[default]
    Text,
    /// One short line per event.
    Compact,
    /// One JSON object per line.
    Json,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// A level or format name that does not exist.
    #[error("unknown log {kind} {value:?}")]
    Unknown {
        /// `"level"` or `"format"`.
        kind: &'static str,
        /// The name given.
        value: String,
    },
    /// A global subscriber was already installed in this process.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

impl FromStr for LogLevel {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, LoggingError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "critical" => LogLevel::Error,
            "none" | "off" => LogLevel::None,
            _ => {
                return Err(LoggingError::Unknown {
                    kind: "level",
                    value: s.to_owned(),
                });
            }
        })
    }
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, LoggingError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "text" | "full" => LogFormat::Text,
            "compact" => LogFormat::Compact,
            "json" => LogFormat::Json,
            _ => {
                return Err(LoggingError::Unknown {
                    kind: "format",
                    value: s.to_owned(),
                });
            }
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_filter(), f)
    }
}

/// Installs a process-wide `tracing` subscriber that prints events at
/// `level` and above in `format` to standard error.
///
/// A `RUST_LOG` environment variable, when set, takes precedence over
/// `level` (the usual `EnvFilter` directives).
///
/// # Errors
///
/// [`LoggingError::AlreadyInstalled`] if a global subscriber exists.
pub fn init(level: LogLevel, format: LogFormat) -> Result<(), LoggingError> {
    let filter = EnvFilter::builder()
        .with_default_directive(level.to_filter().into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Compact => builder.compact().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadyInstalled)
}
