//! Failures are logged at `ERROR` with the fields log pipelines filter on —
//! `supervisor`, `child`, `pid`, `reason` — and normal exits at `INFO`:
//! a child that crashes, its restart, a temporary child that fails, a child
//! killed after its shutdown time.
//!
//! One test in this file on purpose: `tracing` caches per call site whether
//! anyone is interested, process-wide (see `supervisor_logging.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Level;
use trellis::TaskStatus;
use trellis::mailbox;
use trellis::process::Pid;
use trellis::supervisor::{self, ChildSpec, Restart, Shutdown, SupervisorOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One event: its level and every field, as text.
#[derive(Clone, Debug)]
struct Event {
    level: Level,
    fields: HashMap<String, String>,
}

impl Event {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

struct Recorder(Arc<Mutex<Vec<Event>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(HashMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
        }
        let mut fields = Fields(HashMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Event {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
}

#[tokio::test(start_paused = true)]
async fn failures_are_error_events_with_supervisor_child_pid_and_reason() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Recorder(events.clone()));
    let _default = tracing::subscriber::set_default(subscriber);

    // Fails once, right after starting as a process (a mailbox); then runs.
    let runs = Arc::new(AtomicU32::new(0));
    let first_pid: Arc<Mutex<Option<Pid>>> = Arc::default();
    let crasher = {
        let (runs, first_pid) = (runs.clone(), first_pid.clone());
        ChildSpec::new("crasher", move |status: TaskStatus<Pid>| {
            let (runs, first_pid) = (runs.clone(), first_pid.clone());
            async move {
                let inbox = mailbox::create::<()>();
                status.started(inbox.pid());
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    *first_pid.lock().unwrap() = Some(inbox.pid());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Err::<(), BoxError>("boom".into());
                }
                trellis::wait_shutdown().await;
                Ok(())
            }
        })
    };
    let temp = ChildSpec::task("temp", || async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err::<(), _>("temp boom")
    })
    .restart(Restart::Temporary);
    let done = ChildSpec::task("done", || async {}).restart(Restart::Transient);
    let deaf = ChildSpec::task("deaf", std::future::pending::<()>)
        .shutdown(Shutdown::Timeout(Duration::from_secs(1)));

    trellis::nursery(|n| async move {
        let options = SupervisorOptions::new().name("crash-logs");
        let sup = n
            .start(|s| supervisor::serve(vec![crasher, temp, done, deaf], options, s))
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();

    let events = events.lock().unwrap().clone();
    let find = |message: &str, child: &str| -> Event {
        events
            .iter()
            .find(|e| e.field("message") == message && e.field("child") == child)
            .unwrap_or_else(|| panic!("no {message:?} event for {child}: {events:#?}"))
            .clone()
    };
    let first_pid = first_pid.lock().unwrap().unwrap().to_string();

    let crash = find("child terminated abnormally", "crasher");
    assert_eq!(crash.level, Level::ERROR);
    assert_eq!(crash.field("supervisor"), "crash-logs");
    assert_eq!(crash.field("pid"), first_pid);
    assert_eq!(crash.field("reason"), "error: boom");

    let restart = find("child restarted after an abnormal exit", "crasher");
    assert_eq!(restart.level, Level::ERROR);
    assert_eq!(restart.field("supervisor"), "crash-logs");
    assert!(restart.field("pid").starts_with("<0."));
    assert_ne!(restart.field("pid"), first_pid, "the new incarnation's pid");

    let temp = find("child terminated abnormally", "temp");
    assert_eq!(temp.level, Level::ERROR);
    assert_eq!(temp.field("reason"), "error: temp boom");
    assert_eq!(
        temp.field("pid"),
        "undefined",
        "a plain task is not a process"
    );

    let killed = find(
        "child did not stop within its shutdown time; killed",
        "deaf",
    );
    assert_eq!(killed.level, Level::ERROR);
    assert_eq!(killed.field("reason"), "killed");

    let normal = find("child exited", "done");
    assert_eq!(normal.level, Level::INFO);
    assert_eq!(normal.field("reason"), "normal");
    assert!(
        events
            .iter()
            .filter(|e| e.field("child") == "done")
            // `tracing` orders levels by verbosity: INFO and below are >= INFO.
            .all(|e| e.level >= Level::INFO),
        "a normal exit is never logged above INFO"
    );
}
