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
//!
//! 5. answers as a connection's reader does: [`frame::decode_as_reader`]
//!    checks and copies a message frame's payload for its receiver, which
//!    decodes it later; decoded from the copy, it gives the same message or
//!    the same error as the general path.
//!
//! For a connection's frames in order, [`connection`] asserts the same of
//! frames with a normal distribution header and its atom cache: each path
//! keeps its own cache, fed by the frames' headers; a reference to an empty
//! slot, a bad count or a truncated header is an error (after which the
//! connection would close: the rest is not decoded), never a panic; and
//! both paths answer the same, frame after frame. What it accepts can be
//! forwarded with the sending side of the cache.

use trellis::dist::Term;
use trellis::dist::frame::{self, AtomCache, FrameError, SendAtomCache};

/// The atom text a fuzzed frame's references may add (small, so that the
/// limit is reached).
pub const CACHE_LIMIT: usize = 64 * 1024;

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
    agree(&decoded, &general);
    agree(
        &frame::decode_as_reader(data, &mut AtomCache::default()),
        &general,
    );
    if let Ok(Some(message)) = decoded {
        forward(message);
    }
}

/// Checks the decoder's properties on `frames`, one connection's frames
/// (each after its length) in order, up to the first refused one.
pub fn connection(frames: &[&[u8]]) {
    let mut fast_cache = AtomCache::new(CACHE_LIMIT);
    let mut general_cache = AtomCache::new(CACHE_LIMIT);
    let mut reader_cache = AtomCache::new(CACHE_LIMIT);
    for data in frames {
        let decoded = frame::decode_with(data, &mut fast_cache);
        let general = frame::decode_general_with(data, &mut general_cache);
        agree(&decoded, &general);
        agree(&frame::decode_as_reader(data, &mut reader_cache), &general);
        match decoded {
            Ok(Some(message)) => forward(message),
            Ok(None) => {}
            // The connection closes.
            Err(_) => return,
        }
    }
}

/// The two paths answer the same.
fn agree(
    decoded: &Result<Option<frame::Message>, FrameError>,
    general: &Result<Option<frame::Message>, FrameError>,
) {
    match (decoded, general) {
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
}

/// A decoded message, encoded again (pass-through, and with the atom
/// cache), decodes again. Terms that cannot be encoded again (a float Rust
/// refuses) are refused by the encoders, not mangled.
fn forward(message: frame::Message) {
    if let Ok(bytes) = frame::encode(message.clone()) {
        let again = frame::decode(&bytes[4..]);
        assert!(
            matches!(again, Ok(Some(_))),
            "re-encoded frame refused: {again:?}"
        );
    }
    if let Ok(bytes) = frame::encode_cached(message, &mut SendAtomCache::new()) {
        let again = frame::decode_with(&bytes[4..], &mut AtomCache::new(usize::MAX));
        assert!(
            matches!(again, Ok(Some(_))),
            "re-encoded cached frame refused: {again:?}"
        );
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

/// Valid frames of one connection (each after its length): `payloads`
/// sent in turn, by `REG_SEND` to `name` and by `SEND`, with the atom cache.
pub fn valid_cached(payloads: &[Term], name: &str) -> Vec<Vec<u8>> {
    let mut cache = SendAtomCache::new();
    let from = trellis::dist::ErlPid::new("peer@host", 7, 0, 3);
    let to = trellis::dist::ErlPid::new("here@host", 9, 0, 4);
    let mut frames = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let payload = trellis::dist::wire_safe(payload.clone());
        let message = if i % 2 == 0 {
            frame::Message::reg_send(from.clone(), trellis::dist::Atom::from(name), payload)
        } else {
            frame::Message::send(to.clone(), payload)
        };
        let bytes = frame::encode_cached(message, &mut cache).expect("encodes");
        frames.push(bytes[4..].to_vec());
    }
    frames
}

/// Splits fuzzer bytes into a connection's frames: each a length byte, then
/// up to that many bytes.
pub fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let (frame, rest) = rest.split_at(usize::from(len).min(rest.len()));
        frames.push(frame);
        data = rest;
    }
    frames
}
