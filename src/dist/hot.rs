//! The one-pass decoder of the frames that carry messages (`SEND`,
//! `REG_SEND`, `SEND_SENDER`) and of a call's monitor frames (`MONITOR_P`,
//! `DEMONITOR_P`), used before the checked, general path of
//! [`frame::decode`](super::frame::decode).
//!
//! The general path walks every frame twice (a check that refuses hostile
//! lengths, then `eetf`'s decoder, which reads through `std::io::Read`,
//! builds the control message as a tuple and converts it element by
//! element). For the frames a busy connection carries most, this decoder
//! reads the bytes once, straight from the slice, into the message: an
//! atom or binary costs one allocation of its own size, a tuple or list one
//! for its elements, the control tuple none.
//!
//! It is total and conservative: it decodes only the control messages above
//! and only payload terms built of small and 32-bit integers, atoms, nil,
//! strings, binaries, tuples, lists, pids and references, nested at most
//! [`MAX_HOT_DEPTH`] deep; anything else, malformed bytes included, makes it
//! answer `None`, and the frame goes through the general path, which accepts
//! or refuses it with its own error. Every count is checked against the
//! bytes left before anything is reserved for it, and nesting is bounded,
//! so no input makes it allocate more than a small multiple of its size or
//! recurse deeply. Where it answers, it answers what the general path would:
//! the fuzz property in `fuzz/src/dist_checks.rs` (run by
//! `tests/fuzz_dist.rs` on random and mutated frames, and by the cargo-fuzz
//! target `dist_frame`) compares [`frame::decode`](super::frame::decode)
//! with [`frame::decode_general`](super::frame::decode_general) on every
//! input.

use bytes::{BufMut, Bytes, BytesMut};
use eetf::{Atom, Binary, ByteList, FixInteger, ImproperList, List, Pid, Reference, Term, Tuple};
use erl_dist::message::{DemonitorP, Message, MonitorP, RegSend, Send, SendSender};
use erl_dist::term::PidOrAtom;

use super::header::{ATOM_CACHE_REF, Resolved};

/// How deep payload terms may nest on this path; deeper ones take the
/// general path (whose limit is [`MAX_DEPTH`](super::frame::MAX_DEPTH)).
pub(crate) const MAX_HOT_DEPTH: usize = 64;

/// The version byte that starts every term.
const VERSION: u8 = 131;

/// Decodes `terms` (a frame after its pass-through tag) if it is a `SEND`,
/// `REG_SEND` or `SEND_SENDER` of a payload this decoder knows, or a
/// `MONITOR_P` or `DEMONITOR_P` (one each per `gen_server:call`); `None`
/// otherwise (the caller then takes the general path).
///
/// `terms` follows the pass-through tag (each term after its version byte)
/// if `cached` is `None`, else a normal distribution header whose
/// references `cached` resolves (no version bytes, atoms possibly by
/// reference).
pub(crate) fn decode(terms: &[u8], cached: Option<Resolved<'_>>) -> Option<Message> {
    let (mut input, op, arity) = Input::control(terms, cached)?;
    let message = match (op, arity) {
        // {SEND, Unused, ToPid}
        (2, 3) => {
            input.term(0)?;
            let to_pid = input.pid()?;
            let message = input.payload()?;
            Message::Send(Send { to_pid, message })
        }
        // {REG_SEND, FromPid, Unused, ToName}
        (6, 4) => {
            let from_pid = input.pid()?;
            input.term(0)?;
            let to_name = input.atom()?;
            let message = input.payload()?;
            Message::RegSend(RegSend {
                from_pid,
                to_name,
                message,
            })
        }
        // {SEND_SENDER, FromPid, ToPid}
        (22, 3) => {
            let from_pid = input.pid()?;
            let to_pid = input.pid()?;
            let message = input.payload()?;
            Message::SendSender(SendSender {
                from_pid,
                to_pid,
                message,
            })
        }
        // {MONITOR_P | DEMONITOR_P, FromPid, ToProc, Ref}: every call.
        (19 | 20, 4) => {
            let from_pid = input.pid()?;
            let to_proc = match input.term(0)? {
                Term::Pid(pid) => PidOrAtom::Pid(pid),
                Term::Atom(atom) => PidOrAtom::Atom(atom),
                _ => return None,
            };
            let Term::Reference(reference) = input.term(0)? else {
                return None;
            };
            if op == 19 {
                Message::MonitorP(MonitorP {
                    from_pid,
                    to_proc,
                    reference: *reference,
                })
            } else {
                Message::DemonitorP(DemonitorP {
                    from_pid,
                    to_proc,
                    reference: *reference,
                })
            }
        }
        _ => return None,
    };
    input.bytes.is_empty().then_some(message)
}

/// A message for a local mailbox, its payload not decoded yet: the
/// reader checks and copies it, the receiving process decodes it (so that
/// the terms are allocated and freed by one thread, the receiver's).
pub(crate) struct Delivery {
    /// A pid, or a registered name.
    pub(crate) to: PidOrAtom,
    /// The sender, when the frame names it (`REG_SEND`, `SEND_SENDER`).
    pub(crate) from: Option<Pid>,
    pub(crate) payload: RawTerm,
}

impl Delivery {
    /// The message frame it came from, its payload decoded; `None` only if
    /// the payload does not decode (which [`delivery`]'s check rules out).
    pub(crate) fn into_message(self) -> Option<Message> {
        let message = self.payload.decode()?;
        Some(match (self.to, self.from) {
            (PidOrAtom::Atom(to_name), Some(from_pid)) => Message::RegSend(RegSend {
                from_pid,
                to_name,
                message,
            }),
            (PidOrAtom::Pid(to_pid), Some(from_pid)) => Message::SendSender(SendSender {
                from_pid,
                to_pid,
                message,
            }),
            (PidOrAtom::Pid(to_pid), None) => Message::Send(Send { to_pid, message }),
            (PidOrAtom::Atom(_), None) => return None,
        })
    }
}

/// One payload term in the form [`Input::term`] reads without a cache
/// (no version byte, atoms as text), already checked by [`delivery`]'s
/// copy: [`decode`](RawTerm::decode) gives the term the frame carried.
pub(crate) struct RawTerm(Bytes);

impl RawTerm {
    /// The term. `None` only if the bytes were not made by [`delivery`].
    pub(crate) fn decode(&self) -> Option<Term> {
        let mut input = Input {
            bytes: &self.0,
            cached: None,
            added: 0,
        };
        let term = input.term(0)?;
        input.bytes.is_empty().then_some(term)
    }
}

/// `terms` (as for [`decode`]) as a [`Delivery`] if it is a `SEND`,
/// `REG_SEND` or `SEND_SENDER` to a target `raw_for` accepts, whose payload
/// [`decode`] would read, the payload copied into `arena` (cache references
/// written out as atoms) and split off it; `None` otherwise, `arena` left
/// as it was.
///
/// Accepts exactly the frames of those kinds that [`decode`] accepts, and
/// the copy decodes to the term [`decode`] would give (the fifth clause of
/// the fuzz property in `fuzz/src/dist_checks.rs` checks both).
pub(crate) fn delivery(
    terms: &[u8],
    cached: Option<Resolved<'_>>,
    arena: &mut BytesMut,
    raw_for: &dyn Fn(&PidOrAtom) -> bool,
) -> Option<Delivery> {
    debug_assert!(arena.is_empty());
    let delivery = copy_delivery(terms, cached, arena, raw_for);
    if delivery.is_none() {
        arena.clear();
    }
    delivery
}

fn copy_delivery(
    terms: &[u8],
    cached: Option<Resolved<'_>>,
    arena: &mut BytesMut,
    raw_for: &dyn Fn(&PidOrAtom) -> bool,
) -> Option<Delivery> {
    let (mut input, op, arity) = Input::control(terms, cached)?;
    let (to, from) = match (op, arity) {
        // {SEND, Unused, ToPid}
        (2, 3) => {
            input.term(0)?;
            (PidOrAtom::Pid(input.pid()?), None)
        }
        // {REG_SEND, FromPid, Unused, ToName}
        (6, 4) => {
            let from = input.pid()?;
            input.term(0)?;
            (PidOrAtom::Atom(input.atom()?), Some(from))
        }
        // {SEND_SENDER, FromPid, ToPid}
        (22, 3) => {
            let from = input.pid()?;
            (PidOrAtom::Pid(input.pid()?), Some(from))
        }
        _ => return None,
    };
    if !raw_for(&to) {
        return None;
    }
    if input.cached.is_none() && input.u8()? != VERSION {
        return None;
    }
    // At most the payload's bytes and the atom text its references add.
    arena.reserve(input.bytes.len());
    input.copy_term(0, arena)?;
    if !input.bytes.is_empty() {
        return None;
    }
    Some(Delivery {
        to,
        from,
        payload: RawTerm(arena.split().freeze()),
    })
}

/// The bytes not read yet.
struct Input<'a> {
    bytes: &'a [u8],
    /// The frame header's references, if it has a header.
    cached: Option<Resolved<'a>>,
    /// The atom text references added so far.
    added: usize,
}

impl<'a> Input<'a> {
    /// `terms` read up to the control tuple's first element: the input
    /// after it, the operation and the tuple's arity.
    fn control(terms: &'a [u8], cached: Option<Resolved<'a>>) -> Option<(Self, i32, u8)> {
        let mut input = Input {
            bytes: terms,
            cached,
            added: 0,
        };
        if input.cached.is_none() && input.u8()? != VERSION {
            return None;
        }
        if input.u8()? != 104 {
            return None;
        }
        let arity = input.u8()?;
        let op = match input.u8()? {
            97 => i32::from(input.u8()?),
            98 => input.i32()?,
            _ => return None,
        };
        Some((input, op, arity))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        let (&byte, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(byte)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The payload term, with its version byte.
    fn payload(&mut self) -> Option<Term> {
        if self.cached.is_none() && self.u8()? != VERSION {
            return None;
        }
        self.term(0)
    }

    /// An atom, whichever of its four encodings; its name must be UTF-8
    /// (as `eetf` requires of all four).
    fn atom(&mut self) -> Option<Atom> {
        let tag = self.u8()?;
        self.atom_after(tag)
    }

    /// The rest of an atom whose tag, `tag`, was just read.
    fn atom_after(&mut self, tag: u8) -> Option<Atom> {
        let len = match tag {
            100 | 118 => usize::from(self.u16()?),
            115 | 119 => usize::from(self.u8()?),
            ATOM_CACHE_REF => {
                let cached = self.cached?;
                let atom = cached.get(self.u8()?)?;
                // Past the limit the general path refuses the frame.
                self.added = self.added.checked_add(atom.name.len())?;
                return (self.added <= cached.limit()).then(|| atom.clone());
            }
            _ => return None,
        };
        let name = std::str::from_utf8(self.take(len)?).ok()?;
        Some(Atom::from(name))
    }

    /// A pid (`PID_EXT` or `NEW_PID_EXT`).
    fn pid(&mut self) -> Option<Pid> {
        let tag = self.u8()?;
        self.pid_after(tag)
    }

    /// The rest of a pid whose tag, `tag`, was just read.
    fn pid_after(&mut self, tag: u8) -> Option<Pid> {
        if tag != 103 && tag != 88 {
            return None;
        }
        let node = self.atom()?;
        let id = self.u32()?;
        let serial = self.u32()?;
        let creation = if tag == 88 {
            self.u32()?
        } else {
            u32::from(self.u8()?)
        };
        Some(Pid {
            node,
            id,
            serial,
            creation,
        })
    }

    /// `count` terms at `depth`, each at least one byte: a count the bytes
    /// left cannot hold is refused before anything is reserved.
    fn terms(&mut self, count: usize, depth: usize) -> Option<Vec<Term>> {
        if count > self.bytes.len() {
            return None;
        }
        let mut elements = Vec::with_capacity(count);
        for _ in 0..count {
            elements.push(self.term(depth)?);
        }
        Some(elements)
    }

    /// Checks one term as [`term`](Self::term) would read it, and copies it
    /// to `out` without a cache: what `term` accepts, this accepts.
    fn copy_term(&mut self, depth: usize, out: &mut BytesMut) -> Option<()> {
        if depth >= MAX_HOT_DEPTH {
            return None;
        }
        let tag = self.u8()?;
        match tag {
            97 => {
                let byte = self.u8()?;
                out.put_slice(&[tag, byte]);
            }
            98 => {
                let bytes = self.take(4)?;
                out.put_u8(tag);
                out.put_slice(bytes);
            }
            100 | 118 | 115 | 119 | ATOM_CACHE_REF => self.copy_atom_after(tag, out)?,
            106 => out.put_u8(tag),
            107 => {
                let len = self.u16()?;
                let bytes = self.take(usize::from(len))?;
                out.put_u8(tag);
                out.put_u16(len);
                out.put_slice(bytes);
            }
            109 => {
                let len = self.u32()?;
                let bytes = self.take(usize::try_from(len).ok()?)?;
                out.put_u8(tag);
                out.put_u32(len);
                out.put_slice(bytes);
            }
            104 => {
                let count = self.u8()?;
                if usize::from(count) > self.bytes.len() {
                    return None;
                }
                out.put_slice(&[tag, count]);
                for _ in 0..count {
                    self.copy_term(depth + 1, out)?;
                }
            }
            108 => {
                let count = self.u32()?;
                if usize::try_from(count).ok()? > self.bytes.len() {
                    return None;
                }
                out.put_u8(tag);
                out.put_u32(count);
                for _ in 0..count {
                    self.copy_term(depth + 1, out)?;
                }
                self.copy_term(depth + 1, out)?;
            }
            103 | 88 => self.copy_pid_after(tag, out)?,
            114 | 90 => {
                let ids = self.u16()?;
                if ids > 5 {
                    return None;
                }
                out.put_u8(tag);
                out.put_u16(ids);
                self.copy_atom(out)?;
                let rest = if tag == 90 { 4 } else { 1 } + 4 * usize::from(ids);
                out.put_slice(self.take(rest)?);
            }
            _ => return None,
        }
        Some(())
    }

    /// Checks and copies an atom, whichever its encoding, as UTF-8 text.
    fn copy_atom(&mut self, out: &mut BytesMut) -> Option<()> {
        let tag = self.u8()?;
        self.copy_atom_after(tag, out)
    }

    fn copy_atom_after(&mut self, tag: u8, out: &mut BytesMut) -> Option<()> {
        let name: &str = match tag {
            100 | 118 => {
                let len = usize::from(self.u16()?);
                std::str::from_utf8(self.take(len)?).ok()?
            }
            115 | 119 => {
                let len = usize::from(self.u8()?);
                std::str::from_utf8(self.take(len)?).ok()?
            }
            ATOM_CACHE_REF => {
                let cached = self.cached?;
                let atom = cached.get(self.u8()?)?;
                self.added = self.added.checked_add(atom.name.len())?;
                if self.added > cached.limit() {
                    return None;
                }
                &atom.name
            }
            _ => return None,
        };
        // `Atom::from` keeps the text; its length fits the tag that read it,
        // or (a cached atom) 255 bytes at most.
        match u8::try_from(name.len()) {
            Ok(len) => out.put_slice(&[119, len]),
            Err(_) => {
                out.put_u8(118);
                out.put_u16(u16::try_from(name.len()).ok()?);
            }
        }
        out.put_slice(name.as_bytes());
        Some(())
    }

    /// The rest of a pid whose tag, `tag` (`PID_EXT` or `NEW_PID_EXT`),
    /// was just read.
    fn copy_pid_after(&mut self, tag: u8, out: &mut BytesMut) -> Option<()> {
        out.put_u8(tag);
        self.copy_atom(out)?;
        let rest = if tag == 88 { 12 } else { 9 };
        out.put_slice(self.take(rest)?);
        Some(())
    }

    /// One term of the kinds this decoder knows, at nesting `depth`.
    fn term(&mut self, depth: usize) -> Option<Term> {
        if depth >= MAX_HOT_DEPTH {
            return None;
        }
        let tag = self.u8()?;
        let term = match tag {
            97 => Term::from(FixInteger::from(i32::from(self.u8()?))),
            98 => Term::from(FixInteger::from(self.i32()?)),
            100 | 118 | 115 | 119 | ATOM_CACHE_REF => Term::from(self.atom_after(tag)?),
            106 => Term::from(List::nil()),
            107 => {
                let len = usize::from(self.u16()?);
                Term::from(ByteList::from(self.take(len)?.to_vec()))
            }
            109 => {
                let len = usize::try_from(self.u32()?).ok()?;
                Term::from(Binary::from(self.take(len)?))
            }
            104 => {
                let count = usize::from(self.u8()?);
                Term::from(Tuple::from(self.terms(count, depth + 1)?))
            }
            108 => {
                let count = usize::try_from(self.u32()?).ok()?;
                let elements = self.terms(count, depth + 1)?;
                match self.term(depth + 1)? {
                    Term::List(tail) if tail.is_nil() => Term::from(List::from(elements)),
                    last => Term::from(ImproperList {
                        elements,
                        last: Box::new(last),
                    }),
                }
            }
            103 | 88 => Term::from(self.pid_after(tag)?),
            // NEW_REFERENCE, NEWER_REFERENCE: at most 5 ids (Erlang's own
            // limit, and the general path's).
            114 | 90 => {
                let ids = usize::from(self.u16()?);
                if ids > 5 {
                    return None;
                }
                let node = self.atom()?;
                let creation = if tag == 90 {
                    self.u32()?
                } else {
                    u32::from(self.u8()?)
                };
                let id = (0..ids).map(|_| self.u32()).collect::<Option<Vec<u32>>>()?;
                Term::from(Reference { node, id, creation })
            }
            _ => return None,
        };
        Some(term)
    }
}
