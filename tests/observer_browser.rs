//! The observer's page in a real browser: `examples/supervision` runs with
//! `--observer`, headless Chromium (driven through WebDriver, Debian's
//! `chromium` and `chromium-driver`) opens the page, the test checks the
//! drawn tree, drives a restart through the API and sees it appear on the
//! page without a reload, and keeps a screenshot
//! (`$CARGO_TARGET_TMPDIR/observer.png`; also `docs/observer.png` with
//! `TRELLIS_UPDATE_SCREENSHOT=1`).
//!
//! Needs the example built with the feature (`cargo test --all-features`
//! builds it; alone: `cargo build --features observer --example
//! supervision`). Without Chromium the test says so and passes, unless
//! `TRELLIS_REQUIRE_BROWSER=1` (CI sets it) makes that a failure.
#![cfg(feature = "observer")]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Kills and reaps a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request with `connection: close`: (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &str,
) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // Read until the body is complete: a server may keep the connection.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let read = conn.read(&mut buf)?;
        raw.extend_from_slice(&buf[..read]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let lower = head.to_ascii_lowercase();
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if lower.contains("transfer-encoding: chunked") {
                if rest.ends_with("0\r\n\r\n") || read == 0 {
                    return Ok((status, dechunk(rest)));
                }
            } else if length.is_some_and(|n| rest.len() >= n) || read == 0 {
                return Ok((status, rest.to_owned()));
            }
        }
        if read == 0 {
            return Ok((0, text));
        }
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `check` until it gives a value, for at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

struct WebDriver {
    addr: SocketAddr,
    session: String,
}

impl WebDriver {
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, text) = http(self.addr, method, &path, body, "").expect("webdriver answers");
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).expect("webdriver answers JSON")["value"].take()
    }

    fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
            "",
        );
    }
}

/// The page's tree nodes: `[parent, child-or-supervisor name, restarts, flashes]`.
const NODES: &str = "return [...document.querySelectorAll('#tree .node')].map(g => \
    [g.dataset.parent || '', g.dataset.child || g.dataset.supervisor, g.dataset.restarts || '', \
     g.dataset.flashes || '0', g.textContent]);";

#[test]
fn the_page_draws_the_tree_and_shows_a_restart_without_a_reload() {
    let (Some(chromium), Some(driver)) = (find("chromium"), find("chromedriver")) else {
        assert!(
            std::env::var_os("TRELLIS_REQUIRE_BROWSER").is_none(),
            "chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromium or chromedriver not installed");
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/supervision");
    assert!(
        example.is_file(),
        "{} missing: cargo build --features observer --example supervision",
        example.display()
    );

    // The example's log, read if it ends early (a file: a pipe left
    // unread could fill and block it).
    let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("observer-example.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let observer: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut running = Killed(
        Command::new(&example)
            .args([
                "--observer",
                &observer.to_string(),
                "--observer-actions",
                "--seconds",
                "120",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the example starts"),
    );
    let tree = wait_for("the observer", Duration::from_secs(20), || {
        if let Ok(Some(status)) = running.0.try_wait() {
            let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("the example ended ({status}); built without `--features observer`? {stderr}");
        }
        let (status, body) = http(observer, "GET", "/api/tree", None, "").ok()?;
        (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
    });
    let demo = &tree["supervisors"][0];
    assert_eq!(demo["name"], "demo");

    let driver_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let _driver = Killed(
        Command::new(&driver)
            .arg(format!("--port={}", driver_addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    wait_for("chromedriver", Duration::from_secs(20), || {
        let (status, body) = http(driver_addr, "GET", "/status", None, "").ok()?;
        (status == 200 && body.contains("\"ready\":true")).then_some(())
    });
    let capabilities = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,900"],
    }}}});
    let (status, body) = http(driver_addr, "POST", "/session", Some(&capabilities), "").unwrap();
    assert_eq!(status, 200, "new session: {body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    let browser = WebDriver {
        addr: driver_addr,
        session: session["value"]["sessionId"].as_str().unwrap().to_owned(),
    };

    browser.command(
        "POST",
        "/url",
        Some(&json!({ "url": format!("http://{observer}/") })),
    );
    // Marks this document: a reload would lose the mark.
    browser.script("window.__trellisTest = 'same page';");
    let nodes = wait_for(
        "the tree drawn, the stream live",
        Duration::from_secs(20),
        || {
            let live = browser.script("return document.getElementById('live').className;");
            let nodes = browser.script(NODES);
            let names: Vec<&str> = nodes
                .as_array()?
                .iter()
                .filter_map(|n| n[1].as_str())
                .collect();
            let all = ["demo", "tally", "loop-a", "loop-b", "workers", "quiet"];
            (live == "on" && all.iter().all(|n| names.contains(n))).then_some(nodes)
        },
    );
    let quiet = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n[1] == "quiet")
        .unwrap();
    assert_eq!(quiet[0], "workers");
    assert_eq!(quiet[2], "0", "the quiet worker never crashes by itself");

    // The test drives a restart of `workers/quiet` through the API.
    let workers = demo["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "workers")
        .unwrap()["supervisor"]
        .clone();
    let path = format!(
        "/api/supervisor/{}/children/{}/restart",
        workers["pid"]["id"], workers["children"][0]["key"]
    );
    let (status, body) = http(observer, "POST", &path, None, "x-trellis-action: 1\r\n").unwrap();
    assert_eq!(status, 200, "{body}");

    wait_for("the restart on the page", Duration::from_secs(20), || {
        let nodes = browser.script(NODES);
        let quiet = nodes.as_array()?.iter().find(|n| n[1] == "quiet")?.clone();
        let events = browser.script("return document.getElementById('events').textContent;");
        let logged = events.as_str()?.contains("child_restarted")
            && events.as_str()?.contains("workers/quiet");
        (quiet[2] == "1" && quiet[3] != "0" && quiet[4].as_str()?.contains("restarts 1") && logged)
            .then_some(())
    });
    assert_eq!(browser.script("return window.__trellisTest;"), "same page");

    // A click on the gen_server opens its details, with its statistics.
    browser.script(
        "document.querySelector('#tree .node[data-child=\"tally\"]')\
         .dispatchEvent(new MouseEvent('click', { bubbles: true }));",
    );
    wait_for("the details pane", Duration::from_secs(20), || {
        let details = browser.script("return document.getElementById('details').textContent;");
        let details = details.as_str()?;
        (details.contains("tally") && details.contains("messages handled")).then_some(())
    });
    let top = browser.script("return document.getElementById('top-busy').textContent;");
    assert!(top.as_str().unwrap().contains("tally"), "{top}");

    // The nurseries and their tasks, from `/api/tree`'s `nurseries`.
    let expected: Vec<String> = tree["nurseries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !expected.is_empty(),
        "the example runs in a nursery: {tree}"
    );
    wait_for("the nurseries drawn", Duration::from_secs(20), || {
        let drawn = browser.script(
            "return [...document.querySelectorAll('#nurseries details.nursery')]\
             .map(d => [d.dataset.nursery, d.querySelectorAll('.task').length]);",
        );
        let drawn = drawn.as_array()?.clone();
        let names: Vec<&str> = drawn.iter().filter_map(|d| d[0].as_str()).collect();
        let tasks: u64 = drawn.iter().filter_map(|d| d[1].as_u64()).sum();
        (expected.iter().all(|n| names.contains(&n.as_str())) && tasks > 0).then_some(())
    });

    let png = browser.command("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let artifact = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("observer.png");
    std::fs::write(&artifact, &png).unwrap();
    eprintln!("screenshot: {}", artifact.display());
    if std::env::var_os("TRELLIS_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/observer.png"),
            &png,
        )
        .unwrap();
    }
}
