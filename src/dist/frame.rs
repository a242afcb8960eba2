//! The checked decoder of distribution frames: what a peer's bytes must pass
//! before they become a [`Message`].
//!
//! A frame on a distribution connection is a 4-byte big-endian length, then
//! that many bytes: none (a tick), or the pass-through tag `112` followed by
//! a control term and, for the messages that carry one, a payload term, each
//! in the external term format (version byte `131`). Between nodes that both
//! advertise `DIST_HDR_ATOM_CACHE` (OTP nodes and Trellis nodes do), a
//! normal distribution header (`131, 68`) takes the place of the tag: it
//! carries the connection's atom cache ([`AtomCache`] receiving,
//! [`SendAtomCache`] sending), the terms after it lack their version
//! bytes, and atoms in them may be references to the cache
//! ([`decode_with`], [`encode_cached`]).
//!
//! The term decoder underneath (`eetf`) trusts length fields: a list header
//! claiming four billion elements makes it reserve memory for them, and a
//! deeply nested term recurses without bound. [`check_terms`] therefore walks
//! the bytes first, without building anything, and refuses any count that
//! the remaining bytes cannot hold, nesting deeper than [`MAX_DEPTH`], and
//! the encodings a Trellis node does not accept (compressed terms, funs,
//! atom cache references outside a header's frame). Only bytes that pass
//! are decoded, so a malformed frame costs at most its own size (plus, with
//! a header, the atom text its references add, which the cache's limit
//! bounds) and closes its connection only.
//!
//! The frames that carry messages (`SEND`, `REG_SEND`, `SEND_SENDER` with
//! payloads of integers, atoms, binaries, strings, tuples, lists, pids and
//! references) and a call's `MONITOR_P` and `DEMONITOR_P` take a faster
//! path first: one pass over the bytes, straight into the
//! message, with the same bounds (every count checked against the bytes
//! left, nesting limited); what it does not know, malformed bytes included,
//! goes the general way ([`decode_general`]), so both answer the same.

use bytes::BytesMut;
use erl_dist::term::PidOrAtom;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::header;
pub use super::header::{AtomCache, SendAtomCache};

pub use erl_dist::message::Message;

/// How deep terms may nest (lists, tuples, maps inside each other).
pub const MAX_DEPTH: usize = 512;

/// The pass-through tag that starts every non-tick frame without a header.
pub(crate) const PASS_THROUGH: u8 = 112;

/// The version byte that starts every term.
const VERSION: u8 = 131;

/// Why a frame was refused.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{FrameError, decode};
///
/// assert!(matches!(decode(&[1, 2, 3]), Err(FrameError::NotPassThrough { tag: 1 })));
/// assert!(matches!(decode(&[]), Ok(None)));
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame starts with neither the pass-through tag `112` nor a
    /// distribution header (`131`).
    #[error("frame tag {tag} is not pass-through (112)")]
    NotPassThrough {
        /// The tag found.
        tag: u8,
    },
    /// The bytes end inside a term.
    #[error("term truncated at byte {at}")]
    Truncated {
        /// Where the bytes ran out.
        at: usize,
    },
    /// A term does not start with the version byte `131`.
    #[error("term at byte {at} lacks the version byte")]
    NoVersion {
        /// Where the term starts.
        at: usize,
    },
    /// A tag this decoder does not accept (unknown, compressed, a fun, an
    /// atom cache reference in a frame without a header).
    #[error("term tag {tag} at byte {at} is not accepted")]
    Tag {
        /// The tag.
        tag: u8,
        /// Where it is.
        at: usize,
    },
    /// A count larger than the bytes left could hold.
    #[error("length {len} at byte {at} exceeds the frame")]
    Length {
        /// The claimed count.
        len: u64,
        /// Where it is.
        at: usize,
    },
    /// A bit binary whose last byte claims a bit count outside 1 to 8.
    #[error("bit binary at byte {at} uses {bits} bits of its last byte")]
    BitCount {
        /// The claimed bit count.
        bits: u8,
        /// Where the bit binary is.
        at: usize,
    },
    /// Terms nest deeper than [`MAX_DEPTH`].
    #[error("terms nest deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes are left after the terms.
    #[error("{left} bytes left after the terms")]
    Trailing {
        /// How many.
        left: usize,
    },
    /// A frame starts with the version byte but not the normal
    /// distribution header (`68`); fragmented frames (`69`) among them.
    #[error("distribution header kind {kind} is not accepted")]
    Header {
        /// The byte after the version byte.
        kind: u8,
    },
    /// An atom cache reference names an index the frame's header did not
    /// make.
    #[error("atom cache reference {index} at byte {at} is not in the header")]
    CacheRef {
        /// The index.
        index: u8,
        /// Where the reference is.
        at: usize,
    },
    /// A header refers to an atom cache slot that no earlier header filled.
    #[error("atom cache slot {slot} at byte {at} is empty")]
    EmptyCacheSlot {
        /// The slot (segment × 256 + index in the segment).
        slot: u16,
        /// Where the reference is.
        at: usize,
    },
    /// A header's new atom is not UTF-8.
    #[error("atom text at byte {at} is not UTF-8")]
    AtomText {
        /// Where the text starts.
        at: usize,
    },
    /// The frame's atom cache references add more atom text than the
    /// cache's limit (see [`AtomCache`]).
    #[error("cached atoms expand the frame past {limit} bytes")]
    Expansion {
        /// The limit.
        limit: usize,
    },
    /// The terms are well-formed but not a control message this node knows.
    #[error("not a control message: {reason}")]
    Control {
        /// What the protocol decoder said.
        reason: String,
    },
}

/// Decodes one frame's bytes (after its length): `Ok(None)` for a tick, the
/// control message otherwise.
///
/// Takes pass-through frames and frames with a normal distribution header;
/// the latter with an empty [`AtomCache`], so references to atoms cached
/// by earlier frames are refused: a connection's frames go through
/// [`decode_with`] and the connection's cache.
///
/// Never panics and never allocates more than a small multiple of
/// `bytes.len()`, whatever the bytes.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{Message, decode, encode};
/// use trellis::dist::{ErlPid, atom};
///
/// let to = ErlPid::new("a@host", 1, 0, 7);
/// let frame = encode(Message::send(to.clone(), atom("hi"))).unwrap();
/// // `encode` includes the 4-byte length; `decode` takes what follows it.
/// let Some(Message::Send(send)) = decode(&frame[4..]).unwrap() else { panic!() };
/// assert_eq!(send.to_pid, to);
/// ```
///
/// # Errors
///
/// [`FrameError`] for anything but a well-formed tick or control message.
pub fn decode(bytes: &[u8]) -> Result<Option<Message>, FrameError> {
    decode_with(bytes, &mut AtomCache::default())
}

/// Decodes one frame's bytes (after its length) of a connection whose
/// atoms the peer caches in `cache`: `Ok(None)` for a tick, the control
/// message otherwise.
///
/// A frame with a normal distribution header (`131, 68`) stores the
/// header's new atoms in `cache` and may name them and earlier ones by
/// reference; a pass-through frame (`112`) leaves `cache` as it is. The
/// frames that carry messages (`SEND`, `REG_SEND`, `SEND_SENDER` with
/// payloads of integers, atoms, binaries, strings, tuples, lists, pids and
/// references) and a call's `MONITOR_P` and `DEMONITOR_P` are decoded in
/// one pass; everything else, and anything that path does not know, takes
/// the general path ([`decode_general_with`]), which answers the same.
///
/// Never panics; allocates at most a small multiple of `bytes.len()` plus
/// the atom text its references add, which `cache`'s limit bounds.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{AtomCache, Message, SendAtomCache, decode_with, encode_cached};
/// use trellis::dist::{ErlPid, atom};
///
/// let (mut sent, mut received) = (SendAtomCache::new(), AtomCache::new(1 << 20));
/// let to = ErlPid::new("a@host", 1, 0, 7);
/// for _ in 0..2 {
///     // The first frame carries the atom's text, the second its slot.
///     let frame = encode_cached(Message::send(to.clone(), atom("hello")), &mut sent).unwrap();
///     let Some(Message::Send(send)) = decode_with(&frame[4..], &mut received).unwrap() else {
///         panic!()
///     };
///     assert_eq!(send.message, atom("hello"));
/// }
/// assert_eq!(received.len(), 2); // the node's name and `hello`
/// ```
///
/// # Errors
///
/// [`FrameError`] for anything but a well-formed tick or control message;
/// [`FrameError::EmptyCacheSlot`] for a reference to a slot no earlier
/// frame filled.
pub fn decode_with(bytes: &[u8], cache: &mut AtomCache) -> Result<Option<Message>, FrameError> {
    decode_frame(bytes, cache, true)
}

/// Decodes one frame's bytes as [`decode`] does, but always by the general
/// path: [`check_terms`], then `eetf`'s decoder.
///
/// [`decode`] first tries a one-pass decoder for the frames that carry
/// messages (`SEND`, `REG_SEND`, `SEND_SENDER` with payloads of integers,
/// atoms, binaries, strings, tuples, lists, pids and references) and for
/// `MONITOR_P` / `DEMONITOR_P`, and falls back to this
/// path for everything else; both answer the same for the same bytes (the
/// fuzz harnesses check it), this one more slowly. It is public so that they
/// can.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{Message, decode, decode_general, encode};
/// use trellis::dist::{ErlPid, atom, tuple};
///
/// let to = ErlPid::new("a@host", 1, 0, 7);
/// let frame = encode(Message::send(to, tuple(vec![atom("m"), atom("x")]))).unwrap();
/// assert_eq!(decode_general(&frame[4..]), decode(&frame[4..]));
/// assert!(decode_general(&frame[4..frame.len() - 1]).is_err());
/// ```
///
/// # Errors
///
/// As [`decode`].
pub fn decode_general(bytes: &[u8]) -> Result<Option<Message>, FrameError> {
    decode_general_with(bytes, &mut AtomCache::default())
}

/// Decodes one frame's bytes as [`decode_with`] does, but always by the
/// general path: a header's references are written out as atoms, then
/// [`check_terms`] and `eetf`'s decoder.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{AtomCache, Message, SendAtomCache, decode_general_with, decode_with, encode_cached};
/// use trellis::dist::{ErlPid, atom, tuple};
///
/// let mut sent = SendAtomCache::new();
/// let (mut fast, mut general) = (AtomCache::new(1 << 20), AtomCache::new(1 << 20));
/// let to = ErlPid::new("a@host", 1, 0, 7);
/// for _ in 0..2 {
///     let message = Message::send(to.clone(), tuple(vec![atom("m"), atom("x")]));
///     let frame = encode_cached(message, &mut sent).unwrap();
///     assert_eq!(decode_general_with(&frame[4..], &mut general), decode_with(&frame[4..], &mut fast));
/// }
/// ```
///
/// # Errors
///
/// As [`decode_with`].
pub fn decode_general_with(
    bytes: &[u8],
    cache: &mut AtomCache,
) -> Result<Option<Message>, FrameError> {
    decode_frame(bytes, cache, false)
}

/// The decoders above: the one-pass decoder first if `fast`.
fn decode_frame(
    bytes: &[u8],
    cache: &mut AtomCache,
    fast: bool,
) -> Result<Option<Message>, FrameError> {
    let how = if fast { Path::Fast } else { Path::General };
    Ok(match decode_any(bytes, cache, how)? {
        Some(Decoded::Message(message)) => Some(message),
        // Only `Path::Deliver` makes deliveries.
        Some(Decoded::Delivery(_)) | None => None,
    })
}

/// A frame as the connection's reader takes it.
pub(crate) enum Decoded {
    Message(Message),
    /// A message for a local mailbox, its payload left for the receiver
    /// to decode.
    Delivery(super::hot::Delivery),
}

/// How [`decode_any`] reads a frame.
enum Path<'a> {
    General,
    Fast,
    /// As `Fast`, but a message frame's payload is checked and copied
    /// into the arena, not decoded, if its target is one the function
    /// accepts.
    Deliver(&'a mut BytesMut, &'a dyn Fn(&PidOrAtom) -> bool),
}

/// Decodes one frame's bytes as [`decode_with`] does, except that a
/// `SEND`, `REG_SEND` or `SEND_SENDER` the one-pass decoder reads, to a
/// target `raw_for` accepts, comes out as a [`Decoded::Delivery`] whose
/// payload is copied to `arena`, for the receiving process to decode. The
/// same frames are accepted and refused.
pub(crate) fn decode_for_reader(
    bytes: &[u8],
    cache: &mut AtomCache,
    arena: &mut BytesMut,
    raw_for: &dyn Fn(&PidOrAtom) -> bool,
) -> Result<Option<Decoded>, FrameError> {
    decode_any(bytes, cache, Path::Deliver(arena, raw_for))
}

/// [`decode_with`] as a connection's reader decodes: a message frame's
/// payload checked and copied for its receiver, then decoded from the copy.
/// For the fuzz harnesses, which check that it answers as
/// [`decode_general_with`] does; not part of the API.
///
/// # Errors
///
/// As [`decode_with`]; a copy that does not decode (a bug) is a
/// [`FrameError::Control`].
#[doc(hidden)]
pub fn decode_as_reader(
    bytes: &[u8],
    cache: &mut AtomCache,
) -> Result<Option<Message>, FrameError> {
    match decode_for_reader(bytes, cache, &mut BytesMut::new(), &|_| true)? {
        None => Ok(None),
        Some(Decoded::Message(message)) => Ok(Some(message)),
        Some(Decoded::Delivery(delivery)) => {
            delivery
                .into_message()
                .map(Some)
                .ok_or_else(|| FrameError::Control {
                    reason: "the reader's copy of a payload does not decode".into(),
                })
        }
    }
}

fn decode_any(
    bytes: &[u8],
    cache: &mut AtomCache,
    how: Path<'_>,
) -> Result<Option<Decoded>, FrameError> {
    match bytes {
        [] => Ok(None),
        [PASS_THROUGH, terms @ ..] => {
            if let Some(decoded) = decode_fast(terms, None, how) {
                return Ok(Some(decoded));
            }
            decode_pass_through(terms).map(|m| m.map(Decoded::Message))
        }
        [header::VERSION, header::NORMAL, rest @ ..] => {
            let used = header::read(rest, 2, cache)?;
            let terms = &rest[used..];
            let resolved = header::Resolved { cache };
            if let Some(decoded) = decode_fast(terms, Some(resolved), how) {
                return Ok(Some(decoded));
            }
            let written = header::to_pass_through(terms, 2 + used, resolved)?;
            decode_pass_through(&written[1..]).map(|m| m.map(Decoded::Message))
        }
        [header::VERSION, kind, ..] => Err(FrameError::Header { kind: *kind }),
        [tag, ..] => Err(FrameError::NotPassThrough { tag: *tag }),
    }
}

/// The one-pass paths, if `how` takes them and they read the frame.
fn decode_fast(
    terms: &[u8],
    cached: Option<header::Resolved<'_>>,
    how: Path<'_>,
) -> Option<Decoded> {
    match how {
        Path::General => None,
        Path::Fast => super::hot::decode(terms, cached).map(Decoded::Message),
        Path::Deliver(arena, raw_for) => super::hot::delivery(terms, cached, arena, raw_for)
            .map(Decoded::Delivery)
            .or_else(|| super::hot::decode(terms, cached).map(Decoded::Message)),
    }
}

/// The general path for a pass-through frame's terms.
fn decode_pass_through(terms: &[u8]) -> Result<Option<Message>, FrameError> {
    check_terms(terms, 1)?;
    let mut reader = terms;
    let message = Message::read_from(&mut reader).map_err(|e| FrameError::Control {
        reason: e.to_string(),
    })?;
    if !reader.is_empty() {
        return Err(FrameError::Trailing { left: reader.len() });
    }
    Ok(Some(message))
}

/// Reads one frame from `read` into `buf` (cleared first): its 4-byte
/// length, then that many bytes; an empty `buf` is a tick.
///
/// `buf` grows only as bytes arrive, so a length field that lies costs
/// nothing; a length over `max_frame` is refused before anything is read.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use trellis::dist::frame::read;
///
/// let mut buf = Vec::new();
/// let mut input: &[u8] = &[0, 0, 0, 2, 112, 131, 0, 0, 0, 0];
/// read(&mut input, &mut buf, 1024).await.unwrap();
/// assert_eq!(buf, [112, 131]);
/// read(&mut input, &mut buf, 1024).await.unwrap();
/// assert!(buf.is_empty()); // a tick
/// let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff, 112];
/// assert!(read(&mut huge, &mut buf, 1024).await.is_err());
/// # });
/// ```
///
/// # Errors
///
/// [`std::io::ErrorKind::InvalidData`] for a length over `max_frame`,
/// [`std::io::ErrorKind::UnexpectedEof`] if the bytes end inside the frame,
/// and the reader's own errors.
///
/// # Cancel safety
///
/// Not cancel safe: dropped midway, the stream is left inside a frame.
pub async fn read<R: AsyncRead + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
    max_frame: usize,
) -> std::io::Result<()> {
    let len = read.read_u32().await? as usize;
    buf.clear();
    if len == 0 {
        return Ok(());
    }
    if len > max_frame {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max_frame}"),
        ));
    }
    buf.reserve(len.min(64 * 1024));
    let got = (&mut *read).take(len as u64).read_to_end(buf).await?;
    if got < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Encodes `message` as a whole frame, its 4-byte length included.
///
/// # Errors
///
/// [`FrameError::Control`] if the message holds a term that cannot be
/// encoded (a float that is not finite, for one).
pub fn encode(message: Message) -> Result<Vec<u8>, FrameError> {
    // Room for a typical control message and small payload up front: grown
    // from a handful of bytes, the buffer was reallocated several times per
    // frame.
    let mut out = Vec::with_capacity(256);
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Encodes `message` as a whole frame with a normal distribution header,
/// its 4-byte length included, its atoms as references to `cache`, which
/// this updates: what a connection whose peer advertised
/// `DIST_HDR_ATOM_CACHE` sends.
///
/// The frames of one connection must be written in the order they were
/// encoded, all with the same `cache`: each may name atoms an earlier one
/// put in the peer's cache. On an error nothing changes.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{AtomCache, Message, SendAtomCache, decode_with, encode_cached};
/// use trellis::dist::{ErlPid, atom, tuple};
///
/// let (mut sent, mut received) = (SendAtomCache::new(), AtomCache::new(1 << 20));
/// let to = ErlPid::new("a@host", 1, 0, 7);
/// let message = tuple(vec![atom("m"), atom("x")]);
/// let frame = encode_cached(Message::send(to, message.clone()), &mut sent).unwrap();
/// assert_eq!(&frame[4..6], [131, 68]); // the normal distribution header
/// let Some(Message::Send(send)) = decode_with(&frame[4..], &mut received).unwrap() else {
///     panic!()
/// };
/// assert_eq!(send.message, message);
/// ```
///
/// # Errors
///
/// [`FrameError::Control`] if the message holds a term that cannot be
/// encoded, [`FrameError::Length`] for a frame over 4 GiB.
pub fn encode_cached(message: Message, cache: &mut SendAtomCache) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(256);
    header::encode_into(message, &mut out, Some(cache))?;
    Ok(out)
}

/// Appends `message` as a whole frame to `out` (as [`encode`]); on an error
/// `out` is left as it was.
pub(crate) fn encode_into(message: Message, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    if matches!(message, Message::Tick) {
        out.extend_from_slice(&[0, 0, 0, 0]);
        return Ok(());
    }
    out.extend_from_slice(&[0, 0, 0, 0, PASS_THROUGH]);
    if let Err(e) = message.write_into(&mut *out) {
        out.truncate(start);
        return Err(FrameError::Control {
            reason: e.to_string(),
        });
    }
    let Ok(len) = u32::try_from(out.len() - start - 4) else {
        let len = (out.len() - start) as u64;
        out.truncate(start);
        return Err(FrameError::Length { len, at: 0 });
    };
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Checks that `bytes` holds one or two whole terms (each with its version
/// byte) and nothing else, that every count fits in the bytes left, that
/// nesting stays within [`MAX_DEPTH`], and that only accepted tags occur.
/// `offset` is where `bytes` starts in the frame, for error positions.
///
/// # Errors
///
/// The [`FrameError`] of the first problem found.
pub fn check_terms(bytes: &[u8], offset: usize) -> Result<(), FrameError> {
    Cursor::new(bytes, offset).terms(true).map(|_| ())
}

/// Where a [`Cursor`] found an atom or an atom cache reference.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Span {
    /// An atom written out: its tag at `at`, its text from `text` to `end`.
    Atom { at: usize, text: usize, end: usize },
    /// `ATOM_CACHE_REF` at `at` (two bytes), naming header reference
    /// `index`.
    Ref { at: usize, index: u8 },
}

/// A checked walk over terms that builds nothing.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    offset: usize,
    /// How many atom cache references the frame's header made: `None`
    /// refuses the tag (pass-through frames), `Some(n)` accepts indices
    /// below `n`.
    pub(crate) refs: Option<usize>,
    /// Where the atoms and references are, in order, when wanted.
    pub(crate) spans: Option<Vec<Span>>,
    /// Accept `NEW_FUN_EXT` as opaque bytes (our own encoder's output; the
    /// decoder refuses funs).
    pub(crate) funs: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], offset: usize) -> Self {
        Cursor {
            bytes,
            at: 0,
            offset,
            refs: None,
            spans: None,
            funs: false,
        }
    }

    /// Walks a control term and an optional payload term, each after a
    /// version byte if `versioned`, to the end of the bytes; returns where
    /// the control term ends (the payload's version byte, or its first
    /// byte if not `versioned`).
    pub(crate) fn terms(&mut self, versioned: bool) -> Result<usize, FrameError> {
        let mut control_end = 0;
        for index in 0..2 {
            if index == 1 && self.at == self.bytes.len() {
                break;
            }
            let start = self.at;
            if versioned && self.u8()? != VERSION {
                return Err(FrameError::NoVersion {
                    at: self.offset + start,
                });
            }
            self.term()?;
            if index == 0 {
                control_end = self.at;
            }
        }
        if self.at != self.bytes.len() {
            return Err(FrameError::Trailing {
                left: self.bytes.len() - self.at,
            });
        }
        Ok(control_end)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn truncated(&self) -> FrameError {
        FrameError::Truncated {
            at: self.offset + self.bytes.len(),
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), FrameError> {
        if n > self.left() as u64 {
            return Err(self.truncated());
        }
        self.at += n as usize;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        let byte = *self.bytes.get(self.at).ok_or_else(|| self.truncated())?;
        self.at += 1;
        Ok(byte)
    }

    fn u16(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from(self.u8()?) << 8 | u64::from(self.u8()?))
    }

    fn u32(&mut self) -> Result<u64, FrameError> {
        Ok(self.u16()? << 16 | self.u16()?)
    }

    /// A count of items, each at least `min` bytes long, that must fit.
    fn count(&mut self, len: u64, min: u64) -> Result<u64, FrameError> {
        let at = self.offset + self.at;
        if len.saturating_mul(min) > self.left() as u64 {
            return Err(FrameError::Length { len, at });
        }
        Ok(len)
    }

    /// An atom (the node of a pid, port or reference).
    fn atom(&mut self) -> Result<(), FrameError> {
        let start = self.at;
        let at = self.offset + start;
        let tag = self.u8()?;
        let len = match tag {
            100 | 118 => self.u16()?,
            115 | 119 => u64::from(self.u8()?),
            super::header::ATOM_CACHE_REF if self.refs.is_some() => {
                let index = self.u8()?;
                if usize::from(index) >= self.refs.unwrap_or(0) {
                    return Err(FrameError::CacheRef { index, at });
                }
                if let Some(spans) = &mut self.spans {
                    spans.push(Span::Ref { at: start, index });
                }
                return Ok(());
            }
            _ => return Err(FrameError::Tag { tag, at }),
        };
        let text = self.at;
        self.skip(len)?;
        if let Some(spans) = &mut self.spans {
            spans.push(Span::Atom {
                at: start,
                text,
                end: self.at,
            });
        }
        Ok(())
    }

    /// One whole term, nested terms included, without recursion: `pending`
    /// holds, per open level, how many terms it still needs.
    fn term(&mut self) -> Result<(), FrameError> {
        let mut pending: Vec<u64> = vec![1];
        while let Some(top) = pending.last_mut() {
            if *top == 0 {
                pending.pop();
                continue;
            }
            *top -= 1;
            let at = self.offset + self.at;
            let tag = self.u8()?;
            let children = match tag {
                // SMALL_INTEGER, INTEGER, FLOAT (old), NEW_FLOAT
                97 => self.skip(1).map(|()| 0)?,
                98 => self.skip(4).map(|()| 0)?,
                99 => self.skip(31).map(|()| 0)?,
                70 => self.skip(8).map(|()| 0)?,
                // atoms, atom cache references
                100 | 118 | 115 | 119 | super::header::ATOM_CACHE_REF => {
                    self.at -= 1;
                    self.atom()?;
                    0
                }
                // NIL
                106 => 0,
                // STRING (bytes), BINARY, BIT_BINARY
                107 => {
                    let len = self.u16()?;
                    self.skip(len)?;
                    0
                }
                109 => {
                    let len = self.u32()?;
                    self.skip(len)?;
                    0
                }
                77 => {
                    let len = self.u32()?;
                    let bits = self.u8()?;
                    // Erlang's own rule, and `eetf` shifts by `8 - bits`
                    // (a fuzzed frame with 112 bits made it panic).
                    if len > 0 && !(1..=8).contains(&bits) {
                        return Err(FrameError::BitCount { bits, at });
                    }
                    self.skip(len)?;
                    0
                }
                // SMALL_BIG, LARGE_BIG
                110 => {
                    let n = u64::from(self.u8()?);
                    self.skip(1 + n)?;
                    0
                }
                111 => {
                    let n = self.u32()?;
                    self.skip(1 + n)?;
                    0
                }
                // PID, NEW_PID
                103 => {
                    self.atom()?;
                    self.skip(9)?;
                    0
                }
                88 => {
                    self.atom()?;
                    self.skip(12)?;
                    0
                }
                // PORT, NEW_PORT, V4_PORT
                102 => {
                    self.atom()?;
                    self.skip(5)?;
                    0
                }
                89 => {
                    self.atom()?;
                    self.skip(8)?;
                    0
                }
                120 => {
                    self.atom()?;
                    self.skip(12)?;
                    0
                }
                // REFERENCE, NEW_REFERENCE, NEWER_REFERENCE
                101 => {
                    self.atom()?;
                    self.skip(5)?;
                    0
                }
                114 | 90 => {
                    let ids = self.u16()?;
                    if ids > 5 {
                        return Err(FrameError::Length { len: ids, at });
                    }
                    self.atom()?;
                    self.skip(if tag == 114 { 1 } else { 4 })?;
                    self.skip(ids * 4)?;
                    0
                }
                // EXPORT: module, function (atoms), arity (small integer)
                113 => {
                    self.atom()?;
                    self.atom()?;
                    let at = self.offset + self.at;
                    let arity = self.u8()?;
                    if arity != 97 {
                        return Err(FrameError::Tag { tag: arity, at });
                    }
                    self.skip(1)?;
                    0
                }
                // SMALL_TUPLE, LARGE_TUPLE, LIST (elements + tail), MAP
                104 => {
                    let n = u64::from(self.u8()?);
                    self.count(n, 1)?
                }
                105 => {
                    let n = self.u32()?;
                    self.count(n, 1)?
                }
                108 => {
                    let n = self.u32()?;
                    self.count(n, 1)? + 1
                }
                116 => {
                    let n = self.u32()?;
                    self.count(n, 2)? * 2
                }
                // NEW_FUN_EXT: its size counts itself and all it holds.
                PASS_THROUGH if self.funs => {
                    let size = self.u32()?;
                    if size < 4 {
                        return Err(FrameError::Length { len: size, at });
                    }
                    self.skip(size - 4)?;
                    0
                }
                _ => return Err(FrameError::Tag { tag, at }),
            };
            if children > 0 {
                if pending.len() >= MAX_DEPTH {
                    return Err(FrameError::TooDeep);
                }
                pending.push(children);
            }
        }
        Ok(())
    }
}
