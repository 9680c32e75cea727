//! PromQL and exposition text for the monitoring test: which metrics an expression selects,
//! Grafana's variables in dashboard queries, and the names an exposition offers.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::Expr;

/// One PromQL expression and where it is written, for the failure message.
pub struct Expression {
    pub place: String,
    pub text: String,
}

/// `text` with Grafana's variables replaced: the interval ones by durations, the dashboard's
/// own by `values`; `Err` names a variable that has no value (the dashboard does not declare it).
pub fn substitute(text: &str, values: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let braced = after.starts_with('{');
        let body = if braced { &after[1..] } else { after };
        let name_len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let name = &body[..name_len];
        let mut used = name_len;
        if braced {
            // `${name}` or `${name:format}`.
            used = body.find('}').ok_or_else(|| name.to_string())? + 2;
        }
        out.push_str(match name {
            "__rate_interval" | "__range" => "1h",
            "__interval" => "1m",
            _ => values.get(name).ok_or_else(|| name.to_string())?,
        });
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The metric names an expression selects; `Err` if it does not parse.
pub fn metric_names(text: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl promql_parser::util::ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(selector) => selector,
                Expr::MatrixSelector(matrix) => &matrix.vs,
                _ => return Ok(true),
            };
            let by_matcher = selector
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && m.op == promql_parser::label::MatchOp::Equal);
            let name = selector
                .name
                .clone()
                .or(by_matcher.map(|m| m.value.clone()))
                .ok_or_else(|| format!("a selector without a metric name: {selector}"))?;
            self.0.insert(name);
            Ok(true)
        }
    }
    let expr = promql_parser::parser::parse(text).map_err(|e| format!("does not parse: {e}"))?;
    let mut names = Names(BTreeSet::new());
    promql_parser::util::walk_expr(&mut names, &expr)?;
    Ok(names.0)
}

/// The sample names an exposition can hold: each family's (`# TYPE`) with the suffixes of its
/// type, so a family without series yet counts, and every sample's name.
pub fn names_in_exposition(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let mut words = family.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                // OpenMetrics names a counter's family without `_total`, the classic format with.
                "counter" if name.ends_with("_total") => &[""],
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// Each expression that does not parse or selects a name not in `known`, with its place.
pub fn unknown_metrics(expressions: &[Expression], known: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for expression in expressions {
        match metric_names(&expression.text) {
            Err(e) => problems.push(format!("{}: {e}", expression.place)),
            Ok(names) => {
                for name in names.difference(known) {
                    problems.push(format!(
                        "{}: {name} is not exposed ({})",
                        expression.place, expression.text
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn a_renamed_metric_is_named_with_the_expression_that_selects_it() {
    // The check the live test makes, on a catalog where one name has drifted.
    let known: BTreeSet<String> = ["microfab_machine_busy_seconds_total", "microfab_wip_units"]
        .map(String::from)
        .into();
    let expressions = vec![
        Expression {
            place: "rules/recording.yml: machine:utilisation".into(),
            text: "rate(microfab_machine_busy_seconds_total[1h])".into(),
        },
        Expression {
            place: "factory-overview.json: Work in progress".into(),
            text: "microfab_wip_unit".into(),
        },
        Expression {
            place: "machine.json: broken".into(),
            text: "rate(microfab_wip_units[5m]".into(),
        },
    ];
    let problems = unknown_metrics(&expressions, &known);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems[0],
        "factory-overview.json: Work in progress: microfab_wip_unit is not exposed (microfab_wip_unit)"
    );
    assert!(
        problems[1].starts_with("machine.json: broken: does not parse: "),
        "{}",
        problems[1]
    );
}

#[test]
fn grafana_variables_are_substituted_and_an_undeclared_one_is_named() {
    let values: BTreeMap<&str, &str> = [("machine", "x")].into();
    assert_eq!(
        substitute(
            r#"rate(m_total{machine="$machine", b="${machine:regex}"}[$__rate_interval])"#,
            &values
        ),
        Ok(r#"rate(m_total{machine="x", b="x"}[1h])"#.to_string())
    );
    assert_eq!(
        substitute(r#"m{owner=~"$owner"}"#, &values),
        Err("owner".to_string())
    );
}

#[test]
fn an_exposition_names_its_samples_in_either_format() {
    // OpenMetrics (what Prometheus asks for) and the classic format, as /metrics writes them.
    let open_metrics = "# TYPE a_runs counter\n# TYPE a_build info\na_build_info{v=\"1\"} 1\n\
                        # TYPE a_wait_seconds histogram\n# EOF\n";
    assert_eq!(
        names_in_exposition(open_metrics),
        [
            "a_build_info",
            "a_runs_total",
            "a_wait_seconds_bucket",
            "a_wait_seconds_count",
            "a_wait_seconds_sum"
        ]
        .map(String::from)
        .into()
    );
    let classic = "# TYPE a_runs_total counter\na_runs_total 3\n# TYPE a_up gauge\n";
    assert_eq!(
        names_in_exposition(classic),
        ["a_runs_total", "a_up"].map(String::from).into()
    );
}
