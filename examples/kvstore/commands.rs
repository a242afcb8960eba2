//! From requests to replies: each request becomes operations on shards'
//! tables and a step that turns their outcomes into the reply, in request
//! order.
//!
//! A connection hands [`Batch`] every request of one read (a pipeline); the
//! batch locks the tables of the shards it touches, runs every operation on
//! them in request order on the connection's own task, releases them, and
//! then encodes the replies ([`Replies`]), in the order the requests came.
//! Multi-key commands are split across shards here and merged back. No
//! message, no other task: a shard's gen_server owns its table's lifetime
//! (see `shard.rs`), the connections operate on it in place, as OTP
//! processes read and write an ETS table owned by another process.
//!
//! # Atomicity across shards
//!
//! Redis runs one command at a time, so `MSET a 1 b 2` is never seen half
//! done. Here `a` and `b` may live on two shards, so a batch takes the lock
//! of every table it touches before its first operation and holds them
//! until its last: two-phase locking, so a batch's operations see, and
//! leave, the keyspace as if the batches had run one at a time — a reader
//! never sees half an `MSET`, and two `MSET`s of the same keys never leave
//! a mix. `EXEC`, `KEYS`, `DBSIZE`, `FLUSHDB`, `RANDOMKEY` and `INFO` lock
//! every shard. Locks are always taken in ascending shard order, so two
//! batches cannot wait on each other (no deadlock). They are plain mutexes,
//! never held across an `.await`: the operations run between taking them
//! and releasing them without waiting for anything, and the replies are
//! encoded and written after, so a client that does not read its replies
//! holds up only itself. Commands whose second half depends on the first
//! (`RENAME`, `MSETNX`, `EXEC`'s `WATCH` check) run in order under the
//! same locks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use trellis::gen_server::Server;

use crate::resp;
use crate::shard::{
    Command, Condition, Crash, Data, Directory, ExpireIf, Expiry, MAX_STRING, Op, Outcome, Shard,
    Table, Ttl, invalid_expire,
};

/// The Redis version this server answers as (clients check it).
pub(crate) const REDIS_VERSION: &str = "7.0.15";

/// What every connection of one server shares: where keys live, the
/// shards' tables, and the clients.
#[derive(Clone)]
pub(crate) struct Router {
    instance: Arc<str>,
    count: usize,
    /// Routes keys to shards: foldhash, seeded at random per process (a
    /// keyed hash, against hash flooding, cheaper than SipHash).
    hasher: hashbrown::DefaultHashBuilder,
    /// Whether `DEBUG PANIC` is served (off unless asked for, as Redis's
    /// `enable-debug-command`).
    debug: bool,
    /// Each shard's current table.
    directory: Arc<Directory>,
    clients: Arc<Clients>,
}

/// The connected clients, for `CLIENT LIST`, `INFO` and `maxclients`.
pub(crate) struct Clients {
    next_id: AtomicU64,
    /// Clients connected now.
    pub(crate) connected: AtomicUsize,
    /// Most clients served at once.
    pub(crate) max: AtomicUsize,
    started: Instant,
    port: AtomicUsize,
    list: std::sync::Mutex<BTreeMap<u64, ClientInfo>>,
}

#[derive(Clone)]
struct ClientInfo {
    addr: String,
    laddr: String,
    name: Bytes,
    since: Instant,
    last: Instant,
}

impl Router {
    /// A router over the `count` shards of server `instance`, whose tables
    /// `directory` lists; `debug` enables `DEBUG PANIC`.
    pub(crate) fn new(
        instance: &str,
        count: usize,
        debug: bool,
        directory: Arc<Directory>,
    ) -> Self {
        Router {
            instance: instance.into(),
            count,
            hasher: hashbrown::DefaultHashBuilder::default(),
            debug,
            directory,
            clients: Arc::new(Clients {
                next_id: AtomicU64::new(1),
                connected: AtomicUsize::new(0),
                max: AtomicUsize::new(usize::MAX),
                started: Instant::now(),
                port: AtomicUsize::new(0),
                list: std::sync::Mutex::default(),
            }),
        }
    }

    /// How many shards there are.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The clients' registry.
    pub(crate) fn clients(&self) -> &Arc<Clients> {
        &self.clients
    }

    /// Records the listening port (for `INFO`).
    pub(crate) fn set_port(&self, port: u16) {
        self.clients
            .port
            .store(usize::from(port), Ordering::Relaxed);
    }

    fn of(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) % self.count as u64) as usize
    }
}

impl Clients {
    /// Registers a client; returns its id.
    pub(crate) fn register(&self, addr: String, laddr: String) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let info = ClientInfo {
            addr,
            laddr,
            name: Bytes::new(),
            since: now,
            last: now,
        };
        crate_lock(&self.list).insert(id, info);
        id
    }

    /// Forgets a client.
    pub(crate) fn unregister(&self, id: u64) {
        crate_lock(&self.list).remove(&id);
    }
}

fn crate_lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shards' tables, as one connection knows them.
pub(crate) struct Tables {
    instance: Arc<str>,
    directory: Arc<Directory>,
    handles: Vec<Option<Arc<Table>>>,
}

/// The registered name of shard `i` of server `instance`.
pub(crate) fn shard_name(instance: &str, i: usize) -> String {
    format!("{instance}-shard-{i}")
}

impl Tables {
    /// Handles for the shards `router` knows, found in its directory when
    /// first used.
    pub(crate) fn new(router: &Router) -> Self {
        Tables {
            instance: router.instance.clone(),
            directory: router.directory.clone(),
            handles: vec![None; router.count],
        }
    }

    /// Makes sure every needed shard's handle is its current table: one
    /// retired by a crash is replaced by the restarted shard's, if it has
    /// published one yet.
    fn attach(&mut self, need: &[bool]) {
        for (i, handle) in self.handles.iter_mut().enumerate() {
            if need[i] && !handle.as_ref().is_some_and(|table| table.is_live()) {
                *handle = self.directory.table(i);
            }
        }
    }

    /// Locks the needed tables in ascending shard order (so that no two
    /// batches wait on each other).
    fn lock(&self, need: &[bool]) -> Locked<'_> {
        let mut tables = reuse(SPARE.with_borrow_mut(|spare| std::mem::take(&mut spare.locked)));
        tables.extend(self.handles.iter().zip(need).map(|(handle, &need)| {
            let table = handle.as_deref().filter(|_| need)?;
            let data = table.lock()?;
            let now = data.now_ms();
            Some((table, data, now))
        }));
        Locked { tables }
    }

    /// `DEBUG PANIC`: crashes shard `i` (its table is already retired).
    fn crash(&self, i: usize) {
        let server: Result<Server<Shard>, _> =
            trellis::registry::lookup(shard_name(&self.instance, i));
        if let Ok(server) = server {
            // A full or closed mailbox means the shard is going down anyway.
            let _ = server.try_cast(Crash::Panic);
        }
    }
}

const UNAVAILABLE: &str = "ERR shard unavailable, try again";

/// One connection's state between requests: its id, its transaction, its
/// watched keys.
pub(crate) struct Session {
    /// The client's id (`CLIENT ID`).
    pub(crate) id: u64,
    clients: Arc<Clients>,
    /// Commands queued since `MULTI` (copied: they outlive their read).
    pub(crate) multi: Option<Vec<Queued>>,
    /// A queued command was refused: `EXEC` aborts.
    multi_failed: bool,
    /// Watched keys (copied) and the versions seen.
    watched: Watched,
}

/// A command queued by `MULTI`: its arguments.
pub(crate) type Queued = Vec<Box<[u8]>>;

/// Watched keys and the versions `WATCH` saw.
type Watched = Vec<(Box<[u8]>, Version)>;

/// The version of a watched key as `WATCH` saw it: known, or the outcome
/// of an operation of the batch being run (a `WATCH` and an `EXEC` may
/// come in one pipeline).
#[derive(Clone, Copy)]
enum Version {
    Known(i64),
    Pending(Slot),
}

impl Session {
    /// A new client's session, registered with `router`'s clients.
    pub(crate) fn new(router: &Router, addr: String, laddr: String) -> Self {
        let clients = router.clients.clone();
        let id = clients.register(addr, laddr);
        Session {
            id,
            clients,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
        }
    }

    /// Ends the session: forgets its watches (and, when dropped, the
    /// client).
    pub(crate) fn end(&mut self, router: &Router, tables: &mut Tables) {
        let watched = std::mem::take(&mut self.watched);
        if watched.is_empty() {
            return;
        }
        let mut batch = Batch::new(router.count);
        batch.unwatch_all(router, watched);
        drop(batch.run(router, tables, self));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.clients.unregister(self.id);
    }
}

/// Where a step finds an outcome: its index among the batch's operations.
type Slot = usize;

/// Consecutive slots: a multi-key command's operations.
type Slots = std::ops::Range<Slot>;

enum Step {
    /// A reply known without the shards (already encoded).
    Now(Bytes),
    /// A reply made under the locks by a multi-step command (an index in
    /// `Replies::made`).
    Made(usize),
    /// `GET` & co.: a bulk string or nil, an integer, `+OK`, or an error.
    Value(Slot),
    /// `SETNX`: `:1` when set, `:0` when not.
    SetNx(Slot),
    /// `TYPE`: a simple string.
    Type(Slot),
    /// `DEL`, `EXISTS`, `DBSIZE`: the sum of integers.
    Sum(Slots),
    /// `MGET`: an array of values.
    Values(Slots),
    /// `MSET`, `FLUSHDB`: `+OK` once all are done.
    AllDone(Slots),
    /// `KEYS`: the keys of every shard.
    Keys(Slots),
    /// `SCAN`: the next cursor and one shard's keys.
    Scan(u64, Slot),
    /// `RANDOMKEY`: one of the shards' keys.
    RandomKey(Slots),
    /// `INFO`: the text, with the shards' counts filled in.
    Info(Box<[u8]>, Slots),
    /// The start of `EXEC`'s reply: the array header, or nil if a watched
    /// key changed (an index in `Replies::aborted`); the steps up to the
    /// matching `ExecEnd` are skipped then.
    ExecStart(usize, usize),
    /// The end of an `EXEC`.
    ExecEnd,
}

/// A multi-step command, run under the batch's locks.
enum Special<'a> {
    /// `RENAME`/`RENAMENX`.
    Rename {
        from: &'a [u8],
        to: &'a [u8],
        nx: bool,
    },
    /// `MSETNX`.
    MsetNx(Vec<(&'a [u8], &'a [u8])>),
    /// `EXEC`'s check of the watched keys: the transaction is skipped if
    /// one changed.
    CheckWatched(Watched),
}

/// What the batch runs, in order.
enum Item<'a> {
    /// One operation on one shard's table.
    Op(usize, Op<'a>),
    /// A special command.
    Special(Special<'a>),
    /// Forgets watched keys (`UNWATCH`, `DISCARD`, `EXEC`, a client gone).
    Unwatch(Watched),
    /// `DEBUG PANIC`: retires the shard's table and crashes the shard.
    Crash(usize),
    /// The end of an `EXEC`'s commands (they are skipped if its check
    /// failed).
    EndExec,
}

/// The vectors of a finished batch, kept for the next batch of the same
/// worker thread: warm in the cache, and no allocation. (A batch is planned
/// and run within one callback of its connection, so on one thread; its
/// replies may be encoded later, elsewhere, and then hand their vectors to
/// that thread.) Per thread, not per connection, so that an idle
/// connection holds none.
/// The vectors of operations and of locked tables are kept empty, for
/// elements of another lifetime ([`reuse`]).
#[derive(Default)]
struct Spare {
    items: Vec<Item<'static>>,
    steps: Vec<Step>,
    outcomes: Vec<Outcome>,
    need: Vec<bool>,
    locked: Vec<Option<(&'static Table, MutexGuard<'static, Data>, i64)>>,
}

/// An emptied vector's allocation, for elements that differ only in a
/// lifetime: the standard library collects `into_iter().filter_map(..)`
/// of a vector in place when the elements' layouts match (as here), and
/// nothing is mapped (the vector is emptied first). Were the allocation
/// ever not reused, the result would still be right, only new.
pub(crate) fn reuse<T, U>(mut vec: Vec<T>) -> Vec<U> {
    vec.clear();
    vec.into_iter().filter_map(|_| None).collect()
}

thread_local! {
    static SPARE: std::cell::RefCell<Spare> = std::cell::RefCell::default();
}

/// Most elements a spare vector keeps (a larger one, left by a large
/// batch, is freed).
const SPARE_MAX: usize = 1024;

/// The requests of one read, planned. Its operations borrow the read's
/// bytes (`'a`): a batch is planned, run and released before the
/// connection's input buffer moves on.
pub(crate) struct Batch<'a> {
    shards: usize,
    items: Vec<Item<'a>>,
    /// Operations so far (the next one's slot).
    ops: usize,
    steps: Vec<Step>,
    /// The shards whose tables the batch locks.
    need: Vec<bool>,
    /// Specials and exec checks so far (their results' indexes).
    specials: usize,
    /// `QUIT` was seen: reply, then close.
    pub(crate) quit: bool,
    /// The transaction an `EXEC` of this batch runs (taken out of the
    /// session by the connection, so that its operations can borrow it).
    exec_queue: Option<&'a [Queued]>,
}

const OK: &[u8] = b"+OK\r\n";
const QUEUED: &[u8] = b"+QUEUED\r\n";

fn now_reply(write: impl FnOnce(&mut BytesMut)) -> Step {
    let mut out = BytesMut::new();
    write(&mut out);
    Step::Now(out.freeze())
}

fn error_step(text: &str) -> Step {
    now_reply(|out| resp::error_reply(out, text))
}

fn wrong_args(name: &str) -> Step {
    error_step(&format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

fn syntax_error() -> Step {
    error_step("ERR syntax error")
}

fn not_integer() -> Step {
    error_step("ERR value is not an integer or out of range")
}

fn parse_int(arg: &[u8]) -> Option<i64> {
    resp::strict_i64(arg)
}

/// Redis's arity of the commands served: `n` exactly `n` arguments
/// (counting the name), `-n` at least `n`. `None`: not a command here.
fn arity(name: &str) -> Option<i32> {
    Some(match name {
        "GET" | "GETDEL" | "TYPE" | "INCR" | "DECR" | "STRLEN" | "TTL" | "PTTL" | "EXPIRETIME"
        | "PEXPIRETIME" | "PERSIST" | "KEYS" | "SELECT" | "ECHO" => 2,
        "SETNX" | "GETSET" | "INCRBY" | "DECRBY" | "INCRBYFLOAT" | "APPEND" | "RENAME"
        | "RENAMENX" => 3,
        "SETEX" | "PSETEX" | "GETRANGE" | "SUBSTR" | "SETRANGE" => 4,
        "RANDOMKEY" | "DBSIZE" | "MULTI" | "EXEC" | "DISCARD" | "UNWATCH" => 1,
        "SET" | "MSET" | "MSETNX" | "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => -3,
        "GETEX" | "MGET" | "DEL" | "UNLINK" | "EXISTS" | "TOUCH" | "SCAN" | "WATCH" | "CLIENT"
        | "CONFIG" | "DEBUG" => -2,
        "PING" | "QUIT" | "FLUSHDB" | "FLUSHALL" | "INFO" | "HELLO" | "COMMAND" => -1,
        _ => return None,
    })
}

/// Up-cases a command name into a stack buffer; longer names are no
/// command we know.
fn upper_name<'a>(name: &[u8], buf: &'a mut [u8; 16]) -> &'a str {
    match buf.get_mut(..name.len()) {
        Some(buf) => {
            buf.copy_from_slice(name);
            buf.make_ascii_uppercase();
            std::str::from_utf8(buf).unwrap_or("")
        }
        None => "",
    }
}

/// Redis's "unknown command" text: the name and the first arguments, each
/// cut at 128 bytes (and at a NUL, as C strings are), CR and LF made
/// spaces by [`resp::error_reply_bytes`].
fn unknown_command(args: &[&[u8]]) -> Step {
    let cut = |arg: &[u8], room: usize| -> Vec<u8> {
        let arg = &arg[..arg.iter().position(|&b| b == 0).unwrap_or(arg.len())];
        arg[..arg.len().min(room)].to_vec()
    };
    let mut rest = Vec::new();
    for arg in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push(b'\'');
        rest.extend(cut(arg, room));
        rest.extend_from_slice(b"' ");
    }
    let mut message = b"ERR unknown command '".to_vec();
    message.extend(cut(args[0], 128));
    message.extend_from_slice(b"', with args beginning with: ");
    message.extend(rest);
    now_reply(|out| resp::error_reply_bytes(out, &message))
}

/// A client's text cut to 128 bytes for an error message.
fn quoted(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

impl<'a> Batch<'a> {
    /// An empty batch for `shards` shards.
    pub(crate) fn new(shards: usize) -> Self {
        Batch::with_capacity(shards, 0, 0)
    }

    /// An empty batch for `shards` shards, with room for `items`
    /// operations and `steps` requests (a connection's guess from its
    /// previous batch, so that a pipeline's vectors grow once).
    pub(crate) fn with_capacity(shards: usize, items: usize, steps: usize) -> Self {
        let (items_vec, mut steps_vec, mut need) = SPARE.with_borrow_mut(|spare| {
            (
                std::mem::take(&mut spare.items),
                std::mem::take(&mut spare.steps),
                std::mem::take(&mut spare.need),
            )
        });
        let mut items_vec: Vec<Item<'a>> = reuse(items_vec);
        items_vec.reserve(items);
        steps_vec.reserve(steps);
        need.clear();
        need.resize(shards, false);
        Batch {
            shards,
            items: items_vec,
            ops: 0,
            steps: steps_vec,
            need,
            specials: 0,
            quit: false,
            exec_queue: None,
        }
    }

    /// Gives the batch the transaction its `EXEC` runs.
    pub(crate) fn set_exec_queue(&mut self, queue: &'a [Queued]) {
        self.exec_queue = Some(queue);
    }

    /// Whether the transaction given was run (else the connection gives it
    /// back to the session).
    pub(crate) fn exec_queue_used(&self) -> bool {
        self.exec_queue.is_none()
    }

    /// How many operations and requests it holds (a guess for the next).
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.items.len(), self.steps.len())
    }

    /// Ends the batch with a protocol error reply; the connection closes
    /// after it (as Redis does).
    pub(crate) fn protocol_error(&mut self, message: &str) {
        self.steps.push(error_step(&format!("ERR {message}")));
        self.quit = true;
    }

    fn lock(&mut self, shard: usize) {
        self.need[shard] = true;
    }

    // Inlined, so that the operation is built in the vector: called, it
    // was copied through the stack, and the copy stalled (6 % of the
    // pipelined profile; pipelined MSET's CPU per request -8 % inlined).
    #[inline(always)]
    fn push(&mut self, shard: usize, op: Op<'a>) -> Slot {
        self.need[shard] = true;
        self.items.push(Item::Op(shard, op));
        self.ops += 1;
        self.ops - 1
    }

    /// One operation on `key`'s shard.
    fn op_on(
        &mut self,
        router: &Router,
        key: &'a [u8],
        make: impl FnOnce(&'a [u8]) -> Op<'a>,
    ) -> Slot {
        self.push(router.of(key), make(key))
    }

    /// One operation per key; their slots are consecutive.
    fn ops(
        &mut self,
        router: &Router,
        keys: &[&'a [u8]],
        make: impl Fn(&'a [u8]) -> Op<'a>,
    ) -> Slots {
        let first = self.ops;
        for &key in keys {
            self.push(router.of(key), make(key));
        }
        first..self.ops
    }

    fn everywhere(&mut self, op: impl Fn() -> Op<'a>) -> Slots {
        let first = self.ops;
        for shard in 0..self.shards {
            self.push(shard, op());
        }
        first..self.ops
    }

    fn special(&mut self, special: Special<'a>, shards: &[usize]) -> usize {
        for &shard in shards {
            self.lock(shard);
        }
        self.items.push(Item::Special(special));
        self.specials += 1;
        self.specials - 1
    }

    /// Plans one request of a connection in `session`. The operations
    /// borrow the arguments; what outlives the batch (a queued command, a
    /// watched key, a client's name) is copied.
    pub(crate) fn add(&mut self, router: &Router, session: &mut Session, args: &[&'a [u8]]) {
        let Some(first) = args.first() else {
            return;
        };
        let mut buf = [0u8; 16];
        let name = upper_name(first, &mut buf);
        if name == "QUIT" {
            self.quit = true;
            self.steps.push(Step::Now(Bytes::from_static(OK)));
            return;
        }
        let arity_ok = |arity: i32| {
            let argc = args.len() as i32;
            if arity >= 0 {
                argc == arity
            } else {
                argc >= -arity
            }
        };
        let known = arity(name);
        if session.multi.is_some() && !matches!(name, "EXEC" | "DISCARD" | "MULTI" | "WATCH") {
            let step = match known {
                None => {
                    session.multi_failed = true;
                    unknown_command(args)
                }
                Some(arity) if !arity_ok(arity) => {
                    session.multi_failed = true;
                    wrong_args(name)
                }
                Some(_) => {
                    if let Some(queue) = &mut session.multi {
                        queue.push(args.iter().map(|&arg| Box::from(arg)).collect());
                    }
                    Step::Now(Bytes::from_static(QUEUED))
                }
            };
            self.steps.push(step);
            return;
        }
        let step = match known {
            None => unknown_command(args),
            Some(arity) if !arity_ok(arity) => wrong_args(name),
            Some(_) => self.plan(router, session, name, args),
        };
        self.steps.push(step);
    }

    /// Plans a known command with a valid number of arguments.
    #[allow(clippy::too_many_lines)]
    fn plan(
        &mut self,
        router: &Router,
        session: &mut Session,
        name: &str,
        args: &[&'a [u8]],
    ) -> Step {
        let argc = args.len();
        // The key, for the commands that have one (the others' arity may
        // be 1).
        let key: &'a [u8] = args.get(1).copied().unwrap_or_default();
        match name {
            "PING" => match argc {
                1 => Step::Now(Bytes::from_static(b"+PONG\r\n")),
                2 => now_reply(|out| resp::bulk(out, Some(key))),
                _ => wrong_args(name),
            },
            "ECHO" => now_reply(|out| resp::bulk(out, Some(key))),
            "GET" => Step::Value(self.op_on(router, key, Op::Get)),
            "GETDEL" => Step::Value(self.op_on(router, key, Op::GetDel)),
            "SET" => match set_options(&args[3..]) {
                Ok((expiry, condition, get)) => {
                    let value = args[2];
                    Step::Value(self.op_on(router, key, |key| Op::Set {
                        key,
                        value,
                        expiry,
                        condition,
                        get,
                        command: Command::Set,
                    }))
                }
                Err(step) => step,
            },
            "SETNX" => {
                let op = Op::Set {
                    key,
                    value: args[2],
                    expiry: Expiry::Clear,
                    condition: Condition::IfAbsent,
                    get: false,
                    command: Command::SetNx,
                };
                Step::SetNx(self.op_on(router, key, |_| op))
            }
            "SETEX" | "PSETEX" => {
                let (command, seconds) = if name == "SETEX" {
                    (Command::SetEx, true)
                } else {
                    (Command::PSetEx, false)
                };
                match expire_arg(args[2], seconds, false, command.name()) {
                    Ok(ttl) => {
                        let op = Op::Set {
                            key,
                            value: args[3],
                            expiry: Expiry::Set(ttl),
                            condition: Condition::Always,
                            get: false,
                            command,
                        };
                        Step::Value(self.op_on(router, key, |_| op))
                    }
                    Err(step) => step,
                }
            }
            "GETSET" => {
                let op = Op::Set {
                    key,
                    value: args[2],
                    expiry: Expiry::Clear,
                    condition: Condition::Always,
                    get: true,
                    command: Command::GetSet,
                };
                Step::Value(self.op_on(router, key, |_| op))
            }
            "GETEX" => match getex_options(&args[2..]) {
                Ok(expiry) => Step::Value(self.op_on(router, key, |key| Op::GetEx(key, expiry))),
                Err(step) => step,
            },
            "DEL" | "UNLINK" => Step::Sum(self.ops(router, &args[1..], Op::Del)),
            "EXISTS" | "TOUCH" => Step::Sum(self.ops(router, &args[1..], Op::Exists)),
            "TYPE" => Step::Type(self.op_on(router, key, Op::Type)),
            "INCR" => Step::Value(self.op_on(router, key, |k| Op::IncrBy(k, 1))),
            "DECR" => Step::Value(self.op_on(router, key, |k| Op::IncrBy(k, -1))),
            "INCRBY" | "DECRBY" => {
                let by = parse_int(args[2]).and_then(|by| {
                    if name == "DECRBY" {
                        by.checked_neg()
                    } else {
                        Some(by)
                    }
                });
                match (by, parse_int(args[2])) {
                    (Some(by), _) => Step::Value(self.op_on(router, key, |k| Op::IncrBy(k, by))),
                    // DECRBY of i64::MIN: its negation does not fit.
                    (None, Some(_)) => error_step("ERR decrement would overflow"),
                    (None, None) => not_integer(),
                }
            }
            "INCRBYFLOAT" => match crate::shard::parse_float(args[2]) {
                // An infinite increment is refused by the shard, after the
                // stored value is checked (Redis's order).
                Some(by) => Step::Value(self.op_on(router, key, |k| Op::IncrByFloat(k, by))),
                None => error_step("ERR value is not a valid float"),
            },
            "APPEND" => Step::Value(self.op_on(router, key, |k| Op::Append(k, args[2]))),
            "STRLEN" => Step::Value(self.op_on(router, key, Op::Strlen)),
            "GETRANGE" | "SUBSTR" => match (parse_int(args[2]), parse_int(args[3])) {
                (Some(start), Some(end)) => {
                    Step::Value(self.op_on(router, key, |k| Op::GetRange(k, start, end)))
                }
                _ => not_integer(),
            },
            "SETRANGE" => match parse_int(args[2]) {
                None => not_integer(),
                Some(offset) if offset < 0 => error_step("ERR offset is out of range"),
                Some(offset)
                    if !args[3].is_empty()
                        && offset as u64 + args[3].len() as u64 > MAX_STRING as u64 =>
                {
                    error_step("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
                }
                Some(offset) => Step::Value(
                    self.op_on(router, key, |k| Op::SetRange(k, offset as usize, args[3])),
                ),
            },
            "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
                let command = match name {
                    "EXPIRE" => Command::Expire,
                    "PEXPIRE" => Command::PExpire,
                    "EXPIREAT" => Command::ExpireAt,
                    _ => Command::PExpireAt,
                };
                let seconds = !name.starts_with('P');
                let absolute = name.ends_with("AT");
                // Redis's order: the options, the number, the key.
                let condition = match expire_options(&args[3..]) {
                    Ok(condition) => condition,
                    Err(step) => return step,
                };
                match expire_arg(args[2], seconds, absolute, command.name()) {
                    Ok(ttl) => Step::Value(self.op_on(router, key, |k| {
                        Op::Expire(k, Some(ttl), condition, command)
                    })),
                    Err(step) => step,
                }
            }
            "PERSIST" => Step::Value(self.op_on(router, key, |k| {
                Op::Expire(k, None, ExpireIf::default(), Command::Persist)
            })),
            "TTL" | "PTTL" => Step::Value(self.op_on(router, key, |k| Op::Ttl(k, name == "PTTL"))),
            "EXPIRETIME" | "PEXPIRETIME" => {
                Step::Value(self.op_on(router, key, |k| Op::ExpireTime(k, name == "PEXPIRETIME")))
            }
            "MGET" => Step::Values(self.ops(router, &args[1..], Op::Get)),
            "MSET" if argc % 2 == 1 => {
                // Routed once if every key is on one shard.
                let shard = router.of(key);
                let several = args[1..].iter().step_by(2).any(|k| router.of(k) != shard);
                let first = self.ops;
                for pair in args[1..].chunks_exact(2) {
                    let shard = if several { router.of(pair[0]) } else { shard };
                    let op = Op::Set {
                        key: pair[0],
                        value: pair[1],
                        expiry: Expiry::Clear,
                        condition: Condition::Always,
                        get: false,
                        command: Command::MSet,
                    };
                    self.push(shard, op);
                }
                Step::AllDone(first..self.ops)
            }
            "MSETNX" if argc % 2 == 1 => {
                let pairs: Vec<(&[u8], &[u8])> =
                    args[1..].chunks(2).map(|pair| (pair[0], pair[1])).collect();
                let shards: Vec<usize> = pairs.iter().map(|(k, _)| router.of(k)).collect();
                Step::Made(self.special(Special::MsetNx(pairs), &shards))
            }
            "MSET" | "MSETNX" => wrong_args(name),
            "RENAME" | "RENAMENX" => {
                let shards = [router.of(key), router.of(args[2])];
                let special = Special::Rename {
                    from: key,
                    to: args[2],
                    nx: name == "RENAMENX",
                };
                Step::Made(self.special(special, &shards))
            }
            "KEYS" => {
                let pattern = (key != b"*").then_some(key);
                Step::Keys(self.everywhere(|| Op::Keys(pattern)))
            }
            "SCAN" => self.scan(router, &args[1..]),
            "RANDOMKEY" => Step::RandomKey(self.everywhere(|| Op::RandomKey)),
            "DBSIZE" => Step::Sum(self.everywhere(|| Op::Size)),
            "FLUSHDB" | "FLUSHALL" => {
                if argc > 2
                    || (argc == 2
                        && !key.eq_ignore_ascii_case(b"ASYNC")
                        && !key.eq_ignore_ascii_case(b"SYNC"))
                {
                    return syntax_error();
                }
                Step::AllDone(self.everywhere(|| Op::Flush))
            }
            "SELECT" => match parse_int(key) {
                Some(0) => Step::Now(Bytes::from_static(OK)),
                Some(_) => error_step("ERR DB index is out of range"),
                None => not_integer(),
            },
            "MULTI" => {
                if session.multi.is_some() {
                    return error_step("ERR MULTI calls can not be nested");
                }
                session.multi = Some(Vec::new());
                session.multi_failed = false;
                Step::Now(Bytes::from_static(OK))
            }
            "DISCARD" => {
                if session.multi.take().is_none() {
                    return error_step("ERR DISCARD without MULTI");
                }
                let watched = std::mem::take(&mut session.watched);
                self.unwatch_all(router, watched);
                Step::Now(Bytes::from_static(OK))
            }
            "EXEC" => self.exec(router, session),
            "WATCH" => {
                if session.multi.is_some() {
                    return error_step("ERR WATCH inside MULTI is not allowed");
                }
                for &key in &args[1..] {
                    let slot = self.op_on(router, key, Op::Watch);
                    session
                        .watched
                        .push((Box::from(key), Version::Pending(slot)));
                }
                Step::Now(Bytes::from_static(OK))
            }
            "UNWATCH" => {
                let watched = std::mem::take(&mut session.watched);
                self.unwatch_all(router, watched);
                Step::Now(Bytes::from_static(OK))
            }
            "HELLO" => hello(session, args),
            "CLIENT" => client(router, session, args),
            "INFO" => self.info(router, args),
            // Clients probe these; empty answers are enough for them, but
            // `redis-benchmark` wants to read `save` and `appendonly`.
            "CONFIG" if argc == 3 && key.eq_ignore_ascii_case(b"GET") => config_get(args[2]),
            "COMMAND" | "CONFIG" => now_reply(|out| resp::array(out, 0)),
            "DEBUG" if !router.debug => error_step(
                "ERR DEBUG command not allowed (start the server with --enable-debug-command)",
            ),
            "DEBUG" if argc == 3 && key.eq_ignore_ascii_case(b"PANIC") => {
                let shard = router.of(args[2]);
                self.lock(shard);
                self.items.push(Item::Crash(shard));
                error_step(UNAVAILABLE)
            }
            _ => wrong_args(name),
        }
    }

    /// `EXEC`: runs the transaction the connection gave the batch (taken
    /// out of the session; `None` there means no `MULTI`).
    fn exec(&mut self, router: &Router, session: &mut Session) -> Step {
        let Some(queue) = self.exec_queue.take() else {
            return error_step("ERR EXEC without MULTI");
        };
        let watched = std::mem::take(&mut session.watched);
        if session.multi_failed {
            session.multi_failed = false;
            self.unwatch_all(router, watched);
            return error_step("EXECABORT Transaction discarded because of previous errors.");
        }
        // Every shard exclusive: the transaction runs as if alone.
        for shard in 0..self.shards {
            self.lock(shard);
        }
        let check = self.special(Special::CheckWatched(watched.clone()), &[]);
        self.steps.push(Step::ExecStart(check, queue.len()));
        let mut args: Vec<&'a [u8]> = Vec::new();
        for command in queue {
            args.clear();
            args.extend(command.iter().map(|arg| &arg[..]));
            self.add(router, session, &args);
        }
        self.items.push(Item::EndExec);
        self.unwatch_all(router, watched);
        Step::ExecEnd
    }

    /// Forgets the watched keys (their shards' watcher counts).
    fn unwatch_all(&mut self, router: &Router, watched: Watched) {
        if watched.is_empty() {
            return;
        }
        for (key, _) in &watched {
            self.lock(router.of(key));
        }
        self.items.push(Item::Unwatch(watched));
    }

    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: the cursor is
    /// the next shard; each call returns one whole shard's matching keys
    /// (so a key present throughout is returned exactly once).
    fn scan(&mut self, router: &Router, args: &[&'a [u8]]) -> Step {
        let Some(cursor) = std::str::from_utf8(args[0])
            .ok()
            .and_then(|c| c.parse::<u64>().ok())
        else {
            return error_step("ERR invalid cursor");
        };
        let mut pattern = None;
        let mut strings = true;
        let mut i = 1;
        while i < args.len() {
            let Some(&value) = args.get(i + 1) else {
                return syntax_error();
            };
            if args[i].eq_ignore_ascii_case(b"MATCH") {
                pattern = (value != b"*").then_some(value);
            } else if args[i].eq_ignore_ascii_case(b"COUNT") {
                match parse_int(value) {
                    None => return not_integer(),
                    Some(n) if n < 1 => return syntax_error(),
                    Some(_) => {}
                }
            } else if args[i].eq_ignore_ascii_case(b"TYPE") {
                strings = value.eq_ignore_ascii_case(b"string");
            } else {
                return syntax_error();
            }
            i += 2;
        }
        let shard = cursor as usize;
        if shard >= router.count || !strings {
            return now_reply(|out| {
                resp::array(out, 2);
                resp::bulk(out, Some(b"0"));
                resp::array(out, 0);
            });
        }
        let next = if shard + 1 < router.count {
            shard as u64 + 1
        } else {
            0
        };
        Step::Scan(next, self.push(shard, Op::Keys(pattern)))
    }

    /// `INFO [section…]`: server, clients, memory, keyspace.
    fn info(&mut self, router: &Router, args: &[&[u8]]) -> Step {
        let wanted = |section: &str| {
            args.len() == 1
                || args[1..].iter().any(|a| {
                    a.eq_ignore_ascii_case(section.as_bytes())
                        || a.eq_ignore_ascii_case(b"all")
                        || a.eq_ignore_ascii_case(b"default")
                        || a.eq_ignore_ascii_case(b"everything")
                })
        };
        let clients = &router.clients;
        let mut text = String::new();
        if wanted("server") {
            let uptime = clients.started.elapsed().as_secs();
            text.push_str(&format!(
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\
                 os:{}\r\narch_bits:64\r\nmultiplexing_api:tokio\r\nprocess_id:{}\r\n\
                 tcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\
                 executable:kvstore\r\n\r\n",
                std::env::consts::OS,
                std::process::id(),
                clients.port.load(Ordering::Relaxed),
                uptime / 86_400,
            ));
        }
        if wanted("clients") {
            text.push_str(&format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
                clients.connected.load(Ordering::Relaxed),
                clients.max.load(Ordering::Relaxed),
            ));
        }
        if wanted("memory") {
            let rss = resident_bytes();
            text.push_str(&format!(
                "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{:.2}M\r\n\
                 used_memory_rss:{rss}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\
                 mem_allocator:libc\r\n\r\n",
                rss as f64 / (1024.0 * 1024.0),
            ));
        }
        let slots = if wanted("keyspace") {
            text.push_str("# Keyspace\r\n");
            self.everywhere(|| Op::Stats)
        } else {
            0..0
        };
        Step::Info(text.into_bytes().into_boxed_slice(), slots)
    }

    /// Runs the batch: locks the tables it needs (in shard order), runs its
    /// operations in request order, releases the locks, and returns the
    /// replies to encode. Nothing here waits: the locks are never held
    /// across an `.await`.
    pub(crate) fn run(
        self,
        router: &Router,
        tables: &mut Tables,
        session: &mut Session,
    ) -> Replies {
        let Batch {
            mut items,
            ops,
            steps,
            need,
            quit,
            ..
        } = self;
        let mut locked_spare = None;
        let mut outcomes = SPARE.with_borrow_mut(|spare| std::mem::take(&mut spare.outcomes));
        outcomes.reserve(ops);
        let mut made: Vec<Bytes> = Vec::new();
        let mut aborted: Vec<bool> = Vec::new();
        let mut crashed = Vec::new();
        if !items.is_empty() {
            tables.attach(&need);
            let mut locked = tables.lock(&need);
            let mut skip = false;
            for item in items.drain(..) {
                match item {
                    Item::Op(..) if skip => outcomes.push(Outcome::NotDone),
                    Item::Special(_) if skip => {
                        made.push(Bytes::new());
                        aborted.push(false);
                    }
                    Item::Crash(_) | Item::Unwatch(_) if skip => {}
                    Item::Op(shard, op) => outcomes.push(locked.apply(shard, &op)),
                    Item::Unwatch(watched) => {
                        for (key, _) in &watched {
                            locked.apply(router.of(key), &Op::Unwatch(key));
                        }
                    }
                    Item::Special(Special::CheckWatched(watched)) => {
                        let ok = check_watched(router, &mut locked, &outcomes, &watched);
                        made.push(Bytes::new());
                        aborted.push(!ok);
                        skip = !ok;
                    }
                    Item::Special(special) => {
                        made.push(run_special(router, &mut locked, special));
                        aborted.push(false);
                    }
                    Item::Crash(shard) => {
                        if locked.condemn(shard) {
                            crashed.push(shard);
                        }
                    }
                    Item::EndExec => skip = false,
                }
            }
            locked_spare = Some(locked.release());
        }
        SPARE.with_borrow_mut(|spare| {
            if items.capacity() <= SPARE_MAX {
                spare.items = reuse(items);
            }
            if let Some(locked) = locked_spare {
                spare.locked = locked;
            }
            spare.need = need;
        });
        for shard in crashed {
            tables.crash(shard);
        }
        for (_, version) in &mut session.watched {
            *version = Version::Known(resolve(&outcomes, *version));
        }
        Replies {
            steps,
            next: 0,
            current: None,
            at: 0,
            outcomes,
            made,
            aborted,
            skipping: false,
            quit,
        }
    }
}

/// The locked tables of one batch, by shard (`None`: not needed, or its
/// shard is down), with the time the lock was taken.
pub(crate) struct Locked<'a> {
    tables: Vec<Option<(&'a Table, MutexGuard<'a, Data>, i64)>>,
}

impl Locked<'_> {
    /// Unlocks every table; the emptied vector, for the next batch.
    fn release(self) -> Vec<Option<(&'static Table, MutexGuard<'static, Data>, i64)>> {
        reuse(self.tables)
    }

    /// Runs `op` on `shard`'s table.
    fn apply(&mut self, shard: usize, op: &Op<'_>) -> Outcome {
        match &mut self.tables[shard] {
            Some((_, data, now)) => data.apply(op, *now),
            None => Outcome::Error(Cow::Borrowed(UNAVAILABLE)),
        }
    }

    /// Runs operations by shard; their outcomes, by shard.
    fn apply_all(&mut self, ops: &[Vec<Op<'_>>]) -> Vec<Vec<Outcome>> {
        ops.iter()
            .enumerate()
            .map(|(shard, ops)| ops.iter().map(|op| self.apply(shard, op)).collect())
            .collect()
    }

    /// Retires `shard`'s table (its operations fail from here on) and
    /// unlocks it; whether it was live.
    fn condemn(&mut self, shard: usize) -> bool {
        match self.tables[shard].take() {
            Some((table, mut data, _)) => {
                table.condemn(&mut data);
                true
            }
            None => false,
        }
    }
}

/// The replies of a batch that has run, encoded on demand (in parts, as
/// the client reads them).
pub(crate) struct Replies {
    /// The steps; those before `next` are done (left as `ExecEnd`).
    steps: Vec<Step>,
    next: usize,
    /// A step whose items were encoded up to `at` when the client had to
    /// catch up.
    current: Option<Step>,
    at: usize,
    outcomes: Vec<Outcome>,
    made: Vec<Bytes>,
    aborted: Vec<bool>,
    /// In a transaction whose `WATCH` check failed: its steps are skipped.
    skipping: bool,
    /// `QUIT` (or a protocol error) was seen: reply, then close.
    pub(crate) quit: bool,
}

impl Replies {
    /// Encodes the replies into `out`, in request order. Whenever `out` has
    /// grown past 64 KiB it is handed to `room`, which takes its bytes and
    /// says whether to go on; returns `true` when every reply is encoded,
    /// `false` when `room` said to stop (call again to go on).
    pub(crate) fn encode(
        &mut self,
        out: &mut BytesMut,
        mut room: impl FnMut(&mut BytesMut) -> bool,
    ) -> bool {
        loop {
            let step = match self.current.take() {
                Some(step) => step,
                None => match self.steps.get_mut(self.next) {
                    Some(step) => {
                        self.next += 1;
                        self.at = 0;
                        std::mem::replace(step, Step::ExecEnd)
                    }
                    None => {
                        self.recycle();
                        return true;
                    }
                },
            };
            if self.skipping && !matches!(step, Step::ExecEnd) {
                continue;
            }
            if let Some(at) = self.step(&step, out, &mut room) {
                self.current = Some(step);
                self.at = at;
                return false;
            }
            if out.len() > FLUSH_AT && !room(out) {
                return false;
            }
        }
    }

    /// Hands the (emptied) vectors to the next batch of this thread.
    fn recycle(&mut self) {
        let (mut steps, mut outcomes) = (
            std::mem::take(&mut self.steps),
            std::mem::take(&mut self.outcomes),
        );
        steps.clear();
        outcomes.clear();
        SPARE.with_borrow_mut(|spare| {
            if steps.capacity() <= SPARE_MAX {
                spare.steps = steps;
            }
            if outcomes.capacity() <= SPARE_MAX {
                spare.outcomes = outcomes;
            }
        });
    }

    /// Encodes one step, from item `self.at` on for the steps of many
    /// items; `Some(next item)` if `room` said to stop in the middle.
    #[allow(clippy::too_many_lines)]
    fn step(
        &mut self,
        step: &Step,
        out: &mut BytesMut,
        room: &mut impl FnMut(&mut BytesMut) -> bool,
    ) -> Option<usize> {
        let outcomes = &self.outcomes;
        let get = |slot: &Slot| &outcomes[*slot];
        match step {
            Step::Now(bytes) => out.extend_from_slice(bytes),
            Step::Made(i) => out.extend_from_slice(&self.made[*i]),
            Step::Value(slot) => value_reply(out, get(slot)),
            Step::SetNx(slot) => match get(slot) {
                Outcome::Done => resp::integer(out, 1),
                Outcome::NotDone => resp::integer(out, 0),
                other => value_reply(out, other),
            },
            Step::Type(slot) => match get(slot) {
                Outcome::Value(Some(t)) => {
                    resp::simple(out, std::str::from_utf8(t).unwrap_or("none"));
                }
                other => value_reply(out, other),
            },
            Step::Sum(slots) => {
                let mut sum = 0;
                let mut failed = None;
                for slot in slots.clone() {
                    match get(&slot) {
                        Outcome::Int(n) => sum += n,
                        Outcome::Error(e) => failed = Some(e.clone()),
                        _ => {}
                    }
                }
                match failed {
                    Some(e) => resp::error_reply(out, &e),
                    None => resp::integer(out, sum),
                }
            }
            Step::Values(slots) => {
                if self.at == 0 {
                    resp::array(out, slots.len());
                }
                for (i, slot) in slots.clone().enumerate().skip(self.at) {
                    match get(&slot) {
                        Outcome::Value(v) => resp::bulk(out, v.as_deref()),
                        _ => resp::bulk(out, None),
                    }
                    if out.len() > FLUSH_AT && !room(out) {
                        return Some(i + 1);
                    }
                }
            }
            Step::AllDone(slots) => match slots.clone().find_map(|s| match get(&s) {
                Outcome::Error(e) => Some(e.clone()),
                _ => None,
            }) {
                Some(e) => resp::error_reply(out, &e),
                None => out.extend_from_slice(OK),
            },
            Step::Keys(slots) => {
                let keys = || {
                    slots.clone().flat_map(|s| match get(&s) {
                        Outcome::Keys(keys) => keys.as_slice(),
                        _ => &[],
                    })
                };
                if self.at == 0 {
                    resp::array(out, keys().count());
                }
                for (i, key) in keys().enumerate().skip(self.at) {
                    resp::bulk(out, Some(key));
                    if out.len() > FLUSH_AT && !room(out) {
                        return Some(i + 1);
                    }
                }
            }
            Step::Scan(next, slot) => {
                resp::array(out, 2);
                resp::bulk(out, Some(itoa::Buffer::new().format(*next).as_bytes()));
                match get(slot) {
                    Outcome::Keys(keys) => {
                        resp::array(out, keys.len());
                        for key in keys {
                            resp::bulk(out, Some(key));
                        }
                    }
                    _ => resp::array(out, 0),
                }
            }
            Step::RandomKey(slots) => {
                let found: Vec<&Bytes> = slots
                    .clone()
                    .filter_map(|s| match get(&s) {
                        Outcome::Value(Some(key)) => Some(key),
                        _ => None,
                    })
                    .collect();
                let pick = found.get(random_index(found.len()));
                resp::bulk(out, pick.map(|k| &k[..]));
            }
            Step::Info(text, slots) => {
                let mut text = text.to_vec();
                if !slots.is_empty() {
                    let (mut keys, mut expires) = (0, 0);
                    for slot in slots.clone() {
                        if let Outcome::Pair(k, e) = get(&slot) {
                            keys += k;
                            expires += e;
                        }
                    }
                    if keys > 0 {
                        text.extend_from_slice(
                            format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n").as_bytes(),
                        );
                    }
                }
                resp::bulk(out, Some(&text));
            }
            Step::ExecStart(check, count) => {
                if self.aborted.get(*check).copied().unwrap_or(false) {
                    out.extend_from_slice(b"*-1\r\n");
                    self.skipping = true;
                } else {
                    resp::array(out, *count);
                }
            }
            Step::ExecEnd => self.skipping = false,
        }
        None
    }
}

/// Replies are handed to the connection in parts of about this size.
const FLUSH_AT: usize = 64 * 1024;

fn random_index(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos as usize % len
}

/// A watched key's version, from the batch's outcomes if it was pending.
fn resolve(outcomes: &[Outcome], version: Version) -> i64 {
    match version {
        Version::Known(version) => version,
        Version::Pending(slot) => match outcomes.get(slot) {
            Some(Outcome::Int(version)) => *version,
            // The shard failed: no version matches (-2 is never one).
            _ => -2,
        },
    }
}

/// Whether no watched key changed since `WATCH` saw it.
fn check_watched(
    router: &Router,
    locked: &mut Locked<'_>,
    outcomes: &[Outcome],
    watched: &[(Box<[u8]>, Version)],
) -> bool {
    watched.iter().all(|(key, version)| {
        let want = resolve(outcomes, *version);
        locked.apply(router.of(key), &Op::Version(key)) == Outcome::Int(want)
    })
}

fn run_special(router: &Router, locked: &mut Locked<'_>, special: Special<'_>) -> Bytes {
    let mut out = BytesMut::new();
    match special {
        Special::Rename { from, to, nx } => {
            let source = locked.apply(router.of(from), &Op::Dump(from));
            match source {
                Outcome::Entry(None) => resp::error_reply(&mut out, "ERR no such key"),
                Outcome::Entry(Some(entry)) => {
                    let (value, deadline) = *entry;
                    if from == to {
                        if nx {
                            resp::integer(&mut out, 0);
                        } else {
                            out.extend_from_slice(OK);
                        }
                        return out.freeze();
                    }
                    if nx {
                        let exists = locked.apply(router.of(to), &Op::Exists(to));
                        if exists == Outcome::Int(1) {
                            resp::integer(&mut out, 0);
                            return out.freeze();
                        }
                    }
                    locked.apply(router.of(from), &Op::Del(from));
                    let put = locked.apply(router.of(to), &Op::Restore(to, &value, deadline));
                    match put {
                        Outcome::Error(e) => resp::error_reply(&mut out, &e),
                        _ if nx => resp::integer(&mut out, 1),
                        _ => out.extend_from_slice(OK),
                    }
                }
                other => value_reply(&mut out, &other),
            }
        }
        Special::MsetNx(pairs) => {
            let mut ops = vec![Vec::new(); router.count];
            for &(key, _) in &pairs {
                ops[router.of(key)].push(Op::Exists(key));
            }
            let found = locked.apply_all(&ops);
            if let Some(error) = found.iter().flatten().find_map(|o| match o {
                Outcome::Error(e) => Some(e.clone()),
                _ => None,
            }) {
                resp::error_reply(&mut out, &error);
            } else if found.iter().flatten().any(|o| *o == Outcome::Int(1)) {
                resp::integer(&mut out, 0);
            } else {
                let mut ops = vec![Vec::new(); router.count];
                for (key, value) in pairs {
                    ops[router.of(key)].push(Op::Set {
                        key,
                        value,
                        expiry: Expiry::Clear,
                        condition: Condition::Always,
                        get: false,
                        command: Command::MSetNx,
                    });
                }
                let done = locked.apply_all(&ops);
                match done.iter().flatten().find_map(|o| match o {
                    Outcome::Error(e) => Some(e.clone()),
                    _ => None,
                }) {
                    Some(e) => resp::error_reply(&mut out, &e),
                    None => resp::integer(&mut out, 1),
                }
            }
        }
        Special::CheckWatched(_) => {}
    }
    out.freeze()
}

fn value_reply(out: &mut BytesMut, outcome: &Outcome) {
    match outcome {
        Outcome::Value(v) => resp::bulk(out, v.as_deref()),
        Outcome::Done => out.extend_from_slice(OK),
        Outcome::NotDone => resp::bulk(out, None),
        Outcome::Int(n) => resp::integer(out, *n),
        Outcome::Error(e) => resp::error_reply(out, e),
        Outcome::Pair(..) | Outcome::Entry(_) | Outcome::Keys(_) => resp::bulk(out, None),
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`: RESP2 is served;
/// RESP3 is refused with `-NOPROTO`, which clients take as "speak RESP2".
fn hello(session: &mut Session, args: &[&[u8]]) -> Step {
    if let Some(version) = args.get(1) {
        match parse_int(version) {
            None => return error_step("ERR Protocol version is not an integer or out of range"),
            Some(2) => {}
            Some(_) => return error_step("NOPROTO sorry, this protocol version is not supported"),
        }
    }
    let mut i = 2;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"SETNAME") && i + 1 < args.len() {
            if !valid_client_name(args[i + 1]) {
                return error_step(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            set_client_name(session, Bytes::copy_from_slice(args[i + 1]));
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"AUTH") && i + 2 < args.len() {
            return error_step("WRONGPASS invalid username-password pair or user is disabled.");
        } else {
            return error_step(&format!(
                "ERR Syntax error in HELLO option '{}'",
                quoted(args[i])
            ));
        }
    }
    let id = session.id as i64;
    now_reply(|out| {
        resp::array(out, 14);
        for (name, value) in [("server", "redis"), ("version", REDIS_VERSION)] {
            resp::bulk(out, Some(name.as_bytes()));
            resp::bulk(out, Some(value.as_bytes()));
        }
        resp::bulk(out, Some(b"proto"));
        resp::integer(out, 2);
        resp::bulk(out, Some(b"id"));
        resp::integer(out, id);
        for (name, value) in [("mode", "standalone"), ("role", "master")] {
            resp::bulk(out, Some(name.as_bytes()));
            resp::bulk(out, Some(value.as_bytes()));
        }
        resp::bulk(out, Some(b"modules"));
        resp::array(out, 0);
    })
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_client_name(session: &Session, name: Bytes) {
    if let Some(info) = crate_lock(&session.clients.list).get_mut(&session.id) {
        info.name = name;
    }
}

/// `CLIENT ID|SETNAME|GETNAME|LIST|SETINFO`.
fn client(router: &Router, session: &mut Session, args: &[&[u8]]) -> Step {
    let sub = args[1].to_ascii_uppercase();
    match (&sub[..], args.len()) {
        (b"ID", 2) => now_reply(|out| resp::integer(out, session.id as i64)),
        (b"SETNAME", 3) => {
            if !valid_client_name(args[2]) {
                return error_step(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            set_client_name(session, Bytes::copy_from_slice(args[2]));
            Step::Now(Bytes::from_static(OK))
        }
        (b"GETNAME", 2) => {
            let list = crate_lock(&router.clients.list);
            let name = list
                .get(&session.id)
                .map(|info| info.name.clone())
                .filter(|name| !name.is_empty());
            now_reply(|out| resp::bulk(out, name.as_deref()))
        }
        (b"SETINFO", 4) => Step::Now(Bytes::from_static(OK)),
        (b"LIST", 2) => {
            let now = Instant::now();
            let mut text = Vec::new();
            let mut list = crate_lock(&router.clients.list);
            if let Some(me) = list.get_mut(&session.id) {
                me.last = now;
            }
            for (id, info) in list.iter() {
                text.extend_from_slice(
                    format!(
                        "id={id} addr={} laddr={} fd=-1 name=",
                        info.addr, info.laddr
                    )
                    .as_bytes(),
                );
                text.extend_from_slice(&info.name);
                text.extend_from_slice(
                    format!(
                        " age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 \
                         qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
                         omem=0 tot-mem=0 events=r cmd=client|list user=default redir=-1 \
                         resp=2\n",
                        now.duration_since(info.since).as_secs(),
                        now.duration_since(info.last).as_secs(),
                    )
                    .as_bytes(),
                );
            }
            now_reply(|out| resp::bulk(out, Some(&text)))
        }
        (b"ID" | b"SETNAME" | b"GETNAME" | b"LIST" | b"SETINFO", _) => error_step(&format!(
            "ERR wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&sub).to_ascii_lowercase()
        )),
        _ => error_step(&format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            quoted(args[1])
        )),
    }
}

/// The process's resident memory in bytes (Linux; 0 elsewhere).
pub(crate) fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `CONFIG GET`: the persistence settings clients ask about (this store
/// keeps everything in memory), nothing else.
fn config_get(pattern: &[u8]) -> Step {
    const KNOWN: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];
    let matching: Vec<_> = KNOWN
        .iter()
        .filter(|(name, _)| glob_match(&pattern.to_ascii_lowercase(), name.as_bytes()))
        .collect();
    now_reply(|out| {
        resp::array(out, matching.len() * 2);
        for (name, value) in matching {
            resp::bulk(out, Some(name.as_bytes()));
            resp::bulk(out, Some(value.as_bytes()));
        }
    })
}

/// A time argument of `SET`/`SETEX`/`EXPIRE` & co., by Redis's checks:
/// an integer; for `SET`/`GETEX`/`SETEX` (`relative_only`: not `EXPIRE`)
/// above zero; seconds that fit in milliseconds. The sum with the clock is
/// checked by the shard.
fn expire_arg(
    arg: &[u8],
    seconds: bool,
    absolute: bool,
    command: &'static str,
) -> Result<Ttl, Step> {
    expire_value(arg, seconds, absolute, command).map_err(outcome_step)
}

/// As [`expire_arg`], the error as an outcome (for a shard to answer
/// after its own checks).
fn expire_value(
    arg: &[u8],
    seconds: bool,
    absolute: bool,
    command: &'static str,
) -> Result<Ttl, Outcome> {
    let n = parse_int(arg).ok_or(Outcome::Error(Cow::Borrowed(
        "ERR value is not an integer or out of range",
    )))?;
    let expire_command = matches!(command, "expire" | "pexpire" | "expireat" | "pexpireat");
    if !expire_command && n <= 0 {
        return Err(invalid_expire(command));
    }
    let ms = if seconds {
        n.checked_mul(1000).ok_or_else(|| invalid_expire(command))?
    } else {
        n
    };
    Ok(if absolute { Ttl::At(ms) } else { Ttl::In(ms) })
}

fn outcome_step(outcome: Outcome) -> Step {
    now_reply(|out| value_reply(out, &outcome))
}

/// Parses `SET`'s options: `EX s`, `PX ms`, `EXAT s`, `PXAT ms`,
/// `KEEPTTL`, `NX`, `XX`, `GET`. As in Redis, an option may repeat (the
/// last time wins) but two kinds of expiry, or `NX` with `XX`, may not.
fn set_options(args: &[&[u8]]) -> Result<(Expiry, Condition, bool), Step> {
    let mut kind: Option<Vec<u8>> = None;
    let mut time = None;
    let mut condition = Condition::Always;
    let mut get = false;
    let mut i = 0;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        let same_kind = kind.as_ref().is_none_or(|k| *k == option);
        match &option[..] {
            b"NX" if condition != Condition::IfPresent => condition = Condition::IfAbsent,
            b"XX" if condition != Condition::IfAbsent => condition = Condition::IfPresent,
            b"GET" => get = true,
            b"KEEPTTL" if same_kind => kind = Some(option),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if same_kind && i + 1 < args.len() => {
                time = Some((option[0] == b'E', option.len() == 4, &args[i + 1]));
                kind = Some(option);
                i += 1;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    // The time is checked once the syntax is, as Redis does.
    let expiry = match (kind.as_deref(), time) {
        (Some(b"KEEPTTL"), _) => Expiry::Keep,
        (_, Some((seconds, absolute, arg))) => {
            Expiry::Set(expire_arg(arg, seconds, absolute, "set")?)
        }
        _ => Expiry::Clear,
    };
    Ok((expiry, condition, get))
}

/// Parses `GETEX`'s options: `EX`, `PX`, `EXAT`, `PXAT` or `PERSIST`
/// (repeating one is allowed, mixing two is not).
fn getex_options(args: &[&[u8]]) -> Result<Result<Expiry, Cow<'static, str>>, Step> {
    let mut kind: Option<Vec<u8>> = None;
    let mut time = None;
    let mut i = 0;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        let same_kind = kind.as_ref().is_none_or(|k| *k == option);
        match &option[..] {
            b"PERSIST" if same_kind => kind = Some(option),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if same_kind && i + 1 < args.len() => {
                time = Some((option[0] == b'E', option.len() == 4, &args[i + 1]));
                kind = Some(option);
                i += 1;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    // The time is checked by the shard, after the key: Redis answers nil
    // for a missing key whatever the time.
    Ok(match (kind.as_deref(), time) {
        (Some(b"PERSIST"), _) => Ok(Expiry::Clear),
        (_, Some((seconds, absolute, arg))) => expire_value(arg, seconds, absolute, "getex")
            .map(Expiry::Set)
            .map_err(|outcome| match outcome {
                Outcome::Error(text) => text,
                _ => Cow::Borrowed("ERR value is not an integer or out of range"),
            }),
        _ => Ok(Expiry::Keep),
    })
}

/// Parses `EXPIRE`'s options: `NX`, `XX`, `GT`, `LT`.
fn expire_options(args: &[&[u8]]) -> Result<ExpireIf, Step> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for arg in args {
        let option = arg.to_ascii_uppercase();
        match &option[..] {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(error_step(&format!(
                    "ERR Unsupported option {}",
                    quoted(arg)
                )));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(error_step(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(error_step(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(ExpireIf { nx, xx, gt, lt })
}

/// Redis's glob (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, and
/// `\` escapes.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern, text).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p, text[t]),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(p + 2),
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                t += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == '['`; returns
/// where the pattern goes on, or `None` on no match.
fn class(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    let mut i = p + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (
                pattern[i].min(pattern[i + 2]),
                pattern[i].max(pattern[i + 2]),
            );
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= pattern[i] == c;
            i += 1;
        }
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_redis_matches_them() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h*llo", b"heeeello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"k\\*", b"k*"));
        assert!(!glob_match(b"k\\*", b"kx"));
        assert!(!glob_match(b"a*b", b"acd"));
    }

    #[test]
    fn a_spare_vector_is_reused_for_the_operations_of_another_read() {
        let spare: Vec<Item<'static>> = Vec::with_capacity(32);
        let at = spare.as_ptr() as usize;
        let read = b"key".to_vec();
        let mut items: Vec<Item<'_>> = reuse(spare);
        assert_eq!((items.as_ptr() as usize, items.capacity()), (at, 32));
        items.push(Item::Op(0, Op::Get(&read)));
        let back: Vec<Item<'static>> = reuse(items);
        assert_eq!(
            (back.as_ptr() as usize, back.capacity(), back.len()),
            (at, 32, 0)
        );
    }

    #[test]
    fn operations_and_steps_are_small() {
        // Moved into the batch one by one: `SET` took 112 bytes with a
        // `Bytes` per argument and the command's name as a string.
        assert!(std::mem::size_of::<Op<'_>>() <= 56);
        assert!(std::mem::size_of::<Item<'_>>() <= 64);
        assert!(std::mem::size_of::<Step>() <= 40);
        assert!(std::mem::size_of::<Outcome>() <= 40);
    }

    #[test]
    fn unknown_command_errors_carry_no_line_break() {
        let long = "x".repeat(300);
        let args: Vec<&[u8]> = ["FOO\r\n+OK", "a\nb", &long]
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        let Step::Now(reply) = unknown_command(&args) else {
            panic!("an immediate reply")
        };
        assert_eq!(
            reply.iter().filter(|&&b| b == b'\r' || b == b'\n').count(),
            2
        );
        assert!(reply.ends_with(b"\r\n"));
        assert!(
            reply.starts_with(
                b"-ERR unknown command 'FOO  +OK', with args beginning with: 'a b' 'xxx"
            )
        );
    }
}
