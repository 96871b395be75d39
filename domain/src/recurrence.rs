//! Recurring conferences: the rule a series repeats by (the subset of RFC 5545's `RRULE` the
//! booking form offers: `FREQ`, `INTERVAL`, `BYDAY`, `COUNT`/`UNTIL`) and its occurrences.
//!
//! Occurrences keep the first one's **local** start time in the series' time zone (a weekly
//! 09:00 stays 09:00 across a change to summer time) and its length. Every occurrence is a
//! conference of its own; what ties them together is the [`SeriesLink`] each carries.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Utc, Weekday,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::types::{TimeSlot, TimeZoneName};

/// At most this many occurrences in a series.
pub const MAX_OCCURRENCES: usize = 100;
/// The largest `interval`.
pub const MAX_INTERVAL: u32 = 99;

/// The field every rule error names.
const FIELD: &str = "recurrence";

/// A series' identity, chosen by the caller of the aggregate like a conference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeriesId(pub Uuid);

impl std::fmt::Display for SeriesId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Daily,
    /// On chosen weekdays.
    Weekly,
    /// On the first occurrence's n-th weekday of the month (the 2nd Tuesday, say).
    Monthly,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
}

/// When a series stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecurrenceEnd {
    /// After this many occurrences (the first included).
    Count(u32),
    /// With the last occurrence on or before this local date.
    Until(NaiveDate),
}

/// How a series repeats. Built by [`Recurrence::new`], which checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub frequency: Frequency,
    pub interval: u32,
    /// Weekly: the weekdays, Monday = 0, ascending, each once. Empty for the other frequencies.
    pub weekdays: Vec<u8>,
    pub end: RecurrenceEnd,
}

/// A conference's place in a series: which series, the rule and its first occurrence (what a
/// calendar file's `RRULE` and `DTSTART` say), and which occurrence this is — its start by the
/// rule (`RECURRENCE-ID`), whatever edits have done to its slot since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesLink {
    pub id: SeriesId,
    pub recurrence: Recurrence,
    /// The first occurrence as booked.
    pub first: TimeSlot,
    /// The zone the rule keeps local times in.
    pub timezone: TimeZoneName,
    pub occurrence: DateTime<Utc>,
}

/// Two-letter weekday codes, as RFC 5545 and the API spell them, Monday first.
pub const WEEKDAY_CODES: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

impl Recurrence {
    /// # Errors
    /// `invalid_input` (field `recurrence`): an interval outside 1–[`MAX_INTERVAL`], weekdays
    /// for a frequency other than weekly, a count outside 1–[`MAX_OCCURRENCES`].
    pub fn new(
        frequency: Frequency,
        interval: u32,
        weekdays: &[Weekday],
        end: RecurrenceEnd,
    ) -> Result<Self, DomainError> {
        if !(1..=MAX_INTERVAL).contains(&interval) {
            return Err(DomainError::invalid_input(FIELD));
        }
        if frequency != Frequency::Weekly && !weekdays.is_empty() {
            return Err(DomainError::invalid_input(FIELD));
        }
        if let RecurrenceEnd::Count(count) = end
            && !(1..=MAX_OCCURRENCES as u32).contains(&count)
        {
            return Err(DomainError::invalid_input(FIELD));
        }
        let mut days: Vec<u8> = weekdays
            .iter()
            .map(|day| day.num_days_from_monday() as u8)
            .collect();
        days.sort_unstable();
        days.dedup();
        Ok(Self {
            frequency,
            interval,
            weekdays: days,
            end,
        })
    }

    /// A weekday from its two-letter code (`MO` … `SU`).
    pub fn weekday(code: &str) -> Option<Weekday> {
        let index = WEEKDAY_CODES.iter().position(|known| *known == code)?;
        Weekday::try_from(index as u8).ok()
    }

    /// The slots of the series whose first occurrence is `first`, in order, local times kept
    /// in `timezone` (a local time that a change of clocks skips is read as RFC 5545 reads it:
    /// with the offset before the gap).
    ///
    /// # Errors
    /// `invalid_input` (field `recurrence`): more than [`MAX_OCCURRENCES`], an occurrence more
    /// than a year after the first, an end before the first, a weekly rule whose weekdays leave
    /// out the first's, occurrences that overlap each other; (field `timezone`) an unknown zone.
    pub fn occurrences(
        &self,
        first: &TimeSlot,
        timezone: &TimeZoneName,
    ) -> Result<Vec<TimeSlot>, DomainError> {
        let tz: chrono_tz::Tz = timezone
            .as_str()
            .parse()
            .map_err(|_| DomainError::invalid_input("timezone"))?;
        let local = first.start.with_timezone(&tz).naive_local();
        let (day, time) = (local.date(), local.time());
        let length = first.end - first.start;
        let last_day = day
            .checked_add_months(Months::new(12))
            .ok_or_else(|| DomainError::invalid_input(FIELD))?;
        let (count, until) = match self.end {
            RecurrenceEnd::Count(count) => (count as usize, last_day),
            RecurrenceEnd::Until(until) => {
                if until < day || until > last_day {
                    return Err(DomainError::invalid_input(FIELD));
                }
                (MAX_OCCURRENCES + 1, until)
            }
        };
        if self.frequency == Frequency::Weekly
            && !self.weekdays.is_empty()
            && !self
                .weekdays
                .contains(&(day.weekday().num_days_from_monday() as u8))
        {
            return Err(DomainError::invalid_input(FIELD));
        }
        let days = self.days(day, until, count);
        if days.len() > MAX_OCCURRENCES
            || matches!(self.end, RecurrenceEnd::Count(wanted) if days.len() < wanted as usize)
        {
            // More than allowed, or a count the year cannot hold.
            return Err(DomainError::invalid_input(FIELD));
        }
        let mut slots: Vec<TimeSlot> = Vec::with_capacity(days.len());
        for date in days {
            let start = at_local(&tz, date.and_time(time))?;
            let slot = TimeSlot::new(start, start + length)?;
            if slots.last().is_some_and(|before| before.end > slot.start) {
                return Err(DomainError::invalid_input(FIELD));
            }
            slots.push(slot);
        }
        Ok(slots)
    }

    /// The local dates of the occurrences from `first` up to `until`, at most `count` (and at
    /// most one more than [`MAX_OCCURRENCES`], so that too many is seen).
    fn days(&self, first: NaiveDate, until: NaiveDate, count: usize) -> Vec<NaiveDate> {
        let limit = count.min(MAX_OCCURRENCES + 1);
        let interval = i64::from(self.interval);
        let mut days = Vec::new();
        let mut push = |date: NaiveDate| -> bool {
            if date > until || days.len() >= limit {
                return false;
            }
            days.push(date);
            true
        };
        match self.frequency {
            Frequency::Daily => {
                let mut date = first;
                while push(date) {
                    date += Duration::days(interval);
                }
            }
            Frequency::Weekly => {
                let own = [first.weekday().num_days_from_monday() as u8];
                let weekdays: &[u8] = if self.weekdays.is_empty() {
                    &own
                } else {
                    &self.weekdays
                };
                let monday =
                    first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
                'weeks: for week in 0.. {
                    let base = monday + Duration::days(7 * interval * week);
                    if base > until {
                        break;
                    }
                    for day in weekdays {
                        let date = base + Duration::days(i64::from(*day));
                        if date < first {
                            continue;
                        }
                        if !push(date) {
                            break 'weeks;
                        }
                    }
                }
            }
            Frequency::Monthly => {
                let nth = (first.day0() / 7) as u8;
                let weekday = first.weekday();
                for step in 0.. {
                    let Some(month) = first
                        .with_day(1)
                        .and_then(|day| day.checked_add_months(Months::new(step * self.interval)))
                    else {
                        break;
                    };
                    if month > until {
                        break;
                    }
                    // A month without an n-th such weekday (a 5th Friday) has no occurrence.
                    if let Some(date) = NaiveDate::from_weekday_of_month_opt(
                        month.year(),
                        month.month(),
                        weekday,
                        nth + 1,
                    ) && !push(date)
                    {
                        break;
                    }
                }
            }
        }
        days
    }

    /// The rule as an iCalendar `RRULE` value for a series of `occurrences` (the count is
    /// always given: what `until` meant is already expanded into it).
    pub fn rrule(&self, first: &TimeSlot, timezone: &TimeZoneName, occurrences: usize) -> String {
        let mut rule = format!(
            "FREQ={};INTERVAL={}",
            self.frequency.as_str().to_uppercase(),
            self.interval
        );
        // The first occurrence's local day: its weekday and its place in the month.
        let tz: chrono_tz::Tz = timezone.as_str().parse().unwrap_or(chrono_tz::UTC);
        let day = first.start.with_timezone(&tz).date_naive();
        let own = WEEKDAY_CODES[day.weekday().num_days_from_monday() as usize];
        match self.frequency {
            Frequency::Daily => {}
            Frequency::Weekly => {
                let days: Vec<&str> = if self.weekdays.is_empty() {
                    vec![own]
                } else {
                    self.weekdays
                        .iter()
                        .map(|day| WEEKDAY_CODES[usize::from(*day) % 7])
                        .collect()
                };
                rule.push_str(&format!(";BYDAY={}", days.join(",")));
            }
            Frequency::Monthly => {
                rule.push_str(&format!(";BYDAY={}{own}", day.day0() / 7 + 1));
            }
        }
        rule.push_str(&format!(";COUNT={occurrences}"));
        rule
    }
}

/// The instant a local time names in `tz`: the earlier of two (a time the clocks pass twice);
/// for a time they skip, the one RFC 5545 (3.3.5) reads it as — the local time taken with the
/// offset in force before the gap (02:30 on a night clocks go from 02:00 to 03:00 is 03:30).
pub(crate) fn at_local(
    tz: &chrono_tz::Tz,
    local: NaiveDateTime,
) -> Result<DateTime<Utc>, DomainError> {
    let resolved = match tz.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps are at most a few hours: three hours earlier, the old offset is in force.
            let before = tz
                .from_local_datetime(&(local - Duration::hours(3)))
                .earliest()
                .map(|at| at.offset().fix());
            before.map(|offset| (local - offset).and_utc())
        }
    };
    resolved.ok_or_else(|| DomainError::invalid_input(FIELD))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(start: &str, minutes: i64) -> TimeSlot {
        let start: DateTime<Utc> = start.parse().unwrap();
        TimeSlot::new(start, start + Duration::minutes(minutes)).unwrap()
    }

    fn shanghai() -> TimeZoneName {
        TimeZoneName::parse("Asia/Shanghai").unwrap()
    }

    fn starts(slots: &[TimeSlot]) -> Vec<String> {
        slots
            .iter()
            .map(|slot| slot.start.format("%Y-%m-%d %H:%M").to_string())
            .collect()
    }

    #[test]
    fn weekly_on_chosen_days_keeps_the_local_time() {
        // Monday 2027-01-04 10:00 Shanghai = 02:00 UTC.
        let rule = Recurrence::new(
            Frequency::Weekly,
            1,
            &[Weekday::Mon, Weekday::Thu],
            RecurrenceEnd::Count(4),
        )
        .unwrap();
        let slots = rule
            .occurrences(&slot("2027-01-04T02:00:00Z", 60), &shanghai())
            .unwrap();
        assert_eq!(
            starts(&slots),
            [
                "2027-01-04 02:00",
                "2027-01-07 02:00",
                "2027-01-11 02:00",
                "2027-01-14 02:00"
            ]
        );
        assert_eq!(
            rule.rrule(&slots[0], &shanghai(), 4),
            "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TH;COUNT=4"
        );
    }

    #[test]
    fn local_time_holds_across_a_change_to_summer_time() {
        let berlin = TimeZoneName::parse("Europe/Berlin").unwrap();
        let rule = Recurrence::new(Frequency::Weekly, 1, &[], RecurrenceEnd::Count(3)).unwrap();
        // Monday 2027-03-22 09:00 CET = 08:00 UTC; clocks change on 2027-03-28.
        let slots = rule
            .occurrences(&slot("2027-03-22T08:00:00Z", 30), &berlin)
            .unwrap();
        assert_eq!(
            starts(&slots),
            ["2027-03-22 08:00", "2027-03-29 07:00", "2027-04-05 07:00"]
        );
    }

    #[test]
    fn monthly_repeats_the_nth_weekday_and_skips_months_without_it() {
        // Friday 2027-01-29 is the 5th Friday of January; April has one, Feb and March not.
        let rule = Recurrence::new(
            Frequency::Monthly,
            1,
            &[],
            RecurrenceEnd::Until(NaiveDate::from_ymd_opt(2027, 7, 31).unwrap()),
        )
        .unwrap();
        let slots = rule
            .occurrences(&slot("2027-01-29T02:00:00Z", 60), &shanghai())
            .unwrap();
        assert_eq!(
            starts(&slots),
            ["2027-01-29 02:00", "2027-04-30 02:00", "2027-07-30 02:00"]
        );
        assert_eq!(
            rule.rrule(&slots[0], &shanghai(), 3),
            "FREQ=MONTHLY;INTERVAL=1;BYDAY=5FR;COUNT=3"
        );
    }

    #[test]
    fn limits_are_refused_naming_the_recurrence() {
        let first = slot("2027-01-04T02:00:00Z", 60);
        let refused = |rule: Recurrence| {
            assert_eq!(
                rule.occurrences(&first, &shanghai()),
                Err(DomainError::invalid_input("recurrence"))
            );
        };
        // 101 occurrences.
        assert!(Recurrence::new(Frequency::Daily, 1, &[], RecurrenceEnd::Count(101)).is_err());
        // 100 daily fit; 60 weekly do not fit in a year.
        assert_eq!(
            Recurrence::new(Frequency::Daily, 1, &[], RecurrenceEnd::Count(100))
                .unwrap()
                .occurrences(&first, &shanghai())
                .unwrap()
                .len(),
            100
        );
        refused(Recurrence::new(Frequency::Weekly, 1, &[], RecurrenceEnd::Count(60)).unwrap());
        // Until more than a year on, or before the start; until yielding more than 100.
        let until = |y, m, d| RecurrenceEnd::Until(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        refused(Recurrence::new(Frequency::Weekly, 1, &[], until(2028, 2, 1)).unwrap());
        refused(Recurrence::new(Frequency::Weekly, 1, &[], until(2027, 1, 3)).unwrap());
        refused(Recurrence::new(Frequency::Daily, 1, &[], until(2027, 12, 31)).unwrap());
        // Weekdays that leave out the first's (a Monday).
        refused(
            Recurrence::new(
                Frequency::Weekly,
                1,
                &[Weekday::Tue],
                RecurrenceEnd::Count(3),
            )
            .unwrap(),
        );
        assert!(Recurrence::new(Frequency::Daily, 0, &[], RecurrenceEnd::Count(3)).is_err());
        assert!(
            Recurrence::new(
                Frequency::Daily,
                1,
                &[Weekday::Mon],
                RecurrenceEnd::Count(3)
            )
            .is_err()
        );
    }

    #[test]
    fn a_local_time_the_clocks_skip_is_read_with_the_offset_before_the_gap() {
        // Daily at 02:30 Berlin; on 2027-03-28 clocks go from 02:00 to 03:00: that day's
        // occurrence is 03:30 CEST (01:30 UTC), as calendar clients expand the rule.
        let berlin = TimeZoneName::parse("Europe/Berlin").unwrap();
        let rule = Recurrence::new(Frequency::Daily, 1, &[], RecurrenceEnd::Count(3)).unwrap();
        let slots = rule
            .occurrences(&slot("2027-03-27T01:30:00Z", 30), &berlin)
            .unwrap();
        assert_eq!(
            starts(&slots),
            ["2027-03-27 01:30", "2027-03-28 01:30", "2027-03-29 00:30"]
        );
    }

    #[test]
    fn intervals_weekdays_before_the_first_and_the_local_date_count() {
        // Sunday 2027-01-03 17:00 UTC is Monday 01:00 in Shanghai: the rule's day is Monday.
        let first = slot("2027-01-03T17:00:00Z", 60);
        let weekly = Recurrence::new(Frequency::Weekly, 2, &[], RecurrenceEnd::Count(3)).unwrap();
        let slots = weekly.occurrences(&first, &shanghai()).unwrap();
        assert_eq!(
            starts(&slots),
            ["2027-01-03 17:00", "2027-01-17 17:00", "2027-01-31 17:00"]
        );
        assert_eq!(
            weekly.rrule(&first, &shanghai(), 3),
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;COUNT=3"
        );
        // Starting on a Thursday with Monday and Thursday: no Monday before the first.
        let thursday = slot("2027-01-07T02:00:00Z", 60);
        let both = Recurrence::new(
            Frequency::Weekly,
            1,
            &[Weekday::Mon, Weekday::Thu],
            RecurrenceEnd::Count(3),
        )
        .unwrap();
        assert_eq!(
            starts(&both.occurrences(&thursday, &shanghai()).unwrap()),
            ["2027-01-07 02:00", "2027-01-11 02:00", "2027-01-14 02:00"]
        );
        // Every other month, on the first Thursday.
        let monthly = Recurrence::new(Frequency::Monthly, 2, &[], RecurrenceEnd::Count(3)).unwrap();
        assert_eq!(
            starts(&monthly.occurrences(&thursday, &shanghai()).unwrap()),
            ["2027-01-07 02:00", "2027-03-04 02:00", "2027-05-06 02:00"]
        );
        // An end date giving exactly 100 daily occurrences is taken.
        let hundred = Recurrence::new(
            Frequency::Daily,
            1,
            &[],
            RecurrenceEnd::Until(NaiveDate::from_ymd_opt(2027, 4, 16).unwrap()),
        )
        .unwrap();
        assert_eq!(
            hundred.occurrences(&thursday, &shanghai()).unwrap().len(),
            100
        );
    }

    #[test]
    fn a_local_time_the_clocks_pass_twice_is_the_earlier() {
        // 02:30 Berlin on 2027-10-31 happens twice (CEST, then CET): the first, 00:30 UTC.
        let berlin = TimeZoneName::parse("Europe/Berlin").unwrap();
        let rule = Recurrence::new(Frequency::Daily, 1, &[], RecurrenceEnd::Count(2)).unwrap();
        let slots = rule
            .occurrences(&slot("2027-10-30T00:30:00Z", 30), &berlin)
            .unwrap();
        assert_eq!(starts(&slots), ["2027-10-30 00:30", "2027-10-31 00:30"]);
    }

    #[test]
    fn occurrences_that_would_overlap_are_refused() {
        // Daily, 24 hours long, across a change of clocks that makes one day 23 hours.
        let berlin = TimeZoneName::parse("Europe/Berlin").unwrap();
        let rule = Recurrence::new(Frequency::Daily, 1, &[], RecurrenceEnd::Count(3)).unwrap();
        assert_eq!(
            rule.occurrences(&slot("2027-03-27T08:00:00Z", 24 * 60), &berlin),
            Err(DomainError::invalid_input("recurrence"))
        );
    }
}
