//! Drives `examples/kvstore_basic.rs` through its client API.

#[path = "../examples/kvstore_basic.rs"]
#[allow(unreachable_pub)]
mod kvstore_basic;

use trellis::gen_server::{self, GenServerError};
use trellis::{NurseryError, nursery};

#[tokio::test]
async fn the_basic_kvstore_gets_sets_and_stops() {
    nursery(|n| async move {
        gen_server::Builder::new(kvstore_basic::KvStore::default())
            .options(kvstore_basic::NAME)
            .start(&n)
            .await
            .unwrap();
        assert_eq!(kvstore_basic::get("foo").await.unwrap(), None);
        assert_eq!(kvstore_basic::set("foo", "bar").await.unwrap(), None);
        assert_eq!(
            kvstore_basic::set("foo", "baz").await.unwrap(),
            Some("bar".into())
        );
        assert_eq!(kvstore_basic::get("foo").await.unwrap(), Some("baz".into()));
        kvstore_basic::print_state().await.unwrap();
        kvstore_basic::stop().await.unwrap();
        // Stopped: the name is gone, and calls say so.
        let error = kvstore_basic::get("foo").await.unwrap_err();
        assert!(
            matches!(error, GenServerError::NameNotFound { .. }),
            "{error:?}"
        );
        Ok::<_, NurseryError>(())
    })
    .await
    .unwrap();
}
