//! Supervisor logging levels: children of a dynamic supervisor (one per
//! connection, per job) start, exit and stop at `DEBUG`; a static
//! supervisor's children at `INFO`.
//!
//! This file holds a single test on purpose: `tracing` caches per call site
//! whether anyone is interested in an event, process-wide, so a test that
//! installs a thread-local subscriber must not share its process with other
//! tests hitting the same call sites from other threads.

use std::sync::{Arc, Mutex};

use trellis::TaskStatus;
use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
use trellis::supervisor::{self, ChildSpec};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A child that reports `value` and waits to be stopped.
fn job(id: &'static str, value: u32) -> ChildSpec {
    ChildSpec::new(id, move |status: TaskStatus<u32>| async move {
        status.started(value);
        trellis::wait_shutdown().await;
    })
}

/// Records `(level, message)` of every event.
struct Recorder(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message.0));
    }
}

#[tokio::test(start_paused = true)]
async fn children_of_a_dynamic_supervisor_log_their_comings_and_goings_at_debug() {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt as _;

    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Recorder(events.clone()));
    // The test runtime is single-threaded: every task logs to this thread's
    // default subscriber.
    let _default = tracing::subscriber::set_default(subscriber);
    trellis::nursery(|n| async move {
        let dynamic = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("names-logs"),
                    status,
                )
            })
            .await?;
        let child = dynamic_supervisor::start_child("names-logs", job("a", 1)).await?;
        dynamic_supervisor::terminate_child("names-logs", child.id).await?;
        let once = ChildSpec::task("once", || async {}).restart(supervisor::Restart::Temporary);
        dynamic_supervisor::start_child("names-logs", once).await?;
        dynamic.stop().await?;
        let static_sup = n
            .start(|status| {
                supervisor::serve(
                    vec![ChildSpec::task("w", trellis::wait_shutdown)],
                    supervisor::SupervisorOptions::new().name("names-logs-static"),
                    status,
                )
            })
            .await?;
        static_sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    let events = events.lock().unwrap().clone();
    let levels = |message: &str| -> Vec<Level> {
        events
            .iter()
            .filter(|(_, m)| m == message)
            .map(|(l, _)| *l)
            .collect()
    };
    // Dynamic: a, once; then static: w.
    assert_eq!(
        levels("child started"),
        [Level::DEBUG, Level::DEBUG, Level::INFO]
    );
    assert_eq!(levels("child stopped"), [Level::DEBUG, Level::INFO]);
    assert_eq!(levels("child exited"), [Level::DEBUG]);
}
