//! `AsyncDictionary`: waiting reads, pops and the plain map operations.

use futures_util::FutureExt as _;
use trellis::testing::assert_checkpoint;
use trellis::util::AsyncDictionary;

#[tokio::test]
async fn get_wait_then_insert_returns_the_value_and_leaves_it() {
    let d = AsyncDictionary::new();
    let reader = tokio::spawn({
        let d = d.clone();
        async move { d.get_wait("k").await }
    });
    tokio::task::yield_now().await;
    assert!(d.is_waiting("k"));
    assert!(!d.is_waiting("other"));
    d.insert("other".to_string(), 0);
    d.insert("k".to_string(), 42);
    assert_eq!(reader.await.unwrap(), 42);
    assert!(!d.is_waiting("k"));
    assert_eq!(d.len(), 2);
    assert!(d.contains_key("k"));
}

#[tokio::test(start_paused = true)]
async fn get_wait_and_pop_wait_of_a_present_key_yield_once_then_return_it() {
    let d = AsyncDictionary::new();
    d.insert(1, "one");
    assert_eq!(assert_checkpoint(d.get_wait(&1)).await, "one");
    assert_eq!(d.len(), 1);
    assert_eq!(assert_checkpoint(d.pop_wait(&1)).await, "one");
    assert!(d.is_empty());
}

#[tokio::test(start_paused = true)]
async fn pop_wait_dropped_at_its_checkpoint_leaves_the_value() {
    let d = AsyncDictionary::new();
    d.insert(1, "one");
    assert!(d.pop_wait(&1).now_or_never().is_none()); // dropped after the yield
    assert_eq!(d.remove(&1), Some("one"));
    assert!(!d.is_waiting(&1));
}

#[tokio::test]
async fn pop_wait_removes_and_each_insertion_goes_to_one_popper() {
    let d = AsyncDictionary::<u8, u32>::new();
    let mut poppers = vec![Box::pin(d.pop_wait(&1)), Box::pin(d.pop_wait(&1))];
    for p in &mut poppers {
        assert!(p.now_or_never().is_none());
    }
    for value in [10, 20] {
        d.insert(1, value);
        let mut got = Vec::new();
        poppers.retain_mut(|p| match p.now_or_never() {
            Some(v) => {
                got.push(v);
                false
            }
            None => true,
        });
        assert_eq!(got, [value]);
        assert!(d.is_empty());
    }
    assert!(poppers.is_empty());
    assert!(!d.is_waiting(&1));
}

#[tokio::test]
async fn a_dropped_waiter_stops_counting_as_waiting() {
    let d = AsyncDictionary::<String, u8>::new();
    let mut waiter = Box::pin(d.get_wait("x"));
    assert!((&mut waiter).now_or_never().is_none());
    assert!(d.is_waiting("x"));
    drop(waiter);
    assert!(!d.is_waiting("x"));
}

#[tokio::test]
async fn plain_map_operations_never_wait() {
    let d = AsyncDictionary::new();
    assert_eq!(d.insert("a", 1), None);
    assert_eq!(d.insert("a", 2), Some(1));
    assert_eq!(d.keys(), ["a"]);
    assert_eq!(d.remove("a"), Some(2));
    assert_eq!(d.remove("a"), None);
    d.insert("b", 3);
    d.clear();
    assert!(d.is_empty());
}
