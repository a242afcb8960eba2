//! The fuzz properties of every decoder of peer bytes, on stable, for a
//! bounded number of cases: the RESP parser of `examples/kvstore`, the
//! length-prefixed `Frames` of `examples/len_prefixed.rs`, and
//! `FramedProtocol` over `LengthDelimitedCodec`. The properties are those of
//! `fuzz/src/checks.rs` (shared with the cargo-fuzz targets): no panic, no
//! step without progress, and the same frames whether the bytes arrive whole
//! or split. Inputs: random bytes, random bytes from the protocol's
//! alphabet, valid frames mutated (truncated, bytes flipped, hostile
//! headers inserted, ranges deleted or repeated), and the corpus of
//! `fuzz/corpus/<target>/`.
//!
//! Each property runs `TRELLIS_FUZZ_CASES` cases (default 1024); a long
//! campaign: `TRELLIS_FUZZ_CASES=1000000 cargo test --release --test
//! fuzz_decoders`. Allocation limits are checked in
//! `tests/fuzz_allocations.rs`.

use std::path::PathBuf;

use proptest::prelude::*;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/len_prefixed.rs"]
mod len_prefixed;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/kvstore/resp.rs"]
mod resp;

#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

/// Cases per property: `TRELLIS_FUZZ_CASES`, or 1024.
fn config() -> ProptestConfig {
    let cases = std::env::var("TRELLIS_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024);
    ProptestConfig {
        cases,
        // A failing case is printed, shrunk; the corpus keeps it for good.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[path = "common/mutations.rs"]
mod mutations;
use mutations::{apply, mutations};

/// Headers and bytes that have broken parsers: lengths past every limit,
/// negative lengths, null arrays, deep nesting, lone CR or LF, quotes.
fn resp_tokens() -> Vec<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = [
        &b"$9223372036854775807\r\n"[..],
        b"$-9223372036854775808\r\n",
        b"$18446744073709551616\r\n",
        b"$1099511627776\r\n",
        b"$536870913\r\n",
        b"$-1\r\n",
        b"$-2\r\n",
        b"$+5\r\n",
        b"$ 5\r\n",
        b"$0005\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*1048577\r\n",
        b"*1048576\r\n",
        b"*9223372036854775807\r\n",
        b"*99999999999999999999\r\n",
        b"*\r\n",
        b"$\r\n",
        b"\r",
        b"\n",
        b"\r\n",
        b"\r\r\n",
        b"\"",
        b"'",
        b"\\",
        b"\\x4",
        b"\\xZZ",
        b"\" \"",
        b"\x00",
        b"\xff",
        b"+OK\r\n",
        b":1\r\n",
    ]
    .iter()
    .map(|t| t.to_vec())
    .collect();
    tokens.push(b"*1\r\n".repeat(64));
    tokens.push(format!("*{}\r\n", "0".repeat(40)).into_bytes());
    tokens.push(format!("${}1\r\n", "0".repeat(40)).into_bytes());
    tokens
}

/// Length prefixes that have broken decoders: past every limit, at the
/// limits, zero, and every byte `0xff`; both byte orders.
fn length_tokens() -> Vec<Vec<u8>> {
    let lengths = [
        0u32,
        1,
        u32::MAX,
        1 << 31,
        (1 << 31) - 1,
        checks::MAX_FRAME as u32,
        checks::MAX_FRAME as u32 + 1,
        len_prefixed::MAX_PAYLOAD as u32,
        len_prefixed::MAX_PAYLOAD as u32 + 1,
    ];
    let mut tokens = Vec::new();
    for n in lengths {
        tokens.push(n.to_le_bytes().to_vec());
        tokens.push(n.to_be_bytes().to_vec());
    }
    tokens.push(vec![0xff; 8]);
    tokens
}

fn resp_alphabet() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"*$\r\n-+0123456789 \"'\\xaAzZ".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..256)
}

/// Requests as arrays of bulk strings: up to 4 requests of up to 4
/// arguments of up to 24 bytes.
fn resp_requests() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let arg = prop::collection::vec(any::<u8>(), 0..24);
    prop::collection::vec(prop::collection::vec(arg, 1..5), 1..5)
}

/// Inline commands: words of letters and digits, some quoted.
fn resp_inline() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        "[a-zA-Z0-9]{1,8}".prop_map(String::into_bytes),
        "[a-z ]{0,8}".prop_map(|w| format!("\"{w}\"").into_bytes()),
        "[a-z ]{0,8}".prop_map(|w| format!("'{w}'").into_bytes()),
    ];
    prop::collection::vec(word, 1..5).prop_map(|words| {
        let mut line = words.join(&b' ');
        line.extend_from_slice(b"\r\n");
        line
    })
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6)
}

fn wire(requests: &[Vec<Vec<u8>>]) -> Vec<u8> {
    requests
        .iter()
        .flat_map(|r| checks::resp_encode(r))
        .collect()
}

/// Every split of `input` in two, fed by `feed`, decodes as the whole.
fn assert_every_split_decodes_as_whole(
    input: &[u8],
    feed: impl Fn(&[&[u8]]) -> checks::Outcome,
) -> checks::Outcome {
    let whole = feed(&[input]);
    for cut in 0..=input.len() {
        let (head, tail) = input.split_at(cut);
        assert_eq!(feed(&[head, tail]), whole, "split at byte {cut}");
    }
    whole
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn resp_random_bytes_keep_the_properties(input in prop::collection::vec(any::<u8>(), 0..256)) {
        checks::resp(&input);
    }

    #[test]
    fn resp_bytes_of_its_alphabet_keep_the_properties(input in resp_alphabet()) {
        checks::resp(&input);
    }

    #[test]
    fn resp_mutated_requests_keep_the_properties(
        requests in resp_requests(),
        inline in resp_inline(),
        mutations in mutations(resp_tokens()),
    ) {
        let mut input = wire(&requests);
        input.extend_from_slice(&inline);
        checks::resp(&apply(input, &mutations));
    }

    #[test]
    fn resp_valid_requests_split_at_every_byte_decode_as_whole(
        requests in resp_requests(),
        inline in resp_inline(),
    ) {
        let mut input = wire(&requests);
        input.extend_from_slice(&inline);
        let limits = resp::Limits::default();
        let whole = assert_every_split_decodes_as_whole(&input, |pieces| {
            checks::resp_feed(pieces.iter().copied(), &limits)
        });
        prop_assert!(!whole.failed);
        prop_assert_eq!(&whole.frames[..requests.len()], &requests[..]);
        prop_assert_eq!(whole.frames.len(), requests.len() + 1);
        prop_assert!(whole.rest.is_empty());
    }

    #[test]
    fn length_prefixed_random_bytes_keep_the_properties(input in prop::collection::vec(any::<u8>(), 0..256)) {
        checks::length_prefixed(&input);
    }

    #[test]
    fn length_prefixed_mutated_frames_keep_the_properties(
        payloads in payloads(),
        mutations in mutations(length_tokens()),
    ) {
        let le: Vec<u8> = payloads.iter().flat_map(|p| checks::le_frame(p)).collect();
        checks::length_prefixed(&apply(le, &mutations));
        let be: Vec<u8> = payloads.iter().flat_map(|p| checks::be_frame(p)).collect();
        checks::length_prefixed(&apply(be, &mutations));
    }

    #[test]
    fn length_prefixed_valid_frames_split_at_every_byte_decode_as_whole(payloads in payloads()) {
        let expected: Vec<Vec<Vec<u8>>> = payloads.iter().map(|p| vec![p.clone()]).collect();
        let le: Vec<u8> = payloads.iter().flat_map(|p| checks::le_frame(p)).collect();
        let whole = assert_every_split_decodes_as_whole(&le, |pieces| {
            checks::frames_feed(pieces.iter().copied())
        });
        prop_assert!(!whole.failed);
        prop_assert_eq!(&whole.frames, &expected);
        let be: Vec<u8> = payloads.iter().flat_map(|p| checks::be_frame(p)).collect();
        let whole = assert_every_split_decodes_as_whole(&be, |pieces| {
            checks::framed_feed(pieces.iter().copied())
        });
        prop_assert!(!whole.failed);
        prop_assert_eq!(&whole.frames, &expected);
    }
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a corpus file");
            (path, bytes)
        })
        .collect()
}

#[test]
fn resp_corpus_of_malformed_requests_keeps_the_properties() {
    let corpus = corpus("resp");
    assert!(
        corpus.len() >= 24,
        "the RESP corpus has {} files",
        corpus.len()
    );
    for (path, input) in corpus {
        let outcome = std::panic::catch_unwind(|| checks::resp(&input));
        assert!(outcome.is_ok(), "corpus file {}", path.display());
    }
}

#[test]
fn length_prefixed_corpus_of_malformed_frames_keeps_the_properties() {
    let corpus = corpus("length_prefixed");
    assert!(
        corpus.len() >= 16,
        "the length-prefixed corpus has {} files",
        corpus.len()
    );
    for (path, input) in corpus {
        let outcome = std::panic::catch_unwind(|| checks::length_prefixed(&input));
        assert!(outcome.is_ok(), "corpus file {}", path.display());
    }
}
