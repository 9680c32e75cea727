//! Byte-transcript tests of the protocol core, all through [`check`].
//!
//! A transcript interleaves what the test does and what the core answers:
//! `< text` the printer sends a line (`<< text` raw bytes, `\r` and `\n` escaped), `@ ms` time
//! passes, `job: a | b` / `pause` / `resume` / `cancel` are the host's commands, `> line` is
//! what the core sends and `! event` what it reports. `check` replays the inputs and rebuilds the
//! whole transcript; it must come out identical. Unless a case starts with `settings:`, the
//! standard handshake is prepended and default settings apply.

use std::time::{Duration, Instant};

use super::protocol::{Protocol, ProtocolEvent, Settings};

const HANDSHAKE: &str = "\
> N0 M110 N0*125
< ok
> N1 M115*39
< FIRMWARE_NAME:Marlin 2.1.2 (Mar 1 2024) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0
< ok
! Ready { firmware: Some(\"Marlin 2.1.2 (Mar 1 2024)\"), line_window: 1 }
";

fn render(event: &ProtocolEvent) -> String {
    match event {
        ProtocolEvent::Temperatures(t) => format!("Temperatures {t}"),
        other => format!("{other:?}"),
    }
}

fn apply_setting(settings: &mut Settings, assignment: &str) {
    let (key, value) = assignment.split_once('=').expect("key=value");
    let ms = || Duration::from_millis(value.parse().expect("milliseconds"));
    match key {
        "in_flight" => settings.in_flight = Some(value.parse().unwrap()),
        "resync_interval" => settings.resync_interval = value.parse().unwrap(),
        "max_consecutive_resends" => settings.max_consecutive_resends = value.parse().unwrap(),
        "ok_after_resend" => settings.ok_after_resend = value.parse().unwrap(),
        "finish_with_m400" => settings.finish_with_m400 = value.parse().unwrap(),
        "command_timeout" => settings.command_timeout = ms(),
        "long_command_timeout" => settings.long_command_timeout = ms(),
        "cancel_script" => settings.cancel_script = value.split('|').map(String::from).collect(),
        other => panic!("unknown setting {other}"),
    }
}

fn unescape(text: &str) -> Vec<u8> {
    text.replace("\\r", "\r").replace("\\n", "\n").into_bytes()
}

fn check(case: &str) {
    let case = case.trim_start_matches('\n');
    let expected = if case.starts_with("settings:") {
        case.to_string()
    } else {
        format!("{HANDSHAKE}{case}")
    };
    let mut settings = Settings {
        finish_with_m400: false,
        ..Settings::default()
    };
    let inputs: Vec<&str> = expected
        .lines()
        .filter(|l| !l.starts_with("> ") && !l.starts_with("! "))
        .collect();
    if let Some(list) = inputs.first().and_then(|l| l.strip_prefix("settings:")) {
        list.split_whitespace()
            .for_each(|a| apply_setting(&mut settings, a));
    }
    let start = Instant::now();
    let mut now = start;
    let mut protocol = Protocol::new(settings, now);
    let mut actual = String::new();
    let drain = |protocol: &mut Protocol, actual: &mut String| {
        while let Some(event) = protocol.poll_event() {
            actual.push_str(&format!("! {}\n", render(&event)));
        }
        let sent = protocol.take_outgoing();
        for line in String::from_utf8(sent).unwrap().lines() {
            actual.push_str(&format!("> {line}\n"));
        }
    };
    let mut first = true;
    for input in inputs {
        if first && !input.starts_with("settings:") {
            drain(&mut protocol, &mut actual);
        }
        if !input.starts_with("settings:") {
            actual.push_str(input);
            actual.push('\n');
        }
        if let Some(text) = input.strip_prefix("<< ") {
            protocol.receive(&unescape(text), now);
        } else if let Some(text) = input.strip_prefix("< ") {
            protocol.receive(format!("{text}\n").as_bytes(), now);
        } else if let Some(ms) = input.strip_prefix("@ ") {
            now = start + Duration::from_millis(ms.parse().unwrap());
            protocol.handle_timeout(now);
        } else if let Some(program) = input.strip_prefix("job: ") {
            let lines = (1..)
                .zip(program.split(" | "))
                .map(|(line, text)| super::protocol::ProgramLine {
                    line,
                    text: text.to_string(),
                })
                .collect();
            if let Err(error) = protocol.start_job(lines, now) {
                actual.push_str(&format!("! refused: {error}\n"));
            }
        } else if input == "pause" {
            protocol.pause().unwrap();
        } else if input == "resume" {
            protocol.resume(now).unwrap();
        } else if input == "cancel" {
            protocol.cancel("aborted by operator", now).unwrap();
        } else if input.starts_with("settings:") {
            actual.push_str(input);
            actual.push('\n');
        } else if !input.starts_with('#') {
            panic!("unknown transcript step: {input}");
        }
        drain(&mut protocol, &mut actual);
        first = false;
        if let Some(deadline) = protocol.poll_timeout() {
            assert!(
                deadline >= now,
                "a timeout in the past after: {input}\n{actual}"
            );
        }
    }
    if actual != expected {
        panic!("transcript differs.\n--- expected\n{expected}--- actual\n{actual}");
    }
    assert_numbers_keep_their_text(&actual);
}

/// Marlin accepts a line number once: a number sent again with another text would make the
/// firmware run that text even if it had already run it under its old number. So within a
/// numbering (from one `M110 N0` to the next) each number is always sent with the same text.
fn assert_numbers_keep_their_text(transcript: &str) {
    let mut texts = std::collections::HashMap::new();
    for line in transcript.lines().filter_map(|l| l.strip_prefix("> N")) {
        let (number, text) = line.split_once(' ').expect("N<n> <command>");
        if text.starts_with("M110 N0") {
            texts.clear();
        }
        if let Some(earlier) = texts.insert(number.to_string(), text.to_string()) {
            assert_eq!(earlier, text, "N{number} sent with two texts");
        }
    }
}

#[test]
fn a_job_streams_one_line_at_a_time_and_ends_with_a_proof_probe() {
    check(
        "
job: G1 X1 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 2 }
> N3 G1 X2*97
< ok
! JobProgress { done: 2, total: 2 }
> N4 M105*35
< ok T:20.0 /0.0 B:21.0 /0.0 @:0 B@:0
! Temperatures T:20/0 B:21/0
! JobDone
",
    );
}

#[test]
fn advanced_ok_acknowledges_through_the_line_it_names() {
    check(
        "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4
> N0 M110 N0*125
< ok N0 P15 B3
! JobProgress { done: 0, total: 4 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< ok N3 P14 B2
! JobProgress { done: 2, total: 4 }
> N5 G1 X4*97
> N6 M105*33
< ok N4 P14 B2
! JobProgress { done: 3, total: 4 }
< ok N5 P15 B3
! JobProgress { done: 4, total: 4 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn checksum_mismatch_resends_the_line_once_and_swallows_the_ok_that_follows() {
    check(
        "
job: G1 X1 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< Error:checksum mismatch, Last Line: 1
< Resend: 2
> N2 G1 X1*99
< ok
< ok
! JobProgress { done: 1, total: 2 }
> N3 G1 X2*97
< ok
! JobProgress { done: 2, total: 2 }
> N4 M105*35
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn short_resend_form_and_firmware_without_ok_after_resend() {
    check(
        "
settings: ok_after_resend=false
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 1 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< rs N2
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 1 }
> N3 M105*36
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn stale_resend_requests_from_lines_in_flight_do_not_send_a_line_twice() {
    // Lines 2-4 are in flight when line 2 is corrupted: Marlin rejects 2 (checksum) and empties
    // its receive buffer (line 3 is lost with it), then rejects 4 (line number) with another
    // `Resend: 2`. The host resends once, when the printer has been quiet for 3 ms and as long
    // after the stale lines have reached it (the 37 bytes in flight at 0 ms, 115,200 baud: by
    // 3.2 ms).
    check(
        "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
@ 3
< Error:Line Number is not Last Line Number+1, Last Line: 1
< Resend: 2
< ok
@ 6
@ 12
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< ok
! JobProgress { done: 1, total: 3 }
> N5 M105*34
< ok
! JobProgress { done: 2, total: 3 }
< ok
! JobProgress { done: 3, total: 3 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn a_corrupted_m110_is_resent_whatever_number_the_firmware_asks_for() {
    check(
        "
job: G1 X1
> N0 M110 N0*125
< Error:checksum mismatch, Last Line: 4711
< Resend: 4712
> N0 M110 N0*125
< ok
< ok
! JobProgress { done: 0, total: 1 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 1 }
> N3 M105*36
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn a_request_for_a_line_the_printer_executed_interrupts_the_job() {
    check(
        "
settings: resync_interval=2
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 3 }
> N3 G1 X2*97
< ok
! JobProgress { done: 2, total: 3 }
> N4 M105*35
< ok T:20.0 /0.0
! Temperatures T:20/0
> N5 G1 X3*102
< ok
! JobProgress { done: 3, total: 3 }
> N6 M105*33
< Error:Line Number is not Last Line Number+1, Last Line: 0
< Resend: 1
! JobInterrupted { reason: \"the printer asked for line 1, which it had executed: it lost its state\", resume: None }
> N0 M110 N0*125
",
    );
}

#[test]
fn too_many_resends_in_a_row_declare_the_link_faulty() {
    check(
        "
settings: max_consecutive_resends=2
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 1 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< Error:checksum mismatch, Last Line: 1
< Resend: 2
> N2 G1 X1*99
< ok
< Error:checksum mismatch, Last Line: 1
< Resend: 2
> N2 G1 X1*99
< ok
< Error:checksum mismatch, Last Line: 1
< Resend: 2
! JobInterrupted { reason: \"3 resend requests in a row for line 2: the link is faulty\", resume: Some(ResumePoint { next_line: 1, in_doubt: [1] }) }
! LinkDead { reason: \"3 resend requests in a row for line 2: the link is faulty\" }
< ok
",
    );
}

#[test]
fn printer_halted_interrupts_the_job_and_stops_sending() {
    check(
        "
job: M109 S210 | G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 M109 S210*105
< Error:Thermal Runaway, system stopped! Heater_ID: 0
! JobInterrupted { reason: \"the printer halted: Thermal Runaway, system stopped! Heater_ID: 0\", resume: None }
! Halted { reason: \"Thermal Runaway, system stopped! Heater_ID: 0\" }
< Error:Printer halted. kill() called!
< ok
@ 60000
",
    );
}

#[test]
fn a_command_error_fails_the_job_and_runs_the_cancel_script() {
    check(
        "
settings: cancel_script=M104_S0|M84
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G29 | G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G29*16
< Error:Probing Failed
! JobFailed { reason: \"the printer reported an error: Probing Failed\" }
< ok
> N3 M104_S0*25
< ok
> N4 M84*27
< ok
> N5 M105*34
< ok T:20.0 /0.0
! Temperatures T:20/0
! CancelDone
",
    );
}

#[test]
fn busy_keepalives_carry_a_long_command_past_the_command_timeout_but_not_a_short_one() {
    check(
        "
job: M109 S210 | G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 M109 S210*105
@ 2000
< echo:busy: processing
@ 4000
<  T:190.3 /210.0 B:60.0 /60.0 @:127 B@:0 W:?
! Temperatures T:190.3/210 B:60/60
@ 6000
< busy: processing
@ 8000
< busy: processing
@ 10000
< busy: processing
@ 12000
< busy: processing
@ 14000
< ok
! JobProgress { done: 1, total: 2 }
> N3 G1 X1*98
@ 16499
@ 16500
> N4 M105*35
@ 26499
@ 26500
! JobInterrupted { reason: \"the printer stopped answering (command timeout, and no answer to M105)\", resume: Some(ResumePoint { next_line: 2, in_doubt: [2] }) }
! LinkDead { reason: \"the printer stopped answering (command timeout, and no answer to M105)\" }
",
    );
}

#[test]
fn silence_sends_a_probe_whose_answer_stands_in_for_a_lost_ok() {
    check(
        "
job: G1 X1 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
@ 2499
@ 2500
> N3 M105*36
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobProgress { done: 1, total: 2 }
> N4 G1 X2*102
< ok
! JobProgress { done: 2, total: 2 }
> N5 M105*34
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn silence_after_the_probe_declares_the_link_dead() {
    check(
        "
job: G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 1 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
@ 2500
> N3 M105*36
@ 12499
@ 12500
! JobInterrupted { reason: \"the printer stopped answering (command timeout, and no answer to M105)\", resume: Some(ResumePoint { next_line: 1, in_doubt: [1] }) }
! LinkDead { reason: \"the printer stopped answering (command timeout, and no answer to M105)\" }
",
    );
}

#[test]
fn a_lost_ok_after_m400_is_probed_once_keepalives_stop_or_never_came() {
    // Keep-alives hold the probe off; once they stop, a probe goes out 2.5 s later, not after
    // the long-command timeout. Firmware that never sends them is probed after 2.5 s as well.
    check(
        "
job: G1 X1 | M400 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 3 }
> N3 M400*36
@ 2000
< echo:busy: processing
@ 4000
< echo:busy: processing
@ 6000
< echo:busy: processing
@ 8499
@ 8500
> N4 M105*35
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobProgress { done: 2, total: 3 }
> N5 G1 X2*103
< ok
! JobProgress { done: 3, total: 3 }
> N6 M105*33
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
    check(
        "
job: M400 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 M400*37
@ 2499
@ 2500
> N3 M105*36
@ 400000
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobProgress { done: 1, total: 2 }
> N4 G1 X2*102
",
    );
}

#[test]
fn an_abort_frees_the_printer_at_once_whatever_the_stream_waits_for() {
    // M400's `ok` is outstanding (lost, or the moves go on): the cancel script does not wait for
    // it. M110, the sync probe and the script's M108/M410 go out at once, the rest once the
    // probe is answered.
    check(
        "
job: G1 X1 | M400 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 3 }
> N3 M400*36
< echo:busy: processing
cancel
! JobInterrupted { reason: \"aborted by operator\", resume: None }
> N0 M110 N0*125
> N1 M105*38
> N2 M108*40
> N3 M410*37
< ok
< ok T:20.0 /0.0
! Temperatures T:20/0
< ok
< ok
> N4 M110 N4*125
< ok
> N5 M104 S0*96
< ok
> N6 M140 S0*99
< ok
> N7 M107*34
< ok
> N8 M84*23
< ok
> N9 M105*46
< ok T:20.0 /0.0
! Temperatures T:20/0
! CancelDone
",
    );
}

#[test]
fn a_lost_link_leaves_the_resume_point_after_the_last_acknowledged_line() {
    // Two lines in flight when the link goes: both are in doubt, the next line is the first.
    check(
        "
settings: in_flight=2
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 2 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 4 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
< ok
! JobProgress { done: 1, total: 4 }
> N4 G1 X3*103
@ 10000
> N5 M105*34
@ 20000
! JobInterrupted { reason: \"the printer stopped answering (command timeout, and no answer to M105)\", resume: Some(ResumePoint { next_line: 2, in_doubt: [2, 3] }) }
! LinkDead { reason: \"the printer stopped answering (command timeout, and no answer to M105)\" }
",
    );
}

#[test]
fn after_a_stray_ok_the_resume_point_goes_back_to_the_last_certain_line() {
    // An `ok` for no line may have moved the count ahead of the firmware: only what the last
    // answered probe proves counts as done.
    check(
        "
settings: in_flight=1
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 3 }
> N3 G1 X2*97
< ok
! JobProgress { done: 2, total: 3 }
> N4 G1 X3*103
< ok
! JobProgress { done: 3, total: 3 }
> N5 M105*34
< ok
> N6 M105*33
< ok
@ 10000
> N7 M105*32
@ 20000
! JobInterrupted { reason: \"the printer stopped answering (command timeout, and no answer to M105)\", resume: Some(ResumePoint { next_line: 1, in_doubt: [1, 2, 3] }) }
! LinkDead { reason: \"the printer stopped answering (command timeout, and no answer to M105)\" }
",
    );
}

#[test]
fn a_job_started_during_an_idle_poll_waits_for_its_answer() {
    check(
        "
settings: in_flight=4
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 4 }
@ 0
> N2 M105*37
job: G1 X1 | G1 X2
< ok T:20.0 /0.0
! Temperatures T:20/0
> N0 M110 N0*125
",
    );
}

#[test]
fn a_job_started_during_a_rejected_idle_poll_starts_once_the_poll_is_answered() {
    // The poll's resend request is about the poll, not the job that has sent nothing yet.
    check(
        "
settings: in_flight=4
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 4 }
@ 0
> N2 M105*37
job: G1 X1 | G1 X2
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
> N0 M110 N0*125
",
    );
}

#[test]
fn a_printer_waiting_for_its_user_is_reported_until_it_goes_on() {
    check(
        "
job: M0 Insert the magnets | G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 M0 Insert the magnets*40
< echo:busy: paused for user
! PausedByPrinter { reason: \"the printer waits for someone at its screen (busy: paused for user)\" }
@ 2000
< echo:busy: paused for user
< ok
! ResumedByPrinter
! JobProgress { done: 1, total: 2 }
> N3 G1 X1*98
",
    );
}

#[test]
fn host_actions_pause_resume_and_cancel() {
    check(
        "
settings: cancel_script=M84
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< //action:pause
! PausedByPrinter { reason: \"the printer asked to pause (//action:pause)\" }
< ok
! JobProgress { done: 1, total: 3 }
@ 5000
> N3 M105*36
< ok T:20.0 /0.0
! Temperatures T:20/0
< //action:resume
! ResumedByPrinter
> N4 G1 X2*102
< //action:cancel
! JobInterrupted { reason: \"cancelled on the printer (//action:cancel)\", resume: None }
> N0 M110 N0*125
> N1 M105*38
< ok
< ok
> N2 M105*37
< ok T:20.0 /0.0
! Temperatures T:20/0
< ok T:20.0 /0.0
! Temperatures T:20/0
> N3 M84*28
< ok
> N4 M105*35
< ok T:20.0 /0.0
! Temperatures T:20/0
! CancelDone
",
    );
}

#[test]
fn operator_pause_holds_the_stream_and_abort_runs_the_cancel_script() {
    check(
        "
settings: cancel_script=M108|M84
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
pause
< ok
! JobProgress { done: 1, total: 2 }
resume
> N3 G1 X2*97
cancel
! JobInterrupted { reason: \"aborted by operator\", resume: None }
> N0 M110 N0*125
> N1 M105*38
> N2 M108*40
< ok
< ok
< ok T:20.0 /0.0
! Temperatures T:20/0
< ok
> N3 M110 N3*125
< ok
> N4 M84*27
< ok
> N5 M105*34
< ok T:20.0 /0.0
! Temperatures T:20/0
! CancelDone
",
    );
}

#[test]
fn firmware_reset_mid_job_interrupts_and_shakes_hands_again() {
    check(
        "
job: G1 X1 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< start
! FirmwareReset
! JobInterrupted { reason: \"the firmware restarted mid-job (it printed 'start'): its state is lost\", resume: None }
> N0 M110 N0*125
< echo:Marlin 2.1.2
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
",
    );
}

#[test]
fn handshake_retries_and_restarts_when_the_board_boots() {
    check(
        "
settings: in_flight=1
> N0 M110 N0*125
@ 2000
> N0 M110 N0*125
< start
! Booted
> N0 M110 N0*125
< echo: External Reset
< ok
> N1 M115*39
# Perhaps an earlier hello's: M115 names the firmware before its own `ok`.
< ok
< ok
! Ready { firmware: None, line_window: 1 }
job: G1 X1
> N0 M110 N0*125
",
    );
}

#[test]
fn an_ok_for_a_hello_from_before_start_is_not_taken_for_m115s() {
    // The board printed `start` but kept the first hello, and answers both: the second `ok`
    // arrives after M115 went out, before M115's answer.
    check(
        "
settings:
> N0 M110 N0*125
< start
! Booted
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
< FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0
< ok
! Ready { firmware: Some(\"Prusa-Firmware 3.13.3 based on Marlin\"), line_window: 3 }
",
    );
}

#[test]
fn a_lost_probe_answer_is_caught_up_without_waiting_for_a_timeout() {
    // Prusa-Firmware (tails rejected), 2 lines in flight: the answer to probe N4 is lost on the wire. The
    // plain `ok`s for N5 and N6 prove it was answered (Marlin answers in order, a probe only
    // with `ok T:`), so the next `ok T:` is the second probe's and the count is exact again.
    check(
        "
settings: in_flight=2 resync_interval=2
> N0 M110 N0*125
< ok
> N1 M115*39
< FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin
< ok
! Ready { firmware: Some(\"Prusa-Firmware 3.13.3 based on Marlin\"), line_window: 2 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 4 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
< ok
! JobProgress { done: 1, total: 4 }
> N4 M105*35
< ok
! JobProgress { done: 2, total: 4 }
> N5 G1 X3*102
# N4's `ok T:` is lost; this `ok` is N5's.
< ok
> N6 M105*33
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobProgress { done: 3, total: 4 }
> N7 G1 X4*99
> N8 M105*47
< ok
! JobProgress { done: 4, total: 4 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn a_rejected_m115_is_asked_again_after_the_hello() {
    // Without M115's answer the firmware is unknown and the window would be 1.
    check(
        "
settings:
> N0 M110 N0*125
< ok
> N1 M115*39
< Error:checksum mismatch, Last Line: 0
< Resend: 1
< ok
> N0 M110 N0*125
< ok
> N1 M115*39
< FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0
< ok
! Ready { firmware: Some(\"Prusa-Firmware 3.13.3 based on Marlin\"), line_window: 3 }
",
    );
}

#[test]
fn partial_lines_crlf_garbage_and_autoreports() {
    check(
        "
job: G1 X1
> N0 M110 N0*125
<< o
<< k\\r\\n
! JobProgress { done: 0, total: 1 }
> N1 M105*38
<< \u{fffd}\u{1}garbage\\r\\n
< echo:Unknown command: \"X\"
< T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0
! Temperatures T:210/210 B:60/60
<< ok T:2
<< 0.0 /0.0\\r\\n
! Temperatures T:20/0
> N2 G1 X1*99
<< ok\\r\\nok T:2
! JobProgress { done: 1, total: 1 }
> N3 M105*36
<< 0.0 /0.0\\r\\n
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn idle_link_is_polled_and_declared_dead_when_silent() {
    check(
        "
@ 5000
> N2 M105*37
< ok T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0
! Temperatures T:20/0 B:20/0
@ 10000
> N3 M105*36
@ 19999
@ 20000
! LinkDead { reason: \"no answer to M105 for 10 s\" }
job: G1 X1
! refused: the printer is not ready: no answer to M105 for 10 s
",
    );
}

#[test]
fn a_stray_ok_never_acknowledges_a_probe() {
    // A stray `ok` (the tail of a line cut by Marlin's receive-buffer flush, executed as an
    // unnumbered command) arrives while the periodic probe N5 is the oldest line in flight: only
    // `ok T:` answers a probe, so the count does not run ahead and the job cannot end early.
    check(
        "
settings: in_flight=2 resync_interval=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 2 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 4 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
< ok
! JobProgress { done: 1, total: 4 }
> N4 G1 X3*103
< ok
! JobProgress { done: 2, total: 4 }
> N5 M105*34
< ok
! JobProgress { done: 3, total: 4 }
> N6 G1 X4*98
< ok
> N7 M105*32
< ok T:20.0 /0.0
! Temperatures T:20/0
< ok
! JobProgress { done: 4, total: 4 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn a_probe_read_as_an_unknown_command_is_caught_at_once() {
    // Noise turned the final probe's `N` into `J`: Marlin acknowledges it as an unknown command.
    // A second probe makes Marlin ask for the first instead of waiting for a timeout.
    check(
        "
job: G1 X1
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 1 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 1 }
> N3 M105*36
< echo:Unknown command: \"J3 M105\"
< ok
> N4 M105*35
< Error:Line Number is not Last Line Number+1, Last Line: 2
< Resend: 3
< ok
@ 20
> N3 M105*36
< ok T:20.0 /0.0
! Temperatures T:20/0
> N4 M105*35
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn a_rejected_idle_poll_or_hello_restarts_the_numbering() {
    check(
        "
settings: in_flight=1
> N0 M110 N0*125
< Error:checksum mismatch, Last Line: 17
< Resend: 18
< ok
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 1 }
@ 5000
> N2 M105*37
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
@ 10000
> N0 M110 N0*125
< ok
@ 15000
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
",
    );
}

#[test]
fn a_cut_tail_rejected_for_its_checksum_without_line_number_is_a_communication_error() {
    // Line 2 is corrupted; Marlin empties its receive buffer with line 3 half received, and
    // line 3's tail (`G1 X2*97`) arrives alone. Marlin 1.0 and Sprinter reject it with no resend
    // request and no `ok`; Prusa-Firmware rejects it like any line error (`Resend:`, `ok`).
    // Either way the job goes on, and line 2 is resent once: as soon as every stale line has
    // been rejected (Marlin 1.0), or when the printer has been quiet long enough for a stale
    // line swallowed whole by the flush (Prusa-Firmware here: line 4 never answers).
    let resent = "> N2 G1 X1*99\n> N3 G1 X2*97\n> N4 G1 X3*103\n";
    let stale_replies = [
        format!(
            "\
@ 2
< Error:No Line Number with checksum, Last Line: 1
@ 3
< Error:Line Number is not Last Line Number+1, Last Line: 1
{resent}< Resend: 2
< ok
"
        ),
        format!(
            "\
@ 2
< Error:No Line Number with checksum, Last Line: 1
< Resend: 2
< ok
@ 6
@ 12
{resent}"
        ),
    ];
    for replies in stale_replies {
        check(&format!(
            "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready {{ firmware: None, line_window: 3 }}
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress {{ done: 0, total: 3 }}
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
{replies}< ok
! JobProgress {{ done: 1, total: 3 }}
> N5 M105*34
< ok
! JobProgress {{ done: 2, total: 3 }}
< ok
! JobProgress {{ done: 3, total: 3 }}
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
"
        ));
    }
}

#[test]
fn a_request_for_the_line_after_those_in_flight_means_they_are_copies_of_accepted_lines() {
    // A late stale `Resend: 2` made the host rewind a second time; the firmware had accepted
    // the first resend, so it rejects the copies, each with `Resend: 5`: it accepted every line
    // before 5. The count jumps there, the copies' requests are not taken for new ones, and
    // line 5 goes out once they have all been rejected (each rejection empties Marlin's
    // receive buffer).
    check(
        "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 4 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:Line Number is not Last Line Number+1, Last Line: 4
< Resend: 5
! JobProgress { done: 3, total: 4 }
< ok
< Error:Line Number is not Last Line Number+1, Last Line: 4
< Resend: 5
< ok
< Error:Line Number is not Last Line Number+1, Last Line: 4
> N5 G1 X4*97
> N6 M105*33
< Resend: 5
< ok
< ok
! JobProgress { done: 4, total: 4 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn once_every_stale_line_has_been_rejected_the_resend_goes_out_at_once() {
    // Marlin empties its receive buffer right after the `Error:` line, before `Resend:`: the
    // resent line cannot be thrown away any more, and the stale line's own request and `ok`
    // that follow are not taken for new ones.
    check(
        "
settings: in_flight=2
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 2 }
job: G1 X1 | G1 X2
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 2 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
@ 2
< Error:Line Number is not Last Line Number+1, Last Line: 1
> N2 G1 X1*99
> N3 G1 X2*97
< Resend: 2
< ok
< ok
! JobProgress { done: 1, total: 2 }
> N4 M105*35
< ok
! JobProgress { done: 2, total: 2 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn prusa_firmware_gets_three_lines_in_flight_unless_configured() {
    // Prusa-Firmware rejects the tail of a line cut by its receive-buffer flush, so the default
    // window is 3 against it; only after the sync probe, as always.
    check(
        "
settings:
> N0 M110 N0*125
< ok
> N1 M115*39
< FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0
< ok
! Ready { firmware: Some(\"Prusa-Firmware 3.13.3 based on Marlin\"), line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< ok
! JobProgress { done: 1, total: 3 }
> N5 M105*34
",
    );
    check(
        "
settings: in_flight=1
> N0 M110 N0*125
< ok
> N1 M115*39
< FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0
< ok
! Ready { firmware: Some(\"Prusa-Firmware 3.13.3 based on Marlin\"), line_window: 1 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
< ok
! JobProgress { done: 1, total: 3 }
> N3 G1 X2*97
",
    );
}

#[test]
fn a_stale_tail_read_as_an_unknown_command_has_answered() {
    // Line 2 is corrupted. Marlin's flush cuts line 3 (its tail is rejected) and line 4 after
    // its `*`: the tail `03` has no checksum, so Marlin runs it as a command, unknown. That is
    // line 4's answer, and no line error came with it (no flush): the resend goes out at once
    // instead of at the quiet time.
    check(
        "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
< Error:No Line Number with checksum, Last Line: 1
< Resend: 2
< ok
< echo:Unknown command: \"03\"
< ok
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< ok
! JobProgress { done: 1, total: 3 }
> N5 M105*34
< ok
! JobProgress { done: 2, total: 3 }
< ok
! JobProgress { done: 3, total: 3 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn on_marlin_1_0_the_oks_of_moves_read_behind_a_probe_acknowledge_them() {
    // Marlin 1.0 answers a move's `ok` when it reads it, so the moves behind a probe answer
    // before it does: once the probe is answered, those `ok`s count for them.
    check(
        "
settings: resync_interval=2
> N0 M110 N0*125
< ok
> N1 M115*39
< FIRMWARE_NAME:Marlin V1; Sprinter/grbl mashup for gen6 FIRMWARE_URL:https://github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0
< ok
! Ready { firmware: Some(\"Marlin V1; Sprinter/grbl mashup for gen6\"), line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4 | G1 X5
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 5 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 M105*35
< ok
! JobProgress { done: 1, total: 5 }
> N5 G1 X3*102
< ok
! JobProgress { done: 2, total: 5 }
> N6 G1 X4*98
< ok
< ok
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobProgress { done: 4, total: 5 }
> N7 M105*32
> N8 G1 X5*109
> N9 M105*46
",
    );
}

#[test]
fn a_stale_lines_request_that_comes_after_the_resend_is_not_taken_for_a_fresh_one() {
    // The printer answers later than the wire takes (a slow main loop, a USB bridge's latency
    // timer): line 3's rejection arrives after the quiet time, when line 2 has been resent. The
    // firmware read line 3 before the resent lines and accepted those; taking its `Resend: 2`
    // for a fresh request would send them all again, and each copy's rejection would empty the
    // receive buffer under the next window.
    check(
        "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 3 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
@ 12
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
@ 20
< Error:Line Number is not Last Line Number+1, Last Line: 1
< Resend: 2
< ok
< ok
! JobProgress { done: 1, total: 3 }
> N5 M105*34
< ok
! JobProgress { done: 2, total: 3 }
< ok
! JobProgress { done: 3, total: 3 }
< ok T:20.0 /0.0
! Temperatures T:20/0
! JobDone
",
    );
}

#[test]
fn a_resent_line_rejected_again_is_found_by_a_probe_not_after_seconds_of_silence() {
    // Lines 3 and 4 were swallowed by the flush after line 2's rejection: the resend goes out
    // at the quiet time, and a request for line 2 soon after is taken for theirs. Here it is
    // the resent line 2's own rejection (noise again), whose flush swallows 3 and 4 once more:
    // nothing else comes. A probe goes out once the lines in flight have had time to answer
    // (before, only after the 2.5 s silence probe); its rejection asks for line 2 again.
    check(
        "
settings: in_flight=3
> N0 M110 N0*125
< ok
> N1 M115*39
< ok
! Ready { firmware: None, line_window: 3 }
job: G1 X1 | G1 X2 | G1 X3 | G1 X4
> N0 M110 N0*125
< ok
! JobProgress { done: 0, total: 4 }
> N1 M105*38
< ok T:20.0 /0.0
! Temperatures T:20/0
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
@ 20
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
< Error:checksum mismatch, Last Line: 1
< Resend: 2
< ok
@ 40
> N5 M105*34
@ 140
< Error:Line Number is not Last Line Number+1, Last Line: 1
< Resend: 2
< ok
@ 160
> N2 G1 X1*99
> N3 G1 X2*97
> N4 G1 X3*103
",
    );
}
