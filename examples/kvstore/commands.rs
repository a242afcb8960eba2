//! From requests to replies: each request becomes operations on shards and a
//! step that turns their outcomes into the reply, in request order.
//!
//! A connection hands [`Batch`] every request of one read (a pipeline); the
//! batch sends each shard *one* `call` with all of its operations, waits for
//! all shards at once, and writes the replies in the order the requests
//! came. Multi-key commands (`MGET`, `MSET`, `DEL`, `EXISTS`) and
//! whole-database ones (`DBSIZE`, `FLUSHDB`) are split across shards here
//! and merged back.

use std::hash::BuildHasher;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use trellis::gen_server::{GenServerError, Server};

use crate::resp;
use crate::shard::{Condition, Op, Outcome, Shard};

/// Which shard owns a key: the same answer for every connection.
#[derive(Clone)]
pub(crate) struct Router {
    instance: std::sync::Arc<str>,
    count: usize,
    hasher: std::collections::hash_map::RandomState,
    /// Whether `DEBUG PANIC` is served (off unless asked for, as Redis's
    /// `enable-debug-command`).
    debug: bool,
}

impl Router {
    /// A router over the `count` shards of server `instance`; `debug`
    /// enables `DEBUG PANIC`.
    pub(crate) fn new(instance: &str, count: usize, debug: bool) -> Self {
        Router {
            instance: instance.into(),
            count,
            hasher: std::collections::hash_map::RandomState::new(),
            debug,
        }
    }

    /// How many shards there are.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    fn of(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) % self.count as u64) as usize
    }
}

/// The shards' handles, as one connection knows them.
pub(crate) struct Shards {
    instance: std::sync::Arc<str>,
    handles: Vec<Option<Server<Shard>>>,
}

/// The registered name of shard `i` of server `instance`.
pub(crate) fn shard_name(instance: &str, i: usize) -> String {
    format!("{instance}-shard-{i}")
}

impl Shards {
    /// Handles for the shards `router` knows, looked up by name when first
    /// used.
    pub(crate) fn new(router: &Router) -> Self {
        Shards {
            instance: router.instance.clone(),
            handles: vec![None; router.count],
        }
    }

    /// The shard's current incarnation (looked up again after a failure, so a
    /// restarted shard is found under its name).
    fn handle(&mut self, i: usize) -> Result<Server<Shard>, GenServerError> {
        if let Some(handle) = &self.handles[i] {
            return Ok(handle.clone());
        }
        let handle: Server<Shard> = trellis::registry::lookup(shard_name(&self.instance, i))?;
        self.handles[i] = Some(handle.clone());
        Ok(handle)
    }
}

/// Where a step finds an outcome: (shard, index in its batch).
type Slot = (usize, usize);

enum Step {
    /// A reply known without the shards (already encoded).
    Now(Bytes),
    /// `GET`: a bulk string or nil.
    Value(Slot),
    /// `SET`: `+OK`, or nil when a condition did not hold.
    Set(Slot),
    /// `INCR` & co.: an integer or an error.
    Int(Slot),
    /// `DEL`, `EXISTS`, `DBSIZE`: the sum of integers.
    Sum(Vec<Slot>),
    /// `MGET`: an array of values.
    Values(Vec<Slot>),
    /// `MSET`, `FLUSHDB`: `+OK` once all are done.
    AllDone(Vec<Slot>),
}

/// The requests of one read, planned per shard.
pub(crate) struct Batch {
    ops: Vec<Vec<Op>>,
    steps: Vec<Step>,
    /// `QUIT` was seen: reply, then close.
    pub(crate) quit: bool,
}

const OK: &[u8] = b"+OK\r\n";

fn now_reply(write: impl FnOnce(&mut BytesMut)) -> Step {
    let mut out = BytesMut::new();
    write(&mut out);
    Step::Now(out.freeze())
}

fn wrong_args(name: &str) -> Step {
    now_reply(|out| {
        resp::error_reply(
            out,
            &format!("ERR wrong number of arguments for '{name}' command"),
        )
    })
}

fn syntax_error() -> Step {
    now_reply(|out| resp::error_reply(out, "ERR syntax error"))
}

fn parse_int(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

impl Batch {
    /// An empty batch for `shards` shards.
    pub(crate) fn new(shards: usize) -> Self {
        Batch {
            ops: (0..shards).map(|_| Vec::new()).collect(),
            steps: Vec::new(),
            quit: false,
        }
    }

    /// Ends the batch with a protocol error reply; the connection closes
    /// after it (as Redis does).
    pub(crate) fn protocol_error(&mut self, message: &str) {
        self.steps.push(now_reply(|out| {
            resp::error_reply(out, &format!("ERR {message}"))
        }));
        self.quit = true;
    }

    /// Whether no request was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    fn op(&mut self, shards: &Router, key: &Bytes, op: Op) -> Slot {
        let shard = shards.of(key);
        self.ops[shard].push(op);
        (shard, self.ops[shard].len() - 1)
    }

    fn everywhere(&mut self, op: impl Fn() -> Op) -> Vec<Slot> {
        (0..self.ops.len())
            .map(|shard| {
                self.ops[shard].push(op());
                (shard, self.ops[shard].len() - 1)
            })
            .collect()
    }

    /// Plans one request.
    pub(crate) fn add(&mut self, shards: &Router, args: Vec<Bytes>) {
        let Some(name) = args.first() else {
            return;
        };
        // Command names are matched upper-cased, in a stack buffer: no
        // allocation per request. Longer names are no command we know.
        let mut upper = [0u8; 16];
        let name = match upper.get_mut(..name.len()) {
            Some(buf) => {
                buf.copy_from_slice(name);
                buf.make_ascii_uppercase();
                std::str::from_utf8(buf).unwrap_or("")
            }
            None => "",
        };
        let argc = args.len();
        let step = match (name, argc) {
            ("PING", 1) => now_reply(|out| resp::simple(out, "PONG")),
            ("PING", 2) | ("ECHO", 2) => now_reply(|out| resp::bulk(out, Some(&args[1]))),
            ("PING" | "ECHO", _) => wrong_args(&name.to_lowercase()),
            ("QUIT", _) => {
                self.quit = true;
                Step::Now(Bytes::from_static(OK))
            }
            ("GET", 2) => Step::Value(self.op(shards, &args[1], Op::Get(args[1].clone()))),
            ("SET", 3..) => match set_options(&args[3..]) {
                Some((ttl, condition)) => {
                    let op = Op::Set {
                        key: args[1].clone(),
                        value: args[2].clone(),
                        ttl,
                        condition,
                    };
                    Step::Set(self.op(shards, &args[1], op))
                }
                None => syntax_error(),
            },
            ("DEL", 2..) | ("UNLINK", 2..) => Step::Sum(
                args[1..]
                    .iter()
                    .map(|key| self.op(shards, key, Op::Del(key.clone())))
                    .collect(),
            ),
            ("EXISTS", 2..) => Step::Sum(
                args[1..]
                    .iter()
                    .map(|key| self.op(shards, key, Op::Exists(key.clone())))
                    .collect(),
            ),
            ("INCR", 2) => Step::Int(self.op(shards, &args[1], Op::IncrBy(args[1].clone(), 1))),
            ("DECR", 2) => Step::Int(self.op(shards, &args[1], Op::IncrBy(args[1].clone(), -1))),
            ("INCRBY", 3) | ("DECRBY", 3) => match parse_int(&args[2]) {
                Some(by) => {
                    let by = if name == "DECRBY" {
                        by.checked_neg().unwrap_or(i64::MAX)
                    } else {
                        by
                    };
                    Step::Int(self.op(shards, &args[1], Op::IncrBy(args[1].clone(), by)))
                }
                None => now_reply(|out| {
                    resp::error_reply(out, "ERR value is not an integer or out of range")
                }),
            },
            ("MGET", 2..) => Step::Values(
                args[1..]
                    .iter()
                    .map(|key| self.op(shards, key, Op::Get(key.clone())))
                    .collect(),
            ),
            ("MSET", n) if n >= 3 && n % 2 == 1 => Step::AllDone(
                args[1..]
                    .chunks(2)
                    .map(|pair| {
                        let op = Op::Set {
                            key: pair[0].clone(),
                            value: pair[1].clone(),
                            ttl: None,
                            condition: Condition::Always,
                        };
                        self.op(shards, &pair[0], op)
                    })
                    .collect(),
            ),
            ("DBSIZE", 1) => Step::Sum(self.everywhere(|| Op::Size)),
            ("FLUSHDB" | "FLUSHALL", _) => Step::AllDone(self.everywhere(|| Op::Flush)),
            // Clients probe these; empty answers are enough for them, but
            // `redis-benchmark` wants to read `save` and `appendonly`.
            ("CONFIG", 3) if args[1].eq_ignore_ascii_case(b"GET") => config_get(&args[2]),
            ("COMMAND", _) | ("CONFIG", _) => now_reply(|out| resp::array(out, 0)),
            ("SELECT", 2) if &args[1][..] == b"0" => Step::Now(Bytes::from_static(OK)),
            ("DEBUG", _) if !shards.debug => now_reply(|out| {
                resp::error_reply(
                    out,
                    "ERR DEBUG command not allowed (start the server with --enable-debug-command)",
                )
            }),
            ("DEBUG", 3) if args[1].eq_ignore_ascii_case(b"PANIC") => {
                Step::Int(self.op(shards, &args[2], Op::Panic))
            }
            (
                "GET" | "SET" | "INCR" | "DECR" | "INCRBY" | "DECRBY" | "MGET" | "MSET" | "DEL"
                | "UNLINK" | "EXISTS" | "DBSIZE" | "SELECT" | "DEBUG",
                _,
            ) => wrong_args(&name.to_lowercase()),
            _ => {
                let mut message = format!(
                    "ERR unknown command '{}', with args beginning with:",
                    printable(&args[0])
                );
                for arg in &args[1..] {
                    message.push_str(&format!(" '{}'", printable(arg)));
                }
                now_reply(|out| resp::error_reply(out, &message))
            }
        };
        self.steps.push(step);
    }

    /// Runs the batch: one call per shard involved, all at once; then
    /// encodes every reply, in request order, into `out`.
    pub(crate) async fn run(self, shards: &mut Shards, out: &mut BytesMut) {
        let Batch { ops, steps, .. } = self;
        let mut calls = Vec::new();
        for (i, ops) in ops.into_iter().enumerate() {
            if ops.is_empty() {
                continue;
            }
            let count = ops.len();
            match shards.handle(i) {
                Ok(handle) => calls.push((i, count, Some(handle), ops)),
                Err(_) => calls.push((i, count, None, ops)),
            }
        }
        let answers = join_all(calls.into_iter().map(|(i, count, handle, ops)| async move {
            let result = match handle {
                Some(handle) => handle.call(ops, CALL_TIMEOUT).await,
                None => Err(GenServerError::NameNotFound {
                    name: format!("shard {i}").into(),
                }),
            };
            (i, count, result)
        }))
        .await;
        let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); shards.handles.len()];
        for (i, count, result) in answers {
            outcomes[i] = match result {
                Ok(results) => results,
                Err(_) => {
                    // The shard crashed (or is restarting): its operations
                    // fail, and the next batch looks it up again.
                    shards.handles[i] = None;
                    vec![Outcome::Error("ERR shard unavailable, try again"); count]
                }
            };
        }
        let get = |(shard, index): &Slot| &outcomes[*shard][*index];
        for step in steps {
            match step {
                Step::Now(bytes) => out.extend_from_slice(&bytes),
                Step::Value(slot) => value_reply(out, get(&slot)),
                Step::Set(slot) => match get(&slot) {
                    Outcome::NotDone => resp::bulk(out, None),
                    other => value_reply(out, other),
                },
                Step::Int(slot) => value_reply(out, get(&slot)),
                Step::Sum(slots) => {
                    let mut sum = 0;
                    let mut failed = None;
                    for slot in &slots {
                        match get(slot) {
                            Outcome::Int(n) => sum += n,
                            Outcome::Error(e) => failed = Some(*e),
                            _ => {}
                        }
                    }
                    match failed {
                        Some(e) => resp::error_reply(out, e),
                        None => resp::integer(out, sum),
                    }
                }
                Step::Values(slots) => {
                    resp::array(out, slots.len());
                    for slot in &slots {
                        match get(slot) {
                            Outcome::Value(v) => resp::bulk(out, v.as_deref()),
                            _ => resp::bulk(out, None),
                        }
                    }
                }
                Step::AllDone(slots) => match slots.iter().find_map(|s| match get(s) {
                    Outcome::Error(e) => Some(*e),
                    _ => None,
                }) {
                    Some(e) => resp::error_reply(out, e),
                    None => out.extend_from_slice(OK),
                },
            }
        }
    }
}

/// Shards answer in microseconds; a shard that takes this long is stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn value_reply(out: &mut BytesMut, outcome: &Outcome) {
    match outcome {
        Outcome::Value(v) => resp::bulk(out, v.as_deref()),
        Outcome::Done => out.extend_from_slice(OK),
        Outcome::NotDone => resp::bulk(out, None),
        Outcome::Int(n) => resp::integer(out, *n),
        Outcome::Error(e) => resp::error_reply(out, e),
    }
}

/// `CONFIG GET`: the persistence settings clients ask about (this store
/// keeps everything in memory), nothing else.
fn config_get(pattern: &[u8]) -> Step {
    const KNOWN: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];
    let pattern = String::from_utf8_lossy(pattern).to_ascii_lowercase();
    let matching: Vec<_> = KNOWN
        .iter()
        .filter(|(name, _)| pattern == "*" || pattern == *name)
        .collect();
    now_reply(|out| {
        resp::array(out, matching.len() * 2);
        for (name, value) in matching {
            resp::bulk(out, Some(name.as_bytes()));
            resp::bulk(out, Some(value.as_bytes()));
        }
    })
}

fn printable(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

/// Parses `SET`'s options: `EX s`, `PX ms`, `NX`, `XX`.
fn set_options(args: &[Bytes]) -> Option<(Option<Duration>, Condition)> {
    let mut ttl = None;
    let mut condition = Condition::Always;
    let mut i = 0;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        match &option[..] {
            b"NX" if condition == Condition::Always => condition = Condition::IfAbsent,
            b"XX" if condition == Condition::Always => condition = Condition::IfPresent,
            b"EX" | b"PX" if ttl.is_none() => {
                let n = parse_int(args.get(i + 1)?)?;
                if n <= 0 {
                    return None;
                }
                ttl = Some(if &option[..] == b"EX" {
                    Duration::from_secs(n as u64)
                } else {
                    Duration::from_millis(n as u64)
                });
                i += 1;
            }
            _ => return None,
        }
        i += 1;
    }
    Some((ttl, condition))
}
