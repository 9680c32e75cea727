//! The catalog on a fixed snapshot: every family's name and label set (so a rename fails
//! here before a dashboard finds out), and values where the encoding does arithmetic.

use std::collections::{BTreeMap, BTreeSet};

use microfab_drivers::status::{LinkStatus, TemperatureReading};
use microfab_drivers::traffic::LinkCounters;

use super::*;
use crate::amount::Amount;
use crate::plant::metrics_view::{
    ActiveOrder, Histogram, MachineMetrics, MaterialMetrics, RunDurations,
    StepUnits,
};
use crate::plant::state::{JobState, MachineState, OrderState};
use crate::plant::tasks::TaskKind;
use crate::plant::views::{MACHINE_VIEW_STATES, MaterialView, shown_machine_state};

fn snapshot() -> Snapshot {
    let mut durations = BTreeMap::new();
    // Two runs planned at 100 s, done in 50 s and 700 s.
    let histogram = |cumulative: [u64; 12], sum: f64| Histogram {
        cumulative: cumulative.to_vec(),
        count: 2,
        sum,
    };
    durations.insert(
        "laser".to_string(),
        RunDurations {
            planned: histogram([0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], 200.0),
            actual: histogram([1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2], 750.0),
        },
    );
    let plant = PlantMetrics {
        units: vec![StepUnits {
            product: "Bench bracket".into(),
            step: "gussets".into(),
            good: 12,
            scrapped: 1,
        }],
        orders: OrderState::ALL.iter().map(|s| (*s, 1)).collect(),
        active_orders: vec![ActiveOrder {
            id: "ord-1".into(),
            product: "Bench bracket".into(),
            quantity: 20,
            good: 12,
            due_ms: 1_800_000_000_000,
            eta_ms: Some(1_800_000_500_000),
            late: true,
        }],
        jobs: JobState::ALL.iter().map(|s| (*s, 2)).collect(),
        wip_units: 6,
        queued_runs: [("laser".to_string(), 3)].into(),
        durations,
        machines: vec![MachineMetrics {
            id: "laser-1".into(),
            state: "held".into(),
            capabilities: vec!["laser".into()],
            busy_ms: 90_500,
            held_up_ms: 1_000,
        }],
        operator_tasks: TaskKind::ALL.iter().map(|k| (*k, 0)).collect(),
        materials: vec![MaterialMetrics {
            account: MaterialView {
                id: "ply6@common".into(),
                material: "plywood-birch-6mm".into(),
                unit: "sheet".into(),
                owner: "common".into(),
                origin: "recycled".into(),
                on_hand: Amount(97_500),
                reserved: Amount(2_000),
                available: Amount(95_500),
                reorder_level: Amount(10_000),
                below_reorder_level: false,
            },
            consumed: Amount(2_500),
        }],
        last_event_seq: 42,
    };
    let status = MachineStatus {
        condition: None,
        job_id: None,
        progress: None,
        link: Some(LinkStatus {
            up: true,
            counters: LinkCounters {
                resends: 3,
                errors: 1,
                reconnects: 2,
                ..LinkCounters::default()
            },
        }),
        temperatures: vec![TemperatureReading {
            sensor: "T0".into(),
            actual: 210.5,
            target: Some(215.0),
        }],
        updated_ms: 0,
    };
    Snapshot {
        version: "1.2.3".into(),
        plant_name: "test plant".into(),
        plant,
        live: vec![("printer-1".into(), status)],
    }
}

/// Each sample's name with its label names (`le` left out), from a text body.
fn signatures(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let keys: Vec<&str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k))
                .filter(|k| *k != "le")
                .collect();
            format!("{name}{{{}}}", keys.join(","))
        })
        .collect()
}

#[test]
fn every_metric_of_the_catalog_has_its_name_and_labels() {
    let body = render(snapshot(), &ProcessMetrics::default(), Format::Prometheus);
    let expected: BTreeSet<String> = [
        "microfab_build_info{version,plant}",
        "microfab_units_total{product,step,result}",
        "microfab_orders{state}",
        "microfab_orders_late{}",
        "microfab_order_quantity_units{order,product}",
        "microfab_order_good_units{order,product}",
        "microfab_order_due_timestamp_seconds{order,product}",
        "microfab_order_eta_timestamp_seconds{order,product}",
        "microfab_jobs{state}",
        "microfab_wip_units{}",
        "microfab_queued_runs{capability}",
        "microfab_job_duration_seconds_bucket{capability,kind}",
        "microfab_job_duration_seconds_sum{capability,kind}",
        "microfab_job_duration_seconds_count{capability,kind}",
        "microfab_machine_state{machine,state}",
        "microfab_machine_capability{machine,capability}",
        "microfab_machine_busy_seconds_total{machine}",
        "microfab_machine_held_up_seconds_total{machine}",
        "microfab_machine_link_up{machine}",
        "microfab_machine_link_resends_total{machine}",
        "microfab_machine_link_errors_total{machine}",
        "microfab_machine_link_reconnects_total{machine}",
        "microfab_machine_temperature_celsius{machine,sensor}",
        "microfab_operator_tasks{kind}",
        "microfab_material_on_hand{account,material,owner,origin,unit}",
        "microfab_material_reserved{account,material,owner,origin,unit}",
        "microfab_material_reorder_level{account,material,owner,origin,unit}",
        "microfab_material_consumed_total{account,material,owner,origin,unit}",
        "microfab_events_persisted_total{}",
        "microfab_dispatch_latency_seconds_bucket{}",
        "microfab_dispatch_latency_seconds_sum{}",
        "microfab_dispatch_latency_seconds_count{}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(signatures(&body), expected, "{body}");
}

#[test]
fn values_are_in_base_units_with_every_state_spelled_out() {
    let process = ProcessMetrics::default();
    process.run_dispatched(std::time::Duration::from_millis(3));
    let body = render(snapshot(), &process, Format::Prometheus);
    for line in [
        "microfab_build_info{version=\"1.2.3\",plant=\"test plant\"} 1",
        "microfab_units_total{product=\"Bench bracket\",step=\"gussets\",result=\"scrapped\"} 1",
        "microfab_orders_late 1",
        "microfab_order_due_timestamp_seconds{order=\"ord-1\",product=\"Bench bracket\"} 1800000000.0",
        "microfab_job_duration_seconds_bucket{capability=\"laser\",kind=\"actual\",le=\"60\"} 1",
        "microfab_job_duration_seconds_bucket{capability=\"laser\",kind=\"actual\",le=\"900\"} 2",
        "microfab_job_duration_seconds_bucket{capability=\"laser\",kind=\"actual\",le=\"600\"} 1",
        "microfab_job_duration_seconds_bucket{capability=\"laser\",kind=\"actual\",le=\"+Inf\"} 2",
        "microfab_job_duration_seconds_sum{capability=\"laser\",kind=\"planned\"} 200.0",
        "microfab_machine_state{machine=\"laser-1\",state=\"held\"} 1",
        "microfab_machine_state{machine=\"laser-1\",state=\"idle\"} 0",
        "microfab_machine_busy_seconds_total{machine=\"laser-1\"} 90.5",
        "microfab_machine_link_resends_total{machine=\"printer-1\"} 3",
        "microfab_machine_temperature_celsius{machine=\"printer-1\",sensor=\"T0\"} 210.5",
        "microfab_material_on_hand{account=\"ply6@common\",material=\"plywood-birch-6mm\",owner=\"common\",origin=\"recycled\",unit=\"sheet\"} 97.5",
        "microfab_material_consumed_total{account=\"ply6@common\",material=\"plywood-birch-6mm\",owner=\"common\",origin=\"recycled\",unit=\"sheet\"} 2.5",
        "microfab_events_persisted_total 42",
        "microfab_dispatch_latency_seconds_bucket{le=\"0.004\"} 1",
        "microfab_dispatch_latency_seconds_count 1",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in\n{body}");
    }
    let states = body
        .lines()
        .filter(|l| l.starts_with("microfab_machine_state{"))
        .count();
    assert_eq!(states, MACHINE_VIEW_STATES.len());
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("microfab_orders{"))
            .count(),
        OrderState::ALL.len()
    );
}

#[test]
fn openmetrics_is_served_to_who_asks_for_it_and_ends_with_eof() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
    assert_eq!(Format::from_accept(None), Format::Prometheus);
    let body = render(snapshot(), &ProcessMetrics::default(), Format::OpenMetrics);
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
    assert!(body.contains("# TYPE microfab_units counter\n"), "{body}");
    assert!(body.contains("# UNIT microfab_job_duration_seconds seconds\n"));
    assert!(body.contains("# TYPE microfab_build info\n"));
}

/// The metric's states are the view's: whatever the store holds, the view shows one of them.
#[test]
fn every_machine_view_state_is_in_the_metric() {
    for state in MachineState::ALL {
        for maintenance in [false, true] {
            for holding_run in [false, true] {
                let shown = shown_machine_state(*state, maintenance, holding_run);
                assert!(MACHINE_VIEW_STATES.contains(&shown.as_str()), "{shown}");
            }
        }
    }
}
