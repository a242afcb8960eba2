//! `/metrics`: the node in Prometheus's text exposition format (0.0.4).
//!
//! Names follow Prometheus's conventions: a `trellis_` prefix, base units
//! (seconds), `_total` on counters. Counters and histograms are kept by a
//! stable identity (a supervisor's name, a gen_server's registered name),
//! not by pid, and include the processes of that identity that have ended:
//! a restart never makes them go back (which Prometheus would read as a
//! counter reset). Gauges describe live processes and carry their pid.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::bus::{self, BUCKETS, EXIT_LABELS};
use crate::process;
use crate::supervisor::{self, SupervisorInfo};

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn walk<'a>(trees: &'a [SupervisorInfo], out: &mut Vec<&'a SupervisorInfo>) {
    for sup in trees {
        out.push(sup);
        for child in &sup.children {
            if let Some(nested) = &child.supervisor {
                walk(std::slice::from_ref(&**nested), out);
            }
        }
    }
}

/// The whole exposition.
pub(super) fn render() -> String {
    let mut out = String::new();
    header(
        &mut out,
        "trellis_processes",
        "gauge",
        "Live processes (mailboxes, gen_servers, supervisors).",
    );
    let _ = writeln!(out, "trellis_processes {}", process::count());

    let trees = supervisor::tree();
    let mut sups = Vec::new();
    walk(&trees, &mut sups);
    let labels =
        |s: &SupervisorInfo| format!("supervisor=\"{}\",pid=\"{}\"", escape(&s.name), s.pid);

    // Counters by supervisor name, ended supervisors included: they never
    // go back when a supervisor restarts.
    let totals = bus::supervisor_totals();
    header(
        &mut out,
        "trellis_supervisor_restarts_total",
        "counter",
        "Restarts of the children of the supervisors of this name, in the process's life.",
    );
    for (name, t) in &totals {
        let _ = writeln!(
            out,
            "trellis_supervisor_restarts_total{{supervisor=\"{}\"}} {}",
            escape(name),
            t.restarts
        );
    }
    header(
        &mut out,
        "trellis_supervisor_exits_total",
        "counter",
        "Exits of the children of the supervisors of this name, by reason, in the process's life.",
    );
    for (name, t) in &totals {
        for (reason, n) in EXIT_LABELS.iter().zip(&t.exits) {
            if *n > 0 {
                let _ = writeln!(
                    out,
                    "trellis_supervisor_exits_total{{supervisor=\"{}\",reason=\"{reason}\"}} {n}",
                    escape(name)
                );
            }
        }
    }
    header(
        &mut out,
        "trellis_supervisor_intensity_used",
        "gauge",
        "Restarts inside the supervisor's current intensity window.",
    );
    for s in &sups {
        let _ = writeln!(
            out,
            "trellis_supervisor_intensity_used{{{}}} {}",
            labels(s),
            s.intensity_used
        );
    }
    header(
        &mut out,
        "trellis_supervisor_intensity_max",
        "gauge",
        "Restarts the supervisor allows within its window (max_restarts).",
    );
    for s in &sups {
        let _ = writeln!(
            out,
            "trellis_supervisor_intensity_max{{{}}} {}",
            labels(s),
            s.max_restarts
        );
    }
    header(
        &mut out,
        "trellis_supervisor_intensity_exceeded_total",
        "counter",
        "Times a supervisor of this name gave up: more restarts than its intensity allows.",
    );
    for (name, n) in bus::trips_by_supervisor() {
        let _ = writeln!(
            out,
            "trellis_supervisor_intensity_exceeded_total{{supervisor=\"{}\"}} {n}",
            escape(&name)
        );
    }

    header(
        &mut out,
        "trellis_protocol_connections",
        "gauge",
        "Open connections of a protocol server (by its listening addresses).",
    );
    for (addrs, open) in bus::protocol_connections() {
        let _ = writeln!(
            out,
            "trellis_protocol_connections{{listen=\"{}\"}} {open}",
            escape(&addrs)
        );
    }

    let mut servers = bus::live_servers();
    servers.sort_by_key(|s| s.pid);
    let server_labels = |s: &bus::ServerStats| match &s.name {
        Some(name) => format!("pid=\"{}\",name=\"{}\"", s.pid, escape(name)),
        None => format!("pid=\"{}\"", s.pid),
    };
    header(
        &mut out,
        "trellis_gen_server_mailbox_depth",
        "gauge",
        "Messages queued in a gen_server's mailbox when it last took one.",
    );
    for s in &servers {
        let _ = writeln!(
            out,
            "trellis_gen_server_mailbox_depth{{{}}} {}",
            server_labels(s),
            s.depth.load(Ordering::Relaxed)
        );
    }

    // Counters and the histogram by registered name (`name=""`: every
    // unnamed server), ended servers included.
    let totals = bus::server_totals();
    let name_label = |name: &str| format!("name=\"{}\"", escape(name));
    header(
        &mut out,
        "trellis_gen_server_messages_total",
        "counter",
        "Messages the gen_servers of this registered name have handled (calls, casts, infos, signals).",
    );
    for (name, t) in &totals {
        let _ = writeln!(
            out,
            "trellis_gen_server_messages_total{{{}}} {}",
            name_label(name),
            t.handled
        );
    }
    header(
        &mut out,
        "trellis_gen_server_handler_seconds_total",
        "counter",
        "Time the gen_servers of this registered name have spent in callbacks while the node was watched.",
    );
    for (name, t) in &totals {
        let _ = writeln!(
            out,
            "trellis_gen_server_handler_seconds_total{{{}}} {}",
            name_label(name),
            t.busy_nanos as f64 / 1e9
        );
    }
    header(
        &mut out,
        "trellis_gen_server_call_duration_seconds",
        "histogram",
        "Time in handle_call of the gen_servers of this registered name, for calls taken while the node was watched.",
    );
    for (name, t) in &totals {
        let labels = name_label(name);
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&t.calls) {
            cumulative += count;
            let _ = writeln!(
                out,
                "trellis_gen_server_call_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += t.calls[BUCKETS.len()];
        let _ = writeln!(
            out,
            "trellis_gen_server_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "trellis_gen_server_call_duration_seconds_sum{{{labels}}} {}",
            t.call_nanos as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "trellis_gen_server_call_duration_seconds_count{{{labels}}} {cumulative}"
        );
    }
    out
}
