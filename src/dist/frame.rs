//! The checked decoder of distribution frames: what a peer's bytes must pass
//! before they become a [`Message`].
//!
//! A frame on a distribution connection is a 4-byte big-endian length, then
//! that many bytes: none (a tick), or the pass-through tag `112` followed by
//! a control term and, for the messages that carry one, a payload term, each
//! in the external term format (version byte `131`).
//!
//! The term decoder underneath (`eetf`) trusts length fields: a list header
//! claiming four billion elements makes it reserve memory for them, and a
//! deeply nested term recurses without bound. [`check_terms`] therefore walks
//! the bytes first, without building anything, and refuses any count that
//! the remaining bytes cannot hold, nesting deeper than [`MAX_DEPTH`], and
//! the encodings a Trellis node does not accept (compressed terms, funs,
//! atom-cache references). Only bytes that pass are decoded, so a malformed
//! frame costs at most its own size and closes its connection only.
//!
//! The frames that carry messages (`SEND`, `REG_SEND`, `SEND_SENDER` with
//! payloads of integers, atoms, binaries, strings, tuples, lists, pids and
//! references) and a call's `MONITOR_P` and `DEMONITOR_P` take a faster
//! path first: one pass over the bytes, straight into the
//! message, with the same bounds (every count checked against the bytes
//! left, nesting limited); what it does not know, malformed bytes included,
//! goes the general way ([`decode_general`]), so both answer the same.

use tokio::io::{AsyncRead, AsyncReadExt};

pub use erl_dist::message::Message;

/// How deep terms may nest (lists, tuples, maps inside each other).
pub const MAX_DEPTH: usize = 512;

/// The pass-through tag that starts every non-tick frame.
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
    /// The frame does not start with the pass-through tag `112`.
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
    /// atom-cache reference).
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
    // The frames that carry messages, in one pass; everything else (and
    // anything that path does not know) through the check and `eetf`.
    if let [PASS_THROUGH, terms @ ..] = bytes {
        if let Some(message) = super::hot::decode(terms) {
            return Ok(Some(message));
        }
    }
    decode_general(bytes)
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
    let Some((&tag, terms)) = bytes.split_first() else {
        return Ok(None);
    };
    if tag != PASS_THROUGH {
        return Err(FrameError::NotPassThrough { tag });
    }
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
    let mut cursor = Cursor {
        bytes,
        at: 0,
        offset,
    };
    // The control term, then an optional payload term.
    for index in 0..2 {
        if index == 1 && cursor.at == bytes.len() {
            break;
        }
        let start = cursor.at;
        if cursor.u8()? != VERSION {
            return Err(FrameError::NoVersion { at: offset + start });
        }
        cursor.term()?;
    }
    if cursor.at != bytes.len() {
        return Err(FrameError::Trailing {
            left: bytes.len() - cursor.at,
        });
    }
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    offset: usize,
}

impl Cursor<'_> {
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
        let at = self.offset + self.at;
        let tag = self.u8()?;
        let len = match tag {
            100 | 118 => self.u16()?,
            115 | 119 => u64::from(self.u8()?),
            _ => return Err(FrameError::Tag { tag, at }),
        };
        self.skip(len)
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
                // atoms
                100 | 118 | 115 | 119 => {
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
