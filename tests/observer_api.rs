//! The observer over HTTP: `/api/tree`, `/api/process/<n>`, the event
//! stream, `/metrics` (parsed by a Prometheus text-format parser), and the
//! actions, read-only by default.
#![cfg(feature = "observer")]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use trellis::observer::{self, ObserverOptions};
use trellis::supervisor::{self, ChildSpec, SupervisorOptions};

/// One request with `connection: close`: (status, body).
async fn request(addr: SocketAddr, method: &str, path: &str, action: bool) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let header = if action {
        "x-trellis-action: 1\r\n"
    } else {
        ""
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\n{header}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn find_supervisor<'a>(tree: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    tree["supervisors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {tree}"))
}

#[tokio::test]
async fn tree_and_process_describe_the_live_supervisors() {
    trellis::nursery(|n| async move {
        let obs = observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
        let children = vec![
            ChildSpec::task("api-worker", trellis::wait_shutdown),
            ChildSpec::supervisor(
                "api-nested",
                vec![ChildSpec::task("api-leaf", trellis::wait_shutdown)],
                SupervisorOptions::new().name("api-nested"),
            ),
        ];
        let options = SupervisorOptions::new().name("api-root").max_restarts(7);
        let sup = supervisor::start(&n, children, options).await?;

        let (status, body) = request(obs.local_addr(), "GET", "/api/tree", false).await;
        assert_eq!(status, 200);
        let tree = json(&body);
        assert_eq!(tree["actions"], false);
        let root = find_supervisor(&tree, "api-root");
        assert_eq!(root["strategy"], "one_for_one");
        assert_eq!(root["max_restarts"], 7);
        assert_eq!(root["intensity_used"], 0);
        assert_eq!(root["children"][0]["id"], "api-worker");
        assert_eq!(root["children"][0]["state"], "running");
        assert_eq!(root["children"][0]["restart"], "permanent");
        let nested = &root["children"][1]["supervisor"];
        assert_eq!(nested["name"], "api-nested");
        assert_eq!(nested["children"][0]["id"], "api-leaf");

        let pid = sup.pid().id();
        let (status, body) = request(
            obs.local_addr(),
            "GET",
            &format!("/api/process/{pid}"),
            false,
        )
        .await;
        assert_eq!(status, 200);
        let process = json(&body);
        assert_eq!(process["kind"], "supervisor");
        assert_eq!(process["supervisor"]["name"], "api-root");

        let (status, _) = request(obs.local_addr(), "GET", "/api/process/999999999", false).await;
        assert_eq!(status, 404);
        sup.stop().await?;
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_conventional_names() {
    trellis::nursery(|n| async move {
        let obs = observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
        let children = vec![ChildSpec::task("metric-worker", trellis::wait_shutdown)];
        let sup =
            supervisor::start(&n, children, SupervisorOptions::new().name("metrics-root")).await?;
        let (status, body) = request(obs.local_addr(), "GET", "/metrics", false).await;
        assert_eq!(status, 200);
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)?;
        let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
        assert!(names.contains(&"trellis_processes"), "{names:?}");
        let restarts = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "trellis_supervisor_restarts_total"
                    && s.labels.get("supervisor") == Some("metrics-root")
            })
            .expect("a restart counter for the supervisor");
        assert!(matches!(restarts.value, prometheus_parse::Value::Counter(v) if v == 0.0));
        assert!(
            scrape
                .docs
                .contains_key("trellis_gen_server_call_duration_seconds"),
            "{:?}",
            scrape.docs.keys()
        );
        // Counters end in `_total`; units are base units.
        for sample in &scrape.samples {
            if let prometheus_parse::Value::Counter(_) = sample.value {
                assert!(sample.metric.ends_with("_total"), "{}", sample.metric);
            }
            assert!(!sample.metric.contains("millis"), "{}", sample.metric);
        }
        sup.stop().await?;
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn actions_are_refused_unless_enabled() {
    trellis::nursery(|n| async move {
        let obs = observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
        let children = vec![ChildSpec::task("kept", trellis::wait_shutdown)];
        let sup =
            supervisor::start(&n, children, SupervisorOptions::new().name("read-only")).await?;
        let path = format!("/api/supervisor/{}/children/0/restart", sup.pid().id());
        let (status, _) = request(obs.local_addr(), "POST", &path, true).await;
        assert_eq!(status, 403);
        assert_eq!(sup.which_children()[0].restarts, 0);
        sup.stop().await?;
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_restart_action_streams_its_event_and_counts_in_the_tree() {
    trellis::nursery(|n| async move {
        let options = ObserverOptions::new("127.0.0.1:0".parse()?).actions(true);
        let obs = observer::start(&n, options).await?;
        let addr = obs.local_addr();
        let children = vec![ChildSpec::task("restartable", trellis::wait_shutdown)];
        let sup = supervisor::start(&n, children, SupervisorOptions::new().name("acting")).await?;

        // Open the stream first; its opening comment says it is live.
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: test\r\n\r\n")
            .await?;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("trellis observer events") {
            let read = stream.read(&mut buf).await?;
            assert!(read > 0, "stream closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..read]));
        }
        assert!(seen.contains("text/event-stream"), "{seen}");

        // Without the action header: refused.
        let path = format!("/api/supervisor/{}/children/0/restart", sup.pid().id());
        assert_eq!(request(addr, "POST", &path, false).await.0, 403);
        let (status, body) = request(addr, "POST", &path, true).await;
        assert_eq!(status, 200, "{body}");

        let event = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(line) = seen
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .map(json)
                    .find(|e| e["kind"] == "child_restarted" && e["supervisor"] == "acting")
                {
                    return line;
                }
                let read = stream.read(&mut buf).await.unwrap();
                assert!(read > 0, "stream closed: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..read]));
            }
        })
        .await?;
        assert_eq!(event["child"], "restartable");
        assert_eq!(event["restarts"], 1);
        assert_eq!(sup.which_children()[0].restarts, 1);

        let tree = json(&request(addr, "GET", "/api/tree", false).await.1);
        assert_eq!(
            find_supervisor(&tree, "acting")["children"][0]["restarts"],
            1
        );
        assert_eq!(
            find_supervisor(&tree, "acting")["children"][0]["last_exit"],
            "shutdown"
        );
        sup.stop().await?;
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

/// Echoes what it receives.
struct Echo(Option<trellis::protocol::Transport>);

impl trellis::protocol::Protocol for Echo {
    fn connection_made(&mut self, transport: trellis::protocol::Transport) {
        self.0 = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.0 {
            let _ = transport.write(data);
        }
    }
}

#[tokio::test]
async fn metrics_count_the_open_connections_of_protocol_servers() {
    trellis::nursery(|n| async move {
        let obs = observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
        let server = trellis::protocol::create_server(&n, || Echo(None), "127.0.0.1:0").await?;
        let addr = server.local_addrs()[0].as_inet().unwrap();
        let mut clients = Vec::new();
        for _ in 0..2 {
            let mut client = TcpStream::connect(addr).await?;
            // An echo back: the connection is being served.
            client.write_all(b"x").await?;
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await?;
            clients.push(client);
        }
        let (_, body) = request(obs.local_addr(), "GET", "/metrics", false).await;
        let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))?;
        let open = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "trellis_protocol_connections"
                    && s.labels.get("listen") == Some(addr.to_string().as_str())
            })
            .expect("the server's connections are exported");
        assert!(
            matches!(open.value, prometheus_parse::Value::Gauge(v) if v == 2.0),
            "{open:?}"
        );
        let tree = json(&request(obs.local_addr(), "GET", "/api/tree", false).await.1);
        assert!(
            tree["protocol_servers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["listen"] == addr.to_string() && s["connections"] == 2),
            "{tree}"
        );
        drop(clients);
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

/// Counts its calls; a call with `true` crashes it.
struct Tally(u64);

impl trellis::gen_server::GenServer for Tally {
    type Arg = ();
    type Call = bool;
    type Reply = u64;
    type Cast = ();
    type Info = ();

    async fn init(
        &mut self,
        (): (),
        _ctx: &mut trellis::gen_server::Context<Self>,
    ) -> Result<trellis::gen_server::Init, trellis::BoxError> {
        Ok(trellis::gen_server::Init::Ready)
    }

    async fn handle_call(
        &mut self,
        crash: bool,
        _ctx: &mut trellis::gen_server::Context<Self>,
    ) -> Result<trellis::gen_server::Response<u64>, trellis::BoxError> {
        if crash {
            return Err("tally crashed".into());
        }
        self.0 += 1;
        Ok(trellis::gen_server::Response::Reply(self.0))
    }
}

/// The value of the sample `metric` whose labels include `labels`.
fn sample(body: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{body}"));
    match found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[tokio::test]
async fn counters_of_a_restarted_named_server_and_supervisor_keep_growing() {
    use trellis::gen_server;
    trellis::nursery(|n| async move {
        let options = ObserverOptions::new("127.0.0.1:0".parse()?).actions(true);
        let obs = observer::start(&n, options).await?;
        let addr = obs.local_addr();
        let inner = ChildSpec::supervisor(
            "grow-inner",
            vec![ChildSpec::gen_server(
                "grow-tally",
                || Tally(0),
                (),
                "grow-tally",
            )],
            SupervisorOptions::new().name("grow-inner"),
        );
        let outer =
            supervisor::start(&n, vec![inner], SupervisorOptions::new().name("grow-outer")).await?;
        let call = |crash| gen_server::call::<Tally>("grow-tally", crash, Duration::from_secs(5));
        let messages = |body: &str| {
            sample(
                body,
                "trellis_gen_server_messages_total",
                &[("name", "grow-tally")],
            )
        };
        let restarts = |body: &str| {
            sample(
                body,
                "trellis_supervisor_restarts_total",
                &[("supervisor", "grow-inner")],
            )
        };
        for _ in 0..3 {
            call(false).await?;
        }
        let first = request(addr, "GET", "/metrics", false).await.1;
        assert_eq!((messages(&first), restarts(&first)), (3.0, 0.0));

        // The server crashes and its supervisor starts a new one (a new pid):
        // the counter goes on from the old one's count.
        let old = trellis::registry::whereis("grow-tally").unwrap();
        assert!(call(true).await.is_err());
        let new = loop {
            match trellis::registry::whereis("grow-tally") {
                Some(pid) if pid != old => break pid,
                _ => tokio::task::yield_now().await,
            }
        };
        assert_ne!(old, new);
        call(false).await?;
        let second = request(addr, "GET", "/metrics", false).await.1;
        assert_eq!(messages(&second), 5.0, "{second}");
        assert_eq!(restarts(&second), 1.0);
        assert_eq!(
            sample(
                &second,
                "trellis_supervisor_exits_total",
                &[("supervisor", "grow-inner"), ("reason", "error")]
            ),
            1.0
        );

        // The crash is the child's last exit (kept as the error it came
        // as while nobody streams events, made a reason when read).
        let tree = json(&request(addr, "GET", "/api/tree", false).await.1);
        let inner = &find_supervisor(&tree, "grow-outer")["children"][0]["supervisor"];
        let last = inner["children"][0]["last_exit"].as_str().unwrap();
        assert!(
            last.starts_with("error: ") && last.contains("tally crashed"),
            "{inner}"
        );

        // The inner supervisor itself is restarted: a new supervisor (and a
        // new server) whose own counts start at zero; the totals do not.
        // The first child's key is 0 (as in the tests above).
        let key = outer.which_children()[0]
            .key
            .to_string()
            .trim_start_matches('#')
            .to_owned();
        let (status, _) = request(
            addr,
            "POST",
            &format!(
                "/api/supervisor/{}/children/{key}/restart",
                outer.pid().id()
            ),
            true,
        )
        .await;
        assert_eq!(status, 200);
        call(false).await?;
        let third = request(addr, "GET", "/metrics", false).await.1;
        assert_eq!(messages(&third), 6.0, "{third}");
        assert_eq!(restarts(&third), 1.0, "{third}");
        assert_eq!(
            sample(
                &third,
                "trellis_supervisor_restarts_total",
                &[("supervisor", "grow-outer")]
            ),
            1.0,
            "the restart action counts as the outer supervisor's restart"
        );
        outer.stop().await?;
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}

/// The nursery named `name` anywhere below `nurseries`.
fn find_nursery<'a>(nurseries: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    nurseries.as_array()?.iter().find_map(|nursery| {
        if nursery["name"] == name {
            return Some(nursery);
        }
        find_nursery(&nursery["nurseries"], name).or_else(|| {
            nursery["tasks"]
                .as_array()?
                .iter()
                .find_map(|task| find_nursery(&task["nurseries"], name))
        })
    })
}

#[tokio::test(start_paused = true)]
async fn the_tree_lists_nurseries_with_their_tasks_states_and_ages() {
    use trellis::{NurseryOptions, SpawnOptions};
    let hour = Duration::from_secs(3600);
    trellis::nursery(|n| async move {
        // Running: nurseries and tasks note when they start.
        observer::start(&n, ObserverOptions::new("127.0.0.1:0".parse()?)).await?;
        trellis::nursery_with(
            NurseryOptions::new().name("api-outer"),
            |outer| async move {
                outer.spawn_with(
                    SpawnOptions::new().name("api-sleeper"),
                    tokio::time::sleep(hour),
                );
                outer.spawn_with(SpawnOptions::new().name("api-parent"), async move {
                    trellis::nursery_with(
                        NurseryOptions::new().name("api-inner"),
                        |inner| async move {
                            inner.spawn_with(
                                SpawnOptions::new().name("api-inner-task"),
                                tokio::time::sleep(hour),
                            );
                        },
                    )
                    .await
                });
                tokio::time::sleep(Duration::from_secs(5)).await;
                let tree = json(&observer::tree_json());
                let nurseries = &tree["nurseries"];
                let found =
                    find_nursery(nurseries, "api-outer").unwrap_or_else(|| panic!("{tree}"));
                assert_eq!(found["age_seconds"], 5.0, "{found}");
                assert_eq!(found["task_count"], 2, "{found}");
                assert_eq!(found["cancelled"], false);
                let tasks = found["tasks"].as_array().unwrap();
                let sleeper = tasks.iter().find(|t| t["name"] == "api-sleeper").unwrap();
                assert_eq!(
                    (&sleeper["state"], &sleeper["age_seconds"]),
                    (&"running".into(), &5.0.into())
                );
                // A nursery opened inside a task hangs under that task.
                let parent = tasks.iter().find(|t| t["name"] == "api-parent").unwrap();
                let inner = &parent["nurseries"][0];
                assert_eq!(inner["name"], "api-inner", "{parent}");
                assert_eq!(inner["tasks"][0]["name"], "api-inner-task");
                assert_eq!(inner["tasks"][0]["age_seconds"], 5.0);

                // Cancelled tasks say so until they end; ended ones are gone.
                outer.cancel();
                let tree = json(&observer::tree_json());
                let found = find_nursery(&tree["nurseries"], "api-outer").unwrap();
                let states: Vec<_> = found["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["state"].clone())
                    .collect();
                assert_eq!(states, ["cancelled", "cancelled"], "{found}");
            },
        )
        .await?;
        let tree = json(&observer::tree_json());
        assert!(
            find_nursery(&tree["nurseries"], "api-outer").is_none(),
            "{tree}"
        );
        n.cancel();
        Ok::<_, trellis::BoxError>(())
    })
    .await
    .unwrap();
}
