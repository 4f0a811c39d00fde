//! The upload limit shared by every parallel copy.

use super::*;

/// An upload limit shared by every parallel copy: a clock of when the line is free again.
/// Each upload takes the next slot of its size at the limit's rate, starts when its slot
/// starts and holds its worker until the slot ends, so the copies together move `limit`
/// bytes per second (at most one object early at the start).
pub(super) struct Pace {
    bytes_per_sec: f64,
    free_at: Mutex<Option<Instant>>,
}

impl Pace {
    pub(super) fn new(limit: u64) -> Self {
        Pace {
            bytes_per_sec: limit.max(1) as f64,
            free_at: Mutex::new(None),
        }
    }

    /// Reserves the line for `n` bytes; returns when the reservation starts and ends.
    pub(super) fn reserve(&self, n: u64) -> (Instant, Instant) {
        let now = Instant::now();
        let mut free = self.free_at.lock().expect("lock");
        let start = free.map_or(now, |f| f.max(now));
        let end = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
        *free = Some(end);
        (start, end)
    }
}

pub(super) fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}
