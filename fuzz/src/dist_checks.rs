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
//! 4. answers as its general path does: [`frame::decode`] takes a one-pass
//!    decoder for the frames that carry messages and
//!    [`frame::decode_general`] never does; for the same bytes both give the
//!    same message or the same error. (Messages holding maps, and the
//!    wording of control errors, which print the term, are not compared:
//!    the fast path never builds a map, and `eetf` maps inside maps compare
//!    unequal when equal and print in hash order.)

use trellis::dist::Term;
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
    let general = frame::decode_general(data);
    match (&decoded, &general) {
        // A control error prints the term, and `eetf` prints a map in its
        // hash order, which differs from one decode to the next.
        (Err(FrameError::Control { .. }), Err(FrameError::Control { .. })) => {}
        (Err(fast), Err(general)) => assert_eq!(fast, general, "the two paths refuse differently"),
        (Ok(fast), Ok(general)) => {
            if !fast.as_ref().is_some_and(holds_map) {
                assert_eq!(fast, general, "the two paths decode differently");
            }
        }
        _ => panic!("one path accepts what the other refuses: {decoded:?} / {general:?}"),
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

/// Whether `message` may hold a map (any message but the five the fast
/// path decodes, or one of those whose payload holds a map).
fn holds_map(message: &frame::Message) -> bool {
    fn term_holds_map(term: &Term) -> bool {
        match term {
            Term::Map(_) => true,
            Term::Tuple(t) => t.elements.iter().any(term_holds_map),
            Term::List(l) => l.elements.iter().any(term_holds_map),
            Term::ImproperList(l) => {
                l.elements.iter().any(term_holds_map) || term_holds_map(&l.last)
            }
            _ => false,
        }
    }
    match message {
        frame::Message::Send(m) => term_holds_map(&m.message),
        frame::Message::RegSend(m) => term_holds_map(&m.message),
        frame::Message::SendSender(m) => term_holds_map(&m.message),
        frame::Message::MonitorP(_) | frame::Message::DemonitorP(_) => false,
        _ => true,
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

/// A valid `REG_SEND` frame's bytes (after the length): `payload` from a pid
/// to the name `name`.
pub fn valid_reg_send(payload: Term, name: &str) -> Vec<u8> {
    let from = trellis::dist::ErlPid::new("peer@host", 7, 0, 3);
    let payload = trellis::dist::wire_safe(payload);
    let message = frame::Message::reg_send(from, trellis::dist::Atom::from(name), payload);
    frame::encode(message).expect("encodes")[4..].to_vec()
}

/// A valid `SEND_SENDER` frame's bytes (after the length): `payload` from a
/// pid to a pid.
pub fn valid_send_sender(payload: Term) -> Vec<u8> {
    let from = trellis::dist::ErlPid::new("peer@host", 7, 0, 3);
    let to = trellis::dist::ErlPid::new("here@host", 9, 0, 4);
    let payload = trellis::dist::wire_safe(payload);
    let message = frame::Message::send_sender(from, to, payload);
    frame::encode(message).expect("encodes")[4..].to_vec()
}
