//! (private) Every nursery of the process and its tasks, for the observer:
//! a walk of the scope tree from its root nurseries
//! ([`roots`](crate::cancel::roots)).
//!
//! Forks count as their nursery (their tasks are listed with it, as
//! [`Nursery::child_tasks`](super::Nursery::child_tasks) does); cancel
//! scopes are looked through. The walk takes each node's lock once, for a
//! copy of its children: it costs the observer, not the observed tasks.

use std::sync::Arc;
use std::time::Duration;

use super::{GroupLink, TaskInfo};
use crate::cancel::{Kind, Node, roots};

/// At most this many tasks are listed per nursery (the rest are counted).
pub(crate) const MAX_TASKS: usize = 200;

/// One nursery in the listing.
#[derive(Clone, Debug)]
pub(crate) struct NurseryNode {
    pub(crate) name: String,
    /// Since it was entered, when the observer ran then.
    pub(crate) age: Option<Duration>,
    pub(crate) cancelled: bool,
    /// Its running tasks (and its forks'), at most [`MAX_TASKS`].
    pub(crate) tasks: Vec<TaskNode>,
    /// How many running tasks it has in all.
    pub(crate) task_count: usize,
    /// Nurseries opened in its body (outside its tasks).
    pub(crate) nurseries: Vec<NurseryNode>,
}

/// One task in the listing.
#[derive(Clone, Debug)]
pub(crate) struct TaskNode {
    pub(crate) info: TaskInfo,
    /// Since it first waited, when the observer ran then.
    pub(crate) age: Option<Duration>,
    /// Nurseries opened inside the task.
    pub(crate) nurseries: Vec<NurseryNode>,
}

/// Every live nursery of the process, as trees from the roots.
pub(crate) fn nursery_tree() -> Vec<NurseryNode> {
    roots()
        .iter()
        .filter_map(|root| {
            let link = GroupLink::of(root)?;
            let shared = link.shared.upgrade()?;
            // A finished root nursery whose handle is still kept.
            (!shared.is_closed()).then(|| nursery(root, &shared.name))
        })
        .collect()
}

fn nursery(node: &Arc<Node>, name: &str) -> NurseryNode {
    let mut out = NurseryNode {
        name: name.to_owned(),
        age: node.age(),
        cancelled: node.is_cancelled(),
        tasks: Vec::new(),
        task_count: 0,
        nurseries: Vec::new(),
    };
    let mut tasks = Vec::new();
    collect(node, &mut tasks, &mut out.nurseries);
    out.task_count = tasks.len();
    tasks.truncate(MAX_TASKS);
    out.tasks = tasks;
    out
}

/// The tasks and nurseries below `node`, looking through scopes and forks.
fn collect(node: &Arc<Node>, tasks: &mut Vec<TaskNode>, nurseries: &mut Vec<NurseryNode>) {
    for child in node.children() {
        match child.kind() {
            Kind::Task(_) => {
                let mut inner = Vec::new();
                let mut inner_nurseries = Vec::new();
                // A task's own children: the scopes and nurseries it opened
                // (tasks hang only under nurseries).
                collect(&child, &mut inner, &mut inner_nurseries);
                tasks.push(TaskNode {
                    info: TaskInfo::of(&child),
                    age: child.age(),
                    nurseries: inner_nurseries,
                });
            }
            Kind::Group(_) => match GroupLink::of(&child) {
                // A fork: its tasks are its nursery's.
                Some(link) if link.fork.is_some() => collect(&child, tasks, nurseries),
                Some(link) => {
                    let name = link
                        .shared
                        .upgrade()
                        .map_or_else(|| "nursery".to_owned(), |s| s.name.to_string());
                    nurseries.push(nursery(&child, &name));
                }
                None => collect(&child, tasks, nurseries),
            },
            Kind::Scope => collect(&child, tasks, nurseries),
        }
    }
}
