//! The properties every decoder of peer bytes must keep, written once and
//! run by both harnesses: the cargo-fuzz targets (`fuzz/fuzz_targets/`,
//! nightly, coverage-guided) and the stable harness that CI runs
//! (`tests/fuzz_decoders.rs`, proptest, a bounded number of cases).
//!
//! The decoders:
//!
//! - the kvstore example's RESP request parser
//!   (`examples/kvstore/resp.rs`, `parse_request`);
//! - the length-prefixed frame reassembler of the protocol layer's example
//!   server (`examples/len_prefixed.rs`, `Frames`);
//! - [`FramedProtocol`], the protocol layer's bridge from a byte stream to a
//!   `tokio_util` decoder, driving `LengthDelimitedCodec` (the codec a user
//!   of the protocol layer picks for length-prefixed frames).
//!
//! For any input, each check asserts that the decoder:
//!
//! 1. never panics;
//! 2. never loops without progress: a frame taken consumes bytes, so the
//!    work is bounded by the input (`FramedProtocol` loops inside
//!    `data_received`: there a step without progress hangs the harness);
//! 3. decodes the same frames, and fails or not the same way, whether the
//!    input arrives whole or one byte at a time (TCP may split anywhere).
//!
//! Allocations are checked apart, in `tests/fuzz_allocations.rs`, whose
//! binary counts the allocations of each test's thread.

use std::io;
use std::sync::OnceLock;

use bytes::BytesMut;
use tokio_util::codec::LengthDelimitedCodec;
use trellis::protocol::{
    FrameHandler, FrameWriter, FramedProtocol, Protocol, Transport, run_connection,
};
use trellis::testing::memory_pair;

use crate::len_prefixed::Frames;
use crate::resp::{self, Limits};

/// The largest frame the `LengthDelimitedCodec` under test accepts.
pub const MAX_FRAME: usize = 64 * 1024;

/// What one feed of bytes into a decoder produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The frames decoded, in order; each is a list of parts (a RESP
    /// request's arguments; one payload for the length-prefixed decoders).
    pub frames: Vec<Vec<Vec<u8>>>,
    /// Whether the decoder reported an error (after which a connection is
    /// closed and nothing more is fed).
    pub failed: bool,
    /// The bytes left buffered at the end, waiting for more (empty after a
    /// failure, and where the decoder does not show its buffer).
    pub rest: Vec<u8>,
}

/// Feeds `pieces`, in order, to the RESP parser, as a connection does:
/// append what arrived, take every complete request, stop at the first
/// error.
///
/// # Panics
///
/// If the parser panics, or takes a request without consuming bytes.
pub(crate) fn resp_feed<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    limits: &Limits,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut outcome = Outcome::default();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match resp::parse_request(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(
                        buf.len() < before,
                        "a request taken without consuming bytes"
                    );
                    outcome
                        .frames
                        .push(args.iter().map(|arg| arg.to_vec()).collect());
                }
                Ok(None) => break,
                Err(_) => {
                    outcome.failed = true;
                    return outcome;
                }
            }
        }
    }
    outcome.rest = buf.to_vec();
    outcome
}

/// Limits small enough that short inputs reach every limit check.
pub(crate) fn tight_resp_limits() -> Limits {
    Limits {
        max_bulk: 16,
        max_args: 8,
        max_inline: 64,
    }
}

/// The RESP parser's properties for `input`, with the default limits and
/// with [`tight_resp_limits`].
///
/// # Panics
///
/// If a property does not hold; the message says which.
pub fn resp(input: &[u8]) {
    for limits in [Limits::default(), tight_resp_limits()] {
        let whole = resp_feed([input], &limits);
        let bytewise = resp_feed(input.chunks(1), &limits);
        assert_eq!(
            whole, bytewise,
            "RESP: the input fed whole and byte by byte decode differently ({limits:?})"
        );
    }
}

/// Feeds `pieces` to the length-prefixed example's `Frames`, as its
/// server does.
///
/// # Panics
///
/// If `Frames` panics or takes a frame without consuming bytes.
pub fn frames_feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut frames = Frames::default();
    let mut buffered = 0;
    let mut outcome = Outcome::default();
    for piece in pieces {
        frames.extend(piece);
        buffered += piece.len();
        loop {
            match frames.next_payload() {
                Ok(Some(payload)) => {
                    let taken = 4 + payload.len();
                    assert!(taken <= buffered, "a frame longer than what was received");
                    buffered -= taken;
                    outcome.frames.push(vec![payload.to_vec()]);
                }
                Ok(None) => break,
                Err(_) => {
                    outcome.failed = true;
                    return outcome;
                }
            }
        }
    }
    // `Frames` does not show its buffer; what is left is counted above.
    outcome
}

/// The handler the [`FramedProtocol`] check runs: records the frames,
/// echoes each (so the encoder runs too), aborts on the first decode error
/// as the default handler does.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The frames received, in order.
    pub frames: Vec<Vec<u8>>,
    /// Whether the codec failed.
    pub failed: bool,
}

impl FrameHandler<LengthDelimitedCodec> for Recorder {
    fn frame_received(
        &mut self,
        frame: BytesMut,
        writer: &mut FrameWriter<'_, LengthDelimitedCodec>,
    ) {
        self.frames.push(frame.to_vec());
        let _ = writer.send(frame.freeze());
    }

    fn decode_failed(&mut self, _error: io::Error, transport: &Transport) {
        self.failed = true;
        transport.abort();
    }
}

/// A transport whose connection is already closed: writes to it are
/// discarded, which is all a decoder check needs.
fn closed_transport() -> Transport {
    static TRANSPORT: OnceLock<Transport> = OnceLock::new();
    TRANSPORT
        .get_or_init(|| {
            struct Capture(std::sync::mpsc::Sender<Transport>);
            impl Protocol for Capture {
                fn connection_made(&mut self, transport: Transport) {
                    let _ = self.0.send(transport);
                }
                fn data_received(&mut self, _data: &[u8]) {}
            }
            let (sender, receiver) = std::sync::mpsc::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime");
            let (ours, _theirs) = memory_pair(64);
            runtime.block_on(async {
                // One poll calls `connection_made`; dropping the connection
                // then closes it.
                let mut connection = std::pin::pin!(run_connection(Capture(sender), ours));
                std::future::poll_fn(|cx| {
                    let _ = connection.as_mut().poll(cx);
                    std::task::Poll::Ready(())
                })
                .await;
            });
            receiver.recv().expect("connection_made was called")
        })
        .clone()
}

/// A `LengthDelimitedCodec` limited to [`MAX_FRAME`].
pub fn length_delimited_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Feeds `pieces` to a [`FramedProtocol`] over `LengthDelimitedCodec`,
/// then end of file, as a connection does (nothing more after a decode
/// error: the handler aborted the connection).
///
/// # Panics
///
/// If the protocol, the codec or the handler panics.
pub fn framed_feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut protocol = FramedProtocol::new(length_delimited_codec(), Recorder::default());
    protocol.connection_made(closed_transport());
    for piece in pieces {
        if protocol.handler().failed {
            break;
        }
        protocol.data_received(piece);
    }
    if !protocol.handler().failed {
        protocol.eof_received();
    }
    let recorder = protocol.into_handler();
    Outcome {
        frames: recorder.frames.into_iter().map(|f| vec![f]).collect(),
        failed: recorder.failed,
        rest: Vec::new(),
    }
}

/// The length-prefixed decoders' properties for `input`: the example's
/// `Frames` (4-byte little-endian length) and [`FramedProtocol`] over
/// `LengthDelimitedCodec` (4-byte big-endian length).
///
/// # Panics
///
/// If a property does not hold; the message says which.
pub fn length_prefixed(input: &[u8]) {
    let whole = frames_feed([input]);
    let bytewise = frames_feed(input.chunks(1));
    assert_eq!(
        whole, bytewise,
        "Frames: the input fed whole and byte by byte decode differently"
    );
    let whole = framed_feed([input]);
    let bytewise = framed_feed(input.chunks(1));
    assert_eq!(
        whole, bytewise,
        "FramedProtocol: the input fed whole and byte by byte decode differently"
    );
}

/// Encodes a RESP request as clients send it: an array of bulk strings.
pub fn resp_encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Frames `payload` for `Frames`: 4-byte little-endian length, then the
/// bytes.
pub fn le_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Frames `payload` for `LengthDelimitedCodec`: 4-byte big-endian length,
/// then the bytes.
pub fn be_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}
