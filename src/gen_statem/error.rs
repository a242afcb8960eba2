//! [`GenStatemError`]: the ways a state machine's callbacks can break
//! gen_statem's rules. Talking to a statem fails with
//! [`GenServerError`](crate::gen_server::GenServerError), as it runs as a
//! gen_server.

/// A rule of gen_statem a callback broke; the machine crashes with it as
/// its exit reason ([`ExitReason::Error`](crate::process::ExitReason::Error)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenStatemError {
    /// A state enter call changed the state, postponed or inserted an
    /// event: none of which OTP allows there either.
    #[error("invalid state enter call: {what}")]
    #[doc(alias = "bad_state_enter_return")]
    InvalidStateEnter {
        /// What it did.
        what: &'static str,
    },
}
