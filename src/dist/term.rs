//! Typed Rust values ↔ Erlang terms: [`ToTerm`] and [`FromTerm`].
//!
//! | Rust | Erlang term | Elixir |
//! |---|---|---|
//! | [`Term`] | itself | itself |
//! | [`Atom`] | atom | atom |
//! | `bool` | `true` / `false` | `true` / `false` |
//! | `i32`, `i64`, `u32`, `u64`, `usize` | integer | integer |
//! | `f64` | float | float |
//! | `String`, `&str` | binary (UTF-8); decodes from a charlist too | `String.t()` |
//! | `Vec<T>` | proper list | list |
//! | `Option<T>` | `undefined` or the value; decodes `nil` too | `nil` or the value |
//! | `(A, B)`, `(A, B, C)` | tuple | tuple |
//! | `HashMap<K, V>` | map | map |
//! | [`ErlPid`], [`ErlRef`] | pid, reference | pid, reference |
//!
//! A Rust struct or enum maps by hand, in a few lines: a struct to a map
//! with atom keys (an Elixir struct adds `__struct__`) or to a record tuple
//! `{name, Field1, ...}`, an enum variant without data to an atom and one
//! with data to a tagged tuple `{variant, ...}`. The helpers [`atom`],
//! [`tuple()`] and [`tagged`] keep those impls short; `examples/dist_echo.rs`
//! and the `dist_*` tests show them.

use std::collections::HashMap;
use std::hash::Hash;

pub use eetf::{Atom, Pid as ErlPid, Reference as ErlRef, Term};

/// A value that can cross to Erlang as a term.
///
/// # Examples
///
/// ```
/// use trellis::dist::{ToTerm, atom, tuple};
///
/// let term = ("ok".to_string(), 42u32).to_term();
/// assert_eq!(term.to_string(), "{<<111,107>>,42}"); // eetf prints binaries as bytes
/// assert_eq!(tuple(vec![atom("error"), 1.to_term()]).to_string(), "{'error',1}");
/// ```
pub trait ToTerm {
    /// The term for this value.
    fn to_term(&self) -> Term;
}

/// A value that can be read back from an Erlang term.
///
/// # Examples
///
/// ```
/// use trellis::dist::{FromTerm, ToTerm};
///
/// let term = vec![1i64, 2, 3].to_term();
/// assert_eq!(Vec::<i64>::from_term(term).unwrap(), vec![1, 2, 3]);
/// assert!(String::from_term(7.to_term()).is_err());
/// ```
///
/// # Errors
///
/// [`TermError`] naming what was expected when the term has another shape.
pub trait FromTerm: Sized {
    /// Reads the value from `term`.
    ///
    /// # Errors
    ///
    /// [`TermError`] when the term has another shape.
    fn from_term(term: Term) -> Result<Self, TermError>;
}

/// A term did not have the shape a [`FromTerm`] impl expected.
///
/// # Examples
///
/// ```
/// use trellis::dist::{FromTerm, ToTerm};
///
/// let error = bool::from_term(3.to_term()).unwrap_err();
/// assert_eq!(error.to_string(), "expected a boolean, got 3");
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("expected {expected}, got {got}")]
pub struct TermError {
    /// What the impl expected.
    pub expected: &'static str,
    /// The term it got, printed.
    pub got: String,
}

impl TermError {
    /// The error for `term` where `expected` was wanted.
    pub fn new(expected: &'static str, term: &Term) -> Self {
        TermError {
            expected,
            got: term.to_string(),
        }
    }
}

/// The atom `name` as a term.
///
/// # Examples
///
/// ```
/// assert_eq!(trellis::dist::atom("pong").to_string(), "'pong'");
/// ```
pub fn atom(name: &str) -> Term {
    Term::from(Atom::from(name))
}

/// A tuple of `elements`.
///
/// # Examples
///
/// ```
/// use trellis::dist::{atom, tuple};
/// assert_eq!(tuple(vec![atom("a"), atom("b")]).to_string(), "{'a','b'}");
/// ```
pub fn tuple(elements: Vec<Term>) -> Term {
    Term::from(eetf::Tuple::from(elements))
}

/// A tagged tuple `{tag, elements...}`, Erlang's way of tagging a variant.
///
/// # Examples
///
/// ```
/// use trellis::dist::{ToTerm, tagged};
/// assert_eq!(tagged("echo", vec![5.to_term()]).to_string(), "{'echo',5}");
/// ```
pub fn tagged(tag: &str, elements: Vec<Term>) -> Term {
    let mut all = Vec::with_capacity(elements.len() + 1);
    all.push(atom(tag));
    all.extend(elements);
    tuple(all)
}

/// The name of `term` if it is an atom.
///
/// # Examples
///
/// ```
/// use trellis::dist::{ToTerm, as_atom, atom};
/// assert_eq!(as_atom(&atom("ok")), Some("ok"));
/// assert_eq!(as_atom(&1.to_term()), None);
/// ```
pub fn as_atom(term: &Term) -> Option<&str> {
    match term {
        Term::Atom(a) => Some(&a.name),
        _ => None,
    }
}

/// The elements of `term` if it is a tuple.
///
/// # Examples
///
/// ```
/// use trellis::dist::{as_tuple, atom, tuple};
/// assert_eq!(as_tuple(&tuple(vec![atom("a")])), Some(&[atom("a")][..]));
/// assert_eq!(as_tuple(&atom("a")), None);
/// ```
pub fn as_tuple(term: &Term) -> Option<&[Term]> {
    match term {
        Term::Tuple(t) => Some(&t.elements),
        _ => None,
    }
}

impl ToTerm for Term {
    fn to_term(&self) -> Term {
        self.clone()
    }
}

impl FromTerm for Term {
    fn from_term(term: Term) -> Result<Self, TermError> {
        Ok(term)
    }
}

impl ToTerm for Atom {
    fn to_term(&self) -> Term {
        Term::from(self.clone())
    }
}

impl FromTerm for Atom {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Atom(a) => Ok(a),
            other => Err(TermError::new("an atom", &other)),
        }
    }
}

impl ToTerm for ErlPid {
    fn to_term(&self) -> Term {
        Term::from(self.clone())
    }
}

impl FromTerm for ErlPid {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Pid(p) => Ok(p),
            other => Err(TermError::new("a pid", &other)),
        }
    }
}

impl ToTerm for ErlRef {
    fn to_term(&self) -> Term {
        Term::from(self.clone())
    }
}

impl FromTerm for ErlRef {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Reference(r) => Ok(*r),
            other => Err(TermError::new("a reference", &other)),
        }
    }
}

impl ToTerm for bool {
    fn to_term(&self) -> Term {
        atom(if *self { "true" } else { "false" })
    }
}

impl FromTerm for bool {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match as_atom(&term) {
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            _ => Err(TermError::new("a boolean", &term)),
        }
    }
}

/// An integer term of any size, as `i128` when it fits.
fn integer(term: &Term) -> Option<i128> {
    match term {
        Term::FixInteger(i) => Some(i128::from(i.value)),
        Term::BigInteger(b) => b.value.to_string().parse().ok(),
        _ => None,
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToTerm for $t {
            fn to_term(&self) -> Term {
                match i32::try_from(*self) {
                    Ok(small) => Term::from(eetf::FixInteger::from(small)),
                    Err(_) => Term::from(eetf::BigInteger::from(*self)),
                }
            }
        }

        impl FromTerm for $t {
            fn from_term(term: Term) -> Result<Self, TermError> {
                integer(&term)
                    .and_then(|i| <$t>::try_from(i).ok())
                    .ok_or_else(|| TermError::new(concat!("an integer (", stringify!($t), ")"), &term))
            }
        }
    )*};
}

integers!(i32, i64, u32, u64, usize);

impl ToTerm for f64 {
    fn to_term(&self) -> Term {
        // Erlang has no NaN or infinity: those cross as the atom `nan`.
        eetf::Float::try_from(*self).map_or_else(|_| atom("nan"), Term::from)
    }
}

impl FromTerm for f64 {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match &term {
            Term::Float(f) => Ok(f.value),
            _ => integer(&term)
                .map(|i| i as f64)
                .ok_or_else(|| TermError::new("a number", &term)),
        }
    }
}

impl ToTerm for str {
    fn to_term(&self) -> Term {
        Term::from(eetf::Binary::from(self.as_bytes()))
    }
}

impl ToTerm for String {
    fn to_term(&self) -> Term {
        self.as_str().to_term()
    }
}

impl FromTerm for String {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Binary(b) => {
                String::from_utf8(b.bytes).map_err(|_| TermError::new("UTF-8 text", &atom("?")))
            }
            Term::ByteList(l) => String::from_utf8(l.bytes.clone())
                .map_err(|_| TermError::new("UTF-8 text", &Term::from(l))),
            Term::List(l) if l.is_nil() => Ok(String::new()),
            other => Err(TermError::new("a binary", &other)),
        }
    }
}

impl<T: ToTerm> ToTerm for Vec<T> {
    fn to_term(&self) -> Term {
        Term::from(eetf::List::from(
            self.iter().map(ToTerm::to_term).collect::<Vec<_>>(),
        ))
    }
}

impl<T: FromTerm> FromTerm for Vec<T> {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::List(l) => l.elements.into_iter().map(T::from_term).collect(),
            Term::ByteList(l) => l
                .bytes
                .into_iter()
                .map(|b| T::from_term(Term::from(eetf::FixInteger::from(b))))
                .collect(),
            other => Err(TermError::new("a list", &other)),
        }
    }
}

impl<T: ToTerm> ToTerm for Option<T> {
    fn to_term(&self) -> Term {
        match self {
            Some(value) => value.to_term(),
            None => atom("undefined"),
        }
    }
}

impl<T: FromTerm> FromTerm for Option<T> {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match as_atom(&term) {
            Some("undefined" | "nil") => Ok(None),
            _ => T::from_term(term).map(Some),
        }
    }
}

impl<A: ToTerm, B: ToTerm> ToTerm for (A, B) {
    fn to_term(&self) -> Term {
        tuple(vec![self.0.to_term(), self.1.to_term()])
    }
}

impl<A: FromTerm, B: FromTerm> FromTerm for (A, B) {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Tuple(t) if t.elements.len() == 2 => {
                let mut it = t.elements.into_iter();
                let (a, b) = (it.next(), it.next());
                match (a, b) {
                    (Some(a), Some(b)) => Ok((A::from_term(a)?, B::from_term(b)?)),
                    _ => Err(TermError::new("a 2-tuple", &atom("?"))),
                }
            }
            other => Err(TermError::new("a 2-tuple", &other)),
        }
    }
}

impl<A: ToTerm, B: ToTerm, C: ToTerm> ToTerm for (A, B, C) {
    fn to_term(&self) -> Term {
        tuple(vec![self.0.to_term(), self.1.to_term(), self.2.to_term()])
    }
}

impl<A: FromTerm, B: FromTerm, C: FromTerm> FromTerm for (A, B, C) {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Tuple(t) if t.elements.len() == 3 => {
                let mut it = t.elements.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), Some(c)) => {
                        Ok((A::from_term(a)?, B::from_term(b)?, C::from_term(c)?))
                    }
                    _ => Err(TermError::new("a 3-tuple", &atom("?"))),
                }
            }
            other => Err(TermError::new("a 3-tuple", &other)),
        }
    }
}

impl<K: ToTerm, V: ToTerm> ToTerm for HashMap<K, V> {
    fn to_term(&self) -> Term {
        Term::from(eetf::Map::from(
            self.iter()
                .map(|(k, v)| (k.to_term(), v.to_term()))
                .collect::<HashMap<_, _>>(),
        ))
    }
}

impl<K: FromTerm + Eq + Hash, V: FromTerm> FromTerm for HashMap<K, V> {
    fn from_term(term: Term) -> Result<Self, TermError> {
        match term {
            Term::Map(m) => m
                .map
                .into_iter()
                .map(|(k, v)| Ok((K::from_term(k)?, V::from_term(v)?)))
                .collect(),
            other => Err(TermError::new("a map", &other)),
        }
    }
}

impl<T: ToTerm + ?Sized> ToTerm for &T {
    fn to_term(&self) -> Term {
        (**self).to_term()
    }
}

/// `term` made safe for `eetf`'s encoder, which writes a list of small
/// integers as a string of bytes even when some are negative (`[-1]` would
/// reach Erlang as `[255]`): such lists are rebuilt as an improper list
/// ending in `[]`, which encodes as the proper list it is.
///
/// Every term a [`DistNode`](super::DistNode) sends passes through it; call
/// it yourself only when encoding messages by hand with
/// [`frame::encode`](super::frame::encode).
///
/// # Examples
///
/// ```
/// use trellis::dist::{FromTerm, ToTerm, frame, wire_safe};
///
/// let term = wire_safe(vec![-1i32, 2].to_term());
/// let to = trellis::dist::ErlPid::new("a@b", 1, 0, 1);
/// let bytes = frame::encode(frame::Message::send(to, term)).unwrap();
/// let Some(frame::Message::Send(send)) = frame::decode(&bytes[4..]).unwrap() else { panic!() };
/// assert_eq!(Vec::<i32>::from_term(send.message).unwrap(), vec![-1, 2]);
/// ```
pub fn wire_safe(term: Term) -> Term {
    match term {
        Term::List(list) => {
            let negative_bytes = list
                .elements
                .iter()
                .any(|e| matches!(e, Term::FixInteger(i) if i.value < 0))
                && list
                    .elements
                    .iter()
                    .all(|e| matches!(e, Term::FixInteger(i) if i.value < 0x100));
            let elements: Vec<Term> = list.elements.into_iter().map(wire_safe).collect();
            if negative_bytes {
                Term::from(eetf::ImproperList {
                    elements,
                    last: Box::new(Term::from(eetf::List::nil())),
                })
            } else {
                Term::from(eetf::List::from(elements))
            }
        }
        Term::ImproperList(list) => Term::from(eetf::ImproperList {
            elements: list.elements.into_iter().map(wire_safe).collect(),
            last: Box::new(wire_safe(*list.last)),
        }),
        Term::Tuple(t) => tuple(t.elements.into_iter().map(wire_safe).collect()),
        Term::Map(m) => Term::from(eetf::Map::from(
            m.map
                .into_iter()
                .map(|(k, v)| (wire_safe(k), wire_safe(v)))
                .collect::<HashMap<_, _>>(),
        )),
        other => other,
    }
}
