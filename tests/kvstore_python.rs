//! The kvstore with a real client library: Python's `redis` (redis-py, from
//! PyPI) runs `tests/kvstore/python_client.py` against it — a pool shared
//! by threads, pipelines with and without transactions, `WATCH` retries,
//! binary values, and the string store's commands. redis-py 5+ opens with
//! `HELLO 3`; the kvstore's `-NOPROTO` makes it fall back to RESP2.
//!
//! The test makes its own virtual environment (under Cargo's target
//! temporary directory) and installs `redis` there with pip. Without
//! `python3 -m venv` or a reachable PyPI it is skipped with a note, unless
//! `TRELLIS_REQUIRE_REDIS_TOOLS` is set (as `.ci/run` does): then it fails.

#![allow(unreachable_pub, dead_code)]

#[path = "../examples/kvstore/commands.rs"]
mod commands;
#[path = "../examples/kvstore/connection.rs"]
mod connection;
#[path = "kvstore/harness.rs"]
mod harness;
#[path = "../examples/kvstore/resp.rs"]
mod resp;
#[path = "../examples/kvstore/server.rs"]
mod server;
#[path = "../examples/kvstore/shard.rs"]
mod shard;

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{config, with_server};

/// A virtual environment with `redis` installed, made once; `None` (after
/// a note) where that cannot be done and it is not required.
fn python_with_redis() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kvstore-python-venv");
    let python = venv.join("bin").join("python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import redis"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "redis"])
            .status()
            .is_ok_and(|s| s.success());
    if made && ready(&python) {
        return Some(python);
    }
    assert!(
        std::env::var_os("TRELLIS_REQUIRE_REDIS_TOOLS").is_none(),
        "a Python venv with `redis` from PyPI is required (Debian: python3-venv)"
    );
    eprintln!("skipped: no python3 venv with `redis` (Debian: python3-venv; PyPI reachable)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_redis_client_works_with_pools_pipelines_and_transactions() {
    let Some(python) = tokio::task::spawn_blocking(python_with_redis)
        .await
        .unwrap()
    else {
        return;
    };
    with_server(config("python_client", 3), move |addr| async move {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/kvstore/python_client.py"
        );
        let output = tokio::process::Command::new(&python)
            .arg(script)
            .arg(addr.port().to_string())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
    })
    .await;
}
