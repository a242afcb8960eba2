//! The fuzz properties of the Erlang distribution frame decoder
//! (`trellis::dist::frame`), on stable, for a bounded number of cases: the
//! properties of `fuzz/src/dist_checks.rs` (shared with the cargo-fuzz
//! target `dist_frame`) on random bytes, random bytes shaped like terms, and
//! valid frames mutated, single or as a connection's frames with the
//! distribution header's atom cache; hostile length fields and headers
//! refused without allocating for them; and the frame reader reading the
//! same frames whether the bytes arrive whole or one at a time.
//!
//! Each property runs `TRELLIS_FUZZ_CASES` cases (default 1024).

#![cfg(feature = "dist")]

use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use trellis::dist::frame::{self, FrameError, MAX_DEPTH};
use trellis::dist::{Term, ToTerm, atom, tuple};

#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/src/dist_checks.rs"]
mod dist_checks;

fn config() -> ProptestConfig {
    let cases = std::env::var("TRELLIS_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Terms of every kind a peer sends, nested a little.
fn terms() -> impl Strategy<Value = Term> {
    leaves().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(tuple),
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| v.to_term()),
            // Keys are leaves: `eetf` hashes a map by its iteration order,
            // so maps as keys of maps compare unequal when equal.
            prop::collection::vec((leaves(), inner), 0..4).prop_map(|kv| {
                Term::from(eetf::Map::from(
                    kv.into_iter().collect::<std::collections::HashMap<_, _>>(),
                ))
            }),
        ]
    })
}

/// Terms without parts.
fn leaves() -> impl Strategy<Value = Term> {
    prop_oneof![
        "[a-z_]{0,12}".prop_map(|a| atom(&a)),
        any::<i32>().prop_map(|i| i.to_term()),
        // `SMALL_INTEGER_EXT`, which `any::<i32>()` nearly never reaches.
        any::<u8>().prop_map(|i| i32::from(i).to_term()),
        any::<i64>().prop_map(|i| i.to_term()),
        any::<u64>().prop_map(|i| i.to_term()),
        (-1e9f64..1e9).prop_map(|f| f.to_term()),
        ".{0,16}".prop_map(|s| s.to_term()),
        any::<bool>().prop_map(|b| b.to_term()),
        (0u32..1000).prop_map(|n| trellis::dist::ErlPid::new("a@b", n, 0, 1).to_term()),
        (prop::collection::vec(any::<u32>(), 0..=5), any::<u32>()).prop_map(reference),
    ]
}

/// A reference of node `a@b` with `ids`.
fn reference((ids, creation): (Vec<u32>, u32)) -> Term {
    Term::from(trellis::dist::ErlRef {
        node: trellis::dist::Atom::from("a@b"),
        id: ids,
        creation,
    })
}

/// Byte sequences that have broken term decoders: huge counts for lists,
/// tuples, maps, binaries and bignums; deep nesting; the refused tags.
fn hostile_tokens() -> Vec<Vec<u8>> {
    let mut tokens = vec![
        vec![108, 0xff, 0xff, 0xff, 0xff],    // LIST of 4G elements
        vec![105, 0xff, 0xff, 0xff, 0xff],    // LARGE_TUPLE
        vec![116, 0x7f, 0xff, 0xff, 0xff],    // MAP
        vec![109, 0xff, 0xff, 0xff, 0xf0],    // BINARY
        vec![111, 0xff, 0xff, 0xff, 0xff, 0], // LARGE_BIG
        vec![77, 0xff, 0xff, 0xff, 0xff, 8],  // BIT_BINARY
        vec![90, 0xff, 0xff],                 // NEWER_REFERENCE, 65535 ids
        vec![80, 0, 0, 0, 16],                // compressed
        vec![112, 0, 0, 0, 0],                // NEW_FUN
        vec![82, 0],                          // ATOM_CACHE_REF
        vec![82, 0xff],                       // ATOM_CACHE_REF past any header
        vec![131, 68, 0xff],                  // a header of 255 references
        vec![131, 69, 0, 0],                  // a fragment header
        vec![131],
        vec![0xff; 8],
    ];
    tokens.push([104, 1].repeat(MAX_DEPTH + 4)); // nested 1-tuples
    tokens.push([108, 0, 0, 0, 1].repeat(MAX_DEPTH + 4)); // nested lists
    tokens
}

#[path = "common/mutations.rs"]
mod mutations;
use mutations::{apply, mutations};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic_the_frame_decoder(data in prop::collection::vec(any::<u8>(), 0..256)) {
        dist_checks::frame(&data);
    }

    #[test]
    fn random_terms_after_the_frame_and_version_tags_never_panic_it(
        data in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut framed = vec![112, 131];
        framed.extend(data);
        dist_checks::frame(&framed);
    }

    #[test]
    fn valid_frames_round_trip_and_mutated_ones_never_panic(
        payload in terms(),
        mutations in mutations(hostile_tokens()),
    ) {
        let valid = dist_checks::valid_send(payload.clone());
        let Ok(Some(frame::Message::Send(send))) = frame::decode(&valid) else {
            panic!("a valid frame is refused");
        };
        // A list of bytes travels as a string: the same term to Erlang.
        prop_assert_eq!(normal(send.message), normal(payload));
        dist_checks::frame(&apply(valid, &mutations));
    }

    #[test]
    fn valid_reg_send_frames_round_trip_and_mutated_ones_decode_as_the_general_path_does(
        payload in terms(),
        name in "[a-z_]{0,12}",
        mutations in mutations(hostile_tokens()),
    ) {
        let valid = dist_checks::valid_reg_send(payload.clone(), &name);
        let Ok(Some(frame::Message::RegSend(send))) = frame::decode(&valid) else {
            panic!("a valid frame is refused");
        };
        prop_assert_eq!(send.to_name.name, name);
        prop_assert_eq!(normal(send.message), normal(payload));
        dist_checks::frame(&valid);
        dist_checks::frame(&apply(valid, &mutations));
    }

    #[test]
    fn valid_send_sender_frames_round_trip_and_mutated_ones_decode_as_the_general_path_does(
        payload in terms(),
        mutations in mutations(hostile_tokens()),
    ) {
        let valid = dist_checks::valid_send_sender(payload.clone());
        let Ok(Some(frame::Message::SendSender(send))) = frame::decode(&valid) else {
            panic!("a valid frame is refused");
        };
        prop_assert_eq!(send.from_pid.id, 7);
        prop_assert_eq!(normal(send.message), normal(payload));
        dist_checks::frame(&valid);
        dist_checks::frame(&apply(valid, &mutations));
    }

    #[test]
    fn valid_monitor_frames_round_trip_and_mutated_ones_decode_as_the_general_path_does(
        ids in prop::collection::vec(any::<u32>(), 0..=5),
        by_name in any::<bool>(),
        demonitor in any::<bool>(),
        mutations in mutations(hostile_tokens()),
    ) {
        let from = trellis::dist::ErlPid::new("peer@host", 7, 0, 3);
        let to = if by_name {
            erl_dist::term::PidOrAtom::Atom(trellis::dist::Atom::from("server"))
        } else {
            erl_dist::term::PidOrAtom::Pid(trellis::dist::ErlPid::new("here@host", 9, 0, 4))
        };
        let Term::Reference(reference) = reference((ids, 5)) else { unreachable!() };
        let message = if demonitor {
            frame::Message::demonitor_p(from, to, *reference)
        } else {
            frame::Message::monitor_p(from, to, *reference)
        };
        let valid = frame::encode(message.clone()).unwrap()[4..].to_vec();
        prop_assert_eq!(frame::decode(&valid), Ok(Some(message.clone())));
        // With the atom cache, twice (the second time by reference).
        let mut sent = frame::SendAtomCache::new();
        let mut cache = frame::AtomCache::new(1 << 20);
        for _ in 0..2 {
            let cached = frame::encode_cached(message.clone(), &mut sent).unwrap()[4..].to_vec();
            prop_assert_eq!(frame::decode_with(&cached, &mut cache), Ok(Some(message.clone())));
        }
        dist_checks::frame(&valid);
        dist_checks::frame(&apply(valid, &mutations));
    }

    #[test]
    fn random_frames_after_a_distribution_header_never_panic_it(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 1..5),
    ) {
        let frames: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|data| [&[131, 68][..], &data].concat())
            .collect();
        let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        dist_checks::connection(&frames);
    }

    #[test]
    fn valid_cached_frames_round_trip_in_order_and_mutated_ones_decode_as_the_general_path_does(
        payloads in prop::collection::vec(terms(), 1..6),
        name in "[a-z_]{0,12}",
        which in any::<prop::sample::Index>(),
        mutations in mutations(hostile_tokens()),
    ) {
        let mut frames = dist_checks::valid_cached(&payloads, &name);
        let mut cache = frame::AtomCache::new(dist_checks::CACHE_LIMIT);
        for (data, payload) in frames.iter().zip(&payloads) {
            let message = match frame::decode_with(data, &mut cache) {
                Ok(Some(frame::Message::RegSend(send))) => {
                    prop_assert_eq!(&send.to_name.name, &name);
                    send.message
                }
                Ok(Some(frame::Message::Send(send))) => send.message,
                other => panic!("a valid cached frame is refused: {other:?}"),
            };
            prop_assert_eq!(normal(message), normal(payload.clone()));
        }
        dist_checks::connection(&frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let at = which.index(frames.len());
        frames[at] = apply(frames[at].clone(), &mutations);
        dist_checks::connection(&frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn the_frame_reader_reads_the_same_frames_whole_or_byte_by_byte(
        payloads in prop::collection::vec(terms(), 0..4),
        ticks in prop::collection::vec(any::<bool>(), 4),
    ) {
        let mut wire = Vec::new();
        for (payload, tick) in payloads.iter().zip(ticks) {
            if tick {
                wire.extend([0, 0, 0, 0]);
            }
            wire.extend(frame::encode(frame::Message::send(
                trellis::dist::ErlPid::new("a@b", 1, 0, 1),
                payload.clone(),
            )).unwrap());
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let whole = rt.block_on(read_all(&mut wire.as_slice()));
        let split = rt.block_on(read_all(&mut OneByte(&wire)));
        prop_assert_eq!(whole, split);
    }
}

/// `term` with strings (byte lists) written as the lists of integers they are.
fn normal(term: Term) -> Term {
    match term {
        Term::ByteList(l) => l
            .bytes
            .iter()
            .map(|&b| i32::from(b))
            .collect::<Vec<_>>()
            .to_term(),
        Term::List(l) => Term::from(eetf::List::from(
            l.elements.into_iter().map(normal).collect::<Vec<_>>(),
        )),
        Term::Tuple(t) => tuple(t.elements.into_iter().map(normal).collect()),
        Term::Map(m) => Term::from(eetf::Map::from(
            m.map
                .into_iter()
                .map(|(k, v)| (normal(k), normal(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        )),
        other => other,
    }
}

/// Every frame in `input`, until it ends.
async fn read_all(input: &mut (impl AsyncRead + Unpin)) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while frame::read(input, &mut buf, 1 << 20).await.is_ok() {
        frames.push(buf.clone());
    }
    frames
}

/// A reader that hands out one byte per read.
struct OneByte<'a>(&'a [u8]);

impl AsyncRead for OneByte<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some((&first, rest)) = self.0.split_first() {
            buf.put_slice(&[first]);
            self.0 = rest;
        }
        Poll::Ready(Ok(()))
    }
}

/// Found by the cargo-fuzz target: a bit binary claiming 112 bits in its
/// last byte made `eetf` subtract past zero and panic. Refused before it.
#[test]
fn a_bit_binary_with_a_bit_count_outside_one_to_eight_is_refused() {
    // SEND-less frame: pass-through, version, BIT_BINARY_EXT len 3, 112 bits.
    let crash = [112, 131, 77, 0, 0, 0, 3, 112, 131, 77, 112];
    assert_eq!(
        frame::decode(&crash),
        Err(FrameError::BitCount { bits: 112, at: 2 })
    );
    dist_checks::frame(&crash);
    for bits in [0, 9, 255] {
        let data = [112, 131, 77, 0, 0, 0, 1, bits, 0xff];
        assert!(
            matches!(frame::decode(&data), Err(FrameError::BitCount { .. })),
            "{bits}"
        );
    }
    // 1 to 8 bits pass the check (and fail later only as "not a control
    // message", a bare bit binary being none).
    for bits in 1..=8 {
        let data = [112, 131, 77, 0, 0, 0, 1, bits, 0xff];
        assert!(
            matches!(frame::decode(&data), Err(FrameError::Control { .. })),
            "{bits}: {:?}",
            frame::decode(&data)
        );
    }
}

#[test]
fn every_hostile_count_is_refused_as_a_length_error_not_allocated() {
    for token in hostile_tokens() {
        let mut data = vec![112, 131, 104, 2, 97, 2]; // {2, <token>}: a SEND's shape
        data.extend(&token);
        let error = frame::decode(&data).unwrap_err();
        assert!(dist_checks::is_refusal(&error), "{token:?}: {error}");
    }
    let mut deep = vec![112, 131];
    deep.extend([104, 1].repeat(MAX_DEPTH + 1));
    deep.push(106);
    assert_eq!(frame::decode(&deep), Err(FrameError::TooDeep));
}

#[tokio::test]
async fn a_frame_length_over_the_limit_is_refused_before_reading_it() {
    let mut input: &[u8] = &[0x10, 0, 0, 0, 112, 131];
    let mut buf = Vec::new();
    let error = frame::read(&mut input, &mut buf, 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(buf.capacity() < 1 << 20);
    // Under the limit but lying: only what arrived is held.
    let mut lying: &[u8] = &[0x00, 0xf0, 0, 0, 112, 131, 0, 0, 0, 0, 0, 0];
    let error = frame::read(&mut lying, &mut buf, 1 << 30)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(buf.capacity() <= 64 * 1024, "{}", buf.capacity());
}

/// The frames that carry messages take the one-pass path: a `REG_SEND` of
/// `{m, x}` costs one allocation per atom, pid node and tuple (the general
/// path also built the control tuple and read through `std::io::Read`).
#[test]
fn a_small_reg_send_decodes_with_one_allocation_per_part() {
    let valid = dist_checks::valid_reg_send(tuple(vec![atom("m"), atom("x")]), "sink1");
    let count = |decode: fn(&[u8]) -> Result<Option<frame::Message>, FrameError>| {
        allocation_counter::measure(|| {
            let message = decode(&valid);
            assert!(matches!(message, Ok(Some(frame::Message::RegSend(_)))));
        })
        .count_total
    };
    // The pid's node, the name, the payload tuple, `m`, `x`.
    assert_eq!(count(frame::decode), 5);
    assert!(count(frame::decode_general) > 5);
}

/// Nesting past the fast path's bound takes the general path, which still
/// decodes it (up to its own bound) or refuses it.
#[test]
fn deep_payloads_past_the_fast_bound_still_decode_or_are_refused() {
    let mut nested = atom("x");
    for _ in 0..100 {
        nested = tuple(vec![nested]);
    }
    let valid = dist_checks::valid_send(nested.clone());
    let Ok(Some(frame::Message::Send(send))) = frame::decode(&valid) else {
        panic!("a valid deep frame is refused");
    };
    assert_eq!(send.message, nested);
    dist_checks::frame(&valid);
}

/// Erlang's references carry at most 5 ids: a sixth is refused on both
/// paths (a message frame, whose payload the fast path would otherwise
/// take).
#[test]
fn a_reference_with_more_than_five_ids_is_refused() {
    let five = dist_checks::valid_send(reference((vec![1, 2, 3, 4, 5], 9)));
    // The payload is last: NEWER_REFERENCE (90), a 2-byte id count, then
    // the node, the creation and the ids; make the count 6 and add an id.
    let at = five.iter().rposition(|&b| b == 90).unwrap();
    assert_eq!(five[at + 1..at + 3], [0, 5]);
    let mut six = five.clone();
    six[at + 2] = 6;
    six.extend([0, 0, 0, 6]);
    assert!(matches!(frame::decode(&five), Ok(Some(_))));
    assert!(matches!(
        frame::decode(&six),
        Err(FrameError::Length { len: 6, .. })
    ));
    dist_checks::frame(&six);
}

/// A `SEND` frame with a normal distribution header: `131, 68`, then
/// `header` (the count, flags and references), the control term
/// `{2, {}, <pid of a@b>}` and `payload`, neither with a version byte.
fn send_with_header(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![131, 68];
    bytes.extend(header);
    bytes.extend([104, 3, 97, 2, 104, 0, 88, 119, 3, b'a', b'@', b'b']);
    bytes.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    bytes.extend(payload);
    bytes
}

/// Decodes `frames` in order on both paths, each with its own cache, and
/// returns what the fast one answered for the last.
fn decode_in_order(frames: &[Vec<u8>], limit: usize) -> Result<Option<frame::Message>, FrameError> {
    let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    dist_checks::connection(&slices);
    let mut cache = frame::AtomCache::new(limit);
    let mut last = Ok(None);
    for data in frames {
        last = frame::decode_with(data, &mut cache);
    }
    last
}

#[test]
fn a_header_stores_its_new_atoms_and_later_frames_name_them_by_slot() {
    // Reference 0: new, segment 2, slot 2 * 256 + 7, "hello".
    let first = send_with_header(&[1, 0x0a, 7, 5, b'h', b'e', b'l', b'l', b'o'], &[82, 0]);
    // Reference 0: cached, the same slot.
    let second = send_with_header(&[1, 0x02, 7], &[104, 2, 82, 0, 82, 0]);
    let message = decode_in_order(std::slice::from_ref(&first), 1024).unwrap();
    let Some(frame::Message::Send(send)) = message else {
        panic!("{message:?}")
    };
    assert_eq!(send.message, atom("hello"));
    let message = decode_in_order(&[first, second], 1024).unwrap();
    let Some(frame::Message::Send(send)) = message else {
        panic!("{message:?}")
    };
    assert_eq!(send.message, tuple(vec![atom("hello"), atom("hello")]));
}

#[test]
fn a_reference_to_an_empty_cache_slot_is_refused_on_both_paths() {
    let frame_bytes = send_with_header(&[1, 0x02, 7], &[82, 0]);
    assert_eq!(
        frame::decode(&frame_bytes),
        Err(FrameError::EmptyCacheSlot {
            slot: 2 * 256 + 7,
            at: 4
        })
    );
    assert_eq!(
        frame::decode(&frame_bytes),
        frame::decode_general(&frame_bytes)
    );
    dist_checks::frame(&frame_bytes);
}

#[test]
fn a_header_whose_counts_outrun_its_bytes_is_refused_as_truncated() {
    for header in [
        &[][..],                   // no count
        &[5, 0],                   // 5 references, 1 of 3 flag bytes
        &[2, 0x88, 0, 0, 9, b'a'], // a new entry of 9 bytes, 1 there
        &[1, 0x18, 0, 0],          // long atoms: a 2-byte length, cut
    ] {
        let data = [&[131, 68][..], header].concat();
        assert!(
            matches!(frame::decode(&data), Err(FrameError::Truncated { .. })),
            "{header:?}: {:?}",
            frame::decode(&data)
        );
        dist_checks::frame(&data);
    }
}

#[test]
fn a_term_reference_past_the_headers_count_is_refused() {
    let data = send_with_header(&[1, 0x08, 0, 1, b'x'], &[82, 1]);
    assert!(matches!(
        frame::decode(&data),
        Err(FrameError::CacheRef { index: 1, .. })
    ));
    // Without a header, a reference is refused as the unknown tag it is.
    let plain = [112, 131, 104, 3, 97, 2, 104, 0, 82, 0];
    assert!(matches!(
        frame::decode(&plain),
        Err(FrameError::Tag { tag: 82, .. })
    ));
    dist_checks::frame(&data);
}

#[test]
fn fragmented_frames_are_refused() {
    let data = [131, 69, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    assert_eq!(frame::decode(&data), Err(FrameError::Header { kind: 69 }));
    dist_checks::frame(&data);
}

#[test]
fn a_new_cache_entry_that_is_not_utf8_is_refused() {
    let data = send_with_header(&[1, 0x08, 0, 2, 0xc3, 0x28], &[82, 0]);
    assert_eq!(frame::decode(&data), Err(FrameError::AtomText { at: 6 }));
    dist_checks::frame(&data);
}

#[test]
fn references_that_would_expand_a_frame_past_the_cache_limit_are_refused() {
    // A 200-byte atom, then a list of 100 references to it: 20,000 bytes.
    let mut header = vec![1, 0x08, 0, 200];
    header.extend([b'a'; 200]);
    let mut payload = vec![108, 0, 0, 0, 100];
    payload.extend([82, 0].repeat(100));
    payload.push(106);
    let data = send_with_header(&header, &payload);
    assert!(matches!(
        decode_in_order(std::slice::from_ref(&data), 20_000 + 200),
        Ok(Some(frame::Message::Send(_)))
    ));
    assert_eq!(
        decode_in_order(&[data], 10_000),
        Err(FrameError::Expansion { limit: 10_000 })
    );
}

#[test]
fn the_sending_cache_sends_each_text_once_and_reuses_slots_past_its_size() {
    let mut sent = frame::SendAtomCache::new();
    let to = trellis::dist::ErlPid::new("a@b", 1, 0, 1);
    let encode = |sent: &mut frame::SendAtomCache, term: Term| {
        frame::encode_cached(frame::Message::send(to.clone(), term), sent).unwrap()[4..].to_vec()
    };
    let hello = tuple(vec![atom("hello_there"), atom("hello_there")]);
    let first = encode(&mut sent, hello.clone());
    let second = encode(&mut sent, hello.clone());
    let text = b"hello_there";
    assert_eq!(first.windows(text.len()).filter(|w| w == text).count(), 1);
    assert!(!second.windows(text.len()).any(|w| w == text));
    // 3,000 distinct atoms (2,048 slots), 300 in one message (a header
    // references at most 255), a 300-byte atom (two-byte lengths), then
    // the first atom again.
    let mut frames = vec![first, second];
    for b in 0..10 {
        let atoms: Vec<Term> = (0..300).map(|i| atom(&format!("a_{b}_{i}"))).collect();
        frames.push(encode(&mut sent, atoms.to_term()));
    }
    let long = atom(&"ő".repeat(150));
    frames.push(encode(&mut sent, tuple(vec![long.clone(), long.clone()])));
    frames.push(encode(&mut sent, hello.clone()));
    let mut cache = frame::AtomCache::new(1 << 20);
    let decoded: Vec<Term> = frames
        .iter()
        .map(|data| match frame::decode_with(data, &mut cache) {
            Ok(Some(frame::Message::Send(send))) => send.message,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(decoded[1], hello);
    for b in 0..10 {
        let atoms: Vec<Term> = (0..300).map(|i| atom(&format!("a_{b}_{i}"))).collect();
        assert_eq!(decoded[2 + b], atoms.to_term());
    }
    assert_eq!(decoded[12], tuple(vec![long.clone(), long]));
    assert_eq!(decoded[13], hello);
    decode_in_order(&frames, 1 << 20).unwrap();
}

/// A call's reply goes to the tag `[alias | Ref]`, an improper list: the
/// cached encoding writes it as `eetf` does.
#[test]
fn an_improper_list_payload_round_trips_with_the_atom_cache() {
    let tag = Term::from(eetf::ImproperList {
        elements: vec![atom("alias")],
        last: Box::new(reference((vec![1, 2, 3], 4))),
    });
    let reply = tuple(vec![tag, tuple(vec![atom("echo"), atom("x")])]);
    let from = trellis::dist::ErlPid::new("a@b", 1, 0, 1);
    let to = trellis::dist::ErlPid::new("c@d", 2, 0, 1);
    let message = frame::Message::send_sender(from, to, reply);
    let mut sent = frame::SendAtomCache::new();
    let mut cache = frame::AtomCache::new(1 << 20);
    let plain = frame::encode(message.clone()).unwrap();
    for round in 0..2 {
        let cached = frame::encode_cached(message.clone(), &mut sent).unwrap();
        // The second time without the atoms' texts.
        assert_eq!(round == 1, cached.len() < plain.len());
        assert_eq!(
            frame::decode_with(&cached[4..], &mut cache),
            Ok(Some(message.clone()))
        );
        dist_checks::frame(&cached[4..]);
    }
}

/// An atom too long for the external format (over 65,535 bytes) is refused
/// by the cached encoder, wherever it is, and leaves the cache as it was:
/// the connection's next frame still decodes.
#[test]
fn an_atom_too_long_to_encode_is_refused_and_leaves_the_send_cache_as_it_was() {
    let long = "a".repeat(70_000);
    let mut sent = frame::SendAtomCache::new();
    let mut cache = frame::AtomCache::new(1 << 20);
    let to = trellis::dist::ErlPid::new("a@b", 1, 0, 1);
    let first = frame::encode_cached(frame::Message::send(to.clone(), atom("x")), &mut sent);
    assert!(frame::decode_with(&first.unwrap()[4..], &mut cache).is_ok());
    let far = trellis::dist::ErlPid::new(long.as_str(), 1, 0, 1);
    for message in [
        frame::Message::send(to.clone(), tuple(vec![atom("y"), atom(&long)])),
        frame::Message::send(far.clone(), atom("y")),
        frame::Message::reg_send(
            to.clone(),
            trellis::dist::Atom::from(long.as_str()),
            atom("y"),
        ),
        frame::Message::send_sender(far, to.clone(), atom("y")),
    ] {
        assert!(matches!(
            frame::encode_cached(message, &mut sent),
            Err(FrameError::Control { .. })
        ));
    }
    let next = frame::encode_cached(frame::Message::send(to, atom("y")), &mut sent).unwrap();
    let Ok(Some(frame::Message::Send(send))) = frame::decode_with(&next[4..], &mut cache) else {
        panic!("the next frame is refused");
    };
    assert_eq!(send.message, atom("y"));
}

/// With the atom cache, a `REG_SEND` of `{m, x}` whose atoms are all cached
/// decodes with the same allocations as a pass-through one: one per atom,
/// pid node and tuple (the header's references need none once the
/// connection's cache has room for them).
#[test]
fn a_cached_small_reg_send_decodes_with_one_allocation_per_part() {
    let from = trellis::dist::ErlPid::new("peer@host", 7, 0, 3);
    let message = || {
        frame::Message::reg_send(
            from.clone(),
            trellis::dist::Atom::from("sink1"),
            tuple(vec![atom("m"), atom("x")]),
        )
    };
    let mut sent = frame::SendAtomCache::new();
    let first = frame::encode_cached(message(), &mut sent).unwrap();
    let second = frame::encode_cached(message(), &mut sent).unwrap();
    let mut cache = frame::AtomCache::new(1 << 20);
    assert!(frame::decode_with(&first[4..], &mut cache).is_ok());
    let count = allocation_counter::measure(|| {
        let decoded = frame::decode_with(&second[4..], &mut cache);
        assert!(matches!(decoded, Ok(Some(frame::Message::RegSend(_)))));
    })
    .count_total;
    // The pid's node, the name, the payload tuple, `m`, `x`.
    assert_eq!(count, 5);
}
