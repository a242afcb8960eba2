//! No decoder of peer bytes allocates for a length it was only told about:
//! a header claiming gigabytes, with ten bytes of body behind it, costs
//! about what was received, never what was claimed. The allocations are
//! those of the test's own thread, counted by `allocation-counter` (whose
//! global allocator only this test binary links), so tests running beside
//! it do not blur the count.
//!
//! The decoders: the RESP parser of `examples/kvstore`, the length-prefixed
//! `Frames` of `examples/len_prefixed.rs`, and `FramedProtocol` over
//! `LengthDelimitedCodec` (which reserves room for a frame once its length is
//! checked against the codec's limit: bounded by that limit, not by the
//! header).

use bytes::BytesMut;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/len_prefixed.rs"]
mod len_prefixed;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/kvstore/resp.rs"]
mod resp;

#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

/// What a decoder may allocate for a short hostile input: error messages,
/// the frames' `Vec`s; far below every length claimed here (1 MiB and up).
const SMALL: usize = 4 * 1024;

/// The most bytes `f` held allocated at once (on this thread).
fn bytes_requested(f: impl FnOnce()) -> usize {
    let info = allocation_counter::measure(f);
    usize::try_from(info.bytes_max).unwrap_or(usize::MAX)
}

/// Inputs that claim far more than they bring: lengths at and past the
/// limits, with ten bytes of body or none.
const RESP_CLAIMS: &[&[u8]] = &[
    b"*1048576\r\n",
    b"*1048576\r\n$1\r\na\r\n",
    b"*1048577\r\n",
    b"*9223372036854775807\r\n",
    b"*1\r\n$536870912\r\n0123456789",
    b"*1\r\n$536870913\r\n0123456789",
    b"*1\r\n$1099511627776\r\n0123456789",
    b"*1\r\n$9223372036854775807\r\n0123456789",
    b"*2\r\n$3\r\nGET\r\n$-1\r\n",
];

#[test]
fn resp_parser_allocates_for_what_arrived_not_for_the_lengths_claimed() {
    let limits = resp::Limits::default();
    for &input in RESP_CLAIMS {
        let mut buf = BytesMut::from(input);
        let requested = bytes_requested(|| {
            let _ = resp::parse_request(&mut buf, &limits);
        });
        assert!(
            requested <= SMALL,
            "{requested} bytes allocated to parse {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn resp_parser_fed_byte_by_byte_never_allocates_for_a_claimed_count() {
    let limits = resp::Limits::default();
    let input = b"*1048576\r\n$3\r\nSET\r\n$1\r\nk\r\n";
    let mut buf = BytesMut::with_capacity(input.len());
    let requested = bytes_requested(|| {
        for &byte in input {
            buf.extend_from_slice(&[byte]);
            assert_eq!(resp::parse_request(&mut buf, &limits), Ok(None));
        }
    });
    assert!(requested <= SMALL, "{requested} bytes allocated");
}

#[test]
fn length_prefixed_frames_allocate_for_what_arrived_not_for_the_length_claimed() {
    let claims = [
        len_prefixed::MAX_PAYLOAD as u32,
        len_prefixed::MAX_PAYLOAD as u32 + 1,
        1 << 31,
        u32::MAX,
    ];
    for claim in claims {
        let mut frames = len_prefixed::Frames::default();
        frames.extend(&claim.to_le_bytes());
        frames.extend(b"0123456789");
        let requested = bytes_requested(|| {
            let _ = frames.next_payload();
        });
        assert!(
            requested <= SMALL,
            "{requested} bytes allocated for a claim of {claim}"
        );
    }
}

#[test]
fn framed_protocol_allocates_at_most_the_codecs_limit_whatever_the_length_claimed() {
    // The first call builds the shared transport; count only the decoding.
    let _ = checks::framed_feed([&b""[..]]);
    let claims = [checks::MAX_FRAME as u32 + 1, 1 << 31, u32::MAX];
    for claim in claims {
        let mut input = claim.to_be_bytes().to_vec();
        input.extend_from_slice(b"0123456789");
        let mut outcome = None;
        let requested = bytes_requested(|| outcome = Some(checks::framed_feed([&input[..]])));
        assert!(
            outcome.is_some_and(|o| o.failed),
            "a claim of {claim} is an error"
        );
        assert!(
            requested <= SMALL,
            "{requested} bytes allocated for a claim of {claim}"
        );
    }
    // A length within the codec's limit gets room reserved for the frame:
    // bounded by the limit.
    let mut input = (checks::MAX_FRAME as u32).to_be_bytes().to_vec();
    input.extend_from_slice(b"0123456789");
    let requested = bytes_requested(|| {
        let _ = checks::framed_feed([&input[..]]);
    });
    assert!(
        requested <= checks::MAX_FRAME + SMALL,
        "{requested} bytes allocated for a claim of {}",
        checks::MAX_FRAME
    );
}
