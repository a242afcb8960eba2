//! A shard: a gen_server that owns one part of the keyspace.
//!
//! Connections send a shard a *batch* of operations — every operation for
//! this shard found in one read of a pipelined connection — and get the
//! results back in order, in one `call`. Keys expire lazily (on access) and
//! by a sweep every 100 ms (a `send_interval` timer of the server), as
//! Redis does.
//!
//! The data lives in memory only: a shard that crashes is restarted empty by
//! its supervisor.

use std::collections::{HashMap, hash_map};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{Context, Flow, GenServer, Init, Response};

/// One operation on one key (or on the whole shard).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `GET key`.
    Get(Bytes),
    /// `SET key value [EX|PX] [NX|XX]`.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// Time to live.
        ttl: Option<Duration>,
        /// `NX` (only if absent) / `XX` (only if present).
        condition: Condition,
    },
    /// `DEL key` (one key; multi-key `DEL` is split by the connection).
    Del(Bytes),
    /// `EXISTS key`.
    Exists(Bytes),
    /// `INCRBY key n` (and `INCR`, `DECR`, `DECRBY`).
    IncrBy(Bytes, i64),
    /// `DBSIZE` of this shard.
    Size,
    /// `FLUSHDB` of this shard.
    Flush,
    /// `DEBUG PANIC`: crashes the shard (a test aid for supervision).
    Panic,
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

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A value, or nil.
    Value(Option<Bytes>),
    /// `+OK`.
    Done,
    /// `SET` with a condition that did not hold: nil.
    NotDone,
    /// An integer.
    Int(i64),
    /// An error reply (with its code).
    Error(&'static str),
}

struct Entry {
    value: Bytes,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    /// A new counter, as `INCR` finds a missing key: `0`, no expiry.
    fn counter() -> Self {
        Entry {
            value: Bytes::from_static(b"0"),
            expires: None,
        }
    }
}

/// The state of one shard.
#[derive(Default)]
pub(crate) struct Shard {
    data: HashMap<Bytes, Entry>,
    /// Keys with a time to live, for the sweep.
    expiring: usize,
}

/// Messages of the shard's own timer.
#[derive(Debug)]
pub(crate) enum Tick {
    /// Time to drop expired keys.
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
        let now = Instant::now();
        Ok(Response::Reply(
            ops.into_iter().map(|op| self.apply(op, now)).collect(),
        ))
    }

    async fn handle_info(
        &mut self,
        Tick::Sweep: Tick,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        if self.expiring > 0 {
            let now = Instant::now();
            self.data.retain(|_, entry| entry.live(now));
            self.expiring = self.data.values().filter(|e| e.expires.is_some()).count();
        }
        Ok(Flow::Continue)
    }
}

impl Shard {
    /// The entry under `key` if it has not expired; an expired one is
    /// dropped on the way (one lookup when the key is live or absent).
    fn live(&mut self, key: &Bytes, now: Instant) -> Option<&mut Entry> {
        let expired = !self.data.get(key)?.live(now);
        if expired {
            self.data.remove(key);
            return None;
        }
        self.data.get_mut(key)
    }

    fn apply(&mut self, op: Op, now: Instant) -> Outcome {
        match op {
            Op::Get(key) => Outcome::Value(self.live(&key, now).map(|e| e.value.clone())),
            Op::Set {
                key,
                value,
                ttl,
                condition,
            } => {
                // A plain SET replaces whatever is there: no lookup first.
                let allowed = match condition {
                    Condition::Always => true,
                    Condition::IfAbsent => self.live(&key, now).is_none(),
                    Condition::IfPresent => self.live(&key, now).is_some(),
                };
                if !allowed {
                    return Outcome::NotDone;
                }
                let expires = ttl.map(|ttl| now + ttl);
                self.expiring += usize::from(expires.is_some());
                self.data.insert(key, Entry { value, expires });
                Outcome::Done
            }
            Op::Del(key) => Outcome::Int(i64::from(
                self.live(&key, now).is_some() && self.data.remove(&key).is_some(),
            )),
            Op::Exists(key) => Outcome::Int(i64::from(self.live(&key, now).is_some())),
            Op::IncrBy(key, by) => {
                // One lookup: the entry is updated in place, or made.
                let entry = match self.data.entry(key) {
                    hash_map::Entry::Occupied(entry) if entry.get().live(now) => entry.into_mut(),
                    hash_map::Entry::Occupied(mut entry) => {
                        *entry.get_mut() = Entry::counter();
                        entry.into_mut()
                    }
                    hash_map::Entry::Vacant(entry) => entry.insert(Entry::counter()),
                };
                let Some(current) = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                else {
                    return Outcome::Error("ERR value is not an integer or out of range");
                };
                let Some(next) = current.checked_add(by) else {
                    return Outcome::Error("ERR increment or decrement would overflow");
                };
                entry.value = Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes());
                Outcome::Int(next)
            }
            Op::Size => {
                self.data.retain(|_, entry| entry.live(now));
                Outcome::Int(self.data.len() as i64)
            }
            Op::Flush => {
                self.data.clear();
                self.expiring = 0;
                Outcome::Done
            }
            Op::Panic => panic!("DEBUG PANIC: shard crashed on request"),
        }
    }
}
