//! The GRBL driver against the GRBL simulator over real pseudo-terminals: complete runs, every
//! fault class mid-job, reconnection. The simulator's execution log is the ground truth: no
//! line may run twice, and no line before the fault may be skipped.

use std::time::Duration;

use microfab_drivers::grbl::gcode::preflight;
use microfab_drivers::grbl::{GrblConfig, GrblDriver, GrblOperatorAction};
use microfab_drivers::link::{SerialLink, SerialSettings};
use microfab_drivers::{
    Condition, Driver, DriverCommand, DriverError, DriverEvent, JobRun, Program,
};
use microfab_hil::grbl::fault::{Fault, FaultKind};
use microfab_hil::grbl::{GrblSim, GrblSimArgs, firmware};

const LINES: usize = 300;

/// The two kinds of board GRBL runs on: every test here runs on both.
#[derive(Debug, Clone, Copy)]
enum Board {
    /// The port opens without touching the controller (a native-USB board, or DTR not wired).
    NativeUsb,
    /// An Arduino Uno: opening the port pulls DTR, which reboots it; its bootloader eats what
    /// arrives in the first half second.
    ResetOnOpen,
}

impl Board {
    fn configure(self, args: &mut GrblSimArgs) {
        if let Board::ResetOnOpen = self {
            args.reset_on_open = true;
            args.boot_ms = 500;
        }
    }
}

/// One `#[tokio::test]` per board for each `async fn(Board)` named.
macro_rules! on_both_boards {
    ($($name:ident),* $(,)?) => {
        mod native_usb {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Board::NativeUsb).await
            })*
        }
        mod reset_on_open {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Board::ResetOnOpen).await
            })*
        }
    };
}

const FAULT_LINE: u64 = 100;

struct Rig {
    _dir: tempfile::TempDir,
    sim: GrblSim,
    driver: GrblDriver,
    events: Vec<DriverEvent>,
}

impl Rig {
    async fn start(board: Board, configure: impl FnOnce(&mut GrblSimArgs)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut args = GrblSimArgs::new(dir.path().join("mill"));
        args.time_scale = 50.0;
        args.boot_ms = 50;
        board.configure(&mut args);
        configure(&mut args);
        let sim = GrblSim::spawn(args).unwrap();
        let mut config = GrblConfig::new(sim.link().to_str().unwrap());
        config.status_interval_ms = 50;
        config.link_timeout_ms = 1_500;
        config.reconnect_min_ms = 50;
        config.reconnect_max_ms = 400;
        config.ack_timeout_ms = 1_000;
        let mut rig = Rig {
            _dir: dir,
            sim,
            driver: GrblDriver::new(config),
            events: Vec::new(),
        };
        rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
            .await;
        rig
    }

    /// Collect events until one matches; panics after ten seconds.
    async fn until(&mut self, wanted: impl Fn(&DriverEvent) -> bool) -> DriverEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.driver.next_event())
                .await
                .unwrap_or_else(|_| {
                    let traffic: Vec<_> = self.driver.traffic().into_iter().flat_map(|t| t.lines()).collect();
                    let recent = &traffic[traffic.len().saturating_sub(20)..];
                    panic!("timed out; events so far: {:#?}\nrecent traffic: {recent:#?}\nstatus: {:?}", self.events, self.driver.machine_status())
                });
            self.events.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    async fn run(&mut self, job_id: i64, text: &str) {
        let job = JobRun {
            job_id,
            program: Program::GCode {
                name: format!("job{job_id}.nc"),
                text: text.into(),
            },
            units: 1,
            expected_seconds: 1.0,
        };
        self.driver.command(DriverCommand::Run(job)).await.unwrap();
    }

    async fn job_end(&mut self, job_id: i64) -> DriverEvent {
        self.until(|e| {
            matches!(e, DriverEvent::JobFinished { job_id: j, .. }
                | DriverEvent::JobFailed { job_id: j, .. }
                | DriverEvent::JobInterrupted { job_id: j, .. } if *j == job_id)
        })
        .await
    }

    fn executed(&self) -> Vec<String> {
        self.sim.record().executed
    }
}

fn program(lines: usize) -> String {
    let mut text = String::from("G21 G90 (mm, absolute)\nG1 F6000\n");
    for i in 0..lines - 2 {
        text.push_str(&format!(
            "G1 X{}.{} Y{} ; step {i}\n",
            i % 50,
            i % 10,
            i % 7
        ));
    }
    text
}

fn prepared(text: &str) -> Vec<String> {
    preflight(text, 80).unwrap().lines
}

/// The log is the program's lines before `fault_index` in order, then possibly lines after the
/// faulty one that were already buffered (`skipped` is the one line the fault ate, if any).
fn assert_no_line_twice_none_skipped(
    executed: &[String],
    program: &[String],
    skipped: Option<usize>,
) {
    let expected: Vec<&String> = program
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skipped)
        .map(|(_, line)| line)
        .collect();
    assert!(
        executed.len() <= expected.len(),
        "more lines ran than the program has"
    );
    for (i, line) in executed.iter().enumerate() {
        assert_eq!(
            line, expected[i],
            "executed line {i} differs from the program"
        );
    }
}

async fn a_program_runs_to_the_end_exactly_as_written(board: Board) {
    let mut rig = Rig::start(board, |_| {}).await;
    let text = program(LINES);
    rig.run(1, &text).await;
    let end = rig.job_end(1).await;
    assert_eq!(
        end,
        DriverEvent::JobFinished {
            job_id: 1,
            scrapped: 0,
            scrap_reason: None
        }
    );
    assert_eq!(rig.executed(), prepared(&text));
    assert!(rig.events.contains(&DriverEvent::JobStarted { job_id: 1 }));
    assert!(rig.events.contains(&DriverEvent::JobProgress {
        job_id: 1,
        done: LINES as u64,
        total: LINES as u64
    }));
    let counters = &rig.driver.traffic().unwrap().counters;
    assert_eq!(counters.errors, 0);
    assert!(counters.lines_sent >= LINES as u64);
    assert_eq!(rig.sim.record().rx_overflow, 0);
    rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
        .await;
}

/// One fault mid-job: what the driver must report, and which program line the fault ate.
struct FaultCase {
    fault: FaultKind,
    reason_contains: &'static str,
    /// The line that was rejected and never ran (an error reply), if any.
    skipped: Option<usize>,
    /// The log stops before the faulty line (buffers flushed).
    stops_before_fault: bool,
}

async fn check_fault(board: Board, case: FaultCase) {
    let mut rig = Rig::start(board, |args| {
        args.faults = vec![Fault::at_line(case.fault, FAULT_LINE)];
    })
    .await;
    let text = program(LINES);
    rig.run(7, &text).await;
    let end = rig.job_end(7).await;
    let DriverEvent::JobInterrupted { reason, .. } = &end else {
        panic!("{:?}: expected an interruption, got {end:?}", case.fault);
    };
    assert!(
        reason.contains(case.reason_contains),
        "{:?}: {reason}",
        case.fault
    );
    // Let the controller settle (hold, reset, reboot) before reading its log.
    rig.until(|e| {
        matches!(
            e,
            DriverEvent::Condition(Condition::Idle | Condition::Alarm { .. })
        )
    })
    .await;
    let executed = rig.executed();
    let lines = prepared(&text);
    assert_no_line_twice_none_skipped(&executed, &lines, case.skipped);
    if case.stops_before_fault {
        assert!(
            executed.len() < FAULT_LINE as usize,
            "{:?}: {} lines ran",
            case.fault,
            executed.len()
        );
    }
    assert!(
        executed.len() < lines.len(),
        "{:?}: the job must not run to the end",
        case.fault
    );
}

async fn an_error_reply_stops_the_job_at_that_line(board: Board) {
    check_fault(
        board,
        FaultCase {
            fault: FaultKind::ErrorReply(20),
            reason_contains: "error:20 (Unsupported command",
            skipped: Some(FAULT_LINE as usize - 1),
            stops_before_fault: false,
        },
    )
    .await;
}

async fn line_noise_is_caught_by_grbls_parser_and_stops_the_job(board: Board) {
    check_fault(
        board,
        FaultCase {
            fault: FaultKind::Noise,
            reason_contains: "error:2 (Bad number format",
            skipped: Some(FAULT_LINE as usize - 1),
            stops_before_fault: false,
        },
    )
    .await;
}

async fn an_alarm_mid_job_interrupts_with_its_meaning(board: Board) {
    let case = FaultCase {
        fault: FaultKind::Alarm(1),
        reason_contains: "ALARM:1 (Hard limit",
        skipped: None,
        stops_before_fault: true,
    };
    check_fault(board, case).await;
}

async fn a_controller_reset_mid_job_interrupts_it(board: Board) {
    check_fault(
        board,
        FaultCase {
            fault: FaultKind::Reset,
            reason_contains: "the controller reset",
            skipped: None,
            stops_before_fault: true,
        },
    )
    .await;
}

async fn a_swallowed_ok_interrupts_instead_of_hanging(board: Board) {
    let mut rig = Rig::start(board, |args| {
        args.faults = vec![Fault::at_line(FaultKind::SwallowOk, FAULT_LINE)];
    })
    .await;
    let text = program(LINES);
    rig.run(3, &text).await;
    let end = rig.job_end(3).await;
    assert!(
        matches!(&end, DriverEvent::JobInterrupted { reason, .. } if reason.contains("never answered")),
        "{end:?}"
    );
    // Every line ran exactly once: the lost ok did not lose or repeat a line.
    assert_eq!(rig.executed(), prepared(&text));
}

async fn unplugging_mid_job_interrupts_it_and_the_driver_reconnects(board: Board) {
    let mut rig = Rig::start(board, |args| {
        args.faults = vec![Fault::at_line(
            FaultKind::Disconnect(Duration::from_millis(300)),
            FAULT_LINE,
        )];
    })
    .await;
    let text = program(LINES);
    rig.run(4, &text).await;
    let end = rig.job_end(4).await;
    assert!(
        matches!(&end, DriverEvent::JobInterrupted { reason, .. } if reason.contains("link lost")),
        "{end:?}"
    );
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, DriverEvent::Condition(Condition::Unavailable { .. })))
    );
    let before = rig.executed();
    assert_no_line_twice_none_skipped(&before, &prepared(&text), None);
    assert!(before.len() < FAULT_LINE as usize);
    // The cable comes back: the driver reconnects on its own and the machine takes work again.
    rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
        .await;
    assert_eq!(rig.driver.traffic().unwrap().counters.reconnects, 1);
    let short = program(20);
    rig.run(5, &short).await;
    assert!(matches!(
        rig.job_end(5).await,
        DriverEvent::JobFinished { .. }
    ));
    let after: Vec<String> = rig.executed()[before.len()..].to_vec();
    assert_eq!(after, prepared(&short));
}

async fn a_hung_controller_is_unavailable_until_it_answers_again(board: Board) {
    let mut rig = Rig::start(board, |args| {
        args.faults = vec![Fault::at_line(
            FaultKind::Hang(Duration::from_millis(2_500)),
            FAULT_LINE,
        )];
    })
    .await;
    let text = program(LINES);
    rig.run(12, &text).await;
    let end = rig.job_end(12).await;
    assert!(
        matches!(&end, DriverEvent::JobInterrupted { reason, .. } if reason.contains("no answer from the controller")),
        "{end:?}"
    );
    rig.until(|e| matches!(e, DriverEvent::Condition(Condition::Unavailable { .. })))
        .await;
    let executed = rig.executed();
    assert_no_line_twice_none_skipped(&executed, &prepared(&text), None);
    assert!(executed.len() < FAULT_LINE as usize);
    // The watchdog resets it: the driver finds it again without any operator action.
    rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
        .await;
}

async fn pause_holds_and_resume_finishes_every_line(board: Board) {
    let mut rig = Rig::start(board, |args| args.time_scale = 5.0).await;
    let text = program(60);
    rig.run(2, &text).await;
    rig.until(|e| matches!(e, DriverEvent::JobProgress { done, .. } if *done > 10))
        .await;
    rig.driver.command(DriverCommand::Pause).await.unwrap();
    rig.until(|e| *e == DriverEvent::Condition(Condition::Paused))
        .await;
    let held = rig.executed().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rig.executed().len() <= held + 1,
        "motion continued during the hold"
    );
    rig.driver.command(DriverCommand::Resume).await.unwrap();
    assert!(matches!(
        rig.job_end(2).await,
        DriverEvent::JobFinished { .. }
    ));
    assert_eq!(rig.executed(), prepared(&text));
}

async fn abort_holds_then_resets_without_an_alarm(board: Board) {
    let mut rig = Rig::start(board, |args| args.time_scale = 5.0).await;
    let text = program(60);
    rig.run(6, &text).await;
    rig.until(|e| matches!(e, DriverEvent::JobProgress { done, .. } if *done > 10))
        .await;
    rig.driver.command(DriverCommand::Abort).await.unwrap();
    let end = rig.job_end(6).await;
    assert_eq!(
        end,
        DriverEvent::JobInterrupted {
            job_id: 6,
            reason: "aborted by operator".into(),
            resume: None,
        }
    );
    rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
        .await;
    assert!(
        !rig.events
            .iter()
            .any(|e| matches!(e, DriverEvent::Condition(Condition::Alarm { .. })))
    );
    let executed = rig.executed();
    assert_no_line_twice_none_skipped(&executed, &prepared(&text), None);
    assert!(executed.len() < 60);
}

async fn a_locked_controller_waits_for_the_operator_to_unlock(board: Board) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = GrblSimArgs::new(dir.path().join("mill"));
    args.homing_lock = true;
    args.boot_ms = 20;
    board.configure(&mut args);
    let sim = GrblSim::spawn(args).unwrap();
    let mut config = GrblConfig::new(sim.link().to_str().unwrap());
    config.status_interval_ms = 50;
    let mut rig = Rig {
        _dir: dir,
        sim,
        driver: GrblDriver::new(config),
        events: Vec::new(),
    };
    let alarm = rig
        .until(|e| matches!(e, DriverEvent::Condition(Condition::Alarm { .. })))
        .await;
    assert_eq!(
        alarm,
        DriverEvent::Condition(Condition::Alarm {
            reason: "alarm state ('$H'|'$X' to unlock)".into()
        })
    );
    let refused = rig
        .driver
        .command(DriverCommand::Run(JobRun {
            job_id: 1,
            program: Program::GCode {
                name: "a.nc".into(),
                text: "G0 X1".into(),
            },
            units: 1,
            expected_seconds: 1.0,
        }))
        .await;
    assert!(refused.is_err());
    rig.driver.operator(GrblOperatorAction::Home).await.unwrap();
    rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
        .await;
    assert!(rig.executed().is_empty());
}

async fn a_tool_change_pauses_the_job_until_the_operator_confirms(board: Board) {
    let mut rig = Rig::start(board, |_| {}).await;
    let text = "G21 G90\nG1 X5 F3000\nG0 Z5\nT2 M6 (2 mm end mill)\nG1 X10 F3000\nG0 Z5\n";
    rig.run(6, text).await;
    let waiting = rig
        .until(|e| {
            matches!(
                e,
                DriverEvent::Condition(Condition::WaitingForOperator { .. })
            )
        })
        .await;
    assert_eq!(
        waiting,
        DriverEvent::Condition(Condition::WaitingForOperator {
            reason: "change to tool 2 (M6 on program line 4), set its length, then confirm job 6"
                .into()
        })
    );
    // Everything before the change ran; nothing after it, and GRBL never saw the M6.
    assert_eq!(rig.executed(), ["G21G90", "G1X5F3000", "G0Z5"]);
    rig.driver
        .command(DriverCommand::ConfirmManual { job_id: 6 })
        .await
        .unwrap();
    assert!(matches!(
        rig.job_end(6).await,
        DriverEvent::JobFinished { .. }
    ));
    assert_eq!(rig.executed(), prepared(text));
    assert!(!rig.executed().iter().any(|line| line.contains("M6")));
}

async fn preflight_rejects_a_program_before_anything_is_sent(board: Board) {
    let mut rig = Rig::start(board, |_| {}).await;
    let job = JobRun {
        job_id: 9,
        program: Program::GCode {
            name: "bad.nc".into(),
            text: "G21\nG41 D1\nG1 X1 F100\n".into(),
        },
        units: 1,
        expected_seconds: 1.0,
    };
    let error = rig
        .driver
        .command(DriverCommand::Run(job))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the program was rejected before it started: bad.nc: line 2: G41 is not supported by GRBL"
    );
    let sent: Vec<_> = rig
        .driver
        .traffic()
        .unwrap()
        .lines()
        .filter(|l| l.direction == microfab_drivers::traffic::Direction::Sent)
        .map(|l| l.text.clone())
        .collect();
    assert_eq!(sent, ["$G"], "only the driver's own state query went out");
}

/// Random bit flips on the wire (GRBL has no checksum): a flipped line either fails GRBL's
/// parser, which stops the job, or runs as a different move. Either way nothing is ever sent
/// twice: the lines that ran are the program's lines in order, each at most once.
async fn random_line_noise_never_repeats_or_reorders_lines(board: Board) {
    let mut rig = Rig::start(board, |args| {
        args.noise = 0.02;
        args.seed = 7;
    })
    .await;
    let text = program(LINES);
    rig.run(11, &text).await;
    let end = rig.job_end(11).await;
    rig.until(|e| matches!(e, DriverEvent::Condition(Condition::Idle)))
        .await;
    let lines = prepared(&text);
    let mut next = 0;
    let mut foreign = 0;
    for line in rig.executed() {
        match lines[next..].iter().position(|l| *l == line) {
            Some(offset) => next += offset + 1,
            None => {
                assert!(
                    !lines[..next].contains(&line),
                    "ran twice or out of order: {line}"
                );
                foreign += 1;
            }
        }
    }
    match end {
        DriverEvent::JobInterrupted { reason, .. } => {
            assert!(reason.contains("error:"), "{reason}")
        }
        DriverEvent::JobFinished { .. } => assert!(foreign > 0, "noise changed nothing?"),
        other => panic!("{other:?}"),
    }
}

/// A feed hold from outside the link (a button on the machine, a `!` out of line noise): the
/// driver says so, the job stays, nothing resumes on its own, and the operator's resume ends it.
async fn a_hold_nobody_asked_for_waits_for_the_operator(board: Board) {
    let mut rig = Rig::start(board, |args| args.time_scale = 5.0).await;
    let text = program(60);
    rig.run(21, &text).await;
    rig.until(|e| matches!(e, DriverEvent::JobProgress { done, .. } if *done > 10))
        .await;
    rig.sim.inject(FaultKind::FeedHold);
    let held = rig
        .until(|e| matches!(e, DriverEvent::Condition(Condition::Held { .. })))
        .await;
    let DriverEvent::Condition(Condition::Held { reason }) = held else {
        unreachable!()
    };
    assert!(
        reason.starts_with("feed hold microfab did not send"),
        "{reason}"
    );
    if !reason.contains("Hold:0") {
        rig.until(|e| matches!(e, DriverEvent::Condition(Condition::Held { reason }) if reason.contains("Hold:0")))
            .await;
    }
    let stopped = rig.executed().len();
    // Longer than every timeout the driver has: it neither gives up on the job nor resumes.
    let quiet = tokio::time::timeout(
        Duration::from_millis(2_000),
        rig.until(|e| !matches!(e, DriverEvent::Condition(Condition::Held { .. }))),
    )
    .await;
    assert!(quiet.is_err(), "{:?}", rig.events.last());
    assert_eq!(
        rig.executed().len(),
        stopped,
        "motion went on during the hold"
    );
    rig.driver.command(DriverCommand::Resume).await.unwrap();
    assert!(matches!(
        rig.job_end(21).await,
        DriverEvent::JobFinished { .. }
    ));
    assert_eq!(rig.executed(), prepared(&text));
}

/// The safety door opens mid-job: held with that cause, resume refused while it is open,
/// allowed once it is closed, and the job ends with every line run once.
async fn an_open_safety_door_holds_until_closed_and_resumed(board: Board) {
    let mut rig = Rig::start(board, |args| args.time_scale = 5.0).await;
    let text = program(60);
    rig.run(22, &text).await;
    rig.until(|e| matches!(e, DriverEvent::JobProgress { done, .. } if *done > 10))
        .await;
    rig.sim.inject(FaultKind::DoorOpen);
    let door_open = DriverEvent::Condition(Condition::Held {
        reason: "safety door open (Door:1): close it, then resume or abort".into(),
    });
    rig.until(|e| *e == door_open).await;
    assert_eq!(
        rig.driver.command(DriverCommand::Resume).await,
        Err(DriverError::Refused(
            "the safety door is open: close it, then resume".into()
        ))
    );
    rig.sim.inject(FaultKind::DoorClose);
    rig.until(|e| {
        *e == DriverEvent::Condition(Condition::Held {
            reason: "safety door closed again (Door:0): resume or abort".into(),
        })
    })
    .await;
    rig.driver.command(DriverCommand::Resume).await.unwrap();
    assert!(matches!(
        rig.job_end(22).await,
        DriverEvent::JobFinished { .. }
    ));
    assert_eq!(rig.executed(), prepared(&text));
}

/// After a hard limit GRBL answers nothing but a reset. An unlock is refused with what to do,
/// the link is not given up for the silence, and reset then unlock each succeed only once the
/// machine did it.
async fn after_a_hard_limit_only_reset_then_unlock_frees_the_machine(board: Board) {
    let mut rig = Rig::start(board, |args| {
        args.faults = vec![Fault::at_line(FaultKind::Alarm(1), 50)];
    })
    .await;
    rig.run(23, &program(LINES)).await;
    rig.job_end(23).await;
    rig.until(|e| matches!(e, DriverEvent::Condition(Condition::Alarm { reason }) if reason.ends_with("reset first, then home or unlock")))
        .await;
    // Twice the link timeout of silence: still the same alarm, never "unavailable".
    let quiet = tokio::time::timeout(
        Duration::from_millis(3_000),
        rig.until(|e| matches!(e, DriverEvent::Condition(_))),
    )
    .await;
    assert!(quiet.is_err(), "{:?}", rig.events.last());
    let refused = rig.driver.operator(GrblOperatorAction::Unlock).await;
    assert!(
        matches!(&refused, Err(DriverError::Refused(r)) if r.contains("reset first, then home or unlock")),
        "{refused:?}"
    );
    rig.driver
        .operator(GrblOperatorAction::SoftReset)
        .await
        .unwrap();
    rig.driver
        .operator(GrblOperatorAction::Unlock)
        .await
        .unwrap();
    assert_eq!(
        rig.driver.machine_status().state,
        Some(microfab_drivers::grbl::reply::MachineState::Idle)
    );
    rig.until(|e| *e == DriverEvent::Condition(Condition::Idle))
        .await;
    let short = program(10);
    let before = rig.executed().len();
    rig.run(24, &short).await;
    assert!(matches!(
        rig.job_end(24).await,
        DriverEvent::JobFinished { .. }
    ));
    assert_eq!(rig.executed()[before..], prepared(&short));
}

/// What each board does with bytes sent as the port opens: a native-USB board answers the
/// first `?`; an Uno is rebooting and loses it, then prints its banner.
#[tokio::test]
async fn a_reset_on_open_board_loses_what_is_sent_before_its_banner() {
    for (board, answers_at_once) in [(Board::NativeUsb, true), (Board::ResetOnOpen, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = GrblSimArgs::new(dir.path().join("mill"));
        args.boot_ms = 50;
        board.configure(&mut args);
        let sim = GrblSim::spawn(args).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let settings = SerialSettings::new(sim.link().to_str().unwrap(), 115_200);
        let mut port = SerialLink::open(&settings).unwrap();
        port.queue(b"?");
        // Whatever comes back within twice the bootloader's delay.
        let mut received = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(bytes) = tokio::time::timeout_at(deadline, port.transfer()).await {
            received.push_str(&String::from_utf8_lossy(bytes.unwrap()));
        }
        assert_eq!(
            received.contains("<Idle|"),
            answers_at_once,
            "{board:?}: {received:?}"
        );
        if !answers_at_once {
            assert_eq!(received, firmware::BANNER, "{board:?}: rebooted on open");
        }
        sim.shutdown().await.unwrap();
    }
}

on_both_boards!(
    a_hold_nobody_asked_for_waits_for_the_operator,
    an_open_safety_door_holds_until_closed_and_resumed,
    after_a_hard_limit_only_reset_then_unlock_frees_the_machine,
    a_program_runs_to_the_end_exactly_as_written,
    an_error_reply_stops_the_job_at_that_line,
    line_noise_is_caught_by_grbls_parser_and_stops_the_job,
    an_alarm_mid_job_interrupts_with_its_meaning,
    a_controller_reset_mid_job_interrupts_it,
    a_swallowed_ok_interrupts_instead_of_hanging,
    unplugging_mid_job_interrupts_it_and_the_driver_reconnects,
    a_hung_controller_is_unavailable_until_it_answers_again,
    pause_holds_and_resume_finishes_every_line,
    abort_holds_then_resets_without_an_alarm,
    a_locked_controller_waits_for_the_operator_to_unlock,
    a_tool_change_pauses_the_job_until_the_operator_confirms,
    preflight_rejects_a_program_before_anything_is_sent,
    random_line_noise_never_repeats_or_reorders_lines,
);
