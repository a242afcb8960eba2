//! The observer's JSON documents: the tree, one process, one event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::bus::{self, Event, ServerStats};
use crate::nursery::TaskState;
use crate::nursery::listing::{self, NurseryNode, TaskNode};
use crate::process::{self, Pid};
use crate::supervisor::{self, ChildInfo, SupervisorInfo};

/// A pid as the API writes it: its text and its number (for URLs).
fn pid_json(pid: Option<Pid>) -> Value {
    match pid {
        Some(pid) => json!({ "text": pid.to_string(), "id": pid.id() }),
        None => Value::Null,
    }
}

fn server_json(stats: &ServerStats) -> Value {
    let handled = stats.handled.load(Ordering::Relaxed);
    let timed_calls: u64 = stats.calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    json!({
        "pid": pid_json(Some(stats.pid)),
        "name": stats.name,
        "mailbox_depth": stats.depth.load(Ordering::Relaxed),
        "messages_handled": handled,
        "timed_calls": timed_calls,
        "handler_seconds": stats.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
    })
}

fn child_json(child: &ChildInfo, servers: &HashMap<Pid, Arc<ServerStats>>) -> Value {
    let mut object = Map::new();
    object.insert("key".into(), json!(child.key.0));
    object.insert("id".into(), json!(child.id));
    object.insert("pid".into(), pid_json(child.pid));
    object.insert(
        "restart".into(),
        json!(format!("{:?}", child.restart).to_lowercase()),
    );
    object.insert("state".into(), json!(child.state.to_string()));
    object.insert("restarts".into(), json!(child.restarts));
    object.insert(
        "last_exit".into(),
        child
            .last_exit
            .as_ref()
            .map_or(Value::Null, |r| json!(r.to_string())),
    );
    object.insert(
        "uptime_seconds".into(),
        child.uptime.map_or(Value::Null, |u| json!(u.as_secs_f64())),
    );
    let server = child.pid.and_then(|pid| servers.get(&pid));
    object.insert(
        "server".into(),
        server.map_or(Value::Null, |s| server_json(s)),
    );
    object.insert(
        "supervisor".into(),
        child
            .supervisor
            .as_ref()
            .map_or(Value::Null, |s| supervisor_json(s, servers)),
    );
    Value::Object(object)
}

fn supervisor_json(info: &SupervisorInfo, servers: &HashMap<Pid, Arc<ServerStats>>) -> Value {
    let exits: Map<String, Value> = info
        .exits
        .iter()
        .map(|(reason, n)| ((*reason).to_owned(), json!(n)))
        .collect();
    json!({
        "name": info.name,
        "pid": pid_json(Some(info.pid)),
        "strategy": strategy_name(info.strategy),
        "max_restarts": info.max_restarts,
        "max_seconds": info.max_seconds.as_secs_f64(),
        "intensity_used": info.intensity_used,
        "uptime_seconds": info.uptime.as_secs_f64(),
        "restarts": info.restarts,
        "exits": exits,
        "children": info.children.iter().map(|c| child_json(c, servers)).collect::<Vec<_>>(),
    })
}

/// OTP's names for the strategies.
pub(super) fn strategy_name(strategy: supervisor::Strategy) -> &'static str {
    match strategy {
        supervisor::Strategy::OneForOne => "one_for_one",
        supervisor::Strategy::OneForAll => "one_for_all",
        supervisor::Strategy::RestForOne => "rest_for_one",
    }
}

fn age_json(age: Option<std::time::Duration>) -> Value {
    age.map_or(Value::Null, |a| json!(a.as_secs_f64()))
}

fn task_json(task: &TaskNode) -> Value {
    let state = match task.info.state {
        TaskState::Running => "running",
        TaskState::ShuttingDown => "shutting_down",
        TaskState::Cancelled => "cancelled",
    };
    json!({
        "name": task.info.name,
        "state": state,
        "age_seconds": age_json(task.age),
        "nurseries": task.nurseries.iter().map(nursery_json).collect::<Vec<_>>(),
    })
}

fn nursery_json(nursery: &NurseryNode) -> Value {
    json!({
        "name": nursery.name,
        "age_seconds": age_json(nursery.age),
        "cancelled": nursery.cancelled,
        "task_count": nursery.task_count,
        "tasks": nursery.tasks.iter().map(task_json).collect::<Vec<_>>(),
        "nurseries": nursery.nurseries.iter().map(nursery_json).collect::<Vec<_>>(),
    })
}

/// `GET /api/tree`.
pub(super) fn tree() -> Value {
    let servers: HashMap<Pid, Arc<ServerStats>> = bus::live_servers()
        .into_iter()
        .map(|s| (s.pid, s))
        .collect();
    let trees = supervisor::tree();
    let mut all_servers: Vec<Value> = servers.values().map(|s| server_json(s)).collect();
    all_servers.sort_by_key(|s| s["pid"]["id"].as_u64());
    json!({
        "node": {
            "processes": process::count(),
            "applications": crate::application::which_applications(),
        },
        "supervisors": trees.iter().map(|s| supervisor_json(s, &servers)).collect::<Vec<_>>(),
        "servers": all_servers,
        "nurseries": listing::nursery_tree().iter().map(nursery_json).collect::<Vec<_>>(),
        "protocol_servers": bus::protocol_connections()
            .into_iter()
            .map(|(listen, connections)| json!({ "listen": listen, "connections": connections }))
            .collect::<Vec<_>>(),
    })
}

/// Finds the supervisor with `pid` anywhere in the tree.
pub(super) fn find_supervisor(trees: &[SupervisorInfo], pid: Pid) -> Option<&SupervisorInfo> {
    trees.iter().find_map(|s| {
        if s.pid == pid {
            return Some(s);
        }
        s.children.iter().find_map(|c| {
            c.supervisor
                .as_deref()
                .and_then(|nested| find_supervisor(std::slice::from_ref(nested), pid))
        })
    })
}

/// Finds the child whose own pid is `pid`, with its supervisor.
fn find_child(trees: &[SupervisorInfo], pid: Pid) -> Option<(&SupervisorInfo, &ChildInfo)> {
    trees.iter().find_map(|s| {
        s.children.iter().find_map(|c| {
            if c.pid == Some(pid) {
                return Some((s, c));
            }
            c.supervisor
                .as_deref()
                .and_then(|nested| find_child(std::slice::from_ref(nested), pid))
        })
    })
}

/// `GET /api/process/<n>`: `None` if the process is not alive.
pub(super) fn process(pid: Pid) -> Option<Value> {
    let stats = process::stats(pid)?;
    let trees = supervisor::tree();
    let servers: HashMap<Pid, Arc<ServerStats>> =
        bus::server(pid).into_iter().map(|s| (s.pid, s)).collect();
    let kind = if find_supervisor(&trees, pid).is_some() {
        "supervisor"
    } else if servers.contains_key(&pid) {
        "gen_server"
    } else {
        "process"
    };
    let parent = find_child(&trees, pid);
    Some(json!({
        "pid": pid_json(Some(pid)),
        "kind": kind,
        "links": stats.links,
        "monitors": stats.monitors,
        "monitored_by": stats.monitored_by,
        "names": stats.names,
        "server": servers.get(&pid).map_or(Value::Null, |s| server_json(s)),
        "supervisor": find_supervisor(&trees, pid).map_or(Value::Null, |s| supervisor_json(s, &servers)),
        "parent": parent.map_or(Value::Null, |(s, c)| json!({
            "supervisor": s.name,
            "supervisor_pid": pid_json(Some(s.pid)),
            "child": child_json(c, &servers),
        })),
    }))
}

/// One event, as `/api/events` sends it.
pub(super) fn event(event: &Event) -> Value {
    json!({
        "seq": event.seq,
        "at_seconds": event.at.as_secs_f64(),
        "kind": event.kind.as_str(),
        "supervisor": event.supervisor,
        "supervisor_pid": pid_json(event.supervisor_pid),
        "child": event.child,
        "pid": pid_json(event.pid),
        "reason": event.reason,
        "restarts": event.restarts,
    })
}
