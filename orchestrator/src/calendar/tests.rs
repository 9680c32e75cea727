use super::*;
use crate::config::ShiftConfig;

fn shift(days: &[&str], start: &str, end: &str, operators: u32) -> ShiftConfig {
    ShiftConfig {
        days: days.iter().map(|d| d.to_string()).collect(),
        start: start.into(),
        end: end.into(),
        operators,
    }
}

const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];

/// Two day shifts Monday to Friday, a Friday night shift past midnight, a Saturday morning,
/// Christmas off; one hour east of UTC.
fn plant_calendar() -> Calendar {
    Calendar::from_config(&CalendarConfig {
        utc_offset: "+01:00".into(),
        holidays: vec!["2026-12-25".into()],
        shifts: vec![
            shift(WEEKDAYS, "06:00", "14:00", 2),
            shift(WEEKDAYS, "14:00", "22:00", 1),
            shift(&["fri"], "22:00", "02:00", 1),
            shift(&["sat"], "08:00", "12:00", 1),
        ],
    })
    .expect("a valid calendar")
}

/// Plant ms of a local time written "2026-12-07 06:00" (+01:00), or with its own offset.
fn at(text: &str) -> i64 {
    let full = if text.ends_with('Z') || text.len() > 16 {
        text.replacen(' ', "T", 1)
    } else {
        format!("{}:00+01:00", text.replacen(' ', "T", 1))
    };
    let t = OffsetDateTime::parse(&full, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{full}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[test]
fn operators_on_shift_follow_weekdays_nights_holidays_and_the_offset() {
    let calendar = plant_calendar();
    // 2026-12-07 is a Monday; 2026-12-25 a Friday and a holiday.
    let cases: &[(&str, u32)] = &[
        ("2026-12-07 05:59", 0),
        ("2026-12-07 06:00", 2),
        ("2026-12-07 13:59", 2),
        ("2026-12-07 14:00", 1),
        ("2026-12-07 21:59", 1),
        ("2026-12-07 22:00", 0),
        ("2026-12-11 23:00", 1),
        ("2026-12-12 01:59", 1),
        ("2026-12-12 02:00", 0),
        ("2026-12-12 08:00", 1),
        ("2026-12-12 12:00", 0),
        ("2026-12-13 10:00", 0),
        ("2026-12-24 23:00", 0),
        ("2026-12-25 10:00", 0),
        // The holiday's night shift does not work either: it belongs to the Friday.
        ("2026-12-26 01:00", 0),
        ("2026-12-26 09:00", 1),
        // 05:30 UTC is 06:30 in the plant.
        ("2026-12-07T05:30:00Z", 2),
        ("2026-12-07T04:59:00Z", 0),
    ];
    for &(when, operators) in cases {
        assert_eq!(calendar.operators_at(at(when)), operators, "at {when}");
        assert_eq!(calendar.is_working(at(when)), operators > 0, "at {when}");
    }
}

#[test]
fn a_working_stretch_runs_through_touching_shifts_and_past_midnight() {
    let calendar = plant_calendar();
    let cases: &[(&str, Option<&str>)] = &[
        ("2026-12-07 07:00", Some("2026-12-07 22:00")),
        ("2026-12-07 21:00", Some("2026-12-07 22:00")),
        ("2026-12-11 07:00", Some("2026-12-12 02:00")),
        ("2026-12-12 01:00", Some("2026-12-12 02:00")),
        ("2026-12-07 22:00", None),
        ("2026-12-13 10:00", None),
    ];
    for &(when, until) in cases {
        assert_eq!(
            calendar.working_until(at(when)),
            until.map(at),
            "from {when}"
        );
    }
}

#[test]
fn the_next_working_instant_skips_nights_weekends_and_holidays() {
    let calendar = plant_calendar();
    let cases: &[(&str, &str)] = &[
        ("2026-12-07 10:00", "2026-12-07 10:00"),
        ("2026-12-07 23:00", "2026-12-08 06:00"),
        ("2026-12-12 02:30", "2026-12-12 08:00"),
        ("2026-12-12 12:00", "2026-12-14 06:00"),
        ("2026-12-24 22:00", "2026-12-26 08:00"),
    ];
    for &(when, next) in cases {
        assert_eq!(calendar.next_working(at(when)), at(next), "from {when}");
    }
}

#[test]
fn a_calendar_without_reachable_work_never_works_again() {
    let calendar = Calendar::from_config(&CalendarConfig {
        utc_offset: "+00:00".into(),
        holidays: vec![],
        shifts: vec![shift(&["mon"], "08:00", "09:00", 1)],
    })
    .unwrap();
    let mut holidays = calendar.clone();
    holidays.holidays = (0..HORIZON_DAYS)
        .filter_map(|d| {
            Date::from_calendar_date(2026, time::Month::December, 7)
                .ok()
                .and_then(|start| start.checked_add(Duration::days(d)))
        })
        .collect();
    assert_eq!(
        calendar.next_working(at("2026-12-07T10:00:00Z")),
        at("2026-12-14T08:00:00Z")
    );
    assert_eq!(holidays.next_working(at("2026-12-07T10:00:00Z")), i64::MAX);
}

#[test]
fn shift_windows_are_clipped_summed_and_merged() {
    let calendar = plant_calendar();
    let window = |from: &str, until: &str, operators| ShiftWindow {
        from: at(from),
        until: at(until),
        operators,
    };
    assert_eq!(
        calendar.shifts(at("2026-12-11 00:00"), at("2026-12-12 10:00")),
        vec![
            window("2026-12-11 06:00", "2026-12-11 14:00", 2),
            window("2026-12-11 14:00", "2026-12-12 02:00", 1),
            window("2026-12-12 08:00", "2026-12-12 10:00", 1),
        ]
    );
    assert_eq!(
        calendar.shifts(at("2026-12-07 10:00"), at("2026-12-07 15:00")),
        vec![
            window("2026-12-07 10:00", "2026-12-07 14:00", 2),
            window("2026-12-07 14:00", "2026-12-07 15:00", 1),
        ]
    );
    assert!(
        calendar
            .shifts(at("2026-12-13 00:00"), at("2026-12-14 06:00"))
            .is_empty()
    );
    assert!(
        calendar
            .shifts(at("2026-12-08 00:00"), at("2026-12-07 00:00"))
            .is_empty()
    );

    let overlapping = Calendar::from_config(&CalendarConfig {
        utc_offset: "+01:00".into(),
        holidays: vec![],
        shifts: vec![
            shift(&["mon"], "08:00", "12:00", 1),
            shift(&["mon"], "10:00", "16:00", 2),
        ],
    })
    .unwrap();
    assert_eq!(
        overlapping.shifts(at("2026-12-07 00:00"), at("2026-12-08 00:00")),
        vec![
            window("2026-12-07 08:00", "2026-12-07 10:00", 1),
            window("2026-12-07 10:00", "2026-12-07 12:00", 3),
            window("2026-12-07 12:00", "2026-12-07 16:00", 2),
        ]
    );
    assert_eq!(
        overlapping.working_until(at("2026-12-07 09:00")),
        Some(at("2026-12-07 16:00"))
    );
}

#[test]
fn a_run_starts_only_when_it_ends_in_working_time_unless_the_machine_may_run_after_hours() {
    let calendar = plant_calendar();
    const HOUR: i64 = 3_600_000;
    let cases: &[(bool, bool, &str, i64, bool)] = &[
        // (calendar, after_hours, now, run, may start)
        (false, false, "2026-12-07 23:00", 10 * HOUR, true),
        (true, true, "2026-12-07 23:00", 10 * HOUR, true),
        (true, false, "2026-12-07 20:00", HOUR, true),
        (true, false, "2026-12-07 21:00", HOUR, true),
        (true, false, "2026-12-07 21:30", HOUR, false),
        (true, false, "2026-12-07 23:00", 60_000, false),
        (true, false, "2026-12-11 21:30", 3 * HOUR, true),
        (true, false, "2026-12-11 21:30", 5 * HOUR, false),
        (true, false, "2026-12-07 06:00", 20 * HOUR, false),
    ];
    for &(with_calendar, after_hours, now, run_ms, expected) in cases {
        let cal = with_calendar.then_some(&calendar);
        assert_eq!(
            may_start(cal, after_hours, at(now), run_ms),
            expected,
            "calendar {with_calendar}, after_hours {after_hours}, at {now}, run {run_ms} ms"
        );
    }
}

#[test]
fn bad_calendars_name_every_field() {
    let good = || CalendarConfig {
        utc_offset: "+01:00".into(),
        holidays: vec![],
        shifts: vec![shift(&["mon"], "06:00", "14:00", 1)],
    };
    type Edit = fn(&mut CalendarConfig);
    let cases: &[(Edit, &str, &str)] = &[
        (
            |c| c.utc_offset = "1h".into(),
            "calendar.utc_offset",
            "'1h' is not an offset",
        ),
        (
            |c| c.utc_offset = "+25:00".into(),
            "calendar.utc_offset",
            "not an offset",
        ),
        (
            |c| c.holidays = vec!["2026-12-25".into(), "Christmas".into()],
            "calendar.holidays[1]",
            "not a date",
        ),
        (
            |c| c.holidays = vec!["2026-02-30".into()],
            "calendar.holidays[0]",
            "not a date",
        ),
        (
            |c| c.shifts[0].days = vec!["mon".into(), "monday".into()],
            "calendar.shifts[0].days[1]",
            "not a weekday",
        ),
        (
            |c| c.shifts[0].days = vec![],
            "calendar.shifts[0].days",
            "at least one day",
        ),
        (
            |c| c.shifts[0].start = "25:00".into(),
            "calendar.shifts[0].start",
            "'25:00' is not a time",
        ),
        (
            |c| c.shifts[0].end = "6:00".into(),
            "calendar.shifts[0].end",
            "not a time",
        ),
        (
            |c| c.shifts[0].end = "06:00".into(),
            "calendar.shifts[0].end",
            "ends when it starts",
        ),
        (
            |c| c.shifts[0].operators = 0,
            "calendar.shifts[0].operators",
            "at least one operator",
        ),
        (
            |c| c.shifts = vec![],
            "calendar.shifts",
            "at least one shift",
        ),
    ];
    assert!(Calendar::from_config(&good()).is_ok());
    for (edit, field, message) in cases {
        let mut config = good();
        edit(&mut config);
        let problems = Calendar::from_config(&config).expect_err(field);
        assert!(
            problems
                .iter()
                .any(|(f, m)| f == field && m.contains(message)),
            "{field}: expected {message:?}, got {problems:?}"
        );
    }
}

#[test]
fn local_time_reads_as_the_plant_clock_on_the_wall() {
    let calendar = plant_calendar();
    assert_eq!(
        calendar.local_text(at("2026-12-07 07:12")),
        "Mon 07:12, 2 on shift"
    );
    assert_eq!(
        calendar.local_text(at("2026-12-13 23:05")),
        "Sun 23:05, closed"
    );
}
