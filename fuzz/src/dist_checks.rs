//! The properties of the distribution frame decoder
//! (`trellis::dist::frame`), run by the cargo-fuzz target `dist_frame` and
//! the stable harness `tests/fuzz_dist.rs`.
//!
//! For any bytes, [`frame`] asserts that the decoder:
//!
//! 1. never panics (`check_terms` walks before anything is built, so a
//!    hostile count or nesting is refused rather than allocated or
//!    recursed into);
//! 2. agrees with its own pre-check: bytes `check_terms` refuses never
//!    decode;
//! 3. can forward what it accepts: a decoded message, encoded again,
//!    decodes again. (Not always to an equal value: `eetf` writes a list of
//!    small integers as a string, and hashes maps by iteration order; the
//!    stable harness checks equality on the terms it generates.)

use trellis::dist::frame::{self, FrameError};

/// Checks the decoder's properties on `data` (a frame's bytes after its
/// length).
pub fn frame(data: &[u8]) {
    let decoded = frame::decode(data);
    if let Some((&112, terms)) = data.split_first() {
        if frame::check_terms(terms, 1).is_err() {
            assert!(decoded.is_err(), "refused bytes decoded: {decoded:?}");
        }
    }
    if let Ok(Some(message)) = decoded {
        // Terms that cannot be encoded again (a float Rust refuses) are
        // refused by `encode`, not mangled.
        if let Ok(bytes) = frame::encode(message) {
            let again = frame::decode(&bytes[4..]);
            assert!(
                matches!(again, Ok(Some(_))),
                "re-encoded frame refused: {again:?}"
            );
        }
    }
}

/// A valid frame's bytes (after the length): a `SEND` of `payload` to a pid.
pub fn valid_send(payload: trellis::dist::Term) -> Vec<u8> {
    let to = trellis::dist::ErlPid::new("peer@host", 7, 0, 3);
    let payload = trellis::dist::wire_safe(payload);
    let bytes = frame::encode(frame::Message::send(to, payload)).expect("encodes");
    bytes[4..].to_vec()
}

/// Keeps `FrameError` in the public surface this module checks against.
pub fn is_refusal(error: &FrameError) -> bool {
    !matches!(error, FrameError::Control { .. })
}
