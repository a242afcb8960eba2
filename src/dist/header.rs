//! The normal distribution header (`131, 68`, "`D`") and the atom cache it
//! carries, both directions.
//!
//! Between two nodes that both advertise `DIST_HDR_ATOM_CACHE` every frame
//! but a tick starts with this header instead of the pass-through tag
//! `112`: a count of atom cache references, a half byte of flags per
//! reference (a new-entry bit and the cache segment), then per reference
//! the slot within its segment and, for a new entry, the atom's text. The
//! terms that follow omit their version byte and may name an atom by
//! `ATOM_CACHE_REF` (`82`, an index into the header's references) instead
//! of by its text. Each direction of a connection has its own cache of
//! 2048 slots: the sender decides what goes where and sends a text once;
//! the receiver keeps what the headers told it, for the connection's life.
//!
//! An Erlang receiver resolves a cached atom by its slot, without looking
//! its text up in the atom table (a hash, a compare and a read lock per
//! atom); that is what this module saves an Erlang node that receives from
//! Trellis.
//!
//! Receiving ([`AtomCache`], [`read`]): the header is read once per frame;
//! its new entries go into the connection's cache, and every reference must
//! name a slot that holds an atom, or the frame is refused (and its
//! connection closed, as for any malformed frame). Both decoders resolve
//! the references from the header: the one-pass decoder directly, the
//! general path by writing the terms out in pass-through form
//! ([`to_pass_through`]). The atom text that references add to a frame is
//! limited by the cache's limit (the node's largest frame), so a small
//! frame cannot expand into more than a frame the node would accept.
//!
//! Sending ([`SendAtomCache`], [`encode_into`]): each atom goes in the slot
//! its text's hash picks (OTP picks by the atom's index in its atom table;
//! any fixed choice works, since the header says the slot); an atom whose
//! slot holds another atom gets the slot as a new entry, unless another
//! atom of the same frame uses that slot already or the header is full (it
//! then stays text). The frames that carry messages and a call's monitor
//! frames are written straight into this form; other messages are encoded
//! by `eetf` as for pass-through, then a walk over the bytes finds their
//! atoms and drops the version bytes. The cache is updated in the order
//! frames are written, under the connection's write lock, which is what
//! keeps both sides' caches equal.
//!
//! Fragmented frames (`131, 69`) are refused: a node sends them only to a
//! peer that advertises `DIST_FRAGMENTS`, which this node does not.

use eetf::{Atom, Term};
use erl_dist::message::{DemonitorP, Message, MonitorP};
use erl_dist::term::PidOrAtom;

use super::frame::{Cursor, FrameError, PASS_THROUGH, Span};

/// The version byte that starts a header (and every pass-through term).
pub(crate) const VERSION: u8 = 131;

/// The kind byte of the normal distribution header.
pub(crate) const NORMAL: u8 = 68;

/// The tag of an atom cache reference inside a term.
pub(crate) const ATOM_CACHE_REF: u8 = 82;

/// Slots in each direction's cache: 8 segments of 256.
const SLOTS: usize = 2048;

/// The most references one header holds (OTP's limit).
const MAX_REFS: usize = 255;

/// The atoms a peer has cached on one connection: the receiving side of the
/// distribution header's atom cache.
///
/// A connection's reader keeps one for the connection's life and passes it
/// to [`frame::decode_with`](super::frame::decode_with) with every frame:
/// the headers' new entries go into it, later frames name them by slot.
/// Its `limit` bounds how much atom text a frame's references may add to it
/// (the node uses its largest accepted frame), so that two-byte references
/// to long cached atoms cannot expand a small frame without bound. Empty
/// until the first new entry (no memory for connections without the cache).
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{AtomCache, decode_with};
///
/// let mut cache = AtomCache::new(1 << 20);
/// assert_eq!(cache.len(), 0);
/// // A tick changes nothing.
/// assert!(matches!(decode_with(&[], &mut cache), Ok(None)));
/// ```
#[derive(Debug, Clone)]
pub struct AtomCache {
    slots: Vec<Option<Atom>>,
    limit: usize,
    /// The slots the current frame's header references, in order.
    refs: Vec<u16>,
}

impl AtomCache {
    /// An empty cache whose references may add at most `limit` bytes of
    /// atom text to one frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::dist::frame::AtomCache;
    ///
    /// assert_eq!(AtomCache::new(4096).limit(), 4096);
    /// ```
    pub fn new(limit: usize) -> Self {
        AtomCache {
            slots: Vec::new(),
            limit,
            refs: Vec::new(),
        }
    }

    /// How many slots hold an atom.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(trellis::dist::frame::AtomCache::new(64).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no slot holds an atom.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(trellis::dist::frame::AtomCache::new(64).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most bytes of atom text a frame's references may add.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(trellis::dist::frame::AtomCache::new(64).limit(), 64);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn get(&self, slot: u16) -> Option<&Atom> {
        self.slots.get(usize::from(slot))?.as_ref()
    }

    fn set(&mut self, slot: u16, atom: Atom) {
        if self.slots.is_empty() {
            self.slots.resize(SLOTS, None);
        }
        self.slots[usize::from(slot)] = Some(atom);
    }
}

impl Default for AtomCache {
    /// A cache limited as the node's default largest frame.
    fn default() -> Self {
        AtomCache::new(super::DEFAULT_MAX_FRAME)
    }
}

/// A frame's header references resolved against its connection's cache
/// (which holds them, in [`AtomCache::refs`], after [`read`]).
#[derive(Clone, Copy)]
pub(crate) struct Resolved<'a> {
    pub(crate) cache: &'a AtomCache,
}

impl<'a> Resolved<'a> {
    /// How many references the frame's header made.
    pub(crate) fn len(&self) -> usize {
        self.cache.refs.len()
    }

    /// The atom of reference `index`, if the header made it.
    pub(crate) fn get(&self, index: u8) -> Option<&'a Atom> {
        let slot = *self.cache.refs.get(usize::from(index))?;
        self.cache.get(slot)
    }

    /// The most atom text the frame's references may add.
    pub(crate) fn limit(&self) -> usize {
        self.cache.limit
    }
}

/// Reads a normal header's body (`bytes` starts after `131, 68`; `offset`
/// is where, for error positions): stores its new entries in `cache`, its
/// references (the slot each names) in `cache.refs`, and returns how many
/// bytes it took.
///
/// # Errors
///
/// [`FrameError::Truncated`] if the bytes end inside it,
/// [`FrameError::AtomText`] for a new entry that is not UTF-8,
/// [`FrameError::EmptyCacheSlot`] for a reference to a slot that holds no
/// atom.
pub(crate) fn read(
    bytes: &[u8],
    offset: usize,
    cache: &mut AtomCache,
) -> Result<usize, FrameError> {
    let truncated = FrameError::Truncated {
        at: offset + bytes.len(),
    };
    cache.refs.clear();
    let Some((&count, rest)) = bytes.split_first() else {
        return Err(truncated);
    };
    let count = usize::from(count);
    if count == 0 {
        return Ok(1);
    }
    let flag_len = count / 2 + 1;
    let flags = rest.get(..flag_len).ok_or(truncated.clone())?;
    let nibble = |i: usize| (flags[i / 2] >> (4 * (i % 2))) & 0x0f;
    let long = nibble(count) & 1 == 1;
    let mut at = 1 + flag_len;
    let byte = |at: &mut usize| -> Result<u8, FrameError> {
        let b = *bytes.get(*at).ok_or(truncated.clone())?;
        *at += 1;
        Ok(b)
    };
    for i in 0..count {
        let flag = nibble(i);
        let ref_at = offset + at;
        let slot = u16::from(flag & 7) << 8 | u16::from(byte(&mut at)?);
        if flag & 8 != 0 {
            let len = if long {
                usize::from(byte(&mut at)?) << 8 | usize::from(byte(&mut at)?)
            } else {
                usize::from(byte(&mut at)?)
            };
            let text = bytes.get(at..at + len).ok_or(truncated.clone())?;
            let text =
                std::str::from_utf8(text).map_err(|_| FrameError::AtomText { at: offset + at })?;
            at += len;
            cache.set(slot, Atom::from(text));
        } else if cache.get(slot).is_none() {
            return Err(FrameError::EmptyCacheSlot { slot, at: ref_at });
        }
        cache.refs.push(slot);
    }
    Ok(at)
}

/// Writes `terms` (the terms after a normal header, without version bytes,
/// whose references `resolved` resolves) in pass-through form: the
/// pass-through tag, then each term with its version byte and its
/// references written as atoms. `offset` is where `terms` starts in the
/// frame, for error positions.
///
/// # Errors
///
/// The [`FrameError`] of the first problem [`check_terms`](super::frame::check_terms)
/// would find, [`FrameError::CacheRef`] for a reference the header did not
/// make, [`FrameError::Expansion`] if the referenced atoms add more text
/// than the cache's limit.
pub(crate) fn to_pass_through(
    terms: &[u8],
    offset: usize,
    resolved: Resolved<'_>,
) -> Result<Vec<u8>, FrameError> {
    let mut cursor = Cursor::new(terms, offset);
    cursor.refs = Some(resolved.len());
    cursor.spans = Some(Vec::new());
    let control_end = cursor.terms(false)?;
    let spans = cursor.spans.take().unwrap_or_default();
    let mut added = 0usize;
    for span in &spans {
        if let Span::Ref { index, .. } = span {
            let atom = resolved.get(*index).ok_or(FrameError::CacheRef {
                index: *index,
                at: 0,
            })?;
            added = added.saturating_add(atom.name.len());
        }
    }
    if added > resolved.limit() {
        return Err(FrameError::Expansion {
            limit: resolved.limit(),
        });
    }
    let mut out = Vec::with_capacity(terms.len() + added + 3);
    out.push(PASS_THROUGH);
    let write = |out: &mut Vec<u8>, range: std::ops::Range<usize>| {
        out.push(VERSION);
        let mut from = range.start;
        for span in spans.iter() {
            if let Span::Ref { at, index } = *span {
                if range.contains(&at) {
                    out.extend_from_slice(&terms[from..at]);
                    if let Some(atom) = resolved.get(index) {
                        write_atom(out, &atom.name);
                    }
                    from = at + 2;
                }
            }
        }
        out.extend_from_slice(&terms[from..range.end]);
    };
    write(&mut out, 0..control_end);
    if control_end < terms.len() {
        write(&mut out, control_end..terms.len());
    }
    Ok(out)
}

/// Appends `name` as an atom term (UTF-8, the short form when it fits).
fn write_atom(out: &mut Vec<u8>, name: &str) {
    match u8::try_from(name.len()) {
        Ok(len) => out.extend_from_slice(&[119, len]),
        Err(_) => {
            out.push(118);
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(name.as_bytes());
}

/// The atoms this node has cached on one connection's peer: the sending
/// side of the distribution header's atom cache.
///
/// A connection keeps one for its life, and encodes every frame that may
/// use it ([`frame::encode_cached`](super::frame::encode_cached)) in the
/// order the frames are written: each atom goes in the slot its text's hash
/// picks, its text crosses once, and later frames name it by slot until
/// another atom takes the slot. Also holds the buffers the encoder reuses.
///
/// # Examples
///
/// ```
/// use trellis::dist::frame::{Message, SendAtomCache, encode_cached};
/// use trellis::dist::{ErlPid, atom};
///
/// let mut cache = SendAtomCache::new();
/// let to = ErlPid::new("a@host", 1, 0, 7);
/// let first = encode_cached(Message::send(to.clone(), atom("hello")), &mut cache).unwrap();
/// let again = encode_cached(Message::send(to, atom("hello")), &mut cache).unwrap();
/// assert!(again.len() < first.len()); // no texts the second time
/// ```
pub struct SendAtomCache {
    /// The atom text in each slot, as the peer has it.
    slots: Vec<Option<Box<[u8]>>>,
    /// Per slot, 1 + the index of this frame's reference to it (0: none);
    /// cleared after each frame.
    in_frame: Vec<u8>,
    /// This frame's references: slot, and the text's place in `texts` for
    /// a new entry.
    refs: Vec<(u16, Option<(usize, usize)>)>,
    /// The texts of this frame's new entries.
    texts: Vec<u8>,
    /// The pass-through encoding of the message being sent.
    scratch: Vec<u8>,
    /// Its terms with references in place of atoms.
    body: Vec<u8>,
    /// Where its atoms are.
    spans: Vec<Span>,
}

impl std::fmt::Debug for SendAtomCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendAtomCache")
            .field("atoms", &self.slots.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl Default for SendAtomCache {
    fn default() -> Self {
        SendAtomCache::new()
    }
}

impl SendAtomCache {
    /// An empty cache (the peer's side of a new connection is empty too).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = trellis::dist::frame::SendAtomCache::new();
    /// # drop(cache);
    /// ```
    pub fn new() -> Self {
        SendAtomCache {
            slots: Vec::new(),
            in_frame: Vec::new(),
            refs: Vec::new(),
            texts: Vec::new(),
            scratch: Vec::new(),
            body: Vec::new(),
            spans: Vec::new(),
        }
    }
}

/// The slot an atom's text goes in (FNV-1a).
fn slot_of(text: &[u8]) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in text {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (hash % SLOTS as u32) as u16
}

/// One frame's references, as the encoder chooses them.
struct Chooser<'a> {
    /// The slots as the peer has them (before this frame).
    slots: &'a [Option<Box<[u8]>>],
    /// Per slot, 1 + this frame's reference to it.
    in_frame: &'a mut [u8],
    /// This frame's references: slot, and the new entry's text in `texts`.
    refs: &'a mut Vec<(u16, Option<(usize, usize)>)>,
    texts: &'a mut Vec<u8>,
    /// References are used (the peer takes the cache).
    on: bool,
}

impl Chooser<'_> {
    /// The reference index for atom `name` (UTF-8), or `None` to write it
    /// as text: its slot holds another atom of this frame, or the header
    /// is full.
    fn reference(&mut self, name: &[u8]) -> Option<u8> {
        if !self.on || name.len() > usize::from(u16::MAX) {
            return None;
        }
        let slot = slot_of(name);
        match self.in_frame[usize::from(slot)] {
            0 if self.refs.len() < MAX_REFS => {
                let new = if self.slots[usize::from(slot)].as_deref() == Some(name) {
                    None
                } else {
                    let start = self.texts.len();
                    self.texts.extend_from_slice(name);
                    Some((start, self.texts.len()))
                };
                self.refs.push((slot, new));
                self.in_frame[usize::from(slot)] = self.refs.len() as u8;
                Some((self.refs.len() - 1) as u8)
            }
            0 => None,
            n => {
                let index = usize::from(n) - 1;
                let same = match self.refs[index].1 {
                    Some((t, e)) => &self.texts[t..e] == name,
                    None => self.slots[usize::from(slot)].as_deref() == Some(name),
                };
                same.then_some(index as u8)
            }
        }
    }

    /// Appends atom `name`: a reference if it may be one, else its text.
    fn atom(&mut self, body: &mut Vec<u8>, name: &str) {
        match self.reference(name.as_bytes()) {
            Some(index) => body.extend_from_slice(&[ATOM_CACHE_REF, index]),
            None => write_atom(body, name),
        }
    }
}

/// How deep the direct encoder follows a payload; deeper ones are encoded
/// by `eetf`.
const MAX_DIRECT_DEPTH: usize = 64;

/// Whether an atom's text fits the external format (a two-byte length).
fn fits(name: &str) -> bool {
    name.len() <= usize::from(u16::MAX)
}

/// Whether the direct encoder writes `term` (at `depth`).
fn direct_term(term: &Term, depth: usize) -> bool {
    if depth >= MAX_DIRECT_DEPTH {
        return false;
    }
    match term {
        Term::Atom(a) => fits(&a.name),
        Term::FixInteger(_) => true,
        Term::Pid(p) => fits(&p.node.name),
        Term::Binary(b) => u32::try_from(b.bytes.len()).is_ok(),
        Term::ByteList(l) => l.bytes.len() <= usize::from(u16::MAX),
        Term::Tuple(t) => {
            u32::try_from(t.elements.len()).is_ok()
                && t.elements.iter().all(|e| direct_term(e, depth + 1))
        }
        Term::List(l) => {
            u32::try_from(l.elements.len()).is_ok()
                && l.elements.iter().all(|e| direct_term(e, depth + 1))
        }
        // A call's tag, `[alias | Ref]`, among them.
        Term::ImproperList(l) => {
            u32::try_from(l.elements.len()).is_ok()
                && l.elements.iter().all(|e| direct_term(e, depth + 1))
                && direct_term(&l.last, depth + 1)
        }
        Term::Reference(r) => u16::try_from(r.id.len()).is_ok() && fits(&r.node.name),
        _ => false,
    }
}

/// Writes `term`, which [`direct_term`] accepted, as `eetf` would, atoms
/// through `chooser`.
fn write_term(body: &mut Vec<u8>, chooser: &mut Chooser<'_>, term: &Term) {
    match term {
        Term::Atom(a) => chooser.atom(body, &a.name),
        Term::FixInteger(i) => match u8::try_from(i.value) {
            Ok(small) => body.extend_from_slice(&[97, small]),
            Err(_) => {
                body.push(98);
                body.extend_from_slice(&i.value.to_be_bytes());
            }
        },
        Term::Pid(p) => write_pid(body, chooser, p),
        Term::Binary(b) => {
            body.push(109);
            body.extend_from_slice(&(b.bytes.len() as u32).to_be_bytes());
            body.extend_from_slice(&b.bytes);
        }
        Term::ByteList(l) => {
            body.push(107);
            body.extend_from_slice(&(l.bytes.len() as u16).to_be_bytes());
            body.extend_from_slice(&l.bytes);
        }
        Term::Tuple(t) => {
            match u8::try_from(t.elements.len()) {
                Ok(n) => body.extend_from_slice(&[104, n]),
                Err(_) => {
                    body.push(105);
                    body.extend_from_slice(&(t.elements.len() as u32).to_be_bytes());
                }
            }
            for e in &t.elements {
                write_term(body, chooser, e);
            }
        }
        Term::List(l) if l.elements.is_empty() => body.push(106),
        Term::List(l) => {
            // A list of bytes goes as a string, as `eetf` writes it.
            let bytes: Option<Vec<u8>> = (l.elements.len() <= usize::from(u16::MAX))
                .then(|| {
                    l.elements
                        .iter()
                        .map(|e| match e {
                            Term::FixInteger(i) => u8::try_from(i.value).ok(),
                            _ => None,
                        })
                        .collect()
                })
                .flatten();
            match bytes {
                Some(bytes) => {
                    body.push(107);
                    body.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                    body.extend_from_slice(&bytes);
                }
                None => {
                    body.push(108);
                    body.extend_from_slice(&(l.elements.len() as u32).to_be_bytes());
                    for e in &l.elements {
                        write_term(body, chooser, e);
                    }
                    body.push(106);
                }
            }
        }
        Term::ImproperList(l) => {
            body.push(108);
            body.extend_from_slice(&(l.elements.len() as u32).to_be_bytes());
            for e in &l.elements {
                write_term(body, chooser, e);
            }
            write_term(body, chooser, &l.last);
        }
        Term::Reference(r) => write_reference(body, chooser, r),
        // Not accepted by `direct_term`.
        _ => {}
    }
}

/// Writes a reference (`NEWER_REFERENCE_EXT`).
fn write_reference(body: &mut Vec<u8>, chooser: &mut Chooser<'_>, r: &eetf::Reference) {
    body.push(90);
    body.extend_from_slice(&(r.id.len() as u16).to_be_bytes());
    chooser.atom(body, &r.node.name);
    body.extend_from_slice(&r.creation.to_be_bytes());
    for id in &r.id {
        body.extend_from_slice(&id.to_be_bytes());
    }
}

/// Writes a pid (`NEW_PID_EXT`).
fn write_pid(body: &mut Vec<u8>, chooser: &mut Chooser<'_>, pid: &eetf::Pid) {
    body.push(88);
    chooser.atom(body, &pid.node.name);
    body.extend_from_slice(&pid.id.to_be_bytes());
    body.extend_from_slice(&pid.serial.to_be_bytes());
    body.extend_from_slice(&pid.creation.to_be_bytes());
}

/// Writes the terms of a `SEND`, `REG_SEND`, `SEND_SENDER`, `MONITOR_P` or
/// `DEMONITOR_P` without `eetf` (no control tuple built, no walk over the
/// bytes afterwards);
/// false, with nothing written, for other messages and payloads it does not
/// know.
fn write_direct(body: &mut Vec<u8>, chooser: &mut Chooser<'_>, message: &Message) -> bool {
    match message {
        Message::Send(m) if fits(&m.to_pid.node.name) && direct_term(&m.message, 0) => {
            body.extend_from_slice(&[104, 3, 97, 2, 104, 0]);
            write_pid(body, chooser, &m.to_pid);
            write_term(body, chooser, &m.message);
        }
        Message::RegSend(m)
            if fits(&m.from_pid.node.name)
                && fits(&m.to_name.name)
                && direct_term(&m.message, 0) =>
        {
            body.extend_from_slice(&[104, 4, 97, 6]);
            write_pid(body, chooser, &m.from_pid);
            body.extend_from_slice(&[104, 0]);
            chooser.atom(body, &m.to_name.name);
            write_term(body, chooser, &m.message);
        }
        Message::SendSender(m)
            if fits(&m.from_pid.node.name)
                && fits(&m.to_pid.node.name)
                && direct_term(&m.message, 0) =>
        {
            body.extend_from_slice(&[104, 3, 97, 22]);
            write_pid(body, chooser, &m.from_pid);
            write_pid(body, chooser, &m.to_pid);
            write_term(body, chooser, &m.message);
        }
        // {MONITOR_P | DEMONITOR_P, FromPid, ToProc, Ref}: every call.
        Message::MonitorP(MonitorP {
            from_pid,
            to_proc,
            reference,
        })
        | Message::DemonitorP(DemonitorP {
            from_pid,
            to_proc,
            reference,
        }) if fits(&from_pid.node.name)
            && u16::try_from(reference.id.len()).is_ok()
            && fits(&reference.node.name)
            && match to_proc {
                PidOrAtom::Pid(pid) => fits(&pid.node.name),
                PidOrAtom::Atom(name) => fits(&name.name),
            } =>
        {
            let op = if matches!(message, Message::MonitorP(_)) {
                19
            } else {
                20
            };
            body.extend_from_slice(&[104, 4, 97, op]);
            write_pid(body, chooser, from_pid);
            match to_proc {
                PidOrAtom::Pid(pid) => write_pid(body, chooser, pid),
                PidOrAtom::Atom(name) => chooser.atom(body, &name.name),
            }
            write_reference(body, chooser, reference);
        }
        _ => return false,
    }
    true
}

/// Appends `message` to `out` as a whole frame with a normal distribution
/// header: its atoms as references to `cache` when given (which this
/// updates), else a header without references and every atom as text. On
/// an error `out` and `cache` are left as they were.
///
/// The frames that carry messages, with payloads of the kinds the one-pass
/// decoder knows, are written directly; the others are encoded by `eetf`
/// (as for pass-through) and their atoms found by a walk over the bytes.
///
/// # Errors
///
/// [`FrameError::Control`] if a term cannot be encoded,
/// [`FrameError::Length`] if the frame would exceed 4 GiB.
pub(crate) fn encode_into(
    message: Message,
    out: &mut Vec<u8>,
    cache: Option<&mut SendAtomCache>,
) -> Result<(), FrameError> {
    if matches!(message, Message::Tick) {
        out.extend_from_slice(&[0, 0, 0, 0]);
        return Ok(());
    }
    let mut own = None;
    let (cache, on) = match cache {
        Some(cache) => (cache, true),
        None => (own.insert(SendAtomCache::new()), false),
    };
    if on && cache.slots.is_empty() {
        cache.slots.resize(SLOTS, None);
        cache.in_frame.resize(SLOTS, 0);
    }
    cache.body.clear();
    cache.refs.clear();
    cache.texts.clear();
    let SendAtomCache {
        slots,
        in_frame,
        refs,
        texts,
        scratch,
        body,
        spans,
    } = cache;
    let mut chooser = Chooser {
        slots: &slots[..],
        in_frame: &mut in_frame[..],
        refs: &mut *refs,
        texts: &mut *texts,
        on,
    };
    if !write_direct(body, &mut chooser, &message) {
        scratch.clear();
        message
            .write_into(&mut *scratch)
            .map_err(|e| FrameError::Control {
                reason: e.to_string(),
            })?;
        let mut cursor = Cursor::new(scratch, 0);
        let mut taken = std::mem::take(spans);
        taken.clear();
        cursor.spans = Some(taken);
        cursor.funs = true;
        let walked = cursor.terms(true);
        *spans = cursor.spans.take().unwrap_or_default();
        let control_end = walked?;
        // The terms without their version bytes (at 0 and, with a payload,
        // at `control_end`), atoms replaced by references where the cache
        // allows.
        let payload_version = (control_end < scratch.len()).then_some(control_end);
        let copy = |body: &mut Vec<u8>, from: usize, to: usize| match payload_version {
            Some(v) if from <= v && v < to => {
                body.extend_from_slice(&scratch[from..v]);
                body.extend_from_slice(&scratch[v + 1..to]);
            }
            _ => body.extend_from_slice(&scratch[from..to]),
        };
        let mut from = 1;
        for span in spans.iter() {
            let Span::Atom { at, text, end } = *span else {
                continue;
            };
            // Latin-1 atoms (which `eetf` does not write) stay text.
            if !matches!(scratch[at], 118 | 119) {
                continue;
            }
            if let Some(index) = chooser.reference(&scratch[text..end]) {
                copy(body, from, at);
                body.extend_from_slice(&[ATOM_CACHE_REF, index]);
                from = end;
            }
        }
        copy(body, from, scratch.len());
    }
    // Headers hold at most 255 texts of at most 64 KiB.
    const HEADER_MAX: u64 = 3 + 128 + (MAX_REFS as u64) * (3 + 65_535);
    if body.len() as u64 + HEADER_MAX > u64::from(u32::MAX) {
        for &(slot, _) in chooser.refs.iter() {
            chooser.in_frame[usize::from(slot)] = 0;
        }
        return Err(FrameError::Length {
            len: body.len() as u64,
            at: 0,
        });
    }
    // The header.
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, VERSION, NORMAL, refs.len() as u8]);
    if !refs.is_empty() {
        let n = refs.len();
        let flags_at = out.len();
        out.resize(flags_at + n / 2 + 1, 0);
        let mut long = false;
        for (i, &(slot, new)) in refs.iter().enumerate() {
            let mut flag = (slot >> 8) as u8;
            if let Some((t, e)) = new {
                flag |= 8;
                long |= e - t > 255;
            }
            out[flags_at + i / 2] |= flag << (4 * (i % 2));
        }
        out[flags_at + n / 2] |= u8::from(long) << (4 * (n % 2));
        for &(slot, new) in refs.iter() {
            out.push((slot & 0xff) as u8);
            if let Some((t, e)) = new {
                let len = e - t;
                if long {
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    out.push(len as u8);
                }
                out.extend_from_slice(&texts[t..e]);
            }
            in_frame[usize::from(slot)] = 0;
        }
    }
    out.extend_from_slice(body);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    // The peer's cache, as this frame leaves it.
    for &(slot, new) in refs.iter() {
        if let Some((t, e)) = new {
            slots[usize::from(slot)] = Some(texts[t..e].into());
        }
    }
    Ok(())
}
