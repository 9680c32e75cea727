use super::*;
use crate::grbl::codes::GrblError;
use crate::grbl::gcode::preflight;

const INTERVAL: Duration = Duration::from_millis(200);

/// Drives the protocol through a transcript and records what it sends and reports.
struct Transcript {
    protocol: GrblProtocol,
    now: Instant,
    sent: Vec<u8>,
    events: Vec<DriverEvent>,
    max_in_flight: usize,
}

impl Transcript {
    fn new(rx_buffer: usize) -> Transcript {
        let now = Instant::now();
        let config = ProtocolConfig {
            rx_buffer,
            status_interval: INTERVAL,
            link_timeout: Duration::from_secs(3),
            traffic_lines: 100,
            streaming: Streaming::CharacterCounting,
            ack_timeout: Duration::from_secs(2),
        };
        let mut t = Transcript {
            protocol: GrblProtocol::new(config, now),
            now,
            sent: Vec::new(),
            events: Vec::new(),
            max_in_flight: 0,
        };
        t.protocol.connected(now);
        t.advance(0).unwrap();
        t
    }

    /// Connected, status read, `$G` answered: ready for a job.
    fn idle(rx_buffer: usize) -> Transcript {
        let mut t = Transcript::new(rx_buffer);
        t.recv("<Idle|MPos:0.000,0.000,0.000|FS:0,0>\r\n");
        t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
        t.sent();
        t.events();
        t
    }

    fn collect(&mut self) {
        let output = self.protocol.take_output();
        self.sent.extend(output.realtime);
        self.sent.extend(output.lines);
        self.max_in_flight = self.max_in_flight.max(self.protocol.in_flight_bytes());
        while let Some(event) = self.protocol.next_event() {
            self.events.push(event);
        }
    }

    fn recv(&mut self, bytes: &str) {
        self.protocol.receive(self.now, bytes.as_bytes());
        self.collect();
    }

    fn advance(&mut self, ms: u64) -> Result<(), LinkSilent> {
        self.now += Duration::from_millis(ms);
        let result = self.protocol.tick(self.now);
        self.collect();
        result
    }

    fn start(&mut self, job_id: i64, text: &str) {
        let program = preflight(text, 80).unwrap();
        self.protocol.start_job(self.now, job_id, program).unwrap();
        self.collect();
    }

    fn sent(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.sent)).into_owned()
    }

    fn events(&mut self) -> Vec<DriverEvent> {
        std::mem::take(&mut self.events)
    }

    fn conditions(&mut self) -> Vec<Condition> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                DriverEvent::Condition(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

fn held(reason: &str) -> Condition {
    Condition::Held {
        reason: reason.into(),
    }
}

fn unavailable(reason: &str) -> Condition {
    Condition::Unavailable {
        reason: reason.into(),
    }
}

#[test]
fn connecting_polls_status_then_reads_the_parser_state() {
    let mut t = Transcript::new(128);
    assert_eq!(t.sent(), "?");
    assert_eq!(
        t.conditions(),
        [
            unavailable("not connected yet"),
            unavailable("waiting for the controller's status")
        ]
    );
    t.recv("<Idle|MPos:1.000,2.000,3.000|FS:0,0|WCO:1.000,0.000,0.000>\r\n");
    assert_eq!(t.sent(), "$G\n");
    assert_eq!(t.conditions(), [Condition::Idle]);
    t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
    let status = t.protocol.status();
    assert_eq!(
        status.gcode_modes.as_deref(),
        Some("G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0")
    );
    assert_eq!(status.work_position, Some(vec![0.0, 2.0, 3.0]));
    assert_eq!(t.protocol.in_flight_bytes(), 0);
}

#[test]
fn status_states_map_to_conditions() {
    let cases: &[(&str, Condition)] = &[
        ("<Idle>", Condition::Idle),
        ("<Run>", Condition::Busy),
        ("<Jog>", Condition::Busy),
        ("<Home>", Condition::Busy),
        (
            "<Hold:0>",
            held(
                "feed hold microfab did not send (Hold:0: a feed-hold button or line noise): resume or abort",
            ),
        ),
        (
            "<Hold:1>",
            held(
                "feed hold microfab did not send (Hold:1: a feed-hold button or line noise): resume or abort",
            ),
        ),
        (
            "<Door:1>",
            held("safety door open (Door:1): close it, then resume or abort"),
        ),
        (
            "<Door:0>",
            held("safety door closed again (Door:0): resume or abort"),
        ),
        (
            "<Alarm>",
            Condition::Alarm {
                reason: "alarm state ('$H'|'$X' to unlock)".into(),
            },
        ),
        (
            "<Check>",
            unavailable("check mode ($C): motion is disabled"),
        ),
        ("<Sleep>", unavailable("sleep mode: reset to wake")),
    ];
    for (report, expected) in cases {
        let mut t = Transcript::new(128);
        t.recv("[MSG:'$H'|'$X' to unlock]\r\n");
        t.events();
        t.recv(&format!("{report}\r\n"));
        assert_eq!(t.conditions(), std::slice::from_ref(expected), "{report}");
    }
}

#[test]
fn character_counting_never_overfills_the_rx_buffer() {
    let mut t = Transcript::idle(32);
    // 9 bytes per line with the newline: three fit into 32 bytes, a fourth would not.
    let program: String = (0..20).map(|i| format!("G1X{i:02}F100\n")).collect();
    t.start(7, &program);
    assert_eq!(t.sent(), "G1X00F100\nG1X01F100\nG1X02F100\n");
    t.recv("ok\r\n");
    assert_eq!(t.sent(), "G1X03F100\n");
    t.recv("ok\r\nok\r\n");
    assert_eq!(t.sent(), "G1X04F100\nG1X05F100\n");
    for _ in 0..17 {
        t.recv("ok\r\n");
    }
    assert_eq!(t.max_in_flight, 30);
    assert_eq!(t.protocol.in_flight_bytes(), 0);
}

#[test]
fn a_reply_split_across_reads_and_bare_newlines_count_once() {
    let mut t = Transcript::idle(128);
    t.start(1, "G0X1\nG0X2\n");
    t.sent();
    t.recv("o");
    t.recv("k\r");
    t.recv("\nok\n");
    assert_eq!(t.protocol.in_flight_bytes(), 0);
    let progress: Vec<_> = t
        .events()
        .into_iter()
        .filter(|e| matches!(e, DriverEvent::JobProgress { .. }))
        .collect();
    assert_eq!(
        progress,
        [
            DriverEvent::JobProgress {
                job_id: 1,
                done: 0,
                total: 2
            },
            DriverEvent::JobProgress {
                job_id: 1,
                done: 1,
                total: 2
            },
            DriverEvent::JobProgress {
                job_id: 1,
                done: 2,
                total: 2
            }
        ]
    );
}

#[test]
fn garbage_and_feedback_lines_do_not_acknowledge_anything() {
    let mut t = Transcript::idle(128);
    t.start(1, "G0X1\n");
    for line in [
        "\u{7f}\u{3}kk",
        "[MSG:Pgm End]",
        "$0=10",
        ">G20:ok",
        "[echo:G0X1]",
    ] {
        t.recv(&format!("{line}\r\n"));
        assert_eq!(t.protocol.in_flight_bytes(), 5, "{line}");
    }
    assert_eq!(t.protocol.status().last_message.as_deref(), Some("Pgm End"));
}

#[test]
fn a_job_finishes_only_on_idle_reported_after_the_last_ok() {
    let mut t = Transcript::idle(128);
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?", "a poll is outstanding when the job starts");
    t.start(3, "G1X10F100\n");
    assert_eq!(t.sent(), "G1X10F100\n");
    t.recv("ok\r\n");
    // This report answers the poll sent before the last ok: it proves nothing.
    t.recv("<Idle|MPos:0,0,0>\r\n");
    t.advance(0).unwrap();
    assert_eq!(t.sent(), "?");
    t.recv("<Run|MPos:5,0,0>\r\n");
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?");
    assert!(
        !t.events()
            .iter()
            .any(|e| matches!(e, DriverEvent::JobFinished { .. }))
    );
    t.recv("<Idle|MPos:10,0,0>\r\n");
    assert_eq!(
        t.events(),
        [
            DriverEvent::JobFinished {
                job_id: 3,
                scrapped: 0,
                scrap_reason: None
            },
            DriverEvent::Condition(Condition::Idle)
        ]
    );
}

#[test]
fn a_tool_change_waits_for_the_spindle_to_stop_and_for_the_operator() {
    let mut t = Transcript::idle(128);
    t.start(4, "G0X1\nT2 M6 (end mill 2 mm)\nG1X2F100\n");
    assert_eq!(t.sent(), "G0X1\n", "nothing from the M6 on goes out");
    t.recv("ok\r\n");
    t.advance(0).unwrap();
    assert_eq!(t.sent(), "?");
    t.recv("<Run|MPos:0.5,0,0>\r\n");
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?");
    assert!(t.protocol.tool_changed(t.now, 4).is_err(), "still moving");
    t.recv("<Idle|MPos:1,0,0>\r\n");
    let reason = "change to tool 2 (M6 on program line 2), set its length, then confirm job 4";
    assert!(
        t.events()
            .contains(&DriverEvent::Condition(Condition::WaitingForOperator {
                reason: reason.into()
            }))
    );
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?", "it waits, polling");
    assert!(t.protocol.tool_changed(t.now, 5).is_err(), "another job");
    t.protocol.tool_changed(t.now, 4).unwrap();
    t.collect();
    assert_eq!(t.sent(), "T2\nG1X2F100\n");
    assert!(
        t.events()
            .contains(&DriverEvent::Condition(Condition::Busy))
    );
}

#[test]
fn an_error_stops_streaming_holds_and_resets() {
    let mut t = Transcript::idle(24);
    t.start(5, "G21\nG1X1F100\nG1X2\nG1X3\nG1X4\nG1X5\n");
    assert_eq!(t.sent(), "G21\nG1X1F100\nG1X2\nG1X3\n");
    t.recv("ok\r\nerror:22\r\n");
    let events = t.events();
    assert!(
        events.contains(&DriverEvent::JobInterrupted {
            job_id: 5,
            reason: "error:22 (Undefined feed rate: Feed rate has not yet been set or is \
                 undefined.) at line 2: G1X1F100"
                .into(),
            resume: None,
        })
    );
    assert_eq!(t.sent(), "!", "feed hold at once, no further job line");
    t.advance(0).unwrap();
    assert_eq!(t.sent(), "?");
    t.recv("ok\r\n<Hold:1>\r\n");
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?");
    t.recv("<Hold:0>\r\n");
    assert_eq!(t.sent(), "\u{18}");
    t.recv("\r\nGrbl 1.1h ['$' for help]\r\n");
    assert_eq!(t.protocol.in_flight_bytes(), 0);
    t.advance(0).unwrap();
    assert_eq!(t.sent(), "?");
    t.recv("<Idle>\r\n");
    assert_eq!(t.sent(), "$G\n");
    assert_eq!(t.conditions().last(), Some(&Condition::Idle));
}

#[test]
fn an_alarm_mid_job_interrupts_with_grbls_meaning() {
    let mut t = Transcript::idle(128);
    t.start(9, "G0X100\nG0X0\n");
    t.sent();
    t.events();
    t.recv("ALARM:1\r\n");
    let reason = "ALARM:1 (Hard limit: Hard limit has been triggered. Machine position is \
                  likely lost due to sudden halt. Re-homing is highly recommended.)";
    assert_eq!(
        t.events(),
        [
            DriverEvent::JobInterrupted {
                job_id: 9,
                reason: reason.into(),
                resume: None,
            },
            DriverEvent::Condition(Condition::Alarm {
                reason: reason.into()
            })
        ]
    );
    assert_eq!(t.protocol.in_flight_bytes(), 0);
    // The answers GRBL sends for what was in its buffers are ignored.
    t.recv("error:9\r\n[MSG:Reset to continue]\r\n");
    assert_eq!(
        t.sent(),
        "",
        "no job line and no unlock on the driver's own initiative"
    );
    let refused = t
        .protocol
        .start_job(t.now, 10, preflight("G0X1", 80).unwrap());
    assert!(matches!(refused, Err(DriverError::Refused(r)) if r.starts_with("ALARM:1")));
}

#[test]
fn a_banner_mid_job_means_the_controller_reset() {
    let mut t = Transcript::idle(128);
    t.start(4, "G0X1\nG0X2\nG0X3\n");
    t.sent();
    t.recv("ok\r\n\r\nGrbl 1.1h ['$' for help]\r\n");
    let events = t.events();
    assert!(events.contains(&DriverEvent::JobInterrupted {
        job_id: 4,
        reason: "the controller reset (welcome banner mid-job)".into(),
        resume: None,
    }));
    assert_eq!(t.protocol.in_flight_bytes(), 0);
    assert_eq!(
        t.protocol.status().firmware_version.as_deref(),
        Some("1.1h")
    );
}

#[test]
fn pause_resume_and_abort_use_realtime_commands() {
    let mut t = Transcript::idle(128);
    t.start(2, "G1X50F100\nG1X0\n");
    t.sent();
    t.protocol.pause(t.now).unwrap();
    t.protocol.resume(t.now).unwrap();
    t.collect();
    assert_eq!(t.sent(), "!~");
    t.recv("ok\r\n");
    t.protocol.abort(t.now).unwrap();
    t.advance(0).unwrap();
    assert_eq!(t.sent(), "!?");
    assert!(t.events().contains(&DriverEvent::JobInterrupted {
        job_id: 2,
        reason: "aborted by operator".into(),
        resume: None,
    }));
    t.recv("<Hold:0>\r\n");
    assert_eq!(t.sent(), "\u{18}");
    assert!(t.protocol.pause(t.now).is_err());
}

#[test]
fn a_hold_nobody_asked_for_is_held_with_its_cause_until_the_operator_resumes() {
    let mut t = Transcript::idle(128);
    t.start(2, "G1X50F100\nG1X0\n");
    t.sent();
    t.recv("<Run>\r\n");
    t.recv("<Hold:1>\r\n");
    t.recv("<Hold:0>\r\n");
    assert_eq!(
        t.conditions(),
        [
            Condition::Busy,
            held(
                "feed hold microfab did not send (Hold:1: a feed-hold button or line noise): resume or abort"
            ),
            held(
                "feed hold microfab did not send (Hold:0: a feed-hold button or line noise): resume or abort"
            ),
        ]
    );
    for _ in 0..100 {
        t.advance(200).unwrap();
        t.recv("<Hold:0>\r\n");
    }
    assert_eq!(t.sent(), "?".repeat(100), "no cycle start on its own");
    assert!(t.events().is_empty(), "the job stays as it is");
    t.recv("<Door:2>\r\n<Door:1>\r\n");
    let refused = t.protocol.resume(t.now);
    assert_eq!(
        refused,
        Err(DriverError::Refused(
            "the safety door is open: close it, then resume".into()
        ))
    );
    t.recv("<Door:0>\r\n");
    t.protocol.resume(t.now).unwrap();
    t.collect();
    assert_eq!(t.sent(), "~");
    t.recv("<Run>\r\n");
    // The operator's own pause is a pause, not a hold from outside.
    t.protocol.pause(t.now).unwrap();
    t.recv("<Hold:0>\r\n");
    assert_eq!(t.conditions().last(), Some(&Condition::Paused));
    // A button pressed on an idle machine holds it too: the operator can resume it.
    let mut t = Transcript::idle(128);
    assert!(t.protocol.resume(t.now).is_err(), "nothing to resume");
    t.recv("<Hold:0>\r\n");
    t.protocol.resume(t.now).unwrap();
    t.collect();
    assert_eq!(t.sent(), "~");
}

#[test]
fn after_a_hard_limit_unlock_is_refused_until_a_reset_and_succeeds_only_out_of_alarm() {
    let mut t = Transcript::idle(128);
    t.recv("ALARM:1\r\n[MSG:Reset to continue]\r\n");
    let locked = "ALARM:1 (Hard limit: Hard limit has been triggered. Machine position is \
                  likely lost due to sudden halt. Re-homing is highly recommended.); the \
                  controller takes nothing but a reset: reset first, then home or unlock";
    assert_eq!(
        t.conditions().last(),
        Some(&Condition::Alarm {
            reason: locked.into()
        })
    );
    t.sent();
    // GRBL answers nothing now, not even `?`: that is no lost link.
    for _ in 0..50 {
        assert_eq!(t.advance(200), Ok(()));
    }
    for action in [GrblOperatorAction::Unlock, GrblOperatorAction::Home] {
        assert_eq!(
            t.protocol.operator(t.now, action),
            Err(DriverError::Refused(locked.into()))
        );
    }
    assert!(!t.sent().contains('$'), "nothing GRBL would ignore is sent");
    t.protocol
        .operator(t.now, GrblOperatorAction::SoftReset)
        .unwrap();
    t.collect();
    assert_eq!(t.sent(), "\u{18}");
    assert_eq!(t.protocol.take_operator_outcome(), None);
    t.recv("\r\nGrbl 1.1h ['$' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\n");
    assert_eq!(t.protocol.take_operator_outcome(), Some(Ok(())));
    t.advance(0).unwrap();
    t.recv("<Alarm>\r\n");
    t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
    t.protocol
        .operator(t.now, GrblOperatorAction::Unlock)
        .unwrap();
    t.collect();
    assert!(t.sent().ends_with("$X\n"));
    t.recv("[MSG:Caution: Unlocked]\r\nok\r\n");
    t.recv("<Alarm>\r\n");
    assert_eq!(
        t.protocol.take_operator_outcome(),
        None,
        "a report requested before the ok proves nothing"
    );
    t.advance(0).unwrap();
    t.recv("<Idle>\r\n");
    assert_eq!(t.protocol.take_operator_outcome(), Some(Ok(())));
}

#[test]
fn an_unlock_that_leaves_the_alarm_in_place_is_refused() {
    let mut t = Transcript::new(128);
    t.recv("<Alarm>\r\n");
    t.protocol
        .operator(t.now, GrblOperatorAction::Unlock)
        .unwrap();
    t.recv("ok\r\nok\r\n");
    t.advance(200).unwrap();
    t.recv("<Alarm>\r\n");
    let outcome = t.protocol.take_operator_outcome();
    assert!(
        matches!(&outcome, Some(Err(DriverError::Refused(r))) if r.starts_with("the controller is still in alarm after unlock")),
        "{outcome:?}"
    );
}

#[test]
fn operator_actions_are_lines_only_when_asked_and_never_during_a_job() {
    let mut t = Transcript::new(128);
    t.recv("<Alarm|MPos:0,0,0>\r\n");
    t.recv("ok\r\n");
    t.sent();
    t.protocol
        .operator(t.now, GrblOperatorAction::Unlock)
        .unwrap();
    t.collect();
    assert_eq!(t.sent(), "$X\n");
    t.recv("[MSG:Caution: Unlocked]\r\nok\r\n<Idle>\r\n");
    t.start(1, "G0X1\n");
    let refused = t.protocol.operator(t.now, GrblOperatorAction::Home);
    assert!(matches!(refused, Err(DriverError::Refused(_))));
}

#[test]
fn a_reset_without_banner_completes_on_the_next_status_report() {
    let mut t = Transcript::idle(128);
    t.protocol
        .operator(t.now, GrblOperatorAction::SoftReset)
        .unwrap();
    t.advance(0).unwrap();
    assert_eq!(t.sent(), "\u{18}?");
    t.recv("<Idle>\r\n");
    assert_eq!(
        t.sent(),
        "$G\n",
        "no longer stopping: the parser state is read again"
    );
    t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
    t.start(1, "G0X1\n");
    assert_eq!(t.sent(), "G0X1\n");
}

#[test]
fn operator_replies_are_kept_for_the_operator() {
    let mut t = Transcript::idle(128);
    t.protocol
        .operator(t.now, GrblOperatorAction::Home)
        .unwrap();
    t.recv("error:5\r\n");
    assert_eq!(
        t.protocol.status().last_operator_reply,
        Some((GrblOperatorAction::Home, Some(GrblError(5))))
    );
}

#[test]
fn silence_past_the_timeout_is_a_lost_link() {
    let mut t = Transcript::idle(128);
    for _ in 0..15 {
        assert_eq!(t.advance(200), Ok(()));
    }
    assert!(t.advance(200).is_err());
    t.protocol.disconnected(t.now, "no answer");
    t.collect();
    assert_eq!(t.conditions(), [unavailable("no answer")]);
}

#[test]
fn the_next_deadline_is_the_next_poll_or_the_silence_limit() {
    let mut t = Transcript::idle(128);
    let start = t.now;
    assert_eq!(t.protocol.next_deadline(), Some(start + INTERVAL));
    t.advance(200).unwrap();
    let answer_timeout = Duration::from_secs(1);
    assert_eq!(t.protocol.next_deadline(), Some(t.now + answer_timeout));
    t.protocol.disconnected(t.now, "gone");
    assert_eq!(t.protocol.next_deadline(), None);
}

#[test]
fn an_unanswered_status_request_is_repeated() {
    let mut t = Transcript::idle(128);
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?");
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "", "one request outstanding at a time");
    t.advance(700).unwrap();
    assert_eq!(t.sent(), "", "not yet given up on");
    t.advance(200).unwrap();
    assert_eq!(t.sent(), "?");
}

#[test]
fn a_lost_ok_interrupts_the_job_instead_of_hanging() {
    let mut t = Transcript::idle(128);
    t.start(8, "G0X1\nG0X2\n");
    t.sent();
    t.recv("ok\r\n");
    for _ in 0..10 {
        t.advance(200).unwrap();
        t.recv("<Idle>\r\n");
    }
    assert!(
        !t.events()
            .iter()
            .any(|e| matches!(e, DriverEvent::JobInterrupted { .. }))
    );
    t.advance(200).unwrap();
    t.recv("<Idle>\r\n");
    let events = t.events();
    assert!(
        matches!(&events[..], [DriverEvent::JobInterrupted { job_id: 8, reason, .. }, DriverEvent::Condition(Condition::Idle)]
            if reason.contains("never answered")),
        "{events:?}"
    );
    assert_eq!(t.protocol.in_flight_bytes(), 0);
}

#[test]
fn a_dwell_in_flight_is_not_a_lost_ok() {
    let mut t = Transcript::idle(128);
    t.start(8, "G4P10\n");
    for _ in 0..30 {
        t.advance(200).unwrap();
        t.recv("<Idle>\r\n");
    }
    assert!(
        !t.events()
            .iter()
            .any(|e| matches!(e, DriverEvent::JobInterrupted { .. }))
    );
}

#[test]
fn send_and_wait_keeps_one_line_in_flight() {
    let mut t = Transcript::idle(128);
    t.protocol.config.streaming = Streaming::SendAndWait;
    t.start(1, "G0X1\nG0X2\n");
    assert_eq!(t.sent(), "G0X1\n");
    t.recv("ok\r\n");
    assert_eq!(t.sent(), "G0X2\n");
}

#[test]
fn link_loss_interrupts_the_job_and_forgets_the_buffers() {
    let mut t = Transcript::idle(128);
    t.start(6, "G0X1\n");
    t.protocol.disconnected(t.now, "serial I/O error: EIO");
    t.collect();
    let events = t.events();
    assert!(events.contains(&DriverEvent::JobInterrupted {
        job_id: 6,
        reason: "link lost: serial I/O error: EIO".into(),
        resume: None,
    }));
    assert_eq!(t.protocol.in_flight_bytes(), 0);
    let refused = t
        .protocol
        .start_job(t.now, 7, preflight("G0X1", 80).unwrap());
    assert!(matches!(refused, Err(DriverError::LinkDown(_))));
}
