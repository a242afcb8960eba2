//! A shard: a gen_server that owns one part of the keyspace.
//!
//! Connections send a shard a *batch* of operations — every operation for
//! this shard found in one read of a pipelined connection — and get the
//! results back in order, in one `call`.
//!
//! Expiry is Redis's: a key past its deadline is dropped when it is
//! touched (lazily), and an active sampler, every 100 ms, looks at up to
//! [`SAMPLE`] random keys among those with a time to live, drops the
//! expired ones, and goes on while more than a quarter of a sample had
//! expired — but never past [`SAMPLE_ROUNDS`] samples a tick. A tick thus
//! costs O(1) whatever the number of keys; keys with a TTL sit in a dense
//! vector (`ttl_keys`, each entry knowing its index) so that a random one
//! is one index away.
//!
//! Deadlines are Unix milliseconds, as Redis keeps them (`EXAT`/`PXAT`,
//! `EXPIRETIME`), read from a clock that follows tokio's (so a paused test
//! clock moves them): the wall clock at the shard's start plus the tokio
//! time elapsed since. Every deadline computed from a client's number is
//! checked arithmetic: an overflow is an error reply, never a crash.
//!
//! Values and keys are copied out of the connection's input buffer when
//! stored, so that a small value never keeps a large request alive.
//!
//! The data lives in memory only: a shard that crashes is restarted empty by
//! its supervisor.

use std::borrow::Cow;
use std::collections::{HashMap, hash_map};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{Context, Flow, GenServer, Init, Response};

/// Keys looked at per sample of the active expiry (Redis: 20).
pub(crate) const SAMPLE: usize = 20;
/// Most samples per tick of the active expiry.
pub(crate) const SAMPLE_ROUNDS: usize = 16;
/// Largest string a command may make (Redis `proto-max-bulk-len`).
pub(crate) const MAX_STRING: usize = 512 * 1024 * 1024;

/// A deadline asked for by a client, not yet checked against the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// `ms` milliseconds from now (may overflow when added: checked).
    In(i64),
    /// At Unix time `ms` milliseconds.
    At(i64),
}

/// What a write does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No time to live (a plain `SET` clears it).
    Clear,
    /// The one it had (`KEEPTTL`, and `GETEX` without options).
    Keep,
    /// A new deadline.
    Set(Ttl),
}

/// The `NX`/`XX` option of `SET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Always set.
    Always,
    /// Only if the key does not exist.
    IfAbsent,
    /// Only if the key exists.
    IfPresent,
}

/// The `NX`/`XX`/`GT`/`LT` options of `EXPIRE` & co.; all given must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ExpireIf {
    /// `NX`: only if the key has no time to live.
    pub(crate) nx: bool,
    /// `XX`: only if it has one.
    pub(crate) xx: bool,
    /// `GT`: only if the new deadline is later (no TTL counts as infinite).
    pub(crate) gt: bool,
    /// `LT`: only if the new deadline is earlier.
    pub(crate) lt: bool,
}

impl ExpireIf {
    /// Whether a deadline `at` may replace `current`.
    fn allows(self, current: Option<i64>, at: i64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|c| at <= c)
            || self.lt && current.is_some_and(|c| at >= c))
    }
}

/// One operation on one key (or on the whole shard).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `GET key`.
    Get(Bytes),
    /// `SET` and its relatives: answers `Done`/`NotDone`, or the old value
    /// with `get`.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// Its time to live.
        expiry: Expiry,
        /// `NX` / `XX`.
        condition: Condition,
        /// `GET`: answer the old value.
        get: bool,
        /// The command, for the text of an invalid expire time.
        command: &'static str,
    },
    /// `GETDEL key`.
    GetDel(Bytes),
    /// `GETEX key`: the value, with a new expiry (`Keep` leaves it,
    /// `Clear` is `PERSIST`), or the error of an invalid time (answered
    /// only if the key exists, as Redis does).
    GetEx(Bytes, Result<Expiry, Outcome>),
    /// `DEL key` (one key; multi-key `DEL` is split by the connection).
    Del(Bytes),
    /// `EXISTS key` (and `TOUCH`).
    Exists(Bytes),
    /// `TYPE key`: `Value("string")` or `Value("none")`.
    Type(Bytes),
    /// `INCRBY key n` (and `INCR`, `DECR`, `DECRBY`).
    IncrBy(Bytes, i64),
    /// `INCRBYFLOAT key x`.
    IncrByFloat(Bytes, f64),
    /// `APPEND key value`.
    Append(Bytes, Bytes),
    /// `STRLEN key`.
    Strlen(Bytes),
    /// `GETRANGE key start end`.
    GetRange(Bytes, i64, i64),
    /// `SETRANGE key offset value`.
    SetRange(Bytes, usize, Bytes),
    /// `EXPIRE` & co.: a deadline (`PERSIST`: `None`) under a condition.
    Expire(Bytes, Option<Ttl>, ExpireIf, &'static str),
    /// `TTL` (`false`) / `PTTL` (`true`).
    Ttl(Bytes, bool),
    /// `EXPIRETIME` (`false`) / `PEXPIRETIME` (`true`).
    ExpireTime(Bytes, bool),
    /// The value and deadline of a key, for `RENAME` (nothing changes).
    Dump(Bytes),
    /// Stores a dumped entry under a key (`RENAME`'s second half).
    Restore(Bytes, Bytes, Option<i64>),
    /// The key's version for `WATCH`, registering a watcher.
    Watch(Bytes),
    /// The key's version, for `EXEC`'s check.
    Version(Bytes),
    /// Drops one watcher of the key.
    Unwatch(Bytes),
    /// `KEYS pattern` (and one step of `SCAN`): the matching keys.
    Keys(Option<Bytes>),
    /// `RANDOMKEY` of this shard.
    RandomKey,
    /// `DBSIZE` of this shard.
    Size,
    /// Keys and keys with a time to live, for `INFO`.
    Stats,
    /// `FLUSHDB` of this shard.
    Flush,
    /// `DEBUG PANIC`: crashes the shard (a test aid for supervision).
    Panic,
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// A value, or nil.
    Value(Option<Bytes>),
    /// `+OK`.
    Done,
    /// `SET` with a condition that did not hold: nil.
    NotDone,
    /// An integer.
    Int(i64),
    /// Two integers (`Stats`).
    Pair(i64, i64),
    /// A key's value and deadline (`Dump`).
    Entry(Option<(Bytes, Option<i64>)>),
    /// Keys (`Keys`).
    Keys(Vec<Bytes>),
    /// An error reply (with its code).
    Error(Cow<'static, str>),
}

impl Outcome {
    fn error(text: &'static str) -> Self {
        Outcome::Error(Cow::Borrowed(text))
    }
}

/// `-ERR invalid expire time in '<command>' command`.
pub(crate) fn invalid_expire(command: &str) -> Outcome {
    Outcome::Error(Cow::Owned(format!(
        "ERR invalid expire time in '{command}' command"
    )))
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const TOO_LARGE: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// A stored value: up to [`INLINE`] bytes in the entry itself (no
/// allocation of its own), longer ones in a shared buffer (a `GET` hands
/// out a reference, not a copy).
#[derive(Clone)]
enum Value {
    Inline(u8, [u8; INLINE]),
    Shared(Bytes),
}

/// The longest value kept inline.
const INLINE: usize = 22;

impl Value {
    /// `bytes` as a value that owns its memory (a copy, never a slice of
    /// a larger buffer).
    fn copied(bytes: &[u8]) -> Value {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Value::Inline(bytes.len() as u8, inline)
        } else {
            Value::Shared(Bytes::copy_from_slice(bytes))
        }
    }

    /// A value already owned (from this shard): kept as it is if long.
    fn owned(bytes: Bytes) -> Value {
        if bytes.len() <= INLINE {
            Value::copied(&bytes)
        } else {
            Value::Shared(bytes)
        }
    }

    fn to_bytes(&self) -> Bytes {
        match self {
            Value::Inline(..) => Bytes::copy_from_slice(self),
            Value::Shared(bytes) => bytes.clone(),
        }
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Value::Shared(bytes) => bytes,
        }
    }
}

struct Entry {
    value: Value,
    /// Deadline, Unix ms.
    expires: Option<i64>,
    /// Index in `Shard::ttl_keys` when `expires` is set.
    slot: u32,
}

impl Entry {
    fn live(&self, now: i64) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// The state of one shard.
pub(crate) struct Shard {
    /// Keys are boxed slices (16 bytes in the table, one allocation).
    data: HashMap<Box<[u8]>, Entry>,
    /// The keys that have a time to live, densely, for sampling.
    ttl_keys: Vec<Box<[u8]>>,
    /// Versions of watched keys: (version, watchers).
    watched: HashMap<Bytes, (u64, u32)>,
    /// The clock: the wall clock (Unix ms) at `start`.
    epoch_ms: i64,
    start: Instant,
    /// A xorshift state for sampling.
    random: u64,
}

impl Default for Shard {
    fn default() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Shard {
            data: HashMap::new(),
            ttl_keys: Vec::new(),
            watched: HashMap::new(),
            epoch_ms,
            start: Instant::now(),
            random: (epoch_ms as u64) | 1,
        }
    }
}

/// Messages of the shard's own timer.
#[derive(Debug)]
pub(crate) enum Tick {
    /// Time to sample keys with a TTL.
    Sweep,
}

impl GenServer for Shard {
    type Arg = ();
    type Call = Vec<Op>;
    type Reply = Vec<Outcome>;
    type Cast = ();
    type Info = Tick;

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        ctx.send_interval(Duration::from_millis(100), || Tick::Sweep)?;
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        ops: Vec<Op>,
        _: &mut Context<Self>,
    ) -> Result<Response<Vec<Outcome>>, BoxError> {
        let now = self.now_ms();
        Ok(Response::Reply(
            ops.into_iter().map(|op| self.apply(op, now)).collect(),
        ))
    }

    async fn handle_info(
        &mut self,
        Tick::Sweep: Tick,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        let now = self.now_ms();
        self.sample_expired(now);
        Ok(Flow::Continue)
    }
}

fn copy(bytes: &Bytes) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

impl Shard {
    /// Unix milliseconds, following tokio's clock.
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.epoch_ms.saturating_add(elapsed)
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// The active expiry: bounded samples of the keys with a TTL. Returns
    /// how many keys it dropped.
    pub(crate) fn sample_expired(&mut self, now: i64) -> usize {
        let mut dropped = 0;
        for _ in 0..SAMPLE_ROUNDS {
            if self.ttl_keys.is_empty() {
                break;
            }
            let mut expired = 0;
            let looks = SAMPLE.min(self.ttl_keys.len());
            for _ in 0..looks {
                if self.ttl_keys.is_empty() {
                    break;
                }
                let i = (self.next_random() % self.ttl_keys.len() as u64) as usize;
                if self
                    .data
                    .get(&self.ttl_keys[i])
                    .is_some_and(|e| !e.live(now))
                {
                    let key = self.ttl_keys[i].clone();
                    self.remove(&key);
                    expired += 1;
                }
            }
            dropped += expired;
            if expired * 4 <= looks {
                break;
            }
        }
        dropped
    }

    /// Marks a watched key as changed.
    fn touch(&mut self, key: &[u8]) {
        if !self.watched.is_empty() {
            if let Some((version, _)) = self.watched.get_mut(key) {
                *version += 1;
            }
        }
    }

    /// Removes `key`, keeping `ttl_keys` dense.
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.data.remove(key)?;
        if entry.expires.is_some() {
            self.forget_ttl(entry.slot);
        }
        self.touch(key);
        Some(entry)
    }

    fn forget_ttl(&mut self, slot: u32) {
        let slot = slot as usize;
        self.ttl_keys.swap_remove(slot);
        if let Some(moved) = self.ttl_keys.get(slot) {
            if let Some(entry) = self.data.get_mut(moved) {
                entry.slot = slot as u32;
            }
        }
    }

    /// Sets the deadline of the live entry under `key`.
    fn set_deadline(&mut self, key: &[u8], deadline: Option<i64>) {
        let Some(entry) = self.data.get_mut(key) else {
            return;
        };
        let had = entry.expires.is_some();
        entry.expires = deadline;
        match (had, deadline.is_some()) {
            (false, true) => {
                entry.slot = self.ttl_keys.len() as u32;
                self.ttl_keys.push(Box::from(key));
            }
            (true, false) => {
                let slot = entry.slot;
                self.forget_ttl(slot);
            }
            _ => {}
        }
    }

    /// The entry under `key` if it has not expired; an expired one is
    /// dropped on the way.
    fn live(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        let expired = !self.data.get(key)?.live(now);
        if expired {
            self.remove(key);
            return None;
        }
        self.data.get_mut(key)
    }

    /// Stores `value` under `key` with `deadline`, replacing any entry
    /// (one lookup, plus one more only when a time to live goes away).
    fn store(&mut self, key: &[u8], value: Value, deadline: Option<i64>) {
        self.touch(key);
        let forget = match self.data.get_mut(key) {
            Some(entry) => {
                entry.value = value;
                let had = entry.expires.is_some();
                entry.expires = deadline;
                match (had, deadline.is_some()) {
                    (false, true) => {
                        entry.slot = self.ttl_keys.len() as u32;
                        self.ttl_keys.push(Box::from(key));
                        None
                    }
                    (true, false) => Some(entry.slot),
                    _ => None,
                }
            }
            None => {
                let slot = self.ttl_keys.len() as u32;
                if deadline.is_some() {
                    self.ttl_keys.push(Box::from(key));
                }
                self.data.insert(
                    Box::from(key),
                    Entry {
                        value,
                        expires: deadline,
                        slot,
                    },
                );
                None
            }
        };
        if let Some(slot) = forget {
            self.forget_ttl(slot);
        }
    }

    /// A client's deadline as Unix ms, or `None` if it overflows.
    fn deadline(ttl: Ttl, now: i64) -> Option<i64> {
        match ttl {
            Ttl::In(ms) => now.checked_add(ms),
            Ttl::At(ms) => Some(ms),
        }
    }

    fn value_of(&mut self, key: &[u8], now: i64) -> Option<Bytes> {
        self.live(key, now).map(|e| e.value.to_bytes())
    }

    fn apply(&mut self, op: Op, now: i64) -> Outcome {
        match op {
            Op::Get(key) => Outcome::Value(self.value_of(&key, now)),
            Op::Set {
                key,
                value,
                expiry,
                condition,
                get,
                command,
            } => {
                // A plain SET replaces whatever is there: no lookup first.
                let plain = condition == Condition::Always && !get && expiry != Expiry::Keep;
                let old = if plain {
                    None
                } else {
                    self.live(&key, now)
                        .map(|e| (get.then(|| e.value.to_bytes()), e.expires))
                };
                let allowed = match condition {
                    Condition::Always => true,
                    Condition::IfAbsent => old.is_none(),
                    Condition::IfPresent => old.is_some(),
                };
                let deadline = match expiry {
                    Expiry::Clear => None,
                    Expiry::Keep => old.as_ref().and_then(|(_, at)| *at),
                    Expiry::Set(ttl) => match Self::deadline(ttl, now) {
                        Some(at) => Some(at),
                        None => return invalid_expire(command),
                    },
                };
                if allowed {
                    self.store(&key, Value::copied(&value), deadline);
                    // A deadline already past: the key is gone at once.
                    if deadline.is_some_and(|at| at <= now) {
                        self.remove(&key);
                    }
                }
                match (get, allowed) {
                    (true, _) => Outcome::Value(old.and_then(|(v, _)| v)),
                    (false, true) => Outcome::Done,
                    (false, false) => Outcome::NotDone,
                }
            }
            Op::GetDel(key) => {
                let value = self.value_of(&key, now);
                if value.is_some() {
                    self.remove(&key);
                }
                Outcome::Value(value)
            }
            Op::GetEx(key, expiry) => {
                let Some(value) = self.value_of(&key, now) else {
                    return Outcome::Value(None);
                };
                let expiry = match expiry {
                    Ok(expiry) => expiry,
                    Err(error) => return error,
                };
                match expiry {
                    Expiry::Keep => {}
                    Expiry::Clear => self.set_deadline(&key, None),
                    Expiry::Set(ttl) => match Self::deadline(ttl, now) {
                        None => return invalid_expire("getex"),
                        Some(at) if at <= now => {
                            self.remove(&key);
                        }
                        Some(at) => {
                            self.touch(&key);
                            self.set_deadline(&key, Some(at));
                        }
                    },
                }
                Outcome::Value(Some(value))
            }
            Op::Del(key) => Outcome::Int(i64::from(
                self.live(&key, now).is_some() && self.remove(&key).is_some(),
            )),
            Op::Exists(key) => Outcome::Int(i64::from(self.live(&key, now).is_some())),
            Op::Type(key) => Outcome::Value(Some(Bytes::from_static(
                if self.live(&key, now).is_some() {
                    b"string"
                } else {
                    b"none"
                },
            ))),
            Op::IncrBy(key, by) => {
                let entry = self.live(&key, now);
                let current = match entry {
                    None => 0,
                    Some(entry) => match crate::resp::strict_i64(&entry.value) {
                        Some(n) => n,
                        None => return Outcome::error(NOT_INTEGER),
                    },
                };
                let Some(next) = current.checked_add(by) else {
                    return Outcome::error("ERR increment or decrement would overflow");
                };
                let text = Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes());
                self.replace_value(&key, text, now);
                Outcome::Int(next)
            }
            Op::IncrByFloat(key, by) => {
                let current = match self.live(&key, now) {
                    None => 0.0,
                    Some(entry) => match parse_float(&entry.value) {
                        Some(x) => x,
                        None => return Outcome::error("ERR value is not a valid float"),
                    },
                };
                let next = current + by;
                if !next.is_finite() {
                    return Outcome::error("ERR increment would produce NaN or Infinity");
                }
                let text = Bytes::from(format_float(next));
                self.replace_value(&key, text.clone(), now);
                Outcome::Value(Some(text))
            }
            Op::Append(key, tail) => {
                let current = self.value_of(&key, now).unwrap_or_default();
                if current.len() + tail.len() > MAX_STRING {
                    return Outcome::error(TOO_LARGE);
                }
                let mut joined = Vec::with_capacity(current.len() + tail.len());
                joined.extend_from_slice(&current);
                joined.extend_from_slice(&tail);
                let len = joined.len() as i64;
                self.replace_value(&key, Bytes::from(joined), now);
                Outcome::Int(len)
            }
            Op::Strlen(key) => {
                Outcome::Int(self.live(&key, now).map_or(0, |e| e.value.len() as i64))
            }
            Op::GetRange(key, start, end) => {
                let value = self.value_of(&key, now).unwrap_or_default();
                Outcome::Value(Some(get_range(&value, start, end)))
            }
            Op::SetRange(key, offset, part) => {
                let current = self.value_of(&key, now);
                if part.is_empty() {
                    return Outcome::Int(current.map_or(0, |v| v.len() as i64));
                }
                if offset.saturating_add(part.len()) > MAX_STRING {
                    return Outcome::error(TOO_LARGE);
                }
                let mut value = current.map(|v| v.to_vec()).unwrap_or_default();
                if value.len() < offset + part.len() {
                    value.resize(offset + part.len(), 0);
                }
                value[offset..offset + part.len()].copy_from_slice(&part);
                let len = value.len() as i64;
                self.replace_value(&key, Bytes::from(value), now);
                Outcome::Int(len)
            }
            Op::Expire(key, ttl, condition, command) => {
                // An overflow is refused before the key is looked at, as
                // Redis does.
                let at = match ttl.map(|ttl| Self::deadline(ttl, now)) {
                    Some(None) => return invalid_expire(command),
                    Some(Some(at)) => Some(at),
                    None => None,
                };
                let Some(current) = self.live(&key, now).map(|e| e.expires) else {
                    return Outcome::Int(0);
                };
                let Some(at) = at else {
                    // PERSIST.
                    if current.is_none() {
                        return Outcome::Int(0);
                    }
                    self.touch(&key);
                    self.set_deadline(&key, None);
                    return Outcome::Int(1);
                };
                let allowed = condition.allows(current, at);
                if !allowed {
                    return Outcome::Int(0);
                }
                if at <= now {
                    self.remove(&key);
                } else {
                    self.touch(&key);
                    self.set_deadline(&key, Some(at));
                }
                Outcome::Int(1)
            }
            Op::Ttl(key, ms) => Outcome::Int(match self.live(&key, now) {
                None => -2,
                Some(Entry { expires: None, .. }) => -1,
                Some(Entry {
                    expires: Some(at), ..
                }) => {
                    let left = *at - now;
                    if ms { left } else { (left + 500) / 1000 }
                }
            }),
            Op::ExpireTime(key, ms) => Outcome::Int(match self.live(&key, now) {
                None => -2,
                Some(Entry { expires: None, .. }) => -1,
                Some(Entry {
                    expires: Some(at), ..
                }) => {
                    if ms {
                        *at
                    } else {
                        (*at + 500) / 1000
                    }
                }
            }),
            Op::Dump(key) => Outcome::Entry(
                self.live(&key, now)
                    .map(|e| (e.value.to_bytes(), e.expires)),
            ),
            Op::Restore(key, value, deadline) => {
                self.store(&key, Value::owned(value), deadline);
                Outcome::Done
            }
            Op::Watch(key) => {
                // A key already expired is dropped first: its expiry is no
                // change after the WATCH.
                let _ = self.live(&key, now);
                let (version, watchers) = self.watched.entry(copy(&key)).or_insert((0, 0));
                *watchers += 1;
                Outcome::Int(*version as i64)
            }
            Op::Version(key) => {
                // An expired key counts as changed, as in Redis.
                let _ = self.live(&key, now);
                Outcome::Int(self.watched.get(&key[..]).map_or(-1, |(v, _)| *v as i64))
            }
            Op::Unwatch(key) => {
                if let hash_map::Entry::Occupied(mut entry) = self.watched.entry(key) {
                    entry.get_mut().1 -= 1;
                    if entry.get().1 == 0 {
                        entry.remove();
                    }
                }
                Outcome::Done
            }
            Op::Keys(pattern) => Outcome::Keys(
                self.data
                    .iter()
                    .filter(|(key, entry)| {
                        entry.live(now)
                            && pattern
                                .as_ref()
                                .is_none_or(|p| crate::commands::glob_match(p, key))
                    })
                    .map(|(key, _)| Bytes::copy_from_slice(key))
                    .collect(),
            ),
            Op::RandomKey => {
                for _ in 0..100 {
                    if self.data.is_empty() {
                        break;
                    }
                    // A random key: a random one of those with a TTL, or
                    // the map's first (its order is already random).
                    let key = if !self.ttl_keys.is_empty() && self.next_random() % 2 == 0 {
                        let i = (self.next_random() % self.ttl_keys.len() as u64) as usize;
                        self.ttl_keys[i].clone()
                    } else {
                        let skip = (self.next_random() % self.data.len().min(64) as u64) as usize;
                        match self.data.keys().nth(skip) {
                            Some(key) => key.clone(),
                            None => break,
                        }
                    };
                    if self.live(&key, now).is_some() {
                        return Outcome::Value(Some(Bytes::from(key.into_vec())));
                    }
                }
                Outcome::Value(None)
            }
            Op::Size => {
                self.drop_expired(now);
                Outcome::Int(self.data.len() as i64)
            }
            Op::Stats => {
                self.drop_expired(now);
                Outcome::Pair(self.data.len() as i64, self.ttl_keys.len() as i64)
            }
            Op::Flush => {
                // Watched keys that existed change (as in Redis: not those
                // that were absent anyway).
                for (key, (version, _)) in &mut self.watched {
                    if self.data.contains_key(&key[..]) {
                        *version += 1;
                    }
                }
                self.data.clear();
                self.ttl_keys.clear();
                Outcome::Done
            }
            Op::Panic => panic!("DEBUG PANIC: shard crashed on request"),
        }
    }

    /// Replaces the value of `key` keeping its deadline (or makes it, with
    /// none).
    fn replace_value(&mut self, key: &Bytes, value: Bytes, now: i64) {
        let deadline = self.live(key, now).and_then(|e| e.expires);
        self.store(key, Value::owned(value), deadline);
    }

    /// Drops every expired key (`DBSIZE`, `INFO`: an exact count).
    fn drop_expired(&mut self, now: i64) {
        let mut i = 0;
        while i < self.ttl_keys.len() {
            if self
                .data
                .get(&self.ttl_keys[i])
                .is_some_and(|e| !e.live(now))
            {
                let key = self.ttl_keys[i].clone();
                self.remove(&key);
            } else {
                i += 1;
            }
        }
    }

    /// Keys with a time to live (for tests of the sampler).
    #[cfg(test)]
    pub(crate) fn ttl_count(&self) -> usize {
        self.ttl_keys.len()
    }
}

/// `GETRANGE`'s slice, by Redis's rules for negative and out-of-range
/// indexes.
fn get_range(value: &Bytes, mut start: i64, mut end: i64) -> Bytes {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

/// A float as Redis reads one: no spaces, finite or not, whole input.
pub(crate) fn parse_float(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    if text.ends_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let x: f64 = text.parse().ok()?;
    (!x.is_nan()).then_some(x)
}

/// A float as `INCRBYFLOAT` writes it: integers without a fraction, others
/// in the shortest form that reads back.
pub(crate) fn format_float(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e17 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, ttl: Option<Ttl>) -> Op {
        Op::Set {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            expiry: ttl.map_or(Expiry::Clear, Expiry::Set),
            condition: Condition::Always,
            get: false,
            command: "set",
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_overflows_is_an_error_and_the_shard_keeps_its_keys() {
        let mut shard = Shard::default();
        let now = shard.now_ms();
        assert_eq!(shard.apply(set("a", None), now), Outcome::Done);
        assert_eq!(
            shard.apply(set("b", Some(Ttl::In(i64::MAX))), now),
            invalid_expire("set")
        );
        assert_eq!(shard.apply(Op::Size, now), Outcome::Int(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_costs_a_bounded_number_of_looks_per_tick() {
        let mut shard = Shard::default();
        let now = shard.now_ms();
        for i in 0..10_000 {
            shard.apply(set(&format!("k{i}"), Some(Ttl::In(1000))), now);
        }
        assert_eq!(shard.ttl_count(), 10_000);
        // All expired: one tick drops at most SAMPLE * SAMPLE_ROUNDS.
        let dropped = shard.sample_expired(now + 2000);
        assert!(
            dropped > 0 && dropped <= SAMPLE * SAMPLE_ROUNDS,
            "{dropped}"
        );
        // None expired: one sample, nothing dropped.
        let mut fresh = Shard::default();
        for i in 0..10_000 {
            fresh.apply(set(&format!("k{i}"), Some(Ttl::In(100_000))), now);
        }
        assert_eq!(fresh.sample_expired(now + 1), 0);
        assert_eq!(fresh.ttl_count(), 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_with_a_ttl_stay_indexed_through_deletes_and_persists() {
        let mut shard = Shard::default();
        let now = shard.now_ms();
        for i in 0..50 {
            shard.apply(set(&format!("k{i}"), Some(Ttl::In(1000))), now);
        }
        for i in (0..50).step_by(3) {
            shard.apply(Op::Del(Bytes::from(format!("k{i}"))), now);
        }
        for i in (1..50).step_by(3) {
            shard.apply(
                Op::Expire(
                    Bytes::from(format!("k{i}")),
                    None,
                    ExpireIf::default(),
                    "persist",
                ),
                now,
            );
        }
        let left = shard.ttl_keys.len();
        assert_eq!(left, 16);
        for (i, key) in shard.ttl_keys.iter().enumerate() {
            assert_eq!(shard.data[key].slot as usize, i);
        }
        while shard.sample_expired(now + 2000) > 0 {}
        assert_eq!(shard.apply(Op::Size, now + 2000), Outcome::Int(17));
    }

    #[test]
    fn an_entry_and_its_key_take_at_most_72_bytes_of_table() {
        assert!(std::mem::size_of::<(Box<[u8]>, Entry)>() <= 72);
    }

    #[test]
    fn getrange_follows_redis_index_rules() {
        let v = Bytes::from_static(b"Hello World");
        assert_eq!(get_range(&v, 0, 3), "Hell");
        assert_eq!(get_range(&v, -3, -1), "rld");
        assert_eq!(get_range(&v, 0, -1), "Hello World");
        assert_eq!(get_range(&v, 10, 100), "d");
        assert_eq!(get_range(&v, 5, 3), "");
        assert_eq!(get_range(&v, -1, -5), "");
    }
}
