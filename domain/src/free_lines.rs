//! An index of which lines are busy when, so that finding the first free line does not walk
//! every line's bookings.
//!
//! Time is cut into 15-minute buckets (the grid most conferences are booked on). For each bucket
//! that any booking reaches, two bitsets over the lines (bit `i` = the pool's `i`-th line, in
//! the order lines were added): **touched** — some booking of the line overlaps the bucket — and
//! **covered** — one booking of the line spans the whole bucket. For a slot `[s, e)`:
//!
//! - a line covered in a bucket the slot reaches is busy (its booking spans all of the bucket,
//!   so it overlaps whatever part of the bucket the slot holds);
//! - a line touched in no bucket the slot reaches is free;
//! - any other line (a booking or the slot off the grid) is checked exactly, on its own bookings.
//!
//! So the first free line is found with a few word-wide ORs over the buckets the slot reaches and,
//! for slots and bookings on the grid, no look at any line's bookings at all. The index is derived
//! from the bookings alone: it is never stored, and a pool rebuilds it when loaded.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::pool::{Booking, Line};
use crate::types::TimeSlot;

/// Seconds per bucket.
pub(crate) const BUCKET: i64 = 900;

#[derive(Debug, Clone, Default)]
pub(crate) struct FreeLineIndex {
    buckets: HashMap<i64, Bucket>,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    touched: Vec<u64>,
    covered: Vec<u64>,
}

fn bucket_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BUCKET)
}

pub(crate) fn bucket_start(bucket: i64) -> DateTime<Utc> {
    let fallback = if bucket < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    };
    bucket
        .checked_mul(BUCKET)
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or(fallback)
}

/// The buckets `[s, e)` reaches: up to the one holding the last instant before `e` (an end
/// with a fraction of a second reaches into the bucket its whole seconds start).
fn buckets(slot: &TimeSlot) -> std::ops::RangeInclusive<i64> {
    let whole = slot.end.timestamp();
    let last_second = whole - i64::from(slot.end.timestamp_subsec_nanos() == 0);
    let last = last_second.div_euclid(BUCKET).max(bucket_of(slot.start));
    bucket_of(slot.start)..=last
}

pub(crate) fn set(bits: &mut Vec<u64>, index: usize, on: bool) {
    let (word, bit) = (index / 64, 1u64 << (index % 64));
    if bits.len() <= word {
        if !on {
            return;
        }
        bits.resize(word + 1, 0);
    }
    if on {
        bits[word] |= bit;
    } else {
        bits[word] &= !bit;
    }
}

fn is_set(bits: &[u64], index: usize) -> bool {
    bits.get(index / 64)
        .is_some_and(|word| word & (1u64 << (index % 64)) != 0)
}

fn or_into(into: &mut Vec<u64>, bits: &[u64]) {
    if into.len() < bits.len() {
        into.resize(bits.len(), 0);
    }
    for (word, more) in into.iter_mut().zip(bits) {
        *word |= more;
    }
}

impl FreeLineIndex {
    /// The index of `lines`' bookings, built in one pass: a line's bookings are disjoint, so a
    /// bucket is touched by the line when one of them reaches into it, and covered when one
    /// spans it — no look at the neighbours needed (as [`Self::refresh`] does for a change).
    pub(crate) fn of(lines: &[Line]) -> Self {
        let mut index = Self::default();
        for (position, line) in lines.iter().enumerate() {
            for (start, booking) in &line.bookings {
                let slot = TimeSlot {
                    start: *start,
                    end: booking.end,
                };
                for bucket in buckets(&slot) {
                    let entry = index.buckets.entry(bucket).or_default();
                    set(&mut entry.touched, position, true);
                    if slot.start <= bucket_start(bucket) && slot.end >= bucket_start(bucket + 1) {
                        set(&mut entry.covered, position, true);
                    }
                }
            }
        }
        index
    }

    /// Recomputes the bits of the line at `position` in every bucket `slot` reaches, from the
    /// line's bookings as they are now (after a booking was added or removed there).
    pub(crate) fn refresh(
        &mut self,
        position: usize,
        bookings: &BTreeMap<DateTime<Utc>, Booking>,
        slot: &TimeSlot,
    ) {
        for bucket in buckets(slot) {
            let (from, to) = (bucket_start(bucket), bucket_start(bucket + 1));
            // Bookings on a line are disjoint: the last one starting before the bucket's end is
            // the only one that can reach into it, and the last one starting at or before its
            // start the only one that can span it.
            let touched = bookings
                .range(..to)
                .next_back()
                .is_some_and(|(_, booking)| booking.end > from);
            let covered = touched
                && bookings
                    .range(..=from)
                    .next_back()
                    .is_some_and(|(_, booking)| booking.end >= to);
            if touched {
                let entry = self.buckets.entry(bucket).or_default();
                set(&mut entry.touched, position, true);
                set(&mut entry.covered, position, covered);
            } else if let Some(entry) = self.buckets.get_mut(&bucket) {
                set(&mut entry.touched, position, false);
                set(&mut entry.covered, position, false);
                if entry.touched.iter().all(|word| *word == 0) {
                    self.buckets.remove(&bucket);
                }
            }
        }
    }

    /// The buckets `slot` reaches in which every line of `lines` marks is covered (busy for the
    /// whole bucket): no slot reaching one of them is free on any of those lines. The first and
    /// the last of them, if any.
    pub(crate) fn full_buckets(&self, slot: &TimeSlot, lines: &[u64]) -> Option<(i64, i64)> {
        let mut full = None;
        for bucket in buckets(slot) {
            let Some(entry) = self.buckets.get(&bucket) else {
                continue;
            };
            let covered = lines
                .iter()
                .enumerate()
                .all(|(word, wanted)| wanted & !entry.covered.get(word).copied().unwrap_or(0) == 0);
            if covered {
                full = Some(full.map_or((bucket, bucket), |(first, _)| (first, bucket)));
            }
        }
        full
    }

    /// The position of the first line (in `lines`' order) that `is_candidate` accepts and on
    /// which `slot` is free, not counting the booking of `ignoring` — a conference and the
    /// position of the line that holds it (its bits may be its own booking's).
    pub(crate) fn first_free(
        &self,
        lines: &[Line],
        slot: &TimeSlot,
        is_candidate: impl Fn(&Line) -> bool,
        ignoring: Option<(usize, crate::types::ConferenceId)>,
    ) -> Option<usize> {
        let mut touched = Vec::new();
        let mut busy = Vec::new();
        for bucket in buckets(slot) {
            let Some(entry) = self.buckets.get(&bucket) else {
                continue;
            };
            or_into(&mut touched, &entry.touched);
            // A booking that spans a whole bucket the slot reaches overlaps the slot.
            or_into(&mut busy, &entry.covered);
        }
        if let Some((position, _)) = ignoring {
            set(&mut busy, position, false);
        }
        let words = lines.len().div_ceil(64);
        for word in 0..words {
            let mut open = !busy.get(word).copied().unwrap_or(0);
            while open != 0 {
                let position = word * 64 + open.trailing_zeros() as usize;
                open &= open - 1;
                // Past the last line: none is free.
                let line = lines.get(position)?;
                let own = ignoring
                    .filter(|(holder, _)| *holder == position)
                    .map(|(_, conference)| conference);
                if is_candidate(line) && (!is_set(&touched, position) || line.is_free(slot, own)) {
                    return Some(position);
                }
            }
        }
        None
    }
}
