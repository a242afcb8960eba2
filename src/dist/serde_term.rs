//! The serde bridge: any `Serialize` / `Deserialize` Rust type ↔ an Erlang
//! term, so that typed messages need no hand-written conversion.
//!
//! | Rust (serde data model) | Erlang term | Elixir |
//! |---|---|---|
//! | `bool` | `true` / `false` | `true` / `false` |
//! | integers, floats | integer, float | integer, float |
//! | `String`, `&str`, `char` | binary (UTF-8) | `String.t()` |
//! | bytes (`serde_bytes`) | binary | binary |
//! | `None`, `()` | `undefined` (decodes `nil` too) | `nil` |
//! | `Some(x)`, newtype struct `N(x)` | `x` | `x` |
//! | `Vec<T>`, sequences | list | list |
//! | tuples, tuple structs | tuple | tuple |
//! | maps | map | map |
//! | struct `S { a, b }` | map with atom keys `#{a => .., b => ..}` | struct-like map (add `__struct__` for a real struct) |
//! | unit variant `E::GetAll` | atom `get_all` | `:get_all` |
//! | newtype variant `E::Add(x)` | `{add, x}` | `{:add, x}` |
//! | tuple variant `E::Put(k, v)` | `{put, K, V}` | `{:put, k, v}` |
//! | struct variant `E::Move { x, y }` | `{move, #{x => .., y => ..}}` | `{:move, %{x: .., y: ..}}` |
//!
//! Variant names become snake_case atoms (and back), as Erlang and Elixir
//! name their tags. Decoding also accepts charlists for strings and atoms
//! for strings and map keys.

use std::collections::HashMap;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use super::term::{FromTerm, Term, TermError, ToTerm, atom, tuple};

/// `value` as an Erlang term, by the mapping of this module.
///
/// # Examples
///
/// ```
/// use serde::Serialize;
/// use trellis::dist::{to_term, atom, tagged, ToTerm};
///
/// #[derive(Serialize)]
/// enum Request { GetAll, Add(i64) }
///
/// assert_eq!(to_term(&Request::GetAll).unwrap(), atom("get_all"));
/// assert_eq!(to_term(&Request::Add(2)).unwrap(), tagged("add", vec![2.to_term()]));
/// ```
///
/// # Errors
///
/// [`TermError`] for a value serde cannot serialize (a map key that fails,
/// a custom `Serialize` that errs).
pub fn to_term<T: Serialize + ?Sized>(value: &T) -> Result<Term, TermError> {
    value.serialize(TermSerializer)
}

/// A Rust value from an Erlang term, by the mapping of this module.
///
/// # Examples
///
/// ```
/// use serde::Deserialize;
/// use trellis::dist::{from_term, to_term, atom};
///
/// #[derive(Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// #[derive(Deserialize, Debug, PartialEq)]
/// enum Reply { Ok, Moved(Point) }
///
/// # #[derive(serde::Serialize)] struct P { x: i32, y: i32 }
/// let term = trellis::dist::tagged("moved", vec![to_term(&P { x: 1, y: 2 }).unwrap()]);
/// assert_eq!(from_term::<Reply>(term).unwrap(), Reply::Moved(Point { x: 1, y: 2 }));
/// assert_eq!(from_term::<Reply>(atom("ok")).unwrap(), Reply::Ok);
/// ```
///
/// # Errors
///
/// [`TermError`] when the term does not have the shape `T` needs.
pub fn from_term<T: DeserializeOwned>(term: Term) -> Result<T, TermError> {
    T::deserialize(TermDeserializer(term))
}

/// A serde type crossing as a term: `Serde<T>` is [`ToTerm`] and
/// [`FromTerm`] through [`to_term`] and [`from_term`], so a gen_server can
/// declare `type Call = Serde<Request>` and be exported as it is.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use trellis::dist::{FromTerm, Serde, ToTerm};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// enum Request { Get(String), Put(String, i64) }
///
/// let term = Serde(Request::Put("a".into(), 1)).to_term();
/// assert_eq!(Serde::<Request>::from_term(term).unwrap().0, Request::Put("a".into(), 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Serde<T>(pub T);

impl<T: Serialize> ToTerm for Serde<T> {
    fn to_term(&self) -> Term {
        to_term(&self.0).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "value does not serialize; sent as `undefined`");
            atom("undefined")
        })
    }
}

impl<T: DeserializeOwned> FromTerm for Serde<T> {
    fn from_term(term: Term) -> Result<Self, TermError> {
        from_term(term).map(Serde)
    }
}

impl ser::Error for TermError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        TermError {
            expected: "a serializable value",
            got: msg.to_string(),
        }
    }
}

impl de::Error for TermError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        TermError {
            expected: "the shape serde asked for",
            got: msg.to_string(),
        }
    }
}

/// `GetAll` → `get_all`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn map_term(entries: Vec<(Term, Term)>) -> Term {
    Term::from(eetf::Map::from(
        entries.into_iter().collect::<HashMap<_, _>>(),
    ))
}

struct TermSerializer;

/// Collects a sequence, tuple or variant's elements.
struct SeqBuilder {
    /// The tag of a tuple variant (`{tag, ...}`), if any.
    tag: Option<Term>,
    elements: Vec<Term>,
    as_tuple: bool,
}

impl SeqBuilder {
    fn finish(self) -> Term {
        match (self.tag, self.as_tuple) {
            (Some(tag), _) => {
                let mut all = vec![tag];
                all.extend(self.elements);
                tuple(all)
            }
            (None, true) => tuple(self.elements),
            (None, false) => self.elements.to_term(),
        }
    }
}

/// Collects a map or struct's entries.
struct MapBuilder {
    /// The tag of a struct variant (`{tag, #{...}}`), if any.
    tag: Option<Term>,
    entries: Vec<(Term, Term)>,
    key: Option<Term>,
}

impl MapBuilder {
    fn finish(self) -> Term {
        let map = map_term(self.entries);
        match self.tag {
            Some(tag) => tuple(vec![tag, map]),
            None => map,
        }
    }
}

impl ser::Serializer for TermSerializer {
    type Ok = Term;
    type Error = TermError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_i8(self, v: i8) -> Result<Term, TermError> {
        Ok(i32::from(v).to_term())
    }
    fn serialize_i16(self, v: i16) -> Result<Term, TermError> {
        Ok(i32::from(v).to_term())
    }
    fn serialize_i32(self, v: i32) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_i64(self, v: i64) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_u8(self, v: u8) -> Result<Term, TermError> {
        Ok(u32::from(v).to_term())
    }
    fn serialize_u16(self, v: u16) -> Result<Term, TermError> {
        Ok(u32::from(v).to_term())
    }
    fn serialize_u32(self, v: u32) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_u64(self, v: u64) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_f32(self, v: f32) -> Result<Term, TermError> {
        Ok(f64::from(v).to_term())
    }
    fn serialize_f64(self, v: f64) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_char(self, v: char) -> Result<Term, TermError> {
        Ok(v.to_string().to_term())
    }
    fn serialize_str(self, v: &str) -> Result<Term, TermError> {
        Ok(v.to_term())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Term, TermError> {
        Ok(Term::from(eetf::Binary::from(v)))
    }
    fn serialize_none(self) -> Result<Term, TermError> {
        Ok(atom("undefined"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Term, TermError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Term, TermError> {
        Ok(atom("undefined"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Term, TermError> {
        Ok(atom(&snake(name)))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Term, TermError> {
        Ok(atom(&snake(variant)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Term, TermError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Term, TermError> {
        Ok(tuple(vec![atom(&snake(variant)), value.serialize(self)?]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, TermError> {
        Ok(SeqBuilder {
            tag: None,
            elements: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            as_tuple: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, TermError> {
        Ok(SeqBuilder {
            tag: None,
            elements: Vec::with_capacity(len),
            as_tuple: true,
        })
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, TermError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, TermError> {
        Ok(SeqBuilder {
            tag: Some(atom(&snake(variant))),
            elements: Vec::with_capacity(len),
            as_tuple: true,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapBuilder, TermError> {
        Ok(MapBuilder {
            tag: None,
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapBuilder, TermError> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<MapBuilder, TermError> {
        Ok(MapBuilder {
            tag: Some(atom(&snake(variant))),
            entries: Vec::new(),
            key: None,
        })
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TermError> {
        self.elements.push(value.serialize(TermSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TermError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TermError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TermError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), TermError> {
        self.key = Some(key.serialize(TermSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TermError> {
        let key = self.key.take().unwrap_or_else(|| atom("undefined"));
        self.entries.push((key, value.serialize(TermSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), TermError> {
        self.entries
            .push((atom(key), value.serialize(TermSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Term;
    type Error = TermError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), TermError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<Term, TermError> {
        Ok(self.finish())
    }
}

/// Deserializes from one term.
struct TermDeserializer(Term);

/// A term's integer as `i128`, if it is one.
fn integer(term: &Term) -> Option<i128> {
    match term {
        Term::FixInteger(i) => Some(i128::from(i.value)),
        Term::BigInteger(b) => b.value.to_string().parse().ok(),
        _ => None,
    }
}

impl<'de> de::Deserializer<'de> for TermDeserializer {
    type Error = TermError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TermError> {
        match self.0 {
            Term::Atom(a) => match a.name.as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                "undefined" | "nil" => visitor.visit_unit(),
                _ => visitor.visit_string(a.name),
            },
            Term::FixInteger(i) => visitor.visit_i64(i64::from(i.value)),
            ref big @ Term::BigInteger(_) => match integer(big) {
                Some(i) if i >= 0 => match u64::try_from(i) {
                    Ok(u) => visitor.visit_u64(u),
                    Err(_) => visitor.visit_u128(i as u128),
                },
                Some(i) => match i64::try_from(i) {
                    Ok(s) => visitor.visit_i64(s),
                    Err(_) => visitor.visit_i128(i),
                },
                None => Err(TermError::new("an integer of at most 128 bits", big)),
            },
            Term::Float(f) => visitor.visit_f64(f.value),
            Term::Binary(b) => match String::from_utf8(b.bytes) {
                Ok(s) => visitor.visit_string(s),
                Err(e) => visitor.visit_byte_buf(e.into_bytes()),
            },
            Term::ByteList(l) => match String::from_utf8(l.bytes) {
                Ok(s) => visitor.visit_string(s),
                Err(e) => visitor.visit_seq(
                    e.into_bytes()
                        .into_iter()
                        .map(u32::from)
                        .collect::<Vec<_>>()
                        .into_deserializer(),
                ),
            },
            Term::List(l) => visitor.visit_seq(Seq(l.elements.into_iter())),
            Term::Tuple(t) => visitor.visit_seq(Seq(t.elements.into_iter())),
            Term::Map(m) => visitor.visit_map(Entries {
                entries: m.map.into_iter(),
                value: None,
            }),
            other => Err(TermError::new("a term serde can read", &other)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TermError> {
        match &self.0 {
            Term::Atom(a) if a.name == "undefined" || a.name == "nil" => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TermError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TermError> {
        let rust_name = |tag: &str| -> Result<&'static str, TermError> {
            variants
                .iter()
                .find(|v| snake(v) == tag || **v == tag)
                .copied()
                .ok_or_else(|| TermError {
                    expected: "a known variant",
                    got: tag.to_string(),
                })
        };
        match self.0 {
            Term::Atom(a) => visitor.visit_enum(Variant {
                name: rust_name(&a.name)?,
                content: None,
            }),
            Term::Tuple(t) if !t.elements.is_empty() => {
                let mut elements = t.elements.into_iter();
                let tag = match elements.next() {
                    Some(Term::Atom(a)) => a.name,
                    Some(other) => return Err(TermError::new("a variant's atom", &other)),
                    None => unreachable!("checked non-empty"),
                };
                let rest: Vec<Term> = elements.collect();
                let content = if rest.len() == 1 {
                    rest.into_iter().next()
                } else {
                    Some(tuple(rest))
                };
                visitor.visit_enum(Variant {
                    name: rust_name(&tag)?,
                    content,
                })
            }
            other => Err(TermError::new("an atom or a tagged tuple", &other)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct Seq(std::vec::IntoIter<Term>);

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = TermError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TermError> {
        self.0
            .next()
            .map(|t| seed.deserialize(TermDeserializer(t)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries {
    entries: std::collections::hash_map::IntoIter<Term, Term>,
    value: Option<Term>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = TermError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TermError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(TermDeserializer(k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TermError> {
        let value = self.value.take().unwrap_or_else(|| atom("undefined"));
        seed.deserialize(TermDeserializer(value))
    }
}

struct Variant {
    name: &'static str,
    content: Option<Term>,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = TermError;
    type Variant = VariantContent;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantContent), TermError> {
        let name: de::value::StrDeserializer<'_, TermError> = self.name.into_deserializer();
        Ok((seed.deserialize(name)?, VariantContent(self.content)))
    }
}

struct VariantContent(Option<Term>);

impl<'de> de::VariantAccess<'de> for VariantContent {
    type Error = TermError;
    fn unit_variant(self) -> Result<(), TermError> {
        match self.0 {
            None => Ok(()),
            Some(other) => Err(TermError::new("a bare atom", &other)),
        }
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, TermError> {
        let content = self.0.unwrap_or_else(|| atom("undefined"));
        seed.deserialize(TermDeserializer(content))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, TermError> {
        let content = self.0.unwrap_or_else(|| tuple(vec![]));
        de::Deserializer::deserialize_seq(TermDeserializer(content), visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TermError> {
        let content = self.0.unwrap_or_else(|| map_term(vec![]));
        de::Deserializer::deserialize_map(TermDeserializer(content), visitor)
    }
}
