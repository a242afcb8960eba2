//! [`azip`] and [`azip_longest`]: walk several streams in lockstep, polling
//! them concurrently.
//!
//! `StreamExt::zip` from `futures` pairs two streams of different types;
//! these take any number of streams of one item type (box or map them to one
//! type first) and wait for all of them at once, so a round takes as long as
//! the slowest stream, not the sum.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

/// Zips streams: yields one `Vec` with an item of each stream, in order,
/// and ends as soon as any stream ends (trio-util's `azip`).
///
/// In each round every stream that has not produced its item yet is polled,
/// concurrently; the round is yielded when all have. Items a round got from
/// other streams when one ends are dropped. With no streams, the zip ends at
/// once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::{stream, StreamExt as _};
/// use trellis::util::azip;
///
/// let rounds: Vec<_> = azip([stream::iter(1..=3), stream::iter(10..=11)]).collect().await;
/// assert_eq!(rounds, [vec![1, 10], vec![2, 11]]);
/// # }
/// ```
///
/// # Cancel safety
///
/// `next()` is cancel safe: items already received for a round stay in the
/// zip.
pub fn azip<I>(streams: I) -> Azip<I::Item>
where
    I: IntoIterator,
    I::Item: Stream,
{
    Azip {
        lanes: Lanes::new(streams),
    }
}

/// Zips streams until every one has ended, filling the ended ones with `None`
/// (trio-util's `azip_longest`, whose `fillvalue` is `None` here).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::{stream, StreamExt as _};
/// use trellis::util::azip_longest;
///
/// let rounds: Vec<_> = azip_longest([stream::iter(1..=2), stream::iter(10..=10)]).collect().await;
/// assert_eq!(rounds, [vec![Some(1), Some(10)], vec![Some(2), None]]);
/// # }
/// ```
///
/// # Cancel safety
///
/// As [`azip`].
pub fn azip_longest<I>(streams: I) -> AzipLongest<I::Item>
where
    I: IntoIterator,
    I::Item: Stream,
{
    AzipLongest {
        lanes: Lanes::new(streams),
    }
}

struct Lane<S: Stream> {
    stream: Pin<Box<S>>,
    item: Option<S::Item>,
    ended: bool,
}

struct Lanes<S: Stream> {
    lanes: Vec<Lane<S>>,
}

impl<S: Stream> Lanes<S> {
    fn new(streams: impl IntoIterator<Item = S>) -> Self {
        Lanes {
            lanes: streams
                .into_iter()
                .map(|s| Lane {
                    stream: Box::pin(s),
                    item: None,
                    ended: false,
                })
                .collect(),
        }
    }

    /// Polls every lane still missing its item. Returns whether every lane
    /// now has an item or has ended.
    fn fill(&mut self, cx: &mut Context<'_>) -> bool {
        let mut complete = true;
        for lane in &mut self.lanes {
            if lane.item.is_some() || lane.ended {
                continue;
            }
            match lane.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => lane.item = Some(item),
                Poll::Ready(None) => lane.ended = true,
                Poll::Pending => complete = false,
            }
        }
        complete
    }
}

/// The stream returned by [`azip`].
#[must_use = "streams do nothing unless polled"]
pub struct Azip<S: Stream> {
    lanes: Lanes<S>,
}

impl<S: Stream> fmt::Debug for Azip<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Azip")
            .field("streams", &self.lanes.lanes.len())
            .finish()
    }
}

impl<S: Stream> Unpin for Azip<S> {}

impl<S: Stream> Stream for Azip<S> {
    type Item = Vec<S::Item>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let lanes = &mut self.lanes;
        let complete = lanes.fill(cx);
        if lanes.lanes.is_empty() || lanes.lanes.iter().any(|l| l.ended) {
            lanes.lanes.clear(); // ended: drop the streams and partial items
            return Poll::Ready(None);
        }
        if !complete {
            return Poll::Pending;
        }
        Poll::Ready(Some(
            lanes
                .lanes
                .iter_mut()
                .filter_map(|l| l.item.take())
                .collect(),
        ))
    }
}

/// The stream returned by [`azip_longest`].
#[must_use = "streams do nothing unless polled"]
pub struct AzipLongest<S: Stream> {
    lanes: Lanes<S>,
}

impl<S: Stream> fmt::Debug for AzipLongest<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzipLongest")
            .field("streams", &self.lanes.lanes.len())
            .finish()
    }
}

impl<S: Stream> Unpin for AzipLongest<S> {}

impl<S: Stream> Stream for AzipLongest<S> {
    type Item = Vec<Option<S::Item>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let lanes = &mut self.lanes;
        if !lanes.fill(cx) {
            return Poll::Pending;
        }
        if lanes.lanes.iter().all(|l| l.item.is_none()) {
            return Poll::Ready(None); // every stream has ended
        }
        Poll::Ready(Some(
            lanes.lanes.iter_mut().map(|l| l.item.take()).collect(),
        ))
    }
}
