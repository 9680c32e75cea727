//! The plant's working calendar: shifts per weekday, holidays and a fixed offset from UTC, all
//! in plant time (ms since the Unix epoch, see [`crate::clock`]). Pure: instants in, answers
//! out.
//!
//! A shift belongs to the local date it starts on: it works unless that date is a holiday, and
//! one whose end is not after its start runs past midnight into the next day. Shifts that
//! overlap add their operators. Searches forward (the end of a working stretch, the next
//! working instant) look at most [`HORIZON_DAYS`] ahead.

use std::collections::BTreeSet;

use microfab_planner::ShiftWindow;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

use crate::config::{CalendarConfig, PlantConfig};

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 24 * 60 * MS_PER_MINUTE;
/// How far ahead the forward searches look: a stretch still working this far ahead ends there,
/// a calendar with no working time before it never works again.
pub const HORIZON_DAYS: i64 = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    offset: UtcOffset,
    holidays: BTreeSet<Date>,
    shifts: Vec<Shift>,
}

#[derive(Debug, Clone, PartialEq)]
struct Shift {
    /// Indexed by days from Monday.
    days: [bool; 7],
    /// Minutes after local midnight.
    start: i64,
    /// Minutes after the local midnight of the start's date (above 24 h when it runs past
    /// midnight).
    end: i64,
    operators: u32,
}

/// One occurrence of a shift, in plant ms.
#[derive(Debug, Clone, Copy)]
struct Stint {
    from: i64,
    until: i64,
    operators: u32,
}

impl Calendar {
    /// The calendar of a config, or every problem as (field, message).
    pub fn from_config(c: &CalendarConfig) -> Result<Calendar, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let offset = parse_offset(&c.utc_offset).unwrap_or_else(|| {
            problems.push((
                "calendar.utc_offset".into(),
                format!("'{}' is not an offset like \"+01:00\"", c.utc_offset),
            ));
            UtcOffset::UTC
        });
        let mut holidays = BTreeSet::new();
        for (i, text) in c.holidays.iter().enumerate() {
            match parse_date(text) {
                Some(date) => {
                    holidays.insert(date);
                }
                None => problems.push((
                    format!("calendar.holidays[{i}]"),
                    format!("'{text}' is not a date like \"2026-12-25\""),
                )),
            }
        }
        if c.shifts.is_empty() {
            problems.push((
                "calendar.shifts".into(),
                "a calendar needs at least one shift".into(),
            ));
        }
        let mut shifts = Vec::new();
        for (i, s) in c.shifts.iter().enumerate() {
            let field = |name: &str| format!("calendar.shifts[{i}].{name}");
            let mut days = [false; 7];
            for (k, day) in s.days.iter().enumerate() {
                match parse_weekday(day) {
                    Some(d) => days[usize::from(d.number_days_from_monday())] = true,
                    None => problems.push((
                        field(&format!("days[{k}]")),
                        format!("'{day}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
                    )),
                }
            }
            if s.days.is_empty() {
                problems.push((field("days"), "a shift works on at least one day".into()));
            }
            let start = parse_clock(&s.start);
            let end = parse_clock(&s.end);
            for (name, text, parsed) in [("start", &s.start, start), ("end", &s.end, end)] {
                if parsed.is_none() {
                    problems.push((
                        field(name),
                        format!("'{text}' is not a time of day like \"06:00\""),
                    ));
                }
            }
            if s.operators == 0 {
                problems.push((
                    field("operators"),
                    "a shift has at least one operator".into(),
                ));
            }
            let (Some(start), Some(end)) = (start, end) else {
                continue;
            };
            if start == end {
                problems.push((
                    field("end"),
                    format!("the shift ends when it starts ({}): it has no time", s.end),
                ));
                continue;
            }
            shifts.push(Shift {
                days,
                start,
                end: if end > start { end } else { end + 24 * 60 },
                operators: s.operators,
            });
        }
        if problems.is_empty() {
            Ok(Calendar {
                offset,
                holidays,
                shifts,
            })
        } else {
            Err(problems)
        }
    }

    pub fn is_working(&self, plant_ms: i64) -> bool {
        self.operators_at(plant_ms) > 0
    }

    /// The end of the working stretch containing `plant_ms` (shifts that touch or overlap make
    /// one stretch); `None` outside working time.
    pub fn working_until(&self, plant_ms: i64) -> Option<i64> {
        if !self.is_working(plant_ms) {
            return None;
        }
        let limit = plant_ms + HORIZON_DAYS * MS_PER_DAY;
        let mut end = plant_ms;
        // Extend the stretch through every stint that starts before it ends.
        loop {
            let extended = self
                .stints(end - MS_PER_DAY, end + MS_PER_DAY)
                .into_iter()
                .filter(|s| s.from <= end && s.until > end)
                .map(|s| s.until)
                .max();
            match extended {
                Some(until) if until < limit => end = until,
                Some(_) => return Some(limit),
                None => return Some(end),
            }
        }
    }

    /// The next instant at or after `plant_ms` that is working time (`i64::MAX` when none
    /// within [`HORIZON_DAYS`]).
    pub fn next_working(&self, plant_ms: i64) -> i64 {
        if self.is_working(plant_ms) {
            return plant_ms;
        }
        let limit = plant_ms + HORIZON_DAYS * MS_PER_DAY;
        let mut from = plant_ms;
        while from < limit {
            let until = (from + 7 * MS_PER_DAY).min(limit);
            if let Some(start) = self
                .stints(from, until)
                .into_iter()
                .map(|s| s.from)
                .filter(|&start| start >= plant_ms)
                .min()
            {
                return start;
            }
            from = until;
        }
        i64::MAX
    }

    /// Operators on shift at `plant_ms` (0 outside working time).
    pub fn operators_at(&self, plant_ms: i64) -> u32 {
        self.stints(plant_ms, plant_ms + 1)
            .into_iter()
            .filter(|s| s.from <= plant_ms && plant_ms < s.until)
            .map(|s| s.operators)
            .sum()
    }

    /// The working time in `[from, until)` as windows with a constant number of operators,
    /// in order, without overlaps (overlapping shifts are summed, touching windows with the
    /// same operators merged).
    pub fn shifts(&self, from: i64, until: i64) -> Vec<ShiftWindow> {
        if until <= from {
            return Vec::new();
        }
        let stints = self.stints(from, until);
        let mut cuts: Vec<i64> = stints
            .iter()
            .flat_map(|s| [s.from, s.until])
            .chain([from, until])
            .filter(|t| (from..=until).contains(t))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut windows: Vec<ShiftWindow> = Vec::new();
        for pair in cuts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let operators: u32 = stints
                .iter()
                .filter(|s| s.from <= a && b <= s.until)
                .map(|s| s.operators)
                .sum();
            if operators == 0 {
                continue;
            }
            match windows.last_mut() {
                Some(last) if last.until == a && last.operators == operators => last.until = b,
                _ => windows.push(ShiftWindow {
                    from: a,
                    until: b,
                    operators,
                }),
            }
        }
        windows
    }

    /// The plant's local time at `plant_ms`, e.g. "Mon 07:12", with the operators on shift
    /// ("2 on shift") or "closed".
    pub fn local_text(&self, plant_ms: i64) -> String {
        let local =
            (OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(plant_ms)).to_offset(self.offset);
        let day = &local.weekday().to_string()[..3];
        let on_shift = match self.operators_at(plant_ms) {
            0 => "closed".to_string(),
            n => format!("{n} on shift"),
        };
        format!(
            "{day} {:02}:{:02}, {on_shift}",
            local.hour(),
            local.minute()
        )
    }

    /// Every shift occurrence that overlaps `[from, until)`.
    fn stints(&self, from: i64, until: i64) -> Vec<Stint> {
        // A shift lasts under two days from its date's midnight, so one starting the day
        // before `from`'s date is the earliest that can reach it.
        let Some(mut date) = self.local_date(from).previous_day() else {
            return Vec::new();
        };
        let mut stints = Vec::new();
        loop {
            let midnight = self.midnight(date);
            if midnight >= until {
                break;
            }
            if !self.holidays.contains(&date) {
                for shift in self
                    .shifts
                    .iter()
                    .filter(|s| s.days[usize::from(date.weekday().number_days_from_monday())])
                {
                    let stint = Stint {
                        from: midnight + shift.start * MS_PER_MINUTE,
                        until: midnight + shift.end * MS_PER_MINUTE,
                        operators: shift.operators,
                    };
                    if stint.from < until && stint.until > from {
                        stints.push(stint);
                    }
                }
            }
            match date.next_day() {
                Some(next) => date = next,
                None => break,
            }
        }
        stints
    }

    fn local_date(&self, plant_ms: i64) -> Date {
        let utc = OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(plant_ms);
        utc.to_offset(self.offset).date()
    }

    fn midnight(&self, date: Date) -> i64 {
        let local = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(self.offset);
        (local.unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// May a run of `run_ms` (plant time) start at `now_plant` on a machine? Yes without a
/// calendar or on a machine allowed to run after hours; otherwise only in working time and
/// when it ends within the working stretch it starts in. (An operator who confirms a load by
/// hand starts it anyway: this is the scheduler's rule, not theirs.)
pub fn may_start(
    calendar: Option<&Calendar>,
    after_hours: bool,
    now_plant: i64,
    run_ms: i64,
) -> bool {
    let Some(calendar) = calendar else {
        return true;
    };
    if after_hours {
        return true;
    }
    calendar
        .working_until(now_plant)
        .is_some_and(|end| now_plant.saturating_add(run_ms.max(0)) <= end)
}

impl PlantConfig {
    /// The plant's calendar; `None` when it has none (always working). A config that passed
    /// its check has a valid one; an invalid one (never checked) counts as none.
    pub fn calendar(&self) -> Option<Calendar> {
        self.calendar
            .as_ref()
            .and_then(|c| Calendar::from_config(c.get_ref()).ok())
    }
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    Some(match text {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// "HH:MM" (00:00 to 23:59) as minutes after midnight.
fn parse_clock(text: &str) -> Option<i64> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return None;
    }
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// "+HH:MM" or "-HH:MM" (at most 23:59 either way).
fn parse_offset(text: &str) -> Option<UtcOffset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let minutes = parse_clock(&text[1..])?;
    UtcOffset::from_whole_seconds((sign * minutes * 60) as i32).ok()
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

#[cfg(test)]
mod tests;
