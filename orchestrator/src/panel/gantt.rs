//! The plan as a Gantt chart: an inline SVG, one row per machine, a bar per run (its setup
//! block before it) coloured by order, the now-line and the orders' due dates; below the
//! machines, the operators' planned work (setups, loads, unloads, maintenance) in as many rows
//! as tasks overlap, so each row reads as one person's day. Pure: the plan view, the due
//! dates, the instant and the words in, the SVG text out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::plant::live_views::PlanView;

/// The chart's words, from the panel's catalog in the reader's language.
pub struct GanttWords<'a> {
    /// Names the chart for screen readers.
    pub title: &'a str,
    pub now: &'a str,
    pub due: &'a str,
    pub setup: &'a str,
    pub on_machine: &'a str,
    /// Label of the operator rows ("operator 1", "operator 2", …).
    pub operator: &'a str,
    pub load: &'a str,
    pub unload: &'a str,
    pub maintenance: &'a str,
}

const DAY_MS: i64 = 86_400_000;

/// Pixel geometry of the chart's drawing (the SVG scales to its box with `viewBox`).
const WIDTH: f64 = 1200.0;
const LABEL_WIDTH: f64 = 130.0;
const AXIS_HEIGHT: f64 = 36.0;
const ROW_HEIGHT: f64 = 30.0;
const BAR_HEIGHT: f64 = 20.0;
const RIGHT_MARGIN: f64 = 12.0;

/// Colours told apart at a glance; an order keeps its colour while its id does not change.
const ORDER_COLOURS: [&str; 10] = [
    "#2f6fb5", "#d9822b", "#3a9e5c", "#b5446e", "#7a5cc4", "#1f9aa8", "#a3782c", "#5b7083",
    "#c4543a", "#4d8f2a",
];

/// The orders a plan holds runs of, each with its colour, for the chart's legend.
pub fn legend(plan: &PlanView) -> Vec<(String, &'static str)> {
    let mut orders: Vec<&str> = plan.rows.iter().map(|r| r.order_id.as_str()).collect();
    orders.sort();
    orders.dedup();
    orders
        .into_iter()
        .map(|order| (order.to_string(), order_colour(order)))
        .collect()
}

/// A colour for an order: a hash of its id into [`ORDER_COLOURS`].
pub fn order_colour(order_id: &str) -> &'static str {
    let hash = order_id.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    ORDER_COLOURS[hash as usize % ORDER_COLOURS.len()]
}

pub(super) fn parse_ms(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn clock(ms: i64, with_date: bool) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    if with_date {
        format!(
            "{:02}-{:02} {:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    } else {
        format!("{:02}:{:02}", t.hour(), t.minute())
    }
}

/// A tick's label when ticks are a day or more apart: the date.
fn date(ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    format!("{:02}-{:02}", u8::from(t.month()), t.day())
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A tick step (ms) that gives at most about eight ticks over `span_ms`.
fn tick_step(span_ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    [5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080]
        .into_iter()
        .map(|minutes| minutes * MINUTE)
        .find(|step| span_ms / step <= 8)
        .unwrap_or(10080 * MINUTE)
}

struct Bar<'p> {
    machine: &'p str,
    run_id: i64,
    order_id: &'p str,
    step: Option<&'p str>,
    frozen: bool,
    setup_start: i64,
    start: i64,
    end: i64,
}

struct TaskBar<'p> {
    machine: &'p str,
    run_id: Option<i64>,
    order_id: Option<&'p str>,
    kind: &'p str,
    start: i64,
    end: i64,
}

/// Operator tasks in rows where none overlap (first row with room, by start): as many rows as
/// tasks are ever planned at once, which is at most the operators on shift.
fn operator_lanes<'p>(mut tasks: Vec<TaskBar<'p>>) -> Vec<Vec<TaskBar<'p>>> {
    tasks.sort_by_key(|t| (t.start, t.end));
    let mut lanes: Vec<Vec<TaskBar<'p>>> = Vec::new();
    for task in tasks {
        match lanes
            .iter_mut()
            .find(|lane| lane.last().is_none_or(|last| last.end <= task.start))
        {
            Some(lane) => lane.push(task),
            None => lanes.push(vec![task]),
        }
    }
    lanes
}

/// The plan as an SVG Gantt chart. `machines` are the rows, in order (machines with nothing
/// planned keep their row; a machine only the plan names is added after them). `due` gives
/// each order's due date (ms); a due date inside the time axis is drawn in the order's colour.
/// With `highlight`, only the machines that order's runs are on are drawn, its runs stand out
/// among the others there, and its due date is drawn, or named at the right edge when it falls
/// after the plan's end (the axis keeps the plan's scale).
pub fn gantt_svg(
    plan: &PlanView,
    machines: &[String],
    due: &BTreeMap<String, i64>,
    now_ms: i64,
    highlight: Option<&str>,
    words: &GanttWords<'_>,
) -> String {
    let bars: Vec<Bar<'_>> = plan
        .rows
        .iter()
        .filter_map(|row| {
            Some(Bar {
                machine: &row.machine_id,
                run_id: row.run_id,
                order_id: &row.order_id,
                step: row.step.as_deref(),
                frozen: row.frozen,
                setup_start: parse_ms(&row.setup_start)?,
                start: parse_ms(&row.start)?,
                end: parse_ms(&row.end)?,
            })
        })
        .collect();
    let order_of_run: BTreeMap<i64, &str> = bars.iter().map(|b| (b.run_id, b.order_id)).collect();
    let lanes = operator_lanes(
        plan.operator_tasks
            .iter()
            .filter_map(|t| {
                Some(TaskBar {
                    machine: &t.machine_id,
                    run_id: t.run_id,
                    order_id: t.run_id.and_then(|r| order_of_run.get(&r).copied()),
                    kind: &t.kind,
                    start: parse_ms(&t.start)?,
                    end: parse_ms(&t.end)?,
                })
            })
            .collect(),
    );
    let mut rows: Vec<&str> = machines.iter().map(String::as_str).collect();
    for bar in &bars {
        if !rows.contains(&bar.machine) {
            rows.push(bar.machine);
        }
    }
    if let Some(order) = highlight {
        rows.retain(|machine| {
            bars.iter()
                .any(|b| b.machine == *machine && b.order_id == order)
        });
    }

    let tasks = lanes.iter().flatten();
    let from = bars
        .iter()
        .map(|b| b.setup_start)
        .chain(tasks.clone().map(|t| t.start))
        .chain([now_ms])
        .min()
        .unwrap_or(now_ms);
    let to = bars
        .iter()
        .map(|b| b.end)
        .chain(tasks.map(|t| t.end))
        .chain([now_ms + 3_600_000])
        .max()
        .unwrap_or(now_ms)
        .max(from + 1);
    let span = (to - from) as f64;
    let plot_width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
    let x = |ms: i64| LABEL_WIDTH + (ms - from) as f64 / span * plot_width;
    let height = AXIS_HEIGHT + ROW_HEIGHT * (rows.len() + lanes.len()).max(1) as f64 + 4.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="gantt" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{title}" data-testid="gantt"><title>{title}</title>"#,
        title = escape(words.title)
    );
    svg.push_str(r##"<defs><pattern id="gantt-setup" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#9aa5b1"/></pattern></defs>"##);

    // The time axis: ticks on whole steps, the date on a day's first tick and the first one.
    let step = tick_step(to - from);
    let mut tick = from.div_euclid(step) * step + step;
    let mut last_day = None;
    while tick < to {
        let day = tick.div_euclid(86_400_000);
        let tx = x(tick);
        let _ = write!(
            svg,
            r##"<line class="gantt-tick" x1="{tx:.1}" y1="{AXIS_HEIGHT}" x2="{tx:.1}" y2="{height}" stroke="#e3e7eb"/><text x="{tx:.1}" y="{ty}" font-size="12" text-anchor="middle" fill="#5b6570">{label}</text>"##,
            ty = AXIS_HEIGHT - 8.0,
            label = if step >= DAY_MS {
                date(tick)
            } else {
                clock(tick, last_day != Some(day))
            },
        );
        last_day = Some(day);
        tick += step;
    }

    for (index, machine) in rows.iter().enumerate() {
        let top = AXIS_HEIGHT + ROW_HEIGHT * index as f64;
        let _ = write!(
            svg,
            r##"<g class="gantt-row" data-machine="{id}"><rect x="0" y="{top}" width="{WIDTH}" height="{ROW_HEIGHT}" fill="{band}"/><text x="8" y="{ty:.1}" font-size="13" fill="#24292f">{id}</text>"##,
            id = escape(machine),
            band = if index % 2 == 0 { "#f7f9fa" } else { "#ffffff" },
            ty = top + ROW_HEIGHT / 2.0 + 4.5,
        );
        for bar in bars.iter().filter(|b| b.machine == *machine) {
            let bar_top = top + (ROW_HEIGHT - BAR_HEIGHT) / 2.0;
            let mark = match highlight {
                Some(order) if order == bar.order_id => " highlight",
                Some(_) => " faded",
                None => "",
            };
            let tooltip = format!(
                "{order} · {step} · #{run} · {start}–{end}{frozen}",
                order = bar.order_id,
                step = bar.step.unwrap_or("-"),
                run = bar.run_id,
                start = clock(bar.start, true),
                end = clock(bar.end, false),
                frozen = if bar.frozen {
                    format!(" · {}", words.on_machine)
                } else {
                    String::new()
                },
            );
            let _ = write!(
                svg,
                r#"<g class="gantt-bar{mark}" data-run="{run}" data-order="{order}"><title>{tooltip}</title>"#,
                run = bar.run_id,
                order = escape(bar.order_id),
                tooltip = escape(&tooltip),
            );
            if bar.start > bar.setup_start {
                let _ = write!(
                    svg,
                    r#"<rect class="gantt-setup" x="{sx:.1}" y="{bar_top:.1}" width="{sw:.1}" height="{BAR_HEIGHT}" fill="url(#gantt-setup)"><title>{setup}</title></rect>"#,
                    sx = x(bar.setup_start),
                    sw = (x(bar.start) - x(bar.setup_start)).max(1.0),
                    setup = escape(words.setup),
                );
            }
            let _ = write!(
                svg,
                r##"<rect class="gantt-run" x="{rx:.1}" y="{bar_top:.1}" width="{rw:.1}" height="{BAR_HEIGHT}" rx="3" fill="{colour}"{outline}/></g>"##,
                rx = x(bar.start),
                rw = (x(bar.end) - x(bar.start)).max(2.0),
                colour = order_colour(bar.order_id),
                outline = if bar.frozen {
                    r##" stroke="#1b1f23" stroke-width="2""##
                } else {
                    ""
                },
            );
        }
        svg.push_str("</g>");
    }

    for (index, lane) in lanes.iter().enumerate() {
        let top = AXIS_HEIGHT + ROW_HEIGHT * (rows.len() + index) as f64;
        let bar_top = top + (ROW_HEIGHT - BAR_HEIGHT) / 2.0;
        let _ = write!(
            svg,
            r##"<g class="gantt-row gantt-operators" data-lane="{index}"><rect x="0" y="{top}" width="{WIDTH}" height="{ROW_HEIGHT}" fill="#eef3f8"/><text x="8" y="{ty:.1}" font-size="13" fill="#24292f">{label} {number}</text>"##,
            ty = top + ROW_HEIGHT / 2.0 + 4.5,
            label = escape(words.operator),
            number = index + 1,
        );
        for task in lane {
            let mark = match (highlight, task.order_id) {
                (Some(order), Some(of)) if order == of => " highlight",
                (Some(_), _) => " faded",
                (None, _) => "",
            };
            let word = match task.kind {
                "setup" => words.setup,
                "load" => words.load,
                "unload" => words.unload,
                "maintenance" => words.maintenance,
                other => other,
            };
            let tooltip = format!(
                "{word} · {machine}{run} · {start}–{end}",
                machine = task.machine,
                run = task.run_id.map(|r| format!(" · #{r}")).unwrap_or_default(),
                start = clock(task.start, true),
                end = clock(task.end, false),
            );
            let fill = match (task.kind, task.order_id) {
                ("setup", _) => "url(#gantt-setup)",
                (_, Some(order)) if task.kind != "maintenance" => order_colour(order),
                _ => "#5b6570",
            };
            let _ = write!(
                svg,
                r#"<g class="gantt-task{mark}" data-kind="{kind}" data-machine="{machine}" data-run="{run}"><title>{tooltip}</title><rect class="gantt-task-bar" x="{tx:.1}" y="{bar_top:.1}" width="{tw:.1}" height="{BAR_HEIGHT}" rx="2" fill="{fill}"/></g>"#,
                kind = escape(task.kind),
                machine = escape(task.machine),
                run = task.run_id.map(|r| r.to_string()).unwrap_or_default(),
                tooltip = escape(&tooltip),
                tx = x(task.start),
                tw = (x(task.end) - x(task.start)).max(2.0),
            );
        }
        svg.push_str("</g>");
    }

    for (order, at) in due {
        if highlight.is_some_and(|h| h != order) {
            continue;
        }
        if *at > to && highlight.is_some() {
            // Due after the plan's end: named at the right edge, the axis keeps the plan's scale.
            let _ = write!(
                svg,
                r#"<g class="gantt-due later" data-order="{id}"><text x="{ex:.1}" y="10" font-size="11" font-weight="600" text-anchor="end" fill="{colour}">{word} {when} →</text></g>"#,
                id = escape(order),
                ex = WIDTH - RIGHT_MARGIN,
                colour = order_colour(order),
                word = escape(words.due),
                when = clock(*at, true),
            );
            continue;
        }
        if *at < from || *at > to {
            continue;
        }
        let dx = x(*at);
        let _ = write!(
            svg,
            r#"<g class="gantt-due" data-order="{id}"><title>{word} {id}: {when}</title><line x1="{dx:.1}" y1="{AXIS_HEIGHT}" x2="{dx:.1}" y2="{height}" stroke="{colour}" stroke-width="2" stroke-dasharray="2 3"/><path d="M{l:.1} {AXIS_HEIGHT} L{r:.1} {AXIS_HEIGHT} L{dx:.1} {tip} Z" fill="{colour}"/></g>"#,
            id = escape(order),
            word = escape(words.due),
            when = clock(*at, true),
            colour = order_colour(order),
            l = dx - 5.0,
            r = dx + 5.0,
            tip = AXIS_HEIGHT + 7.0,
        );
    }

    let nx = x(now_ms);
    let _ = write!(
        svg,
        r##"<g class="gantt-now"><line x1="{nx:.1}" y1="{top}" x2="{nx:.1}" y2="{height}" stroke="#d1242f" stroke-width="2"/><text x="{nx:.1}" y="10" font-size="11" font-weight="600" text-anchor="middle" fill="#d1242f">{now}</text></g>"##,
        top = 13.0,
        now = escape(words.now),
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{GanttWords, gantt_svg, order_colour};
    use crate::plant::live_views::{GanttRow, OperatorTaskRow, PlanView};

    const WORDS: GanttWords<'static> = GanttWords {
        title: "Plan",
        now: "now",
        due: "due",
        setup: "setup",
        on_machine: "on the machine",
        operator: "operator",
        load: "load",
        unload: "unload",
        maintenance: "maintenance",
    };

    fn row(
        machine: &str,
        run_id: i64,
        order: &str,
        setup: &str,
        start: &str,
        end: &str,
    ) -> GanttRow {
        GanttRow {
            machine_id: machine.into(),
            run_id,
            order_id: order.into(),
            step: Some("cut".into()),
            frozen: run_id == 1,
            setup_start: format!("2030-01-01T{setup}:00Z"),
            start: format!("2030-01-01T{start}:00Z"),
            end: format!("2030-01-01T{end}:00Z"),
        }
    }

    /// 10:00 to 12:00 over the plot, so an hour is half the plot's width.
    fn fixed_plan() -> PlanView {
        PlanView {
            planned_at: Some("2030-01-01T10:00:00Z".into()),
            rows: vec![
                row("laser-1", 1, "ord-1", "10:00", "10:00", "11:00"),
                row("laser-1", 2, "ord-2", "11:00", "11:30", "12:00"),
                row("mill-<1>", 3, "ord-1", "10:30", "10:30", "11:00"),
            ],
            operator_tasks: Vec::new(),
            orders: Vec::new(),
            unplanned: Vec::new(),
            objective: None,
            plans_made: 1,
            plans_refused: 0,
        }
    }

    const TEN: i64 = 1_893_492_000_000; // 2030-01-01T10:00:00Z

    fn attribute<'s>(element: &'s str, name: &str) -> &'s str {
        let start = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &element[start..start + element[start..].find('"').unwrap()]
    }

    fn element<'s>(svg: &'s str, after: &str, tag: &str) -> &'s str {
        let from = svg.find(after).unwrap_or_else(|| panic!("no {after}"));
        let start = from + svg[from..].find(tag).unwrap();
        &svg[start..start + svg[start..].find('>').unwrap()]
    }

    #[test]
    fn bars_sit_on_their_machine_rows_at_their_times() {
        let svg = gantt_svg(
            &fixed_plan(),
            &["laser-1".into(), "idle-9".into()],
            &BTreeMap::from([("ord-2".to_string(), TEN + 90 * 60_000)]),
            TEN,
            None,
            &WORDS,
        );
        // Rows: the machines given (an idle one too), then one only the plan names, escaped.
        let laser = svg.find(r#"data-machine="laser-1""#).unwrap();
        let idle = svg.find(r#"data-machine="idle-9""#).unwrap();
        let mill = svg.find(r#"data-machine="mill-&lt;1&gt;""#).unwrap();
        assert!(laser < idle && idle < mill);
        assert!(!svg.contains("mill-<1>"));
        // Plot: 130 to 1188 px for 10:00 to 12:00.
        let run2 = element(&svg, r#"data-run="2""#, "<rect class=\"gantt-run\"");
        assert_eq!(
            attribute(run2, "x"),
            format!("{:.1}", 130.0 + 1058.0 * 0.75)
        );
        assert_eq!(attribute(run2, "width"), format!("{:.1}", 1058.0 * 0.25));
        assert_eq!(attribute(run2, "fill"), order_colour("ord-2"));
        let setup2 = element(&svg, r#"data-run="2""#, "<rect class=\"gantt-setup\"");
        assert_eq!(
            attribute(setup2, "x"),
            format!("{:.1}", 130.0 + 1058.0 * 0.5)
        );
        // A run on the machine is outlined; a run without setup has no setup block.
        let run1 = element(&svg, r#"data-run="1""#, "<rect class=\"gantt-run\"");
        assert!(run1.contains("stroke-width"));
        assert!(!run2.contains("stroke-width"));
        let bar1 = &svg[svg.find(r#"data-run="1""#).unwrap()..];
        assert!(!bar1[..bar1.find("</g>").unwrap()].contains("gantt-setup"));
        // The now-line at the left edge, the due date at 11:30.
        let now = element(&svg, "gantt-now", "<line");
        assert_eq!(attribute(now, "x1"), "130.0");
        let due = element(&svg, r#"class="gantt-due" data-order="ord-2""#, "<line");
        assert_eq!(
            attribute(due, "x1"),
            format!("{:.1}", 130.0 + 1058.0 * 0.75)
        );
        assert!(!svg.contains("faded") && !svg.contains("highlight"));
    }

    #[test]
    fn a_highlighted_order_stands_out_and_a_later_due_date_is_named_at_the_edge() {
        let due = BTreeMap::from([
            ("ord-1".to_string(), TEN + 4 * 3_600_000),
            ("ord-2".to_string(), TEN + 90 * 60_000),
        ]);
        let svg = gantt_svg(
            &fixed_plan(),
            &["idle-9".into(), "laser-1".into()],
            &due,
            TEN,
            Some("ord-1"),
            &WORDS,
        );
        // Only the machines the order is on.
        assert!(!svg.contains(r#"data-machine="idle-9""#));
        assert!(svg.contains(r#"data-machine="laser-1""#));
        assert!(svg.contains(r#"data-machine="mill-&lt;1&gt;""#));
        assert_eq!(svg.matches(r#"class="gantt-bar highlight""#).count(), 2);
        assert_eq!(svg.matches(r#"class="gantt-bar faded""#).count(), 1);
        // Due at 14:00, after the plan: named at the edge, the axis still 10:00 to 12:00;
        // the other order's due date is not drawn.
        assert!(svg.contains(r#"<g class="gantt-due later" data-order="ord-1"><text x="1188.0""#));
        assert!(svg.contains("due 01-01 14:00 →"));
        assert!(!svg.contains(r#"data-order="ord-2"><title>due"#));
        let run2 = element(&svg, r#"data-run="2""#, "<rect class=\"gantt-run\"");
        assert_eq!(
            attribute(run2, "x"),
            format!("{:.1}", 130.0 + 1058.0 * 0.75)
        );
    }

    #[test]
    fn ticks_days_apart_are_labelled_with_their_dates() {
        let mut plan = fixed_plan();
        plan.rows[1].end = "2030-01-20T12:00:00Z".into();
        let svg = gantt_svg(&plan, &[], &BTreeMap::new(), TEN, None, &WORDS);
        assert!(svg.contains(">01-03<") && svg.contains(">01-10<"), "{svg}");
        assert!(!svg.contains(">00:00<"));
    }

    fn task(
        machine: &str,
        run_id: Option<i64>,
        kind: &str,
        start: &str,
        end: &str,
    ) -> OperatorTaskRow {
        OperatorTaskRow {
            machine_id: machine.into(),
            run_id,
            kind: kind.into(),
            start: format!("2030-01-01T{start}:00Z"),
            end: format!("2030-01-01T{end}:00Z"),
        }
    }

    #[test]
    fn operator_tasks_fill_as_many_rows_as_overlap_below_the_machines() {
        let mut plan = fixed_plan();
        plan.operator_tasks = vec![
            task("laser-1", Some(2), "load", "11:15", "11:30"),
            task("mill-<1>", None, "maintenance", "10:00", "10:30"),
            task("laser-1", Some(2), "setup", "11:00", "11:15"),
            task("mill-<1>", Some(3), "unload", "11:00", "11:30"),
            task("laser-1", Some(2), "unload", "12:00", "12:30"),
        ];
        let svg = gantt_svg(
            &plan,
            &["laser-1".into()],
            &BTreeMap::new(),
            TEN,
            None,
            &WORDS,
        );
        // Two tasks at once (11:00–11:15) at most: two operator rows, after the machine rows.
        assert_eq!(svg.matches("gantt-operators").count(), 2);
        let mill = svg.find(r#"data-machine="mill-&lt;1&gt;""#).unwrap();
        let first = svg.find(r#"data-lane="0""#).unwrap();
        let second = svg.find(r#"data-lane="1""#).unwrap();
        assert!(mill < first && first < second);
        assert!(svg.contains(">operator 1<") && svg.contains(">operator 2<"));
        // Row 1: maintenance, setup, load, the last unload; row 2: the mill's unload.
        let lane1 = &svg[first..second];
        assert_eq!(lane1.matches("gantt-task\"").count(), 4);
        assert!(
            svg[second..]
                .contains(r#"data-kind="unload" data-machine="mill-&lt;1&gt;" data-run="3""#)
        );
        // The axis reaches the last unload: 10:00 to 12:30 over 1058 px.
        let load = element(&svg, r#"data-kind="load""#, "<rect");
        assert_eq!(
            attribute(load, "x"),
            format!("{:.1}", 130.0 + 1058.0 * 75.0 / 150.0)
        );
        assert_eq!(
            attribute(load, "width"),
            format!("{:.1}", 1058.0 * 15.0 / 150.0)
        );
        assert_eq!(attribute(load, "fill"), order_colour("ord-2"));
        let setup = element(&svg, r#"data-kind="setup""#, "<rect");
        assert_eq!(attribute(setup, "fill"), "url(#gantt-setup)");
        assert!(svg.contains("<title>maintenance · mill-&lt;1&gt; · 01-01 10:00–10:30</title>"));
        assert!(svg.contains("<title>unload · laser-1 · #2 · 01-01 12:00–12:30</title>"));
        // Highlighting an order marks its tasks and fades the others.
        let svg = gantt_svg(&plan, &[], &BTreeMap::new(), TEN, Some("ord-1"), &WORDS);
        assert_eq!(svg.matches(r#"class="gantt-task highlight""#).count(), 1);
        assert_eq!(svg.matches(r#"class="gantt-task faded""#).count(), 4);
    }

    #[test]
    fn an_empty_plan_is_an_empty_chart_with_the_now_line() {
        let mut plan = fixed_plan();
        plan.rows.clear();
        let svg = gantt_svg(
            &plan,
            &["laser-1".into()],
            &BTreeMap::new(),
            TEN,
            None,
            &WORDS,
        );
        assert!(svg.contains(r#"data-machine="laser-1""#));
        assert!(!svg.contains("gantt-bar") && !svg.contains("gantt-operators"));
        assert!(svg.contains("gantt-now"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
