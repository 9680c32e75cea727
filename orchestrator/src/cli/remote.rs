//! The commands that ask a running microfab server (`--server`): each sends the API's own
//! request type and prints the answer as a table, or as JSON with `--json`.

use std::path::PathBuf;

use crate::amount::Amount;
use crate::api::{
    AdjustRequest, MaintainedRequest, MaintenanceRequest, OperatorRequest, PlanView, Reason,
    ResolveRequest, RestockRequest, ResumeRequest, SubmitRequest, Submitted,
};
use crate::plant::tasks::{Inspection, ScrapEntry, TaskView};
use crate::plant::views::{JobView, MachineView, MaterialView, OrderView};
use crate::plant::{JobState, OrderState};
use microfab_drivers::OperatorAction;

use super::client::ClientArgs;
use super::closed_set;
use super::events::{follow_events, print_event_log};
use super::tables::{
    render_jobs, render_machines, render_materials, render_order, render_order_state,
    render_orders, render_plan, render_tasks,
};

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Submit a batch spec (with its G-code programs) to the server. The same spec and
    /// programs submitted again give back the first order, unless `--key` says otherwise.
    Submit {
        file: PathBuf,
        /// Submission key; by default the SHA-256 of the spec and its programs.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List orders, with when the current plan expects each to be done.
    Orders {
        #[arg(long, value_parser = closed_set::<OrderState>)]
        state: Option<OrderState>,
        #[arg(long)]
        maker: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one order.
    Order {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Approve a submitted order (reserves its material).
    Approve {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reject a submitted order.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel an order; reserved material not yet used goes back to stock.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List jobs (runs), e.g. `--state interrupted` for what waits on an operator.
    Jobs {
        #[arg(long, value_parser = closed_set::<JobState>)]
        state: Option<JobState>,
        #[arg(long)]
        machine: Option<String>,
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Settle an interrupted run: how many of its units are good (the rest are scrapped).
    Resolve {
        job: i64,
        #[arg(long)]
        good: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send an interrupted run back to its machine from a line of its program (printers whose
    /// link dropped; see the job's `resume`).
    Resume {
        job: i64,
        /// Line of the program file; by default the first one the machine did not acknowledge.
        #[arg(long)]
        from_line: Option<u32>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// What operators have to do at the machines now (loads, unloads, manual runs,
    /// interrupted runs, maintenance), oldest first.
    Tasks {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Confirm that a machine is loaded for a run waiting for its load: the run is sent.
    Load {
        job: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Confirm a run unloaded, with the inspection: by default the machine's scrap stays scrap
    /// and every other piece is good.
    Unload {
        job: i64,
        /// Good pieces; by default every piece not given as scrap.
        #[arg(long)]
        good: Option<u32>,
        /// Scrapped pieces and why, as COUNT:REASON (e.g. `1:warped`); once per reason.
        #[arg(long = "scrap", value_parser = scrap_entry)]
        scrap: Vec<ScrapEntry>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List machines.
    Machines {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List material stock.
    Materials {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Receive material into a stock account (a new lot).
    Restock {
        account: String,
        /// In the account's unit (sheets, metres, pieces, ...).
        #[arg(value_parser = api_amount)]
        amount: Amount,
        /// The lot code; one is made up when absent.
        #[arg(long)]
        lot: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Correct the amount on hand after a count (negative for less).
    Adjust {
        account: String,
        #[arg(allow_negative_numbers = true)]
        delta: f64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Take a machine out for maintenance, or give it back to the scheduler.
    Maintenance {
        machine: String,
        switch: Switch,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Say a machine's maintenance task (its config's name) is done: it is no longer due and its
    /// counters start again.
    Maintained {
        machine: String,
        task: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pause, resume (also a hold the machine reports from its own button or safety door) or
    /// abort what a machine is doing. The answer says what the machine did.
    Machine {
        machine: String,
        action: MachineAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// An action only an operator takes at a machine: unlock (clear an alarm), home, reset.
    Operator {
        machine: String,
        #[arg(value_parser = closed_set::<OperatorAction>)]
        action: OperatorAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The plan the dispatcher follows: each order's ETA and each machine's runs.
    Plan {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The event log; `--follow` keeps printing events as they happen.
    Events {
        /// Only events after this sequence number (with `--follow`: replay from there first).
        #[arg(long)]
        after: Option<i64>,
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MachineAction {
    Pause,
    Resume,
    Abort,
}

impl MachineAction {
    fn path(self) -> &'static str {
        match self {
            MachineAction::Pause => "pause",
            MachineAction::Resume => "resume",
            MachineAction::Abort => "abort",
        }
    }
}

/// An amount as the API reads it (at most three decimals, never negative): one it would refuse
/// is refused here, in its words.
fn api_amount(text: &str) -> Result<Amount, String> {
    let number: f64 = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
    serde_json::from_value(serde_json::json!(number)).map_err(|e| e.to_string())
}

pub(super) async fn run(command: ClientCommand) -> anyhow::Result<i32> {
    match command {
        ClientCommand::Submit { file, key, client } => submit(&file, key, &client).await,
        ClientCommand::Orders {
            state,
            maker,
            client,
        } => {
            let query = [
                ("state", state.map(|s| s.as_str().to_string())),
                ("maker", maker),
            ];
            let orders: Vec<OrderView> = client.get(&["orders"], &query).await?;
            client.print(&orders, |orders| render_orders(orders))
        }
        ClientCommand::Order { id, client } => {
            let order: OrderView = client.get(&["orders", &id], &[]).await?;
            client.print(&order, render_order)
        }
        ClientCommand::Approve { id, client } => {
            let order: OrderView = client
                .post_without_body(&["orders", &id, "approve"])
                .await?;
            client.print(&order, render_order_state)
        }
        ClientCommand::Reject { id, reason, client } => {
            let body = Reason { reason };
            let order: OrderView = client.post(&["orders", &id, "reject"], &body).await?;
            client.print(&order, render_order_state)
        }
        ClientCommand::Cancel { id, reason, client } => {
            let body = Reason { reason };
            let order: OrderView = client.post(&["orders", &id, "cancel"], &body).await?;
            client.print(&order, render_order_state)
        }
        ClientCommand::Jobs {
            state,
            machine,
            order,
            client,
        } => {
            let query = [
                ("state", state.map(|s| s.as_str().to_string())),
                ("machine", machine),
                ("order", order),
            ];
            let jobs: Vec<JobView> = client.get(&["jobs"], &query).await?;
            client.print(&jobs, |jobs| render_jobs(jobs))
        }
        ClientCommand::Resolve {
            job,
            good,
            reason,
            client,
        } => {
            let body = ResolveRequest { good, reason };
            let job: JobView = client
                .post(&["jobs", &job.to_string(), "resolve"], &body)
                .await?;
            client.print(&job, |job| render_jobs(std::slice::from_ref(job)))
        }
        ClientCommand::Resume {
            job,
            from_line,
            reason,
            client,
        } => {
            let body = ResumeRequest { from_line, reason };
            let job: JobView = client
                .post(&["jobs", &job.to_string(), "resume"], &body)
                .await?;
            client.print(&job, |job| render_jobs(std::slice::from_ref(job)))
        }
        ClientCommand::Tasks { client } => {
            let tasks: Vec<TaskView> = client.get(&["tasks"], &[]).await?;
            client.print(&tasks, |tasks| render_tasks(tasks))
        }
        ClientCommand::Load { job, client } => {
            let job: JobView = client
                .post_without_body(&["jobs", &job.to_string(), "load"])
                .await?;
            client.print(&job, |job| render_jobs(std::slice::from_ref(job)))
        }
        ClientCommand::Unload {
            job,
            good,
            scrap,
            client,
        } => {
            let body = Inspection { good, scrap };
            let job: JobView = client
                .post(&["jobs", &job.to_string(), "unload"], &body)
                .await?;
            client.print(&job, |job| render_jobs(std::slice::from_ref(job)))
        }
        ClientCommand::Machines { client } => {
            let machines: Vec<MachineView> = client.get(&["machines"], &[]).await?;
            client.print(&machines, |machines| render_machines(machines))
        }
        ClientCommand::Materials { client } => {
            let materials: Vec<MaterialView> = client.get(&["materials"], &[]).await?;
            client.print(&materials, |materials| render_materials(materials))
        }
        ClientCommand::Restock {
            account,
            amount,
            lot,
            client,
        } => {
            let body = RestockRequest {
                amount,
                lot,
                origin: None,
            };
            let material: MaterialView = client
                .post(&["materials", &account, "restock"], &body)
                .await?;
            client.print(&material, |m| render_materials(std::slice::from_ref(m)))
        }
        ClientCommand::Adjust {
            account,
            delta,
            reason,
            client,
        } => {
            let body = AdjustRequest { delta, reason };
            let material: MaterialView = client
                .post(&["materials", &account, "adjust"], &body)
                .await?;
            client.print(&material, |m| render_materials(std::slice::from_ref(m)))
        }
        ClientCommand::Maintenance {
            machine,
            switch,
            reason,
            client,
        } => {
            let body = MaintenanceRequest {
                on: matches!(switch, Switch::On),
                reason,
            };
            let machine: MachineView = client
                .post(&["machines", &machine, "maintenance"], &body)
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        ClientCommand::Maintained {
            machine,
            task,
            client,
        } => {
            let machine: MachineView = client
                .post(
                    &["machines", &machine, "maintained"],
                    &MaintainedRequest { task },
                )
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        ClientCommand::Machine {
            machine,
            action,
            client,
        } => {
            let machine: MachineView = client
                .post_without_body(&["machines", &machine, action.path()])
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        ClientCommand::Operator {
            machine,
            action,
            client,
        } => {
            let body = OperatorRequest { action };
            let machine: MachineView = client
                .post(&["machines", &machine, "operator"], &body)
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        ClientCommand::Plan { client } => {
            let plan: PlanView = client.get(&["plan"], &[]).await?;
            client.print(&plan, render_plan)
        }
        ClientCommand::Events {
            after,
            order,
            follow,
            client,
        } => {
            if follow {
                follow_events(&client, after, order.as_deref()).await
            } else {
                print_event_log(&client, after.unwrap_or(0), order.as_deref()).await
            }
        }
    }
}

/// The submission key of a spec and its programs: SHA-256 over each part, length-prefixed
/// (the spec's text, then every program's path and text in path order), so the same files
/// always give the same key and no two different sets of files share one.
fn submission_key<'a>(
    spec_text: &str,
    programs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    let mut part = |text: &str| {
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    };
    part(spec_text);
    for (path, text) in programs {
        part(path);
        part(text);
    }
    format!("sha256:{:x}", hash.finalize())
}

async fn submit(file: &PathBuf, key: Option<String>, client: &ClientArgs) -> anyhow::Result<i32> {
    let checked = match microfab_job_specs::check_file(file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{}", microfab_job_specs::render_check_errors(file, &errors));
            return Ok(2);
        }
    };
    let text = std::fs::read_to_string(file)?;
    let key = key.unwrap_or_else(|| {
        submission_key(
            &text,
            checked
                .programs
                .iter()
                .map(|(path, p)| (path.as_str(), p.text.as_str())),
        )
    });
    let (spec_toml, spec) = if file.extension().is_some_and(|e| e == "json") {
        (None, Some(serde_json::from_str(&text)?))
    } else {
        (Some(text), None)
    };
    let body = SubmitRequest {
        spec_toml,
        spec,
        source_name: Some(checked.source_name),
        programs: checked
            .programs
            .into_iter()
            .map(|(path, program)| (path, program.text))
            .collect(),
        submission_key: Some(key.clone()),
    };
    let submitted: Submitted = client.post(&["orders"], &body).await?;
    client.print(&submitted, |submitted| {
        let order = &submitted.order;
        let mut text = if submitted.already_submitted {
            format!(
                "already submitted as {}: {} x {} ({}); nothing new was made.\n  \
                 To submit these files again as another order, give another --key (this one is {key}).\n",
                order.id, order.quantity, order.product, order.state
            )
        } else {
            format!(
                "submitted {}: {} x {} ({})\n",
                order.id, order.quantity, order.product, order.state
            )
        };
        for flag in &order.prescreen {
            text.push_str(&format!("  pre-screen: {flag}\n"));
        }
        text
    })
}

/// `COUNT:REASON` of `microfab unload --scrap`: at least one piece, and a reason.
pub(super) fn scrap_entry(text: &str) -> Result<ScrapEntry, String> {
    let (count, reason) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not COUNT:REASON (e.g. 1:warped)"))?;
    let count: u32 = count.trim().parse().map_err(|_| {
        format!("'{count}' is not a number of pieces (COUNT:REASON, e.g. 1:warped)")
    })?;
    if count == 0 {
        return Err("COUNT must be at least 1 (COUNT:REASON, e.g. 1:warped)".into());
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(format!(
            "'{text}' has no reason: every scrapped piece needs one (e.g. {count}:warped)"
        ));
    }
    Ok(ScrapEntry {
        count,
        reason: reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ClientCommand;
    use super::submission_key;
    use crate::cli::{Cli, Command};
    use crate::plant::tasks::ScrapEntry;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("microfab").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn unload_takes_good_and_scrap_by_reason() {
        let Ok(Command::Client(ClientCommand::Unload {
            job, good, scrap, ..
        })) = parse(&[
            "unload",
            "57",
            "--good",
            "11",
            "--scrap",
            "1:warped",
            "--scrap",
            "2: delaminated ",
        ])
        else {
            panic!("unload did not parse");
        };
        assert_eq!((job, good), (57, Some(11)));
        let entry = |count, reason: &str| ScrapEntry {
            count,
            reason: reason.into(),
        };
        assert_eq!(scrap, vec![entry(1, "warped"), entry(2, "delaminated")]);
        let Ok(Command::Client(ClientCommand::Unload { good, scrap, .. })) =
            parse(&["unload", "57"])
        else {
            panic!("a bare unload did not parse");
        };
        assert_eq!((good, scrap), (None, Vec::new()));
    }

    #[test]
    fn a_bad_scrap_value_is_a_clear_error() {
        for (value, says) in [
            ("warped", "is not COUNT:REASON"),
            ("x:warped", "'x' is not a number of pieces"),
            ("-1:warped", "is not a number of pieces"),
            ("0:warped", "COUNT must be at least 1"),
            ("2:", "has no reason"),
            ("2:   ", "has no reason"),
        ] {
            let error = parse(&["unload", "57", &format!("--scrap={value}")])
                .expect_err(value)
                .to_string();
            assert!(
                error.contains("--scrap") && error.contains(says),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn the_submission_key_changes_with_any_file() {
        let key = |spec, program| submission_key(spec, [("a.nc", program)]);
        assert_eq!(key("spec", "G0"), key("spec", "G0"));
        assert_ne!(key("spec", "G0"), key("spec", "G1"));
        assert_ne!(key("spec", "G0"), key("spec2", "G0"));
        // Length prefixes: moving text from one part to the next is another key.
        assert_ne!(
            submission_key("ab", [("c", "d")]),
            submission_key("a", [("bc", "d")])
        );
    }
}
