//! Nearest free times: what a refusal for want of a line offers instead (API.md v1.1).
//!
//! Up to [`SUGGESTIONS`] slots as long as the one refused, on the 15-minute grid, none starting
//! before `now` nor after the booking horizon, each free on some active line as the pool stands
//! — nearest to the requested start first, before or after it (on a tie, the earlier one).
//!
//! The grid points are tried outward from the requested start with the free-line index
//! ([`LinePool::first_free_line`]: a few bitset look-ups each); a point whose slot reaches a
//! bucket busy on every active line throughout rules out its neighbours too, and the search
//! jumps past that bucket. So the cost is the number of looks between the request and the
//! nearest free times — at most [`MAX_TRIED`]; a pool without an active line answers at once.

use chrono::{DateTime, TimeZone, Utc};

use crate::free_lines::{bucket_start, set};
use crate::pool::LinePool;
use crate::types::{ConferenceId, LineStatus, TimeSlot};

/// How many free times a refusal suggests.
pub const SUGGESTIONS: usize = 3;
/// The grid suggestions start on, in seconds.
const GRID: i64 = 900;
/// Looks at most (a grid point tried, or a jump past a busy bucket): two weeks of grid points
/// either way. A stretch busy on every active line for longer than that answers with what was
/// found within it: a refusal's cost stays bounded whatever the pool and the request.
const MAX_TRIED: usize = 2 * 14 * 96;

fn at(seconds: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds, 0).single()
}

fn floor_grid(seconds: i64) -> i64 {
    seconds.div_euclid(GRID) * GRID
}

fn ceil_grid(seconds: i64) -> i64 {
    floor_grid(seconds + GRID - 1)
}

impl LinePool {
    /// The nearest free times for a slot as long as `slot`, around its start (see the module).
    /// `ignoring`: the conference being edited (its own booking does not count). `now` and
    /// `latest` bound the starts.
    pub fn suggestions(
        &self,
        slot: &TimeSlot,
        ignoring: Option<ConferenceId>,
        now: DateTime<Utc>,
        latest: DateTime<Utc>,
    ) -> Vec<TimeSlot> {
        let mut found = Vec::new();
        if !self
            .lines
            .iter()
            .any(|line| line.status == LineStatus::Active)
        {
            return found;
        }
        let length = (slot.end - slot.start).num_seconds().max(1);
        let requested = slot.start.timestamp();
        let earliest = ceil_grid(now.timestamp());
        // The whole slot within the horizon, as a booking must be.
        let latest = floor_grid(latest.timestamp() - length);
        // Outward from the requested start over the grid, nearest first; only starts between
        // `now` and the horizon (a request outside them is answered from the nearer bound in).
        let (mut before, mut after) = (floor_grid(requested), ceil_grid(requested));
        if before == after {
            before -= GRID;
        }
        after = after.max(earliest);
        before = before.min(latest);
        // The active lines, when no booking is to be ignored: a bucket in which all of them are
        // busy throughout rules out every start whose slot reaches it, so the search jumps past
        // it (a stretch busy on every line costs a look per bucket, not per grid point times
        // the buckets a slot spans). With a booking ignored its line's bits may be its own:
        // every point is tried.
        let active: Option<Vec<u64>> = ignoring.is_none().then(|| {
            let mut bits = Vec::new();
            for (position, line) in self.lines.iter().enumerate() {
                if line.status == LineStatus::Active {
                    set(&mut bits, position, true);
                }
            }
            bits
        });
        let mut tried = 0;
        while found.len() < SUGGESTIONS && tried < MAX_TRIED {
            tried += 1;
            let before_ok = before >= earliest;
            let after_ok = after <= latest;
            if !before_ok && !after_ok {
                break;
            }
            let take_before = before_ok && (!after_ok || requested - before <= after - requested);
            let start = if take_before {
                before -= GRID;
                before + GRID
            } else {
                after += GRID;
                after - GRID
            };
            let Some(candidate) = at(start)
                .zip(at(start + length))
                .map(|(start, end)| TimeSlot { start, end })
            else {
                continue;
            };
            if let Some((first, last)) = active
                .as_deref()
                .and_then(|lines| self.index.full_buckets(&candidate, lines))
            {
                if take_before {
                    // Every earlier start whose slot still reaches the first full bucket fails.
                    let reach = bucket_start(first).timestamp() - length;
                    before = before.min(floor_grid(reach));
                } else {
                    // Every later start before the last full bucket's end fails.
                    after = after.max(ceil_grid(bucket_start(last + 1).timestamp()));
                }
                continue;
            }
            if self.first_free_line(&candidate, ignoring).is_some() {
                found.push(candidate);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_rounds_both_ways() {
        assert_eq!(floor_grid(901), 900);
        assert_eq!(ceil_grid(901), 1800);
        assert_eq!(ceil_grid(900), 900);
        assert_eq!(floor_grid(-1), -900);
    }
}
