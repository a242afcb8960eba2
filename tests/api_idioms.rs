//! Every documented nursery idiom compiles where users put it: inside
//! `tokio::spawn`, inside a nursery task (`Nursery::spawn` and
//! `Nursery::start`) and inside a gen_server handler. The failure this pins
//! was rustc's higher-ranked `Send` check rejecting a nursery body whose
//! output is `Result<_, BoxError>` ("implementation of `From` is not general
//! enough") as soon as the nursery's future was held in a spawned task.

use std::io;
use std::time::Duration;

use trellis::gen_server::{self, Context, GenServer, Init, Response};
use trellis::{BoxError, NurseryError, TaskStatus, fail_after, nursery};

async fn load() -> Result<u32, io::Error> {
    Ok(7)
}

/// The README's idiom: a body returning `Result<_, BoxError>`, with `?`.
async fn box_error_with_question_mark() -> Result<u32, BoxError> {
    let total = nursery(|n| async move {
        let loaded = n.spawn(async {
            let v = fail_after(Duration::from_secs(2), load()).await??;
            Ok::<_, BoxError>(v + 1)
        });
        let value = loaded.await?;
        Ok::<_, BoxError>(value)
    })
    .await?;
    Ok(total)
}

/// A body returning `Result<_, BoxError>` without `?`.
async fn box_error_without_question_mark() -> Result<(), BoxError> {
    nursery(|n| async move {
        n.spawn(async { Ok::<_, BoxError>(()) });
        Ok::<_, BoxError>(())
    })
    .await?;
    Ok(())
}

/// A body returning `Result<_, io::Error>`, with `?`.
async fn io_error_with_question_mark() -> Result<u32, BoxError> {
    let value = nursery(|n| async move {
        n.spawn(async { load().await.map(drop) });
        let v = load().await?;
        Ok::<_, io::Error>(v)
    })
    .await?;
    Ok(value)
}

/// A body returning `()`: no type annotation at all.
async fn unit_body() -> Result<(), NurseryError> {
    nursery(|n| async move {
        n.spawn(async {});
        n.spawn(async { Err::<(), _>("boom") });
    })
    .await
}

mod readme {
    //! The README's first snippet, as it stands there.
    use std::time::Duration;
    use trellis::{BoxError, NurseryError, SpawnOptions, fail_after, nursery};

    async fn load_users() -> Result<Vec<String>, std::io::Error> {
        Ok(vec![])
    }
    async fn load_orders() {}

    pub(super) async fn fetch_both() -> Result<(), NurseryError> {
        nursery(|n| async move {
            n.spawn_with(SpawnOptions::new().name("users"), async {
                // A deadline that composes with every scope around it:
                let users = fail_after(Duration::from_secs(2), load_users()).await??;
                println!("{} users", users.len());
                Ok::<_, BoxError>(())
            });
            n.spawn_with(SpawnOptions::new().name("orders"), load_orders());
        })
        .await
    }
}

mod readme_otp {
    //! The README's gen_server snippet, as it stands there.
    use trellis::gen_server::{self, Context, GenServer, Init, Response};
    use trellis::{BoxError, nursery};

    struct Counter(u64);

    impl GenServer for Counter {
        type Arg = ();
        type Call = u64;
        type Reply = u64;
        type Cast = ();
        type Info = ();

        async fn init(&mut self, _: (), _: &mut Context<Self>) -> Result<Init, BoxError> {
            Ok(Init::Ready)
        }

        async fn handle_call(
            &mut self,
            add: u64,
            _: &mut Context<Self>,
        ) -> Result<Response<u64>, BoxError> {
            self.0 = self.0.checked_add(add).ok_or("counter overflow")?; // a crash, as a value
            Ok(Response::Reply(self.0))
        }
    }

    pub(super) async fn count() -> Result<u64, BoxError> {
        let total = nursery(|n| async move {
            let counter = gen_server::start(&n, Counter(0)).await?;
            let total = counter.call(2, gen_server::DEFAULT_TIMEOUT).await?;
            counter.stop().await?;
            Ok::<_, BoxError>(total)
        })
        .await?;
        Ok(total)
    }
}

#[tokio::test]
async fn the_readme_gen_server_snippet_runs_inside_tokio_spawn() {
    assert_eq!(tokio::spawn(readme_otp::count()).await.unwrap().unwrap(), 2);
}

async fn every_idiom() -> u32 {
    readme::fetch_both().await.unwrap();
    let a = box_error_with_question_mark().await.unwrap();
    box_error_without_question_mark().await.unwrap();
    let b = io_error_with_question_mark().await.unwrap();
    assert!(unit_body().await.is_err());
    a + b
}

#[tokio::test]
async fn idioms_compile_and_run_inside_tokio_spawn() {
    assert_eq!(tokio::spawn(every_idiom()).await.unwrap(), 15);
}

#[tokio::test]
async fn idioms_compile_and_run_inside_nursery_tasks() {
    let value = nursery(|n| async move {
        let spawned = n.spawn(async { Ok::<_, BoxError>(every_idiom().await) });
        let started = n
            .start(|status: TaskStatus<u32>| async move {
                status.started(every_idiom().await);
            })
            .await?;
        Ok::<_, BoxError>(spawned.await? + started)
    })
    .await
    .unwrap();
    assert_eq!(value, 30);
}

struct Idioms;

impl GenServer for Idioms {
    type Arg = ();
    type Call = ();
    type Reply = u32;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, _: (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        _: (),
        _: &mut Context<Self>,
    ) -> Result<Response<u32>, BoxError> {
        Ok(Response::Reply(every_idiom().await))
    }
}

#[tokio::test]
async fn idioms_compile_and_run_inside_a_gen_server_handler() {
    let reply = nursery(|n| async move {
        let server = gen_server::start(&n, Idioms).await?;
        let reply = server.call((), Duration::from_secs(5)).await?;
        server.stop().await?;
        Ok::<_, BoxError>(reply)
    })
    .await
    .unwrap();
    assert_eq!(reply, 15);
}

mod otp_idioms {
    //! The second-wave OTP idioms as users write them: a gen_statem
    //! started, cast to and called, and a process joining a pg group.
    use trellis::gen_statem::{self, Context, Event, GenStatem, Init, Transition};
    use trellis::{BoxError, mailbox, nursery, pg};

    #[derive(Clone, Debug, PartialEq)]
    pub(super) enum Light {
        Off,
        On,
    }

    struct Switch;

    impl GenStatem for Switch {
        type Arg = ();
        type State = Light;
        type Data = u32;
        type Call = ();
        type Reply = (Light, u32);
        type Cast = ();
        type Info = ();
        type Internal = ();

        async fn init(
            &mut self,
            (): (),
            _: &mut Context<'_, Self>,
        ) -> Result<Init<Light, u32>, BoxError> {
            Ok(Init::Ready(Light::Off, 0))
        }

        async fn handle_event(
            &mut self,
            event: Event<Self>,
            state: &Light,
            flips: &mut u32,
            ctx: &mut Context<'_, Self>,
        ) -> Result<Transition<Light>, BoxError> {
            Ok(match (state, event) {
                (_, Event::Call((), from)) => {
                    ctx.reply(from, (state.clone(), *flips));
                    Transition::Keep
                }
                (Light::Off, Event::Cast(())) => {
                    *flips += 1;
                    Transition::Next(Light::On)
                }
                (Light::On, Event::Cast(())) => {
                    *flips += 1;
                    Transition::Next(Light::Off)
                }
                _ => Transition::Keep,
            })
        }
    }

    /// Flips a switch once and asks it; joins a group and counts it.
    pub(super) async fn run() -> Result<((Light, u32), usize), BoxError> {
        let outcome = nursery(|n| async move {
            let switch = gen_statem::start(&n, Switch).await?;
            switch.cast(()).await?;
            let answer = switch.call((), gen_statem::DEFAULT_TIMEOUT).await?;
            switch.stop().await?;

            let member = mailbox::create::<u32>();
            let group = format!("idioms-{}", member.pid());
            pg::join(&group, member.pid())?;
            let members = pg::get_members(&group).len();
            drop(member);
            Ok::<_, BoxError>((answer, members))
        })
        .await?;
        Ok(outcome)
    }
}

#[tokio::test]
async fn otp_idioms_run_inside_tokio_spawn_a_nursery_task_and_a_handler() {
    let expected = ((otp_idioms::Light::On, 1), 1);
    assert_eq!(
        tokio::spawn(otp_idioms::run()).await.unwrap().unwrap(),
        expected
    );
    let in_task = nursery(|n| async move { n.spawn(otp_idioms::run()).await })
        .await
        .unwrap();
    assert_eq!(in_task, expected);
    let in_handler = nursery(|n| async move {
        let server = gen_server::start(&n, OtpIdioms).await?;
        let reply = server.call((), Duration::from_secs(5)).await?;
        server.stop().await?;
        Ok::<_, BoxError>(reply)
    })
    .await
    .unwrap();
    assert_eq!(in_handler, expected);
}

struct OtpIdioms;

impl GenServer for OtpIdioms {
    type Arg = ();
    type Call = ();
    type Reply = ((otp_idioms::Light, u32), usize);
    type Cast = ();
    type Info = ();

    async fn init(&mut self, _: (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        _: (),
        _: &mut Context<Self>,
    ) -> Result<Response<Self::Reply>, BoxError> {
        Ok(Response::Reply(otp_idioms::run().await?))
    }
}
