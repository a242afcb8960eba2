//! Remote processes as Trellis [`Pid`]s: the node table that gives an
//! Erlang pid of another node a `Pid` (node ≠ 0), the [`Remote`] hook that
//! carries [`process`](crate::process)'s monitors, links and exits over the
//! node's connection, and the mapping between [`ExitReason`]s and Erlang exit
//! reasons.
//!
//! A Trellis process's own Erlang pid is `<name@host>.Number.Serial` with
//! the low half of its local id as the number and the high half plus one as
//! the serial; [`DistMailbox`](super::DistMailbox) pids have serial `0`, so
//! the two never meet.

use std::sync::{Arc, Mutex, Weak};

use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;

use super::{DistError, Inner, Term, as_atom, atom, tagged};
use crate::loom::lock;
use crate::process::{Entry, ExitReason, MonitorRef, Pid, REMOTE, Remote, remote_pid};

use super::term::{ErlPid, ToTerm};

/// One remote node as the table knows it: a node name and creation seen
/// through one local [`Inner`]. Indexes are never reused, so a pid of a
/// restarted node (a new creation) never names a process of the new one.
struct Slot {
    inner: Weak<Inner>,
    node: String,
    creation: u32,
}

/// Every remote node ever seen, by index − 1.
static SLOTS: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// A monitor a Trellis process holds on a remote process.
pub(super) struct ProcWatch {
    pub(super) entry: Weak<Entry>,
    pub(super) monitor: MonitorRef,
    pub(super) target: Pid,
    pub(super) erl_target: ErlPid,
    pub(super) from: ErlPid,
}

/// A monitor a remote process holds on a local Trellis process.
pub(super) struct ProcWatched {
    /// The watcher's node.
    pub(super) node: String,
    /// The watched local process.
    pub(super) local: Pid,
    /// The watcher.
    pub(super) from: ErlPid,
    /// The watched process, as the watcher named it.
    pub(super) to: PidOrAtom,
    /// The monitor.
    pub(super) reference: super::ErlRef,
}

/// A link between a local Trellis process and a remote one.
#[derive(Clone)]
pub(super) struct ProcLink {
    pub(super) local: Pid,
    pub(super) remote: Pid,
}

/// Installs the hook (once per program).
pub(super) fn install() {
    let _ = REMOTE.set(Box::new(Hook));
}

/// The Trellis pid of `erl` as seen through `inner`: a local one for a
/// Trellis process of this node, `None` for this node's mailboxes.
pub(super) fn to_pid(inner: &Arc<Inner>, erl: &ErlPid) -> Option<Pid> {
    if erl.node.name == inner.name {
        if erl.serial == 0 {
            return None;
        }
        let id = (u64::from(erl.serial - 1) << 32) | u64::from(erl.id);
        return Some(crate::process::local_pid(id));
    }
    let mut slots = lock(&SLOTS);
    let found = slots.iter().position(|s| {
        s.creation == erl.creation
            && s.node == erl.node.name
            && std::ptr::eq(s.inner.as_ptr(), Arc::as_ptr(inner))
    });
    let index = match found {
        Some(i) => i,
        None => {
            slots.push(Slot {
                inner: Arc::downgrade(inner),
                node: erl.node.name.clone(),
                creation: erl.creation,
            });
            slots.len() - 1
        }
    };
    let node = u32::try_from(index + 1).unwrap_or(u32::MAX);
    Some(remote_pid(
        node,
        (u64::from(erl.serial) << 32) | u64::from(erl.id),
    ))
}

/// The Erlang pid of `pid` as seen through `inner`: this node's name for a
/// local pid; `None` for a remote pid another [`Inner`] knows.
pub(super) fn to_erl(inner: &Arc<Inner>, pid: Pid) -> Option<ErlPid> {
    if pid.is_local() {
        let (high, low) = (pid.id() >> 32, pid.id() & 0xffff_ffff);
        return Some(ErlPid::new(
            inner.name.as_str(),
            low as u32,
            u32::try_from(high + 1).unwrap_or(u32::MAX),
            inner.creation,
        ));
    }
    let (owner, erl) = lookup(pid)?;
    Arc::ptr_eq(&owner, inner).then_some(erl)
}

/// The node (its [`Inner`]) and Erlang pid of a remote `pid`.
fn lookup(pid: Pid) -> Option<(Arc<Inner>, ErlPid)> {
    let slots = lock(&SLOTS);
    let slot = slots.get(usize::try_from(pid.node()).ok()?.checked_sub(1)?)?;
    let inner = slot.inner.upgrade()?;
    let erl = ErlPid::new(
        slot.node.as_str(),
        (pid.id() & 0xffff_ffff) as u32,
        (pid.id() >> 32) as u32,
        slot.creation,
    );
    Some((inner, erl))
}

/// Erlang's `noconnection`, as an [`ExitReason`].
pub(super) fn no_connection() -> ExitReason {
    reason_from_term(atom("noconnection"))
}

/// The [`ExitReason`] an Erlang exit reason maps to: `normal`, `shutdown`,
/// `killed` (and `kill`) and `noproc` to their variants; anything else (as
/// `noconnection` or `{badarg, ...}`) to [`ExitReason::Error`] carrying
/// [`DistError::RemoteExit`] with the term.
///
/// # Examples
///
/// ```
/// use trellis::dist::{DistError, atom, reason_from_term, reason_to_term};
/// use trellis::process::ExitReason;
///
/// assert_eq!(reason_from_term(atom("normal")), ExitReason::Normal);
/// let lost = reason_from_term(atom("noconnection"));
/// let ExitReason::Error(error) = &lost else { panic!() };
/// assert!(matches!(error.downcast_ref(), Some(DistError::RemoteExit { .. })));
/// assert_eq!(reason_to_term(&lost), atom("noconnection"));
/// ```
pub fn reason_from_term(reason: Term) -> ExitReason {
    match as_atom(&reason) {
        Some("normal") => ExitReason::Normal,
        Some("shutdown") => ExitReason::Shutdown,
        Some("killed" | "kill") => ExitReason::Killed,
        Some("noproc") => ExitReason::NoProcess,
        _ => ExitReason::error(DistError::RemoteExit { reason }),
    }
}

/// The Erlang exit reason an [`ExitReason`] crosses as: `normal`,
/// `shutdown`, `killed`, `noproc`; `{panic, Message}` for a panic; the term
/// itself for [`DistError::RemoteExit`]; `{error, Message}` (a binary) for
/// any other error.
///
/// # Examples
///
/// ```
/// use trellis::dist::{atom, reason_to_term, tagged, ToTerm};
/// use trellis::process::ExitReason;
///
/// assert_eq!(reason_to_term(&ExitReason::Shutdown), atom("shutdown"));
/// assert_eq!(
///     reason_to_term(&ExitReason::error("boom")),
///     tagged("error", vec!["boom".to_term()]),
/// );
/// ```
pub fn reason_to_term(reason: &ExitReason) -> Term {
    match reason {
        ExitReason::Normal => atom("normal"),
        ExitReason::Shutdown => atom("shutdown"),
        ExitReason::Killed => atom("killed"),
        ExitReason::NoProcess => atom("noproc"),
        ExitReason::Panic(message) => tagged("panic", vec![message.as_ref().to_term()]),
        ExitReason::Error(error) => match error.downcast_ref::<DistError>() {
            Some(DistError::RemoteExit { reason }) => reason.clone(),
            _ => tagged("error", vec![error.message().to_term()]),
        },
    }
}

/// The distribution layer's side of [`process`](crate::process)'s remote
/// monitors and links.
struct Hook;

impl Remote for Hook {
    fn monitor(&self, watcher: &Arc<Entry>, monitor: MonitorRef, target: Pid) {
        let started = lookup(target).and_then(|(inner, erl)| {
            let from = to_erl(&inner, watcher.pid())?;
            let reference = inner.make_ref();
            let node = erl.node.name.clone();
            inner.state().proc_watching.insert(
                reference.id.clone(),
                ProcWatch {
                    entry: Arc::downgrade(watcher),
                    monitor,
                    target,
                    erl_target: erl.clone(),
                    from: from.clone(),
                },
            );
            let message = Message::monitor_p(from, PidOrAtom::Pid(erl), reference.clone());
            // Not connected: connect first, as Erlang does, then monitor;
            // `noconnection` only if the connection cannot be made.
            let entry = Arc::downgrade(watcher);
            inner.when_connected(node, move |inner, node| {
                let sent = {
                    let mut state = inner.state();
                    if !state.proc_watching.contains_key(&reference.id) {
                        // Demonitored, or its node went down meanwhile.
                        return;
                    }
                    // Under the state lock, so that a demonitor cannot
                    // overtake it.
                    let sent = state
                        .conns
                        .get(node)
                        .is_some_and(|conn| conn.out.send_message(message));
                    if !sent {
                        state.proc_watching.remove(&reference.id);
                    }
                    sent
                };
                if !sent && let Some(watcher) = entry.upgrade() {
                    watcher.remote_down(monitor, target, no_connection());
                }
            });
            Some(())
        });
        if started.is_none() {
            watcher.remote_down(monitor, target, no_connection());
        }
    }

    fn demonitor(&self, _watcher: Pid, monitor: MonitorRef, target: Pid) -> bool {
        let Some((inner, _)) = lookup(target) else {
            return false;
        };
        let watch = {
            let mut state = inner.state();
            let key = state
                .proc_watching
                .iter()
                .find(|(_, w)| w.monitor == monitor)
                .map(|(k, _)| k.clone());
            key.and_then(|k| state.proc_watching.remove_entry(&k))
        };
        let Some((ids, watch)) = watch else {
            return false;
        };
        let reference = inner.reference(ids);
        let node = watch.erl_target.node.name.clone();
        inner.send_to(
            &node,
            Message::demonitor_p(watch.from, PidOrAtom::Pid(watch.erl_target), reference),
        );
        true
    }

    fn link(&self, from: &Arc<Entry>, target: Pid) {
        let started = lookup(target).and_then(|(inner, erl)| {
            let me = to_erl(&inner, from.pid())?;
            let node = erl.node.name.clone();
            let link = ProcLink {
                local: from.pid(),
                remote: target,
            };
            inner
                .state()
                .proc_links
                .entry(node.clone())
                .or_default()
                .push(link.clone());
            // As for a monitor: connect first; `noconnection` only if that
            // fails.
            inner.when_connected(node, move |inner, node| {
                let sent = {
                    let mut state = inner.state();
                    let present = state.proc_links.get(node).is_some_and(|links| {
                        links
                            .iter()
                            .any(|l| l.local == link.local && l.remote == link.remote)
                    });
                    if !present {
                        // Unlinked, or its node went down meanwhile.
                        return;
                    }
                    let sent = state
                        .conns
                        .get(node)
                        .is_some_and(|conn| conn.out.send_message(Message::link(me, erl)));
                    if !sent && let Some(links) = state.proc_links.get_mut(node) {
                        links.retain(|l| !(l.local == link.local && l.remote == link.remote));
                    }
                    sent
                };
                if !sent && let Some(entry) = crate::process::Entry::find(link.local) {
                    entry.remote_exit(link.remote, no_connection(), true);
                }
            });
            Some(())
        });
        if started.is_none() {
            from.remote_exit(target, no_connection(), true);
        }
    }

    fn unlink(&self, from: Pid, target: Pid) {
        let Some((inner, erl)) = lookup(target) else {
            return;
        };
        let node = erl.node.name.clone();
        inner.forget_proc_link(&node, from, target);
        if let Some(me) = to_erl(&inner, from) {
            let id = inner.next_unlink_id();
            inner.send_to(&node, Message::unlink_id(id, me, erl));
        }
    }

    fn exit(&self, from: Pid, target: Pid, reason: &ExitReason) {
        let Some((inner, erl)) = lookup(target) else {
            return;
        };
        let node = erl.node.name.clone();
        inner.forget_proc_link(&node, from, target);
        if let Some(me) = to_erl(&inner, from) {
            let reason = super::term::wire_safe(reason_to_term(reason));
            inner.send_to(&node, Message::payload_exit(me, erl, reason));
        }
    }
}
