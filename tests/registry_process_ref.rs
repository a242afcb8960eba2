//! `registry::ProcessRef<H>`: one "name or pid or handle" type, accepted by
//! mailboxes (`ProcessRef<Address<M>>`) and gen_servers
//! (`ProcessRef<Server<S>>`) alike, resolved through the registry.

use std::sync::Arc;
use std::time::Duration;

use trellis::gen_server::{
    self, Builder, Context, GenServer, GenServerError, Init, Response, Server,
};
use trellis::mailbox::{self, Address};
use trellis::registry::{self, ProcessRef, RegistryError};
use trellis::{BoxError, nursery};

const LONG: Duration = Duration::from_secs(5);

struct Echo;

impl GenServer for Echo {
    type Arg = ();
    type Call = u32;
    type Reply = u32;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        n: u32,
        _: &mut Context<Self>,
    ) -> Result<Response<u32>, BoxError> {
        Ok(Response::Reply(n))
    }
}

#[tokio::test(start_paused = true)]
async fn call_accepts_every_kind_of_reference() {
    nursery(|n| async move {
        let echo = Builder::new(Echo).name("ref-echo").start(&n).await?;
        let name = String::from("ref-echo");
        let shared: Arc<str> = Arc::from("ref-echo");
        assert_eq!(gen_server::call(&echo, 1, LONG).await?, 1);
        assert_eq!(gen_server::call(echo.clone(), 2, LONG).await?, 2);
        assert_eq!(gen_server::call::<Echo>(echo.pid(), 3, LONG).await?, 3);
        assert_eq!(gen_server::call::<Echo>("ref-echo", 4, LONG).await?, 4);
        assert_eq!(gen_server::call::<Echo>(&name, 5, LONG).await?, 5);
        assert_eq!(gen_server::call::<Echo>(name, 6, LONG).await?, 6);
        assert_eq!(gen_server::call::<Echo>(shared, 7, LONG).await?, 7);
        echo.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_server_reference_resolves_to_its_handle_and_reports_lookup_errors() {
    nursery(|n| async move {
        let echo = Builder::new(Echo).name("ref-echo-2").start(&n).await?;
        let to: ProcessRef<Server<Echo>> = "ref-echo-2".into();
        assert_eq!(to.name(), Some("ref-echo-2"));
        assert_eq!(to.resolve()?, echo);
        // The gen_server also offers the address of its `handle_info`.
        let info: ProcessRef<Address<()>> = echo.pid().into();
        assert_eq!(info.resolve()?.pid(), echo.pid());
        // A mailbox is not a server.
        let inbox = mailbox::create::<u32>();
        let wrong: ProcessRef<Server<Echo>> = inbox.pid().into();
        assert!(matches!(
            wrong.resolve(),
            Err(RegistryError::WrongType { .. })
        ));
        let missing: ProcessRef<Server<Echo>> = "ref-nobody".into();
        assert_eq!(
            missing.resolve(),
            Err(RegistryError::NameNotFound {
                name: "ref-nobody".into()
            })
        );
        assert!(matches!(
            gen_server::call::<Echo>("ref-nobody", 1, LONG).await,
            Err(GenServerError::NameNotFound { .. })
        ));
        echo.stop().await?;
        assert_eq!(registry::whereis("ref-echo-2"), None);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
