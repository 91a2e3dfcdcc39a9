//! Waiting for a condition with a deadline instead of a sleep: a check runs again and again
//! until it holds, and a test that times out says what it waited for and, where the check
//! can tell, what it saw last (a failure shows the state it was stuck in, not just
//! "timed out").
//!
//! One argument order everywhere: what is awaited first, so a call reads as a sentence
//! (`eventually("the backlog to drain", 180 s, ...)`), then the limit, then the check.
//!
//! ```no_run
//! # async fn demo(queue: gitfleet_queue::Queue) {
//! use std::time::Duration;
//! use gitfleet_testkit::eventually;
//!
//! let stats = eventually("the job to be done", Duration::from_secs(10), async || {
//!     let stats = queue.stats().await.map_err(|e| e.to_string())?;
//!     if stats.iter().any(|s| s.done == 1) { Ok(stats) } else { Err(format!("{stats:?}")) }
//! })
//! .await;
//! # }
//! ```

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a wait looks again, unless told otherwise.
pub const POLL: Duration = Duration::from_millis(50);

/// What a check returns: whether the condition holds yet, with the value to hand back, and
/// if not, what was seen instead.
///
/// - `bool`: holds when `true`.
/// - `Option<T>`: holds when `Some(value)`.
/// - `Result<T, E>`: holds when `Ok(value)`; the `Err` is what was seen, shown when the wait
///   times out. Errors reaching Redis or Postgres belong there too, so a test that restarts
///   a server waits through them.
pub trait Check {
    type Value;

    /// `Ok(value)` once the condition holds; otherwise `Err` with what was seen, if the
    /// check can say.
    fn settled(self) -> Result<Self::Value, Option<String>>;
}

impl Check for bool {
    type Value = ();

    fn settled(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Check for Option<T> {
    type Value = T;

    fn settled(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Check for Result<T, E> {
    type Value = T;

    fn settled(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Runs `check` every `every` until it holds, or `within` has passed; then returns what it
/// saw last, in the `Err` (`None` if the check says nothing). For tests that want to word
/// their own failure; most want [`eventually`].
pub async fn poll_until<C: Check>(
    within: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> Result<C::Value, Option<String>> {
    let deadline = Instant::now() + within;
    loop {
        match check().await.settled() {
            Ok(value) => return Ok(value),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Waits until `check` holds (every [`POLL`]) and returns its value; panics after `within`
/// with `what` and what the check saw last.
pub async fn eventually<C: Check>(
    what: impl Display,
    within: Duration,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    eventually_every(what, within, POLL, check).await
}

/// [`eventually`], looking every `every`: for conditions that hold only briefly, or waits
/// that must not load the server.
pub async fn eventually_every<C: Check>(
    what: impl Display,
    within: Duration,
    every: Duration,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    match poll_until(within, every, check).await {
        Ok(value) => value,
        Err(seen) => panic!("{}", timed_out(&what, within, seen)),
    }
}

/// [`eventually`] for synchronous tests, which have no runtime to wait on: the check is a
/// plain closure, and the wait a thread sleep.
pub fn eventually_blocking<C: Check>(
    what: impl Display,
    within: Duration,
    mut check: impl FnMut() -> C,
) -> C::Value {
    let deadline = Instant::now() + within;
    loop {
        match check().settled() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => panic!("{}", timed_out(&what, within, seen)),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn timed_out(what: &dyn Display, within: Duration, seen: Option<String>) -> String {
    match seen {
        Some(seen) => format!("timed out after {within:?} waiting for {what}; last seen: {seen}"),
        None => format!("timed out after {within:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_that_comes_true_hands_back_its_value() {
        let mut n = 0;
        let v = eventually("the third look", Duration::from_secs(5), async || {
            n += 1;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn a_plain_closure_returning_a_future_is_a_check_too() {
        let ready = std::sync::atomic::AtomicBool::new(true);
        eventually("the flag", Duration::from_secs(5), || async {
            ready.load(std::sync::atomic::Ordering::Relaxed)
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible; last seen: still 0")]
    async fn a_timed_out_wait_says_what_it_waited_for_and_what_it_saw_last() {
        eventually("the impossible", Duration::from_millis(120), async || {
            Err::<(), _>("still 0")
        })
        .await;
    }

    #[test]
    fn the_blocking_wait_returns_once_the_condition_holds() {
        let start = Instant::now();
        eventually_blocking("a tenth of a second", Duration::from_secs(5), || {
            start.elapsed() >= Duration::from_millis(100)
        });
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    #[should_panic(expected = "timed out after 100ms waiting for nothing")]
    fn the_blocking_wait_panics_after_its_limit() {
        eventually_blocking("nothing", Duration::from_millis(100), || None::<()>);
    }
}
