//! The client-side rate limit: requests leave at evenly spaced instants.
//!
//! Each request takes the next free slot (`max(now, next)`) and moves
//! `next` one interval on, then sleeps until its slot. There is no burst:
//! at 10 per second, the 20th request of a rush leaves 1.9 s after the
//! first. The state is behind an `Arc`, so every clone of a client shares
//! one limit. Uses tokio's clock, so tests run it on paused time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Arc<Mutex<Option<Instant>>>,
}

impl RateLimiter {
    /// `per_second` of 0 is treated as 1.
    pub fn new(per_second: u32) -> RateLimiter {
        let interval = Duration::from_secs(1) / per_second.max(1);
        RateLimiter {
            interval,
            next: Arc::new(Mutex::new(None)),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |next| next.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly_across_clones() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..20 {
            let limiter = limiter.clone();
            handles.push(tokio::spawn(async move {
                limiter.acquire().await;
                Instant::now()
            }));
        }
        let mut offsets = Vec::new();
        for handle in handles {
            offsets.push(handle.await.unwrap().duration_since(start));
        }
        offsets.sort();
        let expected: Vec<Duration> = (0..20).map(|i| Duration::from_millis(100 * i)).collect();
        assert_eq!(offsets, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_does_not_save_up_a_burst() {
        let limiter = RateLimiter::new(10);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
}
