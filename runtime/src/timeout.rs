//! Time limits: an attempt's body runs until its `until` (its timeout cut short by the call's
//! deadline). What stops the server's work when the client gives up is the runner's business
//! (`op::run`); this module only decides when to give up.

use std::future::Future;
use std::task::Poll;

use tokio::time::Instant;

/// Runs `fut` until `until` (forever with `None`); `None` when the time ran out first.
///
/// The future is polled once before a timer is armed: a body that is ready at once (a cached
/// answer, a value already at hand) costs no timer, which is most of what a timeout costs on
/// such a call (tokio's timer entry). A body that is pending arms the timer and is polled again
/// under it, as `tokio::time::timeout_at` would; futures tolerate the extra poll.
pub async fn within<F: Future>(until: Option<Instant>, fut: F) -> Option<F::Output> {
    let Some(at) = until else {
        return Some(fut.await);
    };
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    if let Poll::Ready(out) = first {
        return Some(out);
    }
    tokio::time::timeout_at(at, fut).await.ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_needs_no_time_and_a_slow_one_is_cut_off() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(within(Some(past), std::future::ready(7)).await, Some(7));
        let slow = tokio::time::sleep(Duration::from_secs(10));
        let at = Instant::now() + Duration::from_millis(100);
        assert_eq!(within(Some(at), slow).await, None);
        assert_eq!(Instant::now(), at, "given up exactly at its limit");
        let quick = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            1
        };
        assert_eq!(
            within(Some(Instant::now() + Duration::from_secs(1)), quick).await,
            Some(1)
        );
        assert_eq!(within(None, std::future::ready(2)).await, Some(2));
    }
}
