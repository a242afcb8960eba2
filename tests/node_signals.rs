//! The node stops its applications gracefully, in reverse order, on SIGTERM,
//! and its stop is bounded even when an application ignores the request.
//!
//! The tests re-run their own binary as a child process in "node mode"; the
//! child prints a line once its node is up, the parent then sends it a real
//! SIGTERM and reads what the child printed on the way down.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use trellis::TaskStatus;
use trellis::application::AppSpec;
use trellis::node::{self, NodeOptions};

const MODE: &str = "TRELLIS_NODE_SIGNAL_CHILD";
const DEAF_MODE: &str = "TRELLIS_NODE_SIGNAL_DEAF_CHILD";

fn app(name: &'static str) -> AppSpec {
    AppSpec::new(
        name,
        move |(), status: TaskStatus<()>| async move {
            status.started(());
            trellis::wait_shutdown().await;
            println!("stopped {name}");
        },
        (),
    )
}

/// In the child process: run a node until signalled.
#[test]
fn node_child_process() {
    if std::env::var_os(MODE).is_none() {
        return; // only meaningful as the child of the test below
    }
    let result = trellis::run(async {
        let up = AppSpec::new(
            "announcer",
            |(), status: TaskStatus<()>| async move {
                status.started(());
                println!("node up");
                trellis::wait_shutdown().await;
            },
            (),
        )
        .depends_on("second");
        let apps = vec![up, app("second").depends_on("first"), app("first")];
        node::run(apps, NodeOptions::new().logging(false)).await
    });
    println!(
        "node returned {}",
        if result.is_ok() { "ok" } else { "error" }
    );
}

/// In the child process: a node whose one application never looks at the
/// shutdown request, on a paused clock (its 30 s default shutdown time
/// passes at once).
#[test]
fn deaf_node_child_process() {
    if std::env::var_os(DEAF_MODE).is_none() {
        return; // only meaningful as the child of the test below
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let deaf = AppSpec::new(
            "deaf",
            |(), status: TaskStatus<()>| async move {
                status.started(());
                println!("node up");
                std::future::pending::<()>().await;
            },
            (),
        );
        let before = tokio::time::Instant::now();
        let result = node::run(vec![deaf], NodeOptions::new().logging(false)).await;
        // Paused clock: the only time that passed is the shutdown wait.
        println!("stop waited {:?}", before.elapsed());
        result
    });
    println!(
        "node returned {}",
        if result.is_ok() { "ok" } else { "error" }
    );
}

/// Runs this binary's `test` in a child process with `mode` set, waits for
/// "node up", sends SIGTERM, and returns the lines printed afterwards that
/// start with one of `keep`.
#[cfg(unix)]
fn signal_child(test: &str, mode: &str, keep: &[&str]) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(mode, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("child ended before its node was up")
            .unwrap();
        if line.contains("node up") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines
        .map_while(Result::ok)
        .filter(|l| keep.iter().any(|k| l.starts_with(k)))
        .collect();
    assert!(child.wait().unwrap().success());
    rest
}

#[cfg(unix)]
#[test]
fn sigterm_stop_kills_an_application_that_ignores_it_after_its_shutdown_time() {
    let rest = signal_child(
        "deaf_node_child_process",
        DEAF_MODE,
        &["stop waited", "node returned"],
    );
    assert_eq!(rest, ["stop waited 30s", "node returned ok"]);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_applications_in_reverse_order_then_returns() {
    let rest = signal_child("node_child_process", MODE, &["stopped", "node returned"]);
    assert_eq!(
        rest,
        ["stopped second", "stopped first", "node returned ok"]
    );
}
