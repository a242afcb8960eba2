//! Gen_servers as supervised children: `terminate` runs when the supervisor
//! stops, and a registered name follows the child across restarts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis::BoxError;
use trellis::gen_server::{self, Context, GenServer, Init, Response};
use trellis::nursery;
use trellis::process::ExitReason;
use trellis::supervisor::{self, ChildSpec, SupervisorOptions};

type Log = Arc<Mutex<Vec<String>>>;

struct Counter {
    name: &'static str,
    log: Log,
    count: u64,
}

enum Request {
    Get,
    Crash,
}

impl GenServer for Counter {
    type Arg = u64;
    type Call = Request;
    type Reply = u64;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, start: u64, _: &mut Context<Self>) -> Result<Init, BoxError> {
        self.count = start;
        self.log.lock().unwrap().push(format!("init {}", self.name));
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        request: Request,
        _: &mut Context<Self>,
    ) -> Result<Response<u64>, BoxError> {
        match request {
            Request::Get => {
                self.count += 1;
                Ok(Response::Reply(self.count))
            }
            Request::Crash => panic!("asked to crash"),
        }
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_millis(10)).await; // async cleanup
        self.log
            .lock()
            .unwrap()
            .push(format!("terminate {} {reason}", self.name));
    }
}

fn counter(name: &'static str, log: &Log) -> ChildSpec {
    let log = log.clone();
    ChildSpec::gen_server(
        name,
        move || Counter {
            name,
            log: log.clone(),
            count: 0,
        },
        100,
        name,
    )
}

#[tokio::test(start_paused = true)]
async fn gen_server_terminate_runs_when_the_supervisor_stops() {
    let log: Log = Arc::default();
    let children = vec![counter("sgs-first", &log), counter("sgs-second", &log)];
    nursery(|n| async move {
        let sup = n
            .start(|status| supervisor::serve(children, SupervisorOptions::new(), status))
            .await?;
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "init sgs-first",
            "init sgs-second",
            "terminate sgs-second shutdown",
            "terminate sgs-first shutdown",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_name_follows_the_child_across_restarts() {
    let log: Log = Arc::default();
    let children = vec![counter("sgs-named", &log)];
    let timeout = Duration::from_secs(1);
    nursery(|n| async move {
        let sup = n
            .start(|status| supervisor::serve(children, SupervisorOptions::new(), status))
            .await?;
        let first = gen_server::call::<Counter>("sgs-named", Request::Get, timeout).await?;
        assert_eq!(first, 101);
        let crashed = gen_server::call::<Counter>("sgs-named", Request::Crash, timeout).await;
        assert!(crashed.is_err());
        // The supervisor restarts it; wait until the new incarnation is up.
        let mut again = gen_server::call::<Counter>("sgs-named", Request::Get, timeout).await;
        while again.is_err() {
            tokio::task::yield_now().await;
            again = gen_server::call::<Counter>("sgs-named", Request::Get, timeout).await;
        }
        assert_eq!(again?, 101); // fresh state: a new incarnation answered
        assert_eq!(sup.which_children()[0].restarts, 1);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    let log = log.lock().unwrap();
    assert!(log[1].starts_with("terminate sgs-named panic"), "{log:?}");
}
