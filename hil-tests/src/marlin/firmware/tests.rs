use super::*;

#[test]
fn arcs_run_the_way_they_turn() {
    let quarter = std::f64::consts::FRAC_PI_2 * 10.0;
    let (start, end) = ([10.0, 0.0, 0.0], [0.0, 10.0, 0.0]);
    let counter_clockwise = arc_length(start, end, [-10.0, 0.0], false);
    assert!((counter_clockwise - quarter).abs() < 1e-9);
    let clockwise = arc_length(start, end, [-10.0, 0.0], true);
    assert!((clockwise - 3.0 * quarter).abs() < 1e-9);
    let full = arc_length(start, start, [-10.0, 0.0], true);
    assert!((full - 4.0 * quarter).abs() < 1e-9);
}

fn frame(n: i64, command: &str) -> String {
    let body = format!("N{n} {command}");
    let sum = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("{body}*{sum}\n")
}

/// Feed `(milliseconds, bytes)` steps to a booted firmware and return what it said after
/// its banner, and the commands it executed.
fn check(
    config: FirmwareConfig,
    steps: &[(u64, String)],
    expected_output: &str,
    expected_log: &[&str],
) {
    let booted = Instant::now();
    let mut firmware = Firmware::new(config, 115_200, booted);
    firmware.take_output();
    // Writes block: the banner takes 13 ms to go out at 115,200 baud.
    let start = booted + Duration::from_millis(20);
    for (ms, bytes) in steps {
        let now = start + Duration::from_millis(*ms);
        firmware.poll(now);
        firmware.receive(bytes.as_bytes(), now);
    }
    let output = String::from_utf8(firmware.take_output()).unwrap();
    assert_eq!(output, expected_output, "steps: {steps:?}");
    let log: Vec<&str> = firmware.log().iter().map(|e| e.command.as_str()).collect();
    assert_eq!(log, expected_log, "steps: {steps:?}");
}

/// Name, input steps, expected output, expected execution log.
type Case = (
    &'static str,
    Vec<(u64, String)>,
    &'static str,
    Vec<&'static str>,
);

fn at(ms: u64, text: impl Into<String>) -> (u64, String) {
    (ms, text.into())
}

#[test]
fn line_numbers_and_checksums_are_checked_like_marlin() {
    let cases: Vec<Case> = vec![
        (
            "valid line",
            vec![at(0, frame(1, "G1 X1"))],
            "ok\n",
            vec!["G1 X1"],
        ),
        (
            "checksum mismatch",
            vec![at(0, "N1 G1 X1*0\n")],
            "Error:checksum mismatch, Last Line: 0\nResend: 1\nok\n",
            vec![],
        ),
        (
            "line number skipped",
            vec![at(0, frame(2, "G1 X1"))],
            "Error:Line Number is not Last Line Number+1, Last Line: 0\nResend: 1\nok\n",
            vec![],
        ),
        (
            "no checksum",
            vec![at(0, "N1 G1 X1\n")],
            "Error:No Checksum with line number, Last Line: 0\nResend: 1\nok\n",
            vec![],
        ),
        (
            "M110 resets the numbering while it is read",
            vec![at(
                0,
                format!("{}{}", frame(7, "M110 N0"), frame(1, "G1 X1")),
            )],
            "ok\nok\n",
            vec!["M110 N0", "G1 X1"],
        ),
        (
            "unnumbered lines are not checked, comments are dropped",
            vec![at(0, "G1 X1 ; move\n\n")],
            "ok\n",
            vec!["G1 X1"],
        ),
        (
            "a line error empties the receive buffer",
            vec![at(0, format!("N1 G1 X1*0\n{}", frame(2, "G1 X2")))],
            "Error:checksum mismatch, Last Line: 0\nResend: 1\nok\n",
            vec![],
        ),
        (
            "the tail of a flushed line runs unchecked",
            vec![at(0, "N1 G1 X1*0\nN2 "), at(5, "G1 X2*99\n")],
            "Error:checksum mismatch, Last Line: 0\nResend: 1\nok\nok\n",
            vec!["G1 X2"],
        ),
        (
            "M105 answers on the ok line",
            vec![at(0, "M105\n")],
            "ok T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n",
            vec!["M105"],
        ),
        (
            "unknown commands are acknowledged, not executed",
            vec![at(0, "X5 Y3\n")],
            "echo:Unknown command: \"X5 Y3\"\nok\n",
            vec![],
        ),
        (
            "M190 without S or R does not wait",
            vec![at(0, "M190 N0\n")],
            "ok\n",
            vec!["M190 N0"],
        ),
    ];
    for (name, steps, output, log) in cases {
        eprintln!("case: {name}");
        check(FirmwareConfig::default(), &steps, output, &log);
    }
}

#[test]
fn a_cut_tail_with_a_checksum_runs_on_marlin_2_and_is_rejected_by_older_firmware() {
    // `N2 ` was received before the flush; `G1 X2*99` arrives alone.
    let steps = vec![
        at(0, "N1 G1 X1*0\nN2 "),
        at(5, "G1 X2*99\n"),
        at(12, "X3\n"),
    ];
    let rejected = "Error:checksum mismatch, Last Line: 0\nResend: 1\nok\n";
    let unknown = "echo:Unknown command: \"X3\"\nok\n";
    let cases: [(UnnumberedChecksum, String, Vec<&str>); 3] = [
        (
            UnnumberedChecksum::Run,
            format!("{rejected}ok\n{unknown}"),
            vec!["G1 X2"],
        ),
        (
            UnnumberedChecksum::Reject,
            format!("{rejected}Error:No Line Number with checksum, Last Line: 0\n{unknown}"),
            vec![],
        ),
        (
            UnnumberedChecksum::RejectAndResend,
            format!(
                "{rejected}Error:No Line Number with checksum, Last Line: 0\nResend: 1\nok\n\
                     {unknown}"
            ),
            vec![],
        ),
    ];
    for (unnumbered_checksum, output, log) in cases {
        eprintln!("case: {unnumbered_checksum:?}");
        let config = FirmwareConfig {
            unnumbered_checksum,
            ..FirmwareConfig::default()
        };
        check(config, &steps, &output, &log);
    }
}

#[test]
fn a_line_error_loses_what_arrives_while_its_error_line_is_written() {
    // The error line takes 3.3 ms at 115,200 baud: with blocking writes line 2, arriving at
    // 2 ms, is lost with the flush that follows it; a board with a TX buffer has flushed
    // already and rejects line 2 for its number.
    let steps = vec![at(0, "N1 G1 X1*0\n"), at(2, frame(2, "G1 X2")), at(8, "")];
    let rejected = "Error:checksum mismatch, Last Line: 0\nResend: 1\nok\n";
    for (tx_buffer, output) in [
        (false, rejected.to_string()),
        (
            true,
            format!(
                "{rejected}Error:Line Number is not Last Line Number+1, Last Line: 0\n\
                     Resend: 1\nok\n"
            ),
        ),
    ] {
        let config = FirmwareConfig {
            tx_buffer,
            ..FirmwareConfig::default()
        };
        check(config, &steps, &output, &[]);
    }
}

#[test]
fn heating_waits_with_reports_and_keepalives() {
    // 2 °C/s from 20 °C to 30 °C: five seconds, a report each second, busy every two.
    let steps: Vec<(u64, String)> = std::iter::once(at(0, "M109 S30\n"))
        .chain((1..=5).map(|s| at(s * 1000, "")))
        .collect();
    let output = concat!(
        " T:22.00 /30.00 B:20.00 /0.00 @:127 B@:0 W:?\n",
        " T:24.00 /30.00 B:20.00 /0.00 @:127 B@:0 W:?\n",
        "echo:busy: processing\n",
        " T:26.00 /30.00 B:20.00 /0.00 @:127 B@:0 W:?\n",
        " T:28.00 /30.00 B:20.00 /0.00 @:127 B@:0 W:?\n",
        "echo:busy: processing\n",
        "ok\n",
    );
    check(FirmwareConfig::default(), &steps, output, &["M109 S30"]);
}

#[test]
fn m155_reports_temperatures_on_its_own() {
    let steps = vec![at(0, "M155 S2\n"), at(1999, ""), at(2000, ""), at(4000, "")];
    let report = "T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n";
    check(
        FirmwareConfig::default(),
        &steps,
        &format!("ok\n{report}{report}"),
        &["M155 S2"],
    );
}

#[test]
fn faults_at_a_line() {
    let faults = vec![
        Fault::at_line(FaultKind::SwallowOk, 1),
        Fault::at_line(FaultKind::Error, 2),
    ];
    let config = FirmwareConfig {
        faults,
        time_scale: 1e6,
        ..FirmwareConfig::default()
    };
    let steps = vec![at(0, frame(1, "G1 X1")), at(1, frame(2, "G29")), at(2, "")];
    check(
        config,
        &steps,
        "Error:Probing Failed\nok\n",
        &["G1 X1", "G29"],
    );
    let config = FirmwareConfig {
        faults: vec![Fault::at_line(FaultKind::Reset, 2)],
        ..FirmwareConfig::default()
    };
    let start = Instant::now();
    let mut firmware = Firmware::new(config, 115_200, start);
    firmware.receive(
        format!("{}{}", frame(1, "G1 X1"), frame(2, "G1 X2")).as_bytes(),
        start,
    );
    let output = String::from_utf8(firmware.take_output()).unwrap();
    assert_eq!(output.matches("start\n").count(), 2, "{output}");
    assert_eq!(firmware.last_line(), 0);
    assert_eq!(firmware.resets(), 1);
}
