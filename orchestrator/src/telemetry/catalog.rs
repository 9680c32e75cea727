//! The catalog (`docs/metrics.md`) encoded from one [`Snapshot`]: every family's name, help,
//! type and labels are here. Counters are named without `_total` and units without their
//! suffix: the encoder adds them (`microfab_units` → `microfab_units_total`).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Unit;

use super::Snapshot;
use crate::plant::metrics_view::{DURATION_BUCKETS, Histogram};
use crate::plant::views::MACHINE_VIEW_STATES;

#[derive(Debug)]
pub(super) struct PlantCollector(pub(super) Snapshot);

impl Collector for PlantCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.0;
        let plant = &s.plant;
        let e = &mut encoder;

        let build = Info::new([("version", s.version.as_str()), ("plant", s.plant_name.as_str())]);
        build.encode(e.encode_descriptor(
            "microfab_build",
            "The running build and the plant's name.",
            None,
            MetricType::Info,
        )?)?;

        family(
            e,
            "microfab_units",
            "Units made at each step of each product, by result (steps' counts).",
            None,
            MetricType::Counter,
            plant.units.iter().flat_map(|u| {
                [("good", u.good), ("scrapped", u.scrapped)].map(|(result, n)| {
                    (
                        [
                            ("product", u.product.as_str()),
                            ("step", u.step.as_str()),
                            ("result", result),
                        ],
                        counter(n),
                    )
                })
            }),
        )?;
        family(
            e,
            "microfab_orders",
            "Orders by state.",
            None,
            MetricType::Gauge,
            plant
                .orders
                .iter()
                .map(|(state, n)| ([("state", state.as_str())], ConstGauge::new(*n))),
        )?;
        let late = plant.active_orders.iter().filter(|o| o.late).count() as i64;
        single(
            e,
            "microfab_orders_late",
            "Active orders past their due date or projected (plan ETA) after it.",
            ConstGauge::new(late),
        )?;
        let order_labels = |o: &crate::plant::metrics_view::ActiveOrder| {
            [("order", o.id.clone()), ("product", o.product.clone())]
        };
        family(
            e,
            "microfab_order_quantity_units",
            "An active order's quantity.",
            None,
            MetricType::Gauge,
            plant
                .active_orders
                .iter()
                .map(|o| (order_labels(o), ConstGauge::new(o.quantity))),
        )?;
        family(
            e,
            "microfab_order_good_units",
            "An active order's good units so far.",
            None,
            MetricType::Gauge,
            plant
                .active_orders
                .iter()
                .map(|o| (order_labels(o), ConstGauge::new(o.good))),
        )?;
        family(
            e,
            "microfab_order_due_timestamp",
            "An active order's due date (Unix seconds, plant time).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            plant
                .active_orders
                .iter()
                .map(|o| (order_labels(o), seconds_gauge(o.due_ms))),
        )?;
        family(
            e,
            "microfab_order_eta_timestamp",
            "An active order's ETA in the plan (Unix seconds, plant time); absent while no plan has it.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            plant
                .active_orders
                .iter()
                .filter_map(|o| Some((order_labels(o), seconds_gauge(o.eta_ms?)))),
        )?;

        family(
            e,
            "microfab_jobs",
            "Runs by state.",
            None,
            MetricType::Gauge,
            plant
                .jobs
                .iter()
                .map(|(state, n)| ([("state", state.as_str())], ConstGauge::new(*n))),
        )?;
        single(
            e,
            "microfab_wip_units",
            "Units in runs given to machines and not settled: awaiting load, dispatched, running, awaiting unload, interrupted.",
            ConstGauge::new(plant.wip_units),
        )?;
        family(
            e,
            "microfab_queued_runs",
            "Planned runs not yet given to a machine, by the capability their step needs.",
            None,
            MetricType::Gauge,
            plant
                .queued_runs
                .iter()
                .map(|(capability, n)| ([("capability", capability.as_str())], ConstGauge::new(*n))),
        )?;
        family(
            e,
            "microfab_job_duration",
            "Runs done: the planned duration (the step's run time at the machine's speed) and the actual one (start to end), plant seconds.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
            plant.durations.iter().flat_map(|(capability, d)| {
                [("planned", &d.planned), ("actual", &d.actual)].map(|(kind, histogram)| {
                    (
                        [("capability", capability.as_str()), ("kind", kind)],
                        ConstHistogram(histogram),
                    )
                })
            }),
        )?;

        let machines = &plant.machines;
        family(
            e,
            "microfab_machine_state",
            "One series per state the machine view can show; 1 for the machine's state now.",
            None,
            MetricType::Gauge,
            machines.iter().flat_map(|m| {
                MACHINE_VIEW_STATES.map(|state| {
                    (
                        [("machine", m.id.as_str()), ("state", state)],
                        ConstGauge::new(i64::from(m.state == state)),
                    )
                })
            }),
        )?;
        family(
            e,
            "microfab_machine_capability",
            "Which machine has which capability (1), for joins.",
            None,
            MetricType::Gauge,
            machines.iter().flat_map(|m| {
                m.capabilities.iter().map(|capability| {
                    (
                        [("machine", m.id.as_str()), ("capability", capability.as_str())],
                        ConstGauge::new(1),
                    )
                })
            }),
        )?;
        family(
            e,
            "microfab_machine_busy",
            "Wall seconds runs were on the machine (start to end; a running one so far).",
            Some(&Unit::Seconds),
            MetricType::Counter,
            machines
                .iter()
                .map(|m| ([("machine", m.id.as_str())], seconds_counter(m.busy_ms))),
        )?;
        family(
            e,
            "microfab_machine_held_up",
            "Wall seconds the machine waited on operators (loads, unloads), the current wait included.",
            Some(&Unit::Seconds),
            MetricType::Counter,
            machines
                .iter()
                .map(|m| ([("machine", m.id.as_str())], seconds_counter(m.held_up_ms))),
        )?;

        let links: Vec<_> = s
            .live
            .iter()
            .filter_map(|(id, status)| Some((id.as_str(), status.link.as_ref()?)))
            .collect();
        family(
            e,
            "microfab_machine_link_up",
            "The link to the machine (serial port, session) is up (1) or down (0); only machines whose driver has a link.",
            None,
            MetricType::Gauge,
            links
                .iter()
                .map(|(id, link)| ([("machine", *id)], ConstGauge::new(i64::from(link.up)))),
        )?;
        type LinkCount = fn(&microfab_drivers::traffic::LinkCounters) -> u64;
        let link_counters: [(&str, &str, LinkCount); 3] = [
            (
                "microfab_machine_link_resends",
                "Lines the firmware asked again (the driver's counters, since its start).",
                |c| c.resends,
            ),
            (
                "microfab_machine_link_errors",
                "Errors the link or firmware reported (since the driver's start).",
                |c| c.errors,
            ),
            (
                "microfab_machine_link_reconnects",
                "Times the link was opened again (since the driver's start).",
                |c| c.reconnects,
            ),
        ];
        for (name, help, count) in link_counters {
            family(
                e,
                name,
                help,
                None,
                MetricType::Counter,
                links.iter().map(|(id, link)| {
                    ([("machine", *id)], ConstCounter::new(count(&link.counters)))
                }),
            )?;
        }
        family(
            e,
            "microfab_machine_temperature",
            "The firmware's last temperature report (Marlin), degrees Celsius.",
            Some(&Unit::Celsius),
            MetricType::Gauge,
            s.live.iter().flat_map(|(id, status)| {
                status.temperatures.iter().map(move |t| {
                    (
                        [("machine", id.as_str()), ("sensor", t.sensor.as_str())],
                        ConstGauge::new(t.actual),
                    )
                })
            }),
        )?;

        family(
            e,
            "microfab_operator_tasks",
            "Tasks waiting for an operator, by kind.",
            None,
            MetricType::Gauge,
            plant
                .operator_tasks
                .iter()
                .map(|(kind, n)| ([("kind", kind.as_str())], ConstGauge::new(*n))),
        )?;

        let account_labels = |m: &crate::plant::metrics_view::MaterialMetrics| {
            let a = &m.account;
            [
                ("account", a.id.clone()),
                ("material", a.material.clone()),
                ("owner", a.owner.clone()),
                ("origin", a.origin.clone()),
                ("unit", a.unit.clone()),
            ]
        };
        let materials = &plant.materials;
        family(
            e,
            "microfab_material_on_hand",
            "Stock on hand, in the account's unit.",
            None,
            MetricType::Gauge,
            materials.iter().map(|m| {
                (
                    account_labels(m),
                    ConstGauge::new(m.account.on_hand.as_decimal()),
                )
            }),
        )?;
        family(
            e,
            "microfab_material_reserved",
            "Stock reserved by approved orders, in the account's unit.",
            None,
            MetricType::Gauge,
            materials.iter().map(|m| {
                (
                    account_labels(m),
                    ConstGauge::new(m.account.reserved.as_decimal()),
                )
            }),
        )?;
        family(
            e,
            "microfab_material_reorder_level",
            "The account's reorder level (config), in its unit.",
            None,
            MetricType::Gauge,
            materials.iter().map(|m| {
                (
                    account_labels(m),
                    ConstGauge::new(m.account.reorder_level.as_decimal()),
                )
            }),
        )?;
        family(
            e,
            "microfab_material_consumed",
            "Stock drawn by runs given to machines, in the account's unit (a refused run's draw goes back).",
            None,
            MetricType::Counter,
            materials
                .iter()
                .map(|m| (account_labels(m), ConstCounter::new(m.consumed.as_decimal()))),
        )?;

        single(
            e,
            "microfab_events_persisted",
            "Events in the log (its last sequence number).",
            counter(plant.last_event_seq),
        )
    }
}

/// One family: its descriptor, then each series with its labels.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family of one series without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: M,
) -> fmt::Result {
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

/// A count from the store (never negative there).
fn counter(n: i64) -> ConstCounter<u64> {
    ConstCounter::new(n.max(0) as u64)
}

fn seconds_counter(ms: i64) -> ConstCounter<f64> {
    ConstCounter::new(ms.max(0) as f64 / 1000.0)
}

fn seconds_gauge(ms: i64) -> ConstGauge<f64> {
    ConstGauge::new(ms as f64 / 1000.0)
}

/// A histogram counted in SQL ([`Histogram`]: cumulative over [`DURATION_BUCKETS`]).
struct ConstHistogram<'a>(&'a Histogram);

impl EncodeMetric for ConstHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let h = self.0;
        // The encoder takes each bucket's own count and sums them up itself.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .zip(&h.cumulative)
            .map(|(bound, &cumulative)| {
                let own = cumulative.saturating_sub(below);
                below = cumulative;
                (*bound, own)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
