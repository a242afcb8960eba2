//! A shard: a gen_server that owns one part of the keyspace, held in its
//! [`Table`].
//!
//! The shard owns the table's lifetime, as an OTP process owns an ETS
//! table: `init` creates it and publishes it in the server's [`Directory`];
//! the shard's own timer runs the active expiry on it; when the shard ends —
//! a crash, `DEBUG PANIC`, a stop — the table is retired (marked dead and
//! emptied), and the supervisor's restart publishes a new, empty one.
//! Connections do not send the shard messages: they hold a reference to the
//! table and run their operations ([`Op`] → [`Outcome`]) on its [`Data`]
//! directly, under its lock, on their own task, and look the table up again
//! in the directory when they find it retired. The lock is a plain mutex,
//! held for one batch of operations and never across an `.await`.
//!
//! Expiry is Redis's: a key past its deadline is dropped when it is
//! touched (lazily), and an active sampler, every 100 ms, looks at up to
//! [`SAMPLE`] random keys among those with a time to live, drops the
//! expired ones, and goes on while more than a quarter of a sample had
//! expired — but never past [`SAMPLE_ROUNDS`] samples a tick. A tick thus
//! costs O(1) whatever the number of keys; keys with a TTL sit in the
//! deadlines' dense list, so that a random one is one index away.
//!
//! Deadlines are Unix milliseconds, as Redis keeps them (`EXAT`/`PXAT`,
//! `EXPIRETIME`), read from a clock that follows tokio's (so a paused test
//! clock moves them): the wall clock at the shard's start plus the tokio
//! time elapsed since. Every deadline computed from a client's number is
//! checked arithmetic: an overflow is an error reply, never a crash.
//!
//! The table: a `hashbrown::HashTable` of 16-byte slots, each hashing the
//! key bytes it holds (no key stored twice, no per-entry `Arc` or `Vec`
//! header). A key with a value of up to [`INLINE`] bytes is *one*
//! allocation: a varint header (`key length << 1 | has a deadline`), the
//! key, the value — a 14-byte key and a 9-byte value take 24 bytes, glibc's
//! smallest chunk. A longer value lives in a shared buffer of its own (a
//! `GET` hands out a reference, not a copy), beside a boxed key. A value
//! overwritten by one of the same length is written in place. Deadlines are
//! kept out of the slot, as Redis keeps its `expires` dictionary: a side
//! table (a dense list plus a key → index table) holds the keys that have
//! one, and the slot's header bit says whether to look there.
//!
//! Values and keys are copied out of the connection's input buffer when
//! stored, so that a small value never keeps a large request alive.
//!
//! The data lives in memory only: a shard that crashes is restarted empty by
//! its supervisor.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable, hash_table};
use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{Context, Flow, GenServer, Init, Response};
use trellis::process::ExitReason;

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

/// The command an operation came from, for the text of an invalid expire
/// time (one byte in the operation, not a string's sixteen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// `SET`.
    Set,
    /// `SETNX`.
    SetNx,
    /// `SETEX`.
    SetEx,
    /// `PSETEX`.
    PSetEx,
    /// `GETSET`.
    GetSet,
    /// `MSET`.
    MSet,
    /// `MSETNX`.
    MSetNx,
    /// `EXPIRE`.
    Expire,
    /// `PEXPIRE`.
    PExpire,
    /// `EXPIREAT`.
    ExpireAt,
    /// `PEXPIREAT`.
    PExpireAt,
    /// `PERSIST`.
    Persist,
}

impl Command {
    /// The command's name in lower case, as Redis's replies quote it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Command::Set => "set",
            Command::SetNx => "setnx",
            Command::SetEx => "setex",
            Command::PSetEx => "psetex",
            Command::GetSet => "getset",
            Command::MSet => "mset",
            Command::MSetNx => "msetnx",
            Command::Expire => "expire",
            Command::PExpire => "pexpire",
            Command::ExpireAt => "expireat",
            Command::PExpireAt => "pexpireat",
            Command::Persist => "persist",
        }
    }
}

/// One operation on one key (or on the whole shard). Keys and values are
/// borrowed from the request they came in (the connection's input buffer,
/// for the batch that runs them): whatever is stored is copied.
#[derive(Debug, Clone)]
pub(crate) enum Op<'a> {
    /// `GET key`.
    Get(&'a [u8]),
    /// `SET` and its relatives: answers `Done`/`NotDone`, or the old value
    /// with `get`.
    Set {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// Its time to live.
        expiry: Expiry,
        /// `NX` / `XX`.
        condition: Condition,
        /// `GET`: answer the old value.
        get: bool,
        /// The command, for the text of an invalid expire time.
        command: Command,
    },
    /// `GETDEL key`.
    GetDel(&'a [u8]),
    /// `GETEX key`: the value, with a new expiry (`Keep` leaves it,
    /// `Clear` is `PERSIST`), or the error of an invalid time (answered
    /// only if the key exists, as Redis does).
    GetEx(&'a [u8], Result<Expiry, Cow<'static, str>>),
    /// `DEL key` (one key; multi-key `DEL` is split by the connection).
    Del(&'a [u8]),
    /// `EXISTS key` (and `TOUCH`).
    Exists(&'a [u8]),
    /// `TYPE key`: `Value("string")` or `Value("none")`.
    Type(&'a [u8]),
    /// `INCRBY key n` (and `INCR`, `DECR`, `DECRBY`).
    IncrBy(&'a [u8], i64),
    /// `INCRBYFLOAT key x`.
    IncrByFloat(&'a [u8], f64),
    /// `APPEND key value`.
    Append(&'a [u8], &'a [u8]),
    /// `STRLEN key`.
    Strlen(&'a [u8]),
    /// `GETRANGE key start end`.
    GetRange(&'a [u8], i64, i64),
    /// `SETRANGE key offset value`.
    SetRange(&'a [u8], usize, &'a [u8]),
    /// `EXPIRE` & co.: a deadline (`PERSIST`: `None`) under a condition.
    Expire(&'a [u8], Option<Ttl>, ExpireIf, Command),
    /// `TTL` (`false`) / `PTTL` (`true`).
    Ttl(&'a [u8], bool),
    /// `EXPIRETIME` (`false`) / `PEXPIRETIME` (`true`).
    ExpireTime(&'a [u8], bool),
    /// The value and deadline of a key, for `RENAME` (nothing changes).
    Dump(&'a [u8]),
    /// Stores a dumped entry under a key (`RENAME`'s second half).
    Restore(&'a [u8], &'a Bytes, Option<i64>),
    /// The key's version for `WATCH`, registering a watcher.
    Watch(&'a [u8]),
    /// The key's version, for `EXEC`'s check.
    Version(&'a [u8]),
    /// Drops one watcher of the key.
    Unwatch(&'a [u8]),
    /// `KEYS pattern` (and one step of `SCAN`): the matching keys.
    Keys(Option<&'a [u8]>),
    /// `RANDOMKEY` of this shard.
    RandomKey,
    /// `DBSIZE` of this shard.
    Size,
    /// Keys and keys with a time to live, for `INFO`.
    Stats,
    /// `FLUSHDB` of this shard.
    Flush,
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
    Entry(Option<Box<(Bytes, Option<i64>)>>),
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

/// The longest value kept in its key's allocation; a longer one lives in a
/// shared buffer of its own, so that a `GET` hands out a reference to it,
/// not a copy.
const INLINE: usize = 64;

/// A value to store: bytes to copy (a client's: never kept as a slice of
/// its request), or a buffer this shard already owns.
enum Fresh<'a> {
    Copy(&'a [u8]),
    Own(Bytes),
}

impl Fresh<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Fresh::Copy(bytes) => bytes,
            Fresh::Own(bytes) => bytes,
        }
    }

    fn shared(self) -> Bytes {
        match self {
            Fresh::Copy(bytes) => Bytes::copy_from_slice(bytes),
            Fresh::Own(bytes) => bytes,
        }
    }
}

/// One key and its value, as the table holds them: 16 bytes in the table
/// (a boxed slice, or a thin box in the slice's length word).
enum Slot {
    /// Key and value in one allocation: a header, the key, the value. The
    /// header is a varint of `key length << 1 | has a deadline` (one byte
    /// for keys of up to 63 bytes); the value is what follows the key.
    Small(Box<[u8]>),
    /// A value longer than [`INLINE`], in a shared buffer.
    Large(Box<Large>),
}

struct Large {
    key: Box<[u8]>,
    value: Bytes,
    /// Whether the key has a deadline (in `Data::deadlines`).
    expires: bool,
}

/// Bytes of the varint `n`.
fn header_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Reads the header of a small slot: (its number, its length in bytes).
fn read_header(bytes: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        n |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (n, i + 1);
        }
    }
    (n, bytes.len())
}

impl Slot {
    /// A slot owning a copy of `key` and `value`.
    fn new(key: &[u8], value: Fresh<'_>, expires: bool) -> Slot {
        let bytes = value.bytes();
        if bytes.len() <= INLINE {
            let mut header = (key.len() << 1) | usize::from(expires);
            // Exactly sized: a boxed slice from a larger vector would be
            // reallocated.
            let mut slot = Vec::with_capacity(header_len(header) + key.len() + bytes.len());
            while header >= 0x80 {
                slot.push((header & 0x7f) as u8 | 0x80);
                header >>= 7;
            }
            slot.push(header as u8);
            slot.extend_from_slice(key);
            slot.extend_from_slice(bytes);
            Slot::Small(slot.into_boxed_slice())
        } else {
            Slot::Large(Box::new(Large {
                key: Box::from(key),
                value: value.shared(),
                expires,
            }))
        }
    }

    /// The key and the value.
    fn parts(&self) -> (&[u8], &[u8]) {
        match self {
            Slot::Small(bytes) => {
                let (header, at) = read_header(bytes);
                bytes[at..].split_at((header >> 1).min(bytes.len() - at))
            }
            Slot::Large(large) => (&large.key, &large.value),
        }
    }

    fn key(&self) -> &[u8] {
        self.parts().0
    }

    fn value(&self) -> &[u8] {
        self.parts().1
    }

    /// The value as a buffer of its own (a copy if small, a reference to
    /// the shared buffer if large).
    fn value_bytes(&self) -> Bytes {
        match self {
            Slot::Small(_) => Bytes::copy_from_slice(self.value()),
            Slot::Large(large) => large.value.clone(),
        }
    }

    /// Whether the key has a deadline.
    fn expires(&self) -> bool {
        match self {
            Slot::Small(bytes) => bytes.first().is_some_and(|b| b & 1 == 1),
            Slot::Large(large) => large.expires,
        }
    }

    fn set_expires(&mut self, expires: bool) {
        match self {
            // The flag is the header's lowest bit: its length stays.
            Slot::Small(bytes) => {
                if let Some(first) = bytes.first_mut() {
                    *first = (*first & !1) | u8::from(expires);
                }
            }
            Slot::Large(large) => large.expires = expires,
        }
    }

    /// Replaces the value, in place when a small one keeps its length.
    fn set_value(&mut self, value: Fresh<'_>) {
        if let Slot::Small(bytes) = self {
            let (header, at) = read_header(bytes);
            let start = at + (header >> 1);
            if bytes.len() - start == value.bytes().len() && value.bytes().len() <= INLINE {
                bytes[start..].copy_from_slice(value.bytes());
                return;
            }
        }
        let slot = Slot::new(self.key(), value, self.expires());
        *self = slot;
    }
}

/// The deadlines of the keys that have one, kept out of the common slot
/// (as Redis keeps its `expires` dictionary): a dense list, so that a
/// random one is one index away, and a table from key to index.
#[derive(Default)]
struct Deadlines {
    index: HashTable<usize>,
    list: Vec<(Box<[u8]>, i64)>,
    hasher: DefaultHashBuilder,
}

impl Deadlines {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn get(&self, key: &[u8]) -> Option<i64> {
        let hash = self.hasher.hash_one(key);
        let i = self.index.find(hash, |&i| *self.list[i].0 == *key)?;
        Some(self.list[*i].1)
    }

    fn set(&mut self, key: &[u8], at: i64) {
        let hash = self.hasher.hash_one(key);
        let (list, hasher) = (&mut self.list, &self.hasher);
        match self.index.entry(
            hash,
            |&i| *list[i].0 == *key,
            |&i| hasher.hash_one(&*list[i].0),
        ) {
            hash_table::Entry::Occupied(entry) => list[*entry.get()].1 = at,
            hash_table::Entry::Vacant(entry) => {
                entry.insert(list.len());
                list.push((Box::from(key), at));
            }
        }
    }

    /// Forgets `key`'s deadline; the last of the list takes its place.
    fn remove(&mut self, key: &[u8]) -> Option<i64> {
        let hash = self.hasher.hash_one(key);
        let list = &self.list;
        let (i, _) = self
            .index
            .find_entry(hash, |&i| *list[i].0 == *key)
            .ok()?
            .remove();
        let (_, at) = self.list.swap_remove(i);
        if let Some((moved, _)) = self.list.get(i) {
            let last = self.list.len();
            let hash = self.hasher.hash_one(&**moved);
            if let Some(index) = self.index.find_mut(hash, |&j| j == last) {
                *index = i;
            }
        }
        Some(at)
    }

    fn clear(&mut self) {
        self.index.clear();
        self.list.clear();
    }
}

/// The keys and values of one shard, with their deadlines and watchers:
/// what a [`Table`]'s lock guards.
pub(crate) struct Data {
    /// Every key, with its value: one allocation per small key and value.
    data: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    /// The deadlines of the keys that have one.
    deadlines: Deadlines,
    /// Versions of watched keys: (version, watchers).
    watched: HashMap<Box<[u8]>, (u64, u32)>,
    /// The clock: the wall clock (Unix ms) at `start`.
    epoch_ms: i64,
    start: Instant,
    /// A xorshift state for sampling.
    random: u64,
}

impl Default for Data {
    fn default() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Data {
            data: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            deadlines: Deadlines::default(),
            watched: HashMap::new(),
            epoch_ms,
            start: Instant::now(),
            random: (epoch_ms as u64) | 1,
        }
    }
}

/// A shard's table: its [`Data`] under a lock, and whether the shard that
/// owns it still runs.
///
/// The shard gen_server creates it in `init` and publishes it in the
/// server's [`Directory`]; connections hold a reference and run their
/// operations on it directly, under the lock, on their own task. When the
/// shard ends (a crash, `DEBUG PANIC`, a stop), its table is *retired*: marked
/// dead and emptied, so that a connection still holding it gets an error and
/// looks up the shard's next incarnation, which starts with a new, empty
/// table.
pub(crate) struct Table {
    data: Mutex<Data>,
    /// Cleared, under the lock, when the owning shard ends.
    live: AtomicBool,
}

impl Table {
    fn new() -> Self {
        Table {
            data: Mutex::new(Data::default()),
            live: AtomicBool::new(true),
        }
    }

    /// Whether the shard that owns the table still runs (a hint: [`lock`]
    /// decides).
    ///
    /// [`lock`]: Table::lock
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The data, locked; `None` if the table was retired. The guard must
    /// not be held across an `.await`.
    pub(crate) fn lock(&self) -> Option<MutexGuard<'_, Data>> {
        // A panic under the lock (none is known) ends a connection, not
        // the table: the lock's poison is ignored.
        let guard = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        self.live.load(Ordering::Relaxed).then_some(guard)
    }

    /// Marks the table dead, under its lock (the guard, `_locked`, shows it
    /// is held): no operation runs on it after this. Its keys go when its
    /// shard ends.
    pub(crate) fn condemn(&self, _locked: &mut MutexGuard<'_, Data>) {
        self.live.store(false, Ordering::Release);
    }

    /// Marks the table dead (no operation runs on it after this) and drops
    /// its keys.
    pub(crate) fn retire(&self) {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        self.live.store(false, Ordering::Release);
        *data = Data::default();
    }
}

/// Where connections find each shard's current table: one slot per shard,
/// written by the shard when it starts.
pub(crate) struct Directory {
    slots: Box<[Mutex<Option<Arc<Table>>>]>,
}

impl Directory {
    /// A directory of `shards` empty slots.
    pub(crate) fn new(shards: usize) -> Self {
        Directory {
            slots: (0..shards).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Shard `i`'s table, if that shard runs.
    pub(crate) fn table(&self, i: usize) -> Option<Arc<Table>> {
        let slot = self
            .slots
            .get(i)?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|table| table.is_live()).cloned()
    }

    fn publish(&self, i: usize, table: Arc<Table>) {
        if let Some(slot) = self.slots.get(i) {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(table);
        }
    }
}

/// The shard gen_server: owns one [`Table`] for its lifetime.
///
/// `init` creates the table and publishes it; the shard's own timer runs
/// the active expiry on it every 100 ms; `DEBUG PANIC` (a cast) crashes
/// it. Ending, however it ends, retires the table, so its supervisor's
/// restart starts over with an empty one: the data lives only as long as
/// the process that owns it, as an ETS table lives with its owner.
pub(crate) struct Shard {
    directory: Arc<Directory>,
    index: usize,
    table: Option<Arc<Table>>,
}

impl Shard {
    /// Shard `index` of the server whose tables `directory` lists.
    pub(crate) fn new(directory: Arc<Directory>, index: usize) -> Self {
        Shard {
            directory,
            index,
            table: None,
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if let Some(table) = &self.table {
            table.retire();
        }
    }
}

/// Messages of the shard's own timer.
#[derive(Debug)]
pub(crate) enum Tick {
    /// Time to sample keys with a TTL.
    Sweep,
}

/// Casts to a shard.
#[derive(Debug)]
pub(crate) enum Crash {
    /// `DEBUG PANIC`: the shard panics (a test aid for supervision). The
    /// connection that asked has already retired the table.
    Panic,
}

impl GenServer for Shard {
    type Arg = ();
    /// A request for the shard's table.
    type Call = ();
    type Reply = Arc<Table>;
    type Cast = Crash;
    type Info = Tick;

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        let table = Arc::new(Table::new());
        self.directory.publish(self.index, table.clone());
        self.table = Some(table);
        ctx.send_interval(Duration::from_millis(100), || Tick::Sweep)?;
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<Arc<Table>>, BoxError> {
        match &self.table {
            Some(table) => Ok(Response::Reply(table.clone())),
            None => Err("the shard has no table".into()),
        }
    }

    async fn handle_cast(
        &mut self,
        Crash::Panic: Crash,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        panic!("DEBUG PANIC: shard crashed on request")
    }

    async fn terminate(&mut self, _: &ExitReason, _: &mut Context<Self>) {
        // Before `stop` returns; `Drop` covers an end without `terminate`.
        if let Some(table) = &self.table {
            table.retire();
        }
    }

    async fn handle_info(
        &mut self,
        Tick::Sweep: Tick,
        _: &mut Context<Self>,
    ) -> Result<Flow, BoxError> {
        if let Some(mut data) = self.table.as_ref().and_then(|table| table.lock()) {
            let now = data.now_ms();
            data.sample_expired(now);
        }
        Ok(Flow::Continue)
    }
}

/// Marks a watched key as changed.
fn touch(watched: &mut HashMap<Box<[u8]>, (u64, u32)>, key: &[u8]) {
    if !watched.is_empty() {
        if let Some((version, _)) = watched.get_mut(key) {
            *version += 1;
        }
    }
}

impl Data {
    /// Unix milliseconds, following tokio's clock.
    pub(crate) fn now_ms(&self) -> i64 {
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
            if self.deadlines.len() == 0 {
                break;
            }
            let mut expired = 0;
            let looks = SAMPLE.min(self.deadlines.len());
            for _ in 0..looks {
                if self.deadlines.len() == 0 {
                    break;
                }
                let i = (self.next_random() % self.deadlines.len() as u64) as usize;
                let (key, at) = &self.deadlines.list[i];
                if *at <= now {
                    let key = key.clone();
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
        touch(&mut self.watched, key);
    }

    fn contains(&self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        self.data.find(hash, |slot| slot.key() == key).is_some()
    }

    /// Removes `key` and its deadline.
    fn remove(&mut self, key: &[u8]) -> Option<Slot> {
        let hash = self.hasher.hash_one(key);
        let (slot, _) = self
            .data
            .find_entry(hash, |slot| slot.key() == key)
            .ok()?
            .remove();
        if slot.expires() {
            self.deadlines.remove(key);
        }
        self.touch(key);
        Some(slot)
    }

    /// Sets the deadline of the entry under `key`, if there is one.
    fn set_deadline(&mut self, key: &[u8], deadline: Option<i64>) {
        let hash = self.hasher.hash_one(key);
        let Some(slot) = self.data.find_mut(hash, |slot| slot.key() == key) else {
            return;
        };
        let had = slot.expires();
        slot.set_expires(deadline.is_some());
        match deadline {
            Some(at) => self.deadlines.set(key, at),
            None if had => {
                self.deadlines.remove(key);
            }
            None => {}
        }
    }

    /// The entry under `key` and its deadline, if it has not expired; an
    /// expired one is dropped on the way. One lookup for a key without a
    /// deadline.
    fn live(&mut self, key: &[u8], now: i64) -> Option<(&mut Slot, Option<i64>)> {
        let hash = self.hasher.hash_one(key);
        let entry = self.data.find_entry(hash, |slot| slot.key() == key).ok()?;
        let deadline = if entry.get().expires() {
            self.deadlines.get(key)
        } else {
            None
        };
        if deadline.is_some_and(|at| at <= now) {
            entry.remove();
            self.deadlines.remove(key);
            touch(&mut self.watched, key);
            return None;
        }
        Some((entry.into_mut(), deadline))
    }

    /// Stores `value` under `key` with `deadline`, replacing any entry (one
    /// lookup, and a value of the same small size is written in place).
    fn store(&mut self, key: &[u8], value: Fresh<'_>, deadline: Option<i64>) {
        self.touch(key);
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        let had = match self.data.entry(
            hash,
            |slot| slot.key() == key,
            |slot| hasher.hash_one(slot.key()),
        ) {
            hash_table::Entry::Occupied(mut entry) => {
                let slot = entry.get_mut();
                slot.set_value(value);
                let had = slot.expires();
                slot.set_expires(deadline.is_some());
                had
            }
            hash_table::Entry::Vacant(entry) => {
                entry.insert(Slot::new(key, value, deadline.is_some()));
                false
            }
        };
        match deadline {
            Some(at) => self.deadlines.set(key, at),
            None if had => {
                self.deadlines.remove(key);
            }
            None => {}
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
        self.live(key, now).map(|(slot, _)| slot.value_bytes())
    }

    pub(crate) fn apply(&mut self, op: &Op<'_>, now: i64) -> Outcome {
        match op {
            Op::Get(key) => Outcome::Value(self.value_of(key, now)),
            &Op::Set {
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
                    self.live(key, now)
                        .map(|(slot, at)| (get.then(|| slot.value_bytes()), at))
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
                        None => return invalid_expire(command.name()),
                    },
                };
                if allowed {
                    self.store(key, Fresh::Copy(value), deadline);
                    // A deadline already past: the key is gone at once.
                    if deadline.is_some_and(|at| at <= now) {
                        self.remove(key);
                    }
                }
                match (get, allowed) {
                    (true, _) => Outcome::Value(old.and_then(|(v, _)| v)),
                    (false, true) => Outcome::Done,
                    (false, false) => Outcome::NotDone,
                }
            }
            Op::GetDel(key) => {
                let value = self.value_of(key, now);
                if value.is_some() {
                    self.remove(key);
                }
                Outcome::Value(value)
            }
            Op::GetEx(key, expiry) => {
                let Some(value) = self.value_of(key, now) else {
                    return Outcome::Value(None);
                };
                let expiry = match expiry {
                    Ok(expiry) => *expiry,
                    Err(error) => return Outcome::Error(error.clone()),
                };
                match expiry {
                    Expiry::Keep => {}
                    Expiry::Clear => self.set_deadline(key, None),
                    Expiry::Set(ttl) => match Self::deadline(ttl, now) {
                        None => return invalid_expire("getex"),
                        Some(at) if at <= now => {
                            self.remove(key);
                        }
                        Some(at) => {
                            self.touch(key);
                            self.set_deadline(key, Some(at));
                        }
                    },
                }
                Outcome::Value(Some(value))
            }
            Op::Del(key) => Outcome::Int(i64::from(
                self.live(key, now).is_some() && self.remove(key).is_some(),
            )),
            Op::Exists(key) => Outcome::Int(i64::from(self.live(key, now).is_some())),
            Op::Type(key) => {
                Outcome::Value(Some(Bytes::from_static(if self.live(key, now).is_some() {
                    b"string"
                } else {
                    b"none"
                })))
            }
            &Op::IncrBy(key, by) => {
                const OVERFLOW: &str = "ERR increment or decrement would overflow";
                // One lookup: the value is rewritten in its slot.
                let mut text = itoa::Buffer::new();
                let next = match self.live(key, now) {
                    Some((slot, _)) => {
                        let Some(current) = crate::resp::strict_i64(slot.value()) else {
                            return Outcome::error(NOT_INTEGER);
                        };
                        let Some(next) = current.checked_add(by) else {
                            return Outcome::error(OVERFLOW);
                        };
                        slot.set_value(Fresh::Copy(text.format(next).as_bytes()));
                        self.touch(key);
                        next
                    }
                    None => {
                        self.store(key, Fresh::Copy(text.format(by).as_bytes()), None);
                        by
                    }
                };
                Outcome::Int(next)
            }
            &Op::IncrByFloat(key, by) => {
                let current = match self.live(key, now) {
                    None => 0.0,
                    Some((slot, _)) => match parse_float(slot.value()) {
                        Some(x) => x,
                        None => return Outcome::error("ERR value is not a valid float"),
                    },
                };
                let next = current + by;
                if !next.is_finite() {
                    return Outcome::error("ERR increment would produce NaN or Infinity");
                }
                let text = Bytes::from(format_float(next));
                self.replace_value(key, Fresh::Copy(&text), now);
                Outcome::Value(Some(text))
            }
            Op::Append(key, tail) => {
                let current = self.value_of(key, now).unwrap_or_default();
                if current.len() + tail.len() > MAX_STRING {
                    return Outcome::error(TOO_LARGE);
                }
                let mut joined = Vec::with_capacity(current.len() + tail.len());
                joined.extend_from_slice(&current);
                joined.extend_from_slice(tail);
                let len = joined.len() as i64;
                self.replace_value(key, Fresh::Own(Bytes::from(joined)), now);
                Outcome::Int(len)
            }
            Op::Strlen(key) => Outcome::Int(
                self.live(key, now)
                    .map_or(0, |(slot, _)| slot.value().len() as i64),
            ),
            &Op::GetRange(key, start, end) => {
                let value = self.value_of(key, now).unwrap_or_default();
                Outcome::Value(Some(get_range(&value, start, end)))
            }
            &Op::SetRange(key, offset, part) => {
                let current = self.value_of(key, now);
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
                value[offset..offset + part.len()].copy_from_slice(part);
                let len = value.len() as i64;
                self.replace_value(key, Fresh::Own(Bytes::from(value)), now);
                Outcome::Int(len)
            }
            &Op::Expire(key, ttl, condition, command) => {
                // An overflow is refused before the key is looked at, as
                // Redis does.
                let at = match ttl.map(|ttl| Self::deadline(ttl, now)) {
                    Some(None) => return invalid_expire(command.name()),
                    Some(Some(at)) => Some(at),
                    None => None,
                };
                let Some(current) = self.live(key, now).map(|(_, at)| at) else {
                    return Outcome::Int(0);
                };
                let Some(at) = at else {
                    // PERSIST.
                    if current.is_none() {
                        return Outcome::Int(0);
                    }
                    self.touch(key);
                    self.set_deadline(key, None);
                    return Outcome::Int(1);
                };
                let allowed = condition.allows(current, at);
                if !allowed {
                    return Outcome::Int(0);
                }
                if at <= now {
                    self.remove(key);
                } else {
                    self.touch(key);
                    self.set_deadline(key, Some(at));
                }
                Outcome::Int(1)
            }
            &Op::Ttl(key, ms) => Outcome::Int(match self.live(key, now).map(|(_, at)| at) {
                None => -2,
                Some(None) => -1,
                Some(Some(at)) => {
                    let left = at - now;
                    if ms { left } else { (left + 500) / 1000 }
                }
            }),
            &Op::ExpireTime(key, ms) => Outcome::Int(match self.live(key, now).map(|(_, at)| at) {
                None => -2,
                Some(None) => -1,
                Some(Some(at)) => {
                    if ms {
                        at
                    } else {
                        (at + 500) / 1000
                    }
                }
            }),
            Op::Dump(key) => Outcome::Entry(
                self.live(key, now)
                    .map(|(slot, at)| Box::new((slot.value_bytes(), at))),
            ),
            &Op::Restore(key, value, deadline) => {
                self.store(key, Fresh::Own(value.clone()), deadline);
                Outcome::Done
            }
            Op::Watch(key) => {
                // A key already expired is dropped first: its expiry is no
                // change after the WATCH.
                let _ = self.live(key, now);
                let (version, watchers) = self.watched.entry(Box::from(*key)).or_insert((0, 0));
                *watchers += 1;
                Outcome::Int(*version as i64)
            }
            Op::Version(key) => {
                // An expired key counts as changed, as in Redis.
                let _ = self.live(key, now);
                Outcome::Int(self.watched.get(*key).map_or(-1, |(v, _)| *v as i64))
            }
            Op::Unwatch(key) => {
                if let Some((_, watchers)) = self.watched.get_mut(*key) {
                    *watchers -= 1;
                    if *watchers == 0 {
                        self.watched.remove(*key);
                    }
                }
                Outcome::Done
            }
            Op::Keys(pattern) => Outcome::Keys(
                self.data
                    .iter()
                    .filter(|slot| {
                        (!slot.expires()
                            || self.deadlines.get(slot.key()).is_none_or(|at| at > now))
                            && pattern
                                .as_ref()
                                .is_none_or(|p| crate::commands::glob_match(p, slot.key()))
                    })
                    .map(|slot| Bytes::copy_from_slice(slot.key()))
                    .collect(),
            ),
            Op::RandomKey => {
                for _ in 0..100 {
                    if self.data.is_empty() {
                        break;
                    }
                    // A random key: a random one of those with a TTL, or
                    // the map's first (its order is already random).
                    let key: Box<[u8]> = if self.deadlines.len() > 0 && self.next_random() % 2 == 0
                    {
                        let i = (self.next_random() % self.deadlines.len() as u64) as usize;
                        self.deadlines.list[i].0.clone()
                    } else {
                        let skip = (self.next_random() % self.data.len().min(64) as u64) as usize;
                        match self.data.iter().nth(skip) {
                            Some(slot) => Box::from(slot.key()),
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
                Outcome::Pair(self.data.len() as i64, self.deadlines.len() as i64)
            }
            Op::Flush => {
                // Watched keys that existed change (as in Redis: not those
                // that were absent anyway).
                let mut watched = std::mem::take(&mut self.watched);
                for (key, (version, _)) in &mut watched {
                    if self.contains(key) {
                        *version += 1;
                    }
                }
                self.watched = watched;
                self.data.clear();
                self.deadlines.clear();
                Outcome::Done
            }
        }
    }

    /// Replaces the value of `key` keeping its deadline (or makes it, with
    /// none).
    fn replace_value(&mut self, key: &[u8], value: Fresh<'_>, now: i64) {
        if let Some((slot, _)) = self.live(key, now) {
            slot.set_value(value);
            self.touch(key);
        } else {
            self.store(key, value, None);
        }
    }

    /// Drops every expired key (`DBSIZE`, `INFO`: an exact count).
    fn drop_expired(&mut self, now: i64) {
        let mut i = 0;
        while let Some((key, at)) = self.deadlines.list.get(i) {
            if *at <= now {
                let key = key.clone();
                self.remove(&key);
            } else {
                i += 1;
            }
        }
    }

    /// Keys with a time to live (for tests of the sampler).
    #[cfg(test)]
    pub(crate) fn ttl_count(&self) -> usize {
        self.deadlines.len()
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

    fn set(key: &str, ttl: Option<Ttl>) -> Op<'_> {
        Op::Set {
            key: key.as_bytes(),
            value: b"v",
            expiry: ttl.map_or(Expiry::Clear, Expiry::Set),
            condition: Condition::Always,
            get: false,
            command: Command::Set,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_overflows_is_an_error_and_the_shard_keeps_its_keys() {
        let mut shard = Data::default();
        let now = shard.now_ms();
        assert_eq!(shard.apply(&set("a", None), now), Outcome::Done);
        assert_eq!(
            shard.apply(&set("b", Some(Ttl::In(i64::MAX))), now),
            invalid_expire("set")
        );
        assert_eq!(shard.apply(&Op::Size, now), Outcome::Int(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_costs_a_bounded_number_of_looks_per_tick() {
        let mut shard = Data::default();
        let now = shard.now_ms();
        for i in 0..10_000 {
            shard.apply(&set(&format!("k{i}"), Some(Ttl::In(1000))), now);
        }
        assert_eq!(shard.ttl_count(), 10_000);
        // All expired: one tick drops at most SAMPLE * SAMPLE_ROUNDS.
        let dropped = shard.sample_expired(now + 2000);
        assert!(
            dropped > 0 && dropped <= SAMPLE * SAMPLE_ROUNDS,
            "{dropped}"
        );
        // None expired: one sample, nothing dropped.
        let mut fresh = Data::default();
        for i in 0..10_000 {
            fresh.apply(&set(&format!("k{i}"), Some(Ttl::In(100_000))), now);
        }
        assert_eq!(fresh.sample_expired(now + 1), 0);
        assert_eq!(fresh.ttl_count(), 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_with_a_ttl_stay_indexed_through_deletes_and_persists() {
        let mut shard = Data::default();
        let now = shard.now_ms();
        for i in 0..50 {
            shard.apply(&set(&format!("k{i}"), Some(Ttl::In(1000))), now);
        }
        for i in (0..50).step_by(3) {
            shard.apply(&Op::Del(format!("k{i}").as_bytes()), now);
        }
        for i in (1..50).step_by(3) {
            shard.apply(
                &Op::Expire(
                    format!("k{i}").as_bytes(),
                    None,
                    ExpireIf::default(),
                    Command::Persist,
                ),
                now,
            );
        }
        assert_eq!(shard.deadlines.len(), 16);
        for (i, (key, _)) in shard.deadlines.list.iter().enumerate() {
            let hash = shard.deadlines.hasher.hash_one(&**key);
            assert_eq!(shard.deadlines.index.find(hash, |&j| j == i), Some(&i));
            let slot = shard.data.iter().find(|slot| slot.key() == &key[..]);
            assert!(slot.is_some_and(Slot::expires));
        }
        let flagged = shard.data.iter().filter(|slot| slot.expires()).count();
        assert_eq!(flagged, 16);
        while shard.sample_expired(now + 2000) > 0 {}
        assert_eq!(shard.apply(&Op::Size, now + 2000), Outcome::Int(17));
    }

    #[test]
    fn a_small_key_and_value_take_16_bytes_of_table_and_one_exact_allocation() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        // The benchmark's shape: a 14-byte key, a 9-byte value, and a
        // one-byte header: 24 bytes, the smallest malloc chunk's payload.
        let slot = Slot::new(b"key:0000000001", Fresh::Copy(b"v00000001"), false);
        let Slot::Small(bytes) = &slot else {
            panic!("a small value is stored inline")
        };
        assert_eq!(bytes.len(), 24);
        assert_eq!(slot.parts(), (&b"key:0000000001"[..], &b"v00000001"[..]));
    }

    #[test]
    fn slots_keep_key_value_and_deadline_flag_apart_at_every_size() {
        for key_len in [0, 1, 63, 64, 200, 20_000] {
            for value_len in [0, 1, INLINE, INLINE + 1, 1000] {
                let key = vec![b'k'; key_len];
                let value = vec![b'v'; value_len];
                let mut slot = Slot::new(&key, Fresh::Copy(&value), false);
                assert_eq!(slot.parts(), (&key[..], &value[..]));
                assert!(!slot.expires());
                slot.set_expires(true);
                assert!(slot.expires());
                assert_eq!(slot.parts(), (&key[..], &value[..]));
                // Same length (in place), then another length.
                let same = vec![b'w'; value_len];
                slot.set_value(Fresh::Copy(&same));
                assert_eq!(slot.parts(), (&key[..], &same[..]));
                let other = vec![b'x'; value_len + 7];
                slot.set_value(Fresh::Own(Bytes::from(other.clone())));
                assert_eq!(slot.parts(), (&key[..], &other[..]));
                assert!(slot.expires(), "the flag survives a new value");
                slot.set_expires(false);
                assert!(!slot.expires());
                assert_eq!(slot.key(), &key[..]);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn overwriting_a_key_keeps_or_clears_its_deadline_as_asked() {
        let mut shard = Data::default();
        let now = shard.now_ms();
        shard.apply(&set("a", Some(Ttl::In(1000))), now);
        assert_eq!(
            shard.apply(&Op::IncrBy(b"a", 1), now),
            Outcome::error(NOT_INTEGER)
        );
        shard.apply(&set("n", Some(Ttl::In(1000))), now);
        shard.apply(
            &Op::Set {
                key: b"n",
                value: b"41",
                expiry: Expiry::Keep,
                condition: Condition::Always,
                get: false,
                command: Command::Set,
            },
            now,
        );
        // INCR keeps the deadline; a plain SET clears it.
        assert_eq!(shard.apply(&Op::IncrBy(b"n", 1), now), Outcome::Int(42));
        assert_eq!(shard.apply(&Op::Ttl(b"n", true), now), Outcome::Int(1000));
        assert_eq!(shard.apply(&set("a", None), now), Outcome::Done);
        assert_eq!(shard.apply(&Op::Ttl(b"a", true), now), Outcome::Int(-1));
        assert_eq!(shard.ttl_count(), 1);
        // Past the deadline, the key is gone on access.
        assert_eq!(
            shard.apply(&Op::Get(b"n"), now + 1000),
            Outcome::Value(None)
        );
        assert_eq!(shard.ttl_count(), 0);
        assert_eq!(shard.apply(&Op::Size, now + 1000), Outcome::Int(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_owns_its_table_and_its_next_incarnation_starts_empty() {
        let directory = Arc::new(Directory::new(1));
        let dir = directory.clone();
        trellis::nursery(|n| async move {
            assert!(dir.table(0).is_none(), "nothing before the shard starts");
            let shard = trellis::gen_server::start(&n, Shard::new(dir.clone(), 0))
                .await
                .unwrap();
            let table = dir.table(0).expect("published by init");
            {
                let mut data = table.lock().expect("live");
                let now = data.now_ms();
                assert_eq!(data.apply(&set("k", None), now), Outcome::Done);
            }
            shard.stop().await.unwrap();
            // The table went with its owner: refused, and no longer listed.
            assert!(!table.is_live());
            assert!(table.lock().is_none());
            assert!(dir.table(0).is_none());
            // The next incarnation publishes a new, empty table.
            let again = trellis::gen_server::start(&n, Shard::new(dir.clone(), 0))
                .await
                .unwrap();
            let fresh = dir.table(0).expect("published again");
            assert!(!Arc::ptr_eq(&table, &fresh));
            {
                let mut data = fresh.lock().expect("live");
                let now = data.now_ms();
                assert_eq!(data.apply(&Op::Size, now), Outcome::Int(0));
                assert_eq!(data.apply(&Op::Get(b"k"), now), Outcome::Value(None));
            }
            again.stop().await.unwrap();
        })
        .await
        .unwrap();
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
