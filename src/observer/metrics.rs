//! `/metrics`: the node in Prometheus's text exposition format (0.0.4).
//!
//! Names follow Prometheus's conventions: a `trellis_` prefix, base units
//! (seconds), `_total` on counters.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::bus::{self, BUCKETS};
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

    header(
        &mut out,
        "trellis_supervisor_restarts_total",
        "counter",
        "Restarts of a supervisor's children since it started.",
    );
    for s in &sups {
        let _ = writeln!(
            out,
            "trellis_supervisor_restarts_total{{{}}} {}",
            labels(s),
            s.restarts
        );
    }
    header(
        &mut out,
        "trellis_supervisor_exits_total",
        "counter",
        "Exits of a supervisor's children since it started, by reason.",
    );
    for s in &sups {
        for (reason, n) in &s.exits {
            let _ = writeln!(
                out,
                "trellis_supervisor_exits_total{{{},reason=\"{reason}\"}} {n}",
                labels(s)
            );
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
    header(
        &mut out,
        "trellis_gen_server_messages_total",
        "counter",
        "Messages a gen_server has handled (calls, casts, infos, signals).",
    );
    for s in &servers {
        let _ = writeln!(
            out,
            "trellis_gen_server_messages_total{{{}}} {}",
            server_labels(s),
            s.handled.load(Ordering::Relaxed)
        );
    }
    header(
        &mut out,
        "trellis_gen_server_handler_seconds_total",
        "counter",
        "Time a gen_server has spent in its callbacks.",
    );
    for s in &servers {
        let _ = writeln!(
            out,
            "trellis_gen_server_handler_seconds_total{{{}}} {}",
            server_labels(s),
            s.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
    }
    header(
        &mut out,
        "trellis_gen_server_call_duration_seconds",
        "histogram",
        "Time in handle_call, all observed gen_servers together.",
    );
    let mut buckets = [0u64; BUCKETS.len() + 1];
    let mut sum_nanos = 0u64;
    for s in &servers {
        for (total, count) in buckets.iter_mut().zip(&s.calls) {
            *total += count.load(Ordering::Relaxed);
        }
        sum_nanos += s.call_nanos.load(Ordering::Relaxed);
    }
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(&buckets) {
        cumulative += count;
        let _ = writeln!(
            out,
            "trellis_gen_server_call_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += buckets[BUCKETS.len()];
    let _ = writeln!(
        out,
        "trellis_gen_server_call_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "trellis_gen_server_call_duration_seconds_sum {}",
        sum_nanos as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "trellis_gen_server_call_duration_seconds_count {cumulative}"
    );
    out
}
