//! The node stops its applications gracefully, in reverse order, on SIGTERM.
//!
//! The test re-runs its own binary as a child process in "node mode"; the
//! child prints a line once its node is up, the parent then sends it a real
//! SIGTERM and reads what the child printed on the way down.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use trellis::TaskStatus;
use trellis::application::AppSpec;
use trellis::node::{self, Options};

const MODE: &str = "TRELLIS_NODE_SIGNAL_CHILD";

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
        node::run(apps, Options::new().logging(false)).await
    });
    println!(
        "node returned {}",
        if result.is_ok() { "ok" } else { "error" }
    );
}

#[cfg(unix)]
#[test]
fn sigterm_stops_applications_in_reverse_order_then_returns() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "node_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for the node to be up before signalling.
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
        .filter(|l| l.starts_with("stopped") || l.starts_with("node returned"))
        .collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        rest,
        ["stopped second", "stopped first", "node returned ok"]
    );
}
