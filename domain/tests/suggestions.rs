//! `LinePool::suggestions` against a brute force: on random pools (a few lines, bookings off
//! and on the grid, a line in maintenance), the suggestions are exactly the nearest free grid
//! starts — every grid point between `now` and the horizon tried with `first_free_line`, sorted
//! by distance to the requested start (the earlier on a tie), the first three.

use chrono::{DateTime, Duration, Utc};
use meetline_domain::command::EndSpec;
use meetline_domain::*;
use proptest::prelude::*;
use uuid::Uuid;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + minutes * 60, 0).unwrap()
}

fn pool_with(lines: usize, bookings: &[(i64, i64)], maintenance: bool) -> LinePool {
    let admin = Actor::admin("admin");
    let alice = Actor::user("alice");
    let mut pool = LinePool::default();
    let apply = |pool: &mut LinePool, actor: &Actor, command: Command| {
        if let Ok(events) = pool.handle(actor, &command, t(0)) {
            for event in &events {
                pool.apply(event);
            }
        }
    };
    for n in 0..lines {
        apply(
            &mut pool,
            &admin,
            Command::AddLine {
                name: LineName::parse(&format!("Line {n}")).unwrap(),
                provider: ProviderKind::Builtin,
            },
        );
    }
    for (n, (start, minutes)) in bookings.iter().enumerate() {
        apply(
            &mut pool,
            &alice,
            Command::ScheduleConference(ScheduleConference {
                conference: ConferenceId(Uuid::from_u128(n as u128 + 1)),
                mode: Mode::Scheduled,
                subject: Subject::parse("x").unwrap(),
                start: Some(t(*start)),
                end: EndSpec::After(Duration::minutes(*minutes)),
                timezone: TimeZoneName::default(),
                host: None,
                attendees: vec![],
                related_link: None,
                rooms: RoomNonce::fixed(n as u128),
                numbers: NumberDraw::fixed(n as u128 + 1),
            }),
        );
    }
    if maintenance && lines > 1 {
        let line = pool.lines[0].id.clone();
        apply(
            &mut pool,
            &admin,
            Command::StartLineMaintenance {
                line,
                rooms: RoomNonce::fixed(7),
            },
        );
    }
    pool
}

fn brute_force(
    pool: &LinePool,
    slot: &TimeSlot,
    now: DateTime<Utc>,
    latest: DateTime<Utc>,
) -> Vec<TimeSlot> {
    let length = slot.end - slot.start;
    let first = (now.timestamp() + 899).div_euclid(900) * 900;
    // The whole slot within the horizon.
    let last = (latest.timestamp() - length.num_seconds()).div_euclid(900) * 900;
    let mut free: Vec<TimeSlot> = (0..)
        .map(|k| first + k * 900)
        .take_while(|start| *start <= last)
        .map(|start| {
            let start = DateTime::from_timestamp(start, 0).unwrap();
            TimeSlot {
                start,
                end: start + length,
            }
        })
        .filter(|candidate| pool.first_free_line(candidate, None).is_some())
        .collect();
    free.sort_by_key(|candidate| {
        (
            (candidate.start - slot.start).num_seconds().abs(),
            candidate.start,
        )
    });
    free.truncate(3);
    free
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn suggestions_are_the_nearest_free_grid_starts(
        lines in 1usize..4,
        bookings in proptest::collection::vec((0i64..2880, 10i64..1440), 0..40),
        maintenance in any::<bool>(),
        request in 0i64..2880,
        length in 15i64..600,
        now_offset in 0i64..1440,
        horizon in 600i64..3480,
    ) {
        let pool = pool_with(lines, &bookings, maintenance);
        let slot = TimeSlot::new(t(request), t(request + length)).unwrap();
        let now = t(now_offset);
        // Sometimes before the request's end: the horizon cuts the candidates.
        let latest = t(horizon);
        let expected = brute_force(&pool, &slot, now, latest);
        prop_assert_eq!(pool.suggestions(&slot, None, now, latest), expected);
    }
}

#[test]
fn far_away_free_times_are_found_past_a_long_busy_stretch() {
    // One line, busy from 00:00 to 20:00: an hour at 10:00 has nothing free within eight hours.
    let pool = pool_with(1, &[(0, 20 * 60)], false);
    let slot = TimeSlot::new(t(600), t(660)).unwrap();
    let found = pool.suggestions(&slot, None, t(0), t(3 * 1440));
    assert_eq!(
        found.iter().map(|slot| slot.start).collect::<Vec<_>>(),
        vec![t(1200), t(1215), t(1230)]
    );
    // With the past allowed up to the day before, 23:00 the day before is 11 hours away:
    // still farther than 20:30.
    assert_eq!(found, brute_force(&pool, &slot, t(0), t(3 * 1440)));
    // Nothing at all within the horizon (the slot must end by it): none.
    assert!(pool.suggestions(&slot, None, t(0), t(1259)).is_empty());
    assert_eq!(pool.suggestions(&slot, None, t(0), t(1260)).len(), 1);
}
