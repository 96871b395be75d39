//! The allocation micro-benchmark of `../shared/WORKLOADS.md`: one decision (schedule one
//! conference) against a pool of 500 lines × 100,000 future bookings, and of 10 lines × 1,000.
//!
//! The bookings are made the way W1 makes them (slots of 15 minutes over 30 days, 30–120 minutes
//! long, first free line), from a fixed seed; the decisions measured are schedules at 1,024 such
//! random times, taken in turn. `busy` measures the worst case: a time at which every line is
//! taken, so the decision looks at every line before refusing.
//!
//! `suggestions` measures the nearest free times a refusal carries (`LinePool::suggestions`).
//!
//! Run: `cargo bench -p meetline-domain --bench allocation`.

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use meetline_domain::command::EndSpec;
use meetline_domain::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const T0: i64 = 1_767_225_600;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(T0, 0).expect("a valid instant")
}

fn schedule(n: u128, start: DateTime<Utc>, minutes: i64) -> Command {
    Command::ScheduleConference(ScheduleConference {
        conference: ConferenceId(Uuid::from_u128(n)),
        mode: Mode::Scheduled,
        subject: Subject::parse("bench").expect("a subject"),
        start: Some(start),
        end: EndSpec::After(Duration::minutes(minutes)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![],
        related_link: None,
        rooms: RoomNonce::fixed(n),
        numbers: NumberDraw::fixed(n),
    })
}

fn random_schedule(rng: &mut StdRng, n: u128) -> Command {
    let slot = i64::from(rng.random_range(0..2880u32));
    let minutes = [30, 60, 90, 120][rng.random_range(0..4usize)];
    schedule(n, t0() + Duration::minutes(slot * 15), minutes)
}

/// A pool with `lines` lines and `bookings` accepted bookings (commands that find no line are
/// drawn again).
fn pool(lines: u64, bookings: usize) -> LinePool {
    let admin = Actor::admin("admin");
    let alice = Actor::user("alice");
    let mut pool = LinePool::default();
    for n in 1..=lines {
        let command = Command::AddLine {
            name: LineName::parse(&format!("Line {n}")).expect("a name"),
            provider: ProviderKind::Builtin,
        };
        for event in pool.handle(&admin, &command, t0()).expect("a line") {
            pool.apply(&event);
        }
    }
    let mut rng = StdRng::seed_from_u64(42);
    let mut n = 0u128;
    let mut accepted = 0;
    while accepted < bookings {
        n += 1;
        if let Ok(events) = pool.handle(&alice, &random_schedule(&mut rng, n), t0()) {
            for event in &events {
                pool.apply(event);
            }
            accepted += 1;
        }
    }
    pool
}

fn decisions(c: &mut Criterion) {
    let alice = Actor::user("alice");
    let mut group = c.benchmark_group("schedule_one");
    for (lines, bookings) in [(10u64, 1_000usize), (500, 100_000)] {
        let pool = pool(lines, bookings);
        let mut rng = StdRng::seed_from_u64(7);
        let commands: Vec<Command> = (0..1024u128)
            .map(|n| random_schedule(&mut rng, u128::MAX - n))
            .collect();
        let label = format!("{lines}_lines_{bookings}_bookings");
        let mut next = 0;
        group.bench_function(BenchmarkId::new("random_time", &label), |b| {
            b.iter(|| {
                next = (next + 1) % commands.len();
                black_box(pool.handle(&alice, black_box(&commands[next]), t0()))
            });
        });

        // Fill one hour on every line, then ask for it: every line is looked at, none is free.
        let mut full = pool.clone();
        let hour = t0() + Duration::days(40);
        for n in 0..lines {
            let command = schedule(u128::from(n) + (1 << 100), hour, 60);
            for event in full.handle(&alice, &command, t0()).expect("a free line") {
                full.apply(&event);
            }
        }
        let busy = schedule(1 << 101, hour, 60);
        assert!(matches!(
            full.handle(&alice, &busy, t0()),
            Err(DomainError::NoFreeLine { .. })
        ));
        group.bench_function(BenchmarkId::new("busy", &label), |b| {
            b.iter(|| black_box(full.handle(&alice, black_box(&busy), t0())));
        });
    }
    group.finish();
}

/// The nearest free times a refusal carries (API.md v1.1), against the same pools: an hour taken
/// on every line amid the month of bookings (the free times are close: the index finds them), and
/// a whole day taken on every line (none within eight hours of its middle: each line's bookings
/// are walked).
fn suggestions(c: &mut Criterion) {
    let alice = Actor::user("alice");
    let mut group = c.benchmark_group("suggestions");
    for (lines, bookings) in [(10u64, 1_000usize), (500, 100_000)] {
        let label = format!("{lines}_lines_{bookings}_bookings");
        let base = pool(lines, bookings);
        for (case, hours) in [("hour_full", 1i64), ("day_full", 24)] {
            let mut full = base.clone();
            let from = t0() + Duration::days(10) + Duration::hours(10);
            // Every quarter of the window taken on every line (around the month's own
            // bookings): no hour-long slot is free in it.
            let mut n = 1u128 << 102;
            for quarter in 0..hours * 4 {
                for _ in 0..lines {
                    n += 1;
                    let command = schedule(n, from + Duration::minutes(quarter * 15), 15);
                    if let Ok(events) = full.handle(&alice, &command, t0()) {
                        for event in &events {
                            full.apply(event);
                        }
                    }
                }
            }
            let middle = from + Duration::hours(hours / 2);
            let slot = TimeSlot::new(middle, middle + Duration::hours(1)).expect("a slot");
            assert!(full.first_free_line(&slot, None).is_none());
            let latest = t0() + Duration::days(730);
            let found = full.suggestions(&slot, None, t0(), latest);
            assert_eq!(found.len(), 3, "{case}: {found:?}");
            group.bench_function(BenchmarkId::new(case, &label), |b| {
                b.iter(|| black_box(full.suggestions(black_box(&slot), None, t0(), latest)));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decisions, suggestions);
criterion_main!(benches);
