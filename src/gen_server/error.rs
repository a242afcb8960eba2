//! [`GenServerError`]: what went wrong talking to, or starting, a
//! gen_server.

use std::sync::Arc;
use std::time::Duration;

use crate::mailbox::MailboxError;
use crate::process::{ExitReason, Pid};
use crate::registry::RegistryError;

/// What went wrong talking to a gen_server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenServerError {
    /// The server has exited, or stopped before answering.
    #[error("gen_server {pid} exited ({reason})")]
    #[doc(alias = "GenServerExited")]
    Exited {
        /// The server.
        pid: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
    /// The server dropped the reply handle without answering.
    #[error("gen_server {pid} dropped the reply without answering")]
    NoReply {
        /// The server.
        pid: Pid,
    },
    /// No answer within the call's timeout.
    #[error("call to gen_server {pid} timed out after {timeout:?}")]
    Timeout {
        /// The server.
        pid: Pid,
        /// The call's timeout.
        timeout: Duration,
    },
    /// Nothing is registered under the name.
    #[error("no gen_server is registered as {name:?}")]
    NameNotFound {
        /// The name.
        name: Arc<str>,
    },
    /// No live process has the pid.
    #[error("gen_server {pid} does not exist")]
    ProcessNotFound {
        /// The pid.
        pid: Pid,
    },
    /// The name or pid belongs to something that is not this kind of
    /// server.
    #[error("{subject} is not a {expected}")]
    WrongType {
        /// The name or pid used.
        subject: Arc<str>,
        /// The handle type asked for.
        expected: &'static str,
    },
    /// Starting: the name is taken.
    #[error("name {name:?} is already registered")]
    NameAlreadyExists {
        /// The name.
        name: Arc<str>,
    },
    /// Starting: `init` returned an error, panicked or returned
    /// [`Init::Stop`](super::Init::Stop); the server ended with `reason`.
    #[error("gen_server init failed ({reason})")]
    InitFailed {
        /// Why: the error (kept as a value), the panic, or `Init::Stop`'s
        /// reason.
        reason: ExitReason,
    },
    /// Starting: `init` returned [`Init::Ignore`](super::Init::Ignore) (OTP's `ignore`); the
    /// server ended normally without serving.
    #[error("gen_server init returned ignore")]
    Ignored,
    /// Starting: the server could not be started (its nursery is closed or
    /// cancelled).
    #[error("gen_server not started: {message}")]
    NotStarted {
        /// What the nursery said.
        message: Arc<str>,
    },
    /// The server called, stopped or waited for itself (from `init`, a
    /// handler or `terminate`), which could only hang: OTP's `calling_self`.
    /// Use [`Context::stop`](super::Context::stop) to stop from inside, or answer directly.
    #[error("gen_server {pid} called itself")]
    #[doc(alias = "calling_self")]
    CallingSelf {
        /// The server.
        pid: Pid,
    },
    /// A bounded mailbox is full ([`Server::try_cast`](super::Server::try_cast) only).
    #[error("gen_server {pid}'s mailbox is full")]
    Full {
        /// The server.
        pid: Pid,
    },
}

impl From<RegistryError> for GenServerError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::NameAlreadyExists { name } => GenServerError::NameAlreadyExists { name },
            RegistryError::NameNotFound { name } => GenServerError::NameNotFound { name },
            RegistryError::ProcessNotFound { pid } => GenServerError::ProcessNotFound { pid },
            RegistryError::WrongType { subject, expected } => {
                GenServerError::WrongType { subject, expected }
            }
        }
    }
}

impl GenServerError {
    pub(super) fn from_send(error: MailboxError, pid: Pid) -> Self {
        match error {
            MailboxError::Exited { pid, reason } => GenServerError::Exited { pid, reason },
            MailboxError::Full { pid } => GenServerError::Full { pid },
            _ => GenServerError::ProcessNotFound { pid },
        }
    }
}
