use super::*;

struct Expect {
    min: [f64; 3],
    max: [f64; 3],
    seconds: f64,
    units: LengthUnits,
}

fn check(name: &str, program: &str, expect: &Expect) {
    let result = preflight_gcode("test.nc", program)
        .unwrap_or_else(|errors| panic!("{name}: rejected: {errors:?}"));
    let bounding_box = result.bounding_box.expect("program moves");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
    assert!(
        (0..3).all(|axis| close(bounding_box.min[axis], expect.min[axis])
            && close(bounding_box.max[axis], expect.max[axis])),
        "{name}: box {bounding_box:?}, expected {:?}..{:?}",
        expect.min,
        expect.max
    );
    assert!(
        close(result.estimated_seconds, expect.seconds),
        "{name}: {} s, expected {} s",
        result.estimated_seconds,
        expect.seconds
    );
    assert_eq!(result.units, expect.units, "{name}");
}

const QUARTER_ARC_LENGTH: f64 = 15.707_963;

#[test]
fn bounding_box_and_time_of_motion() {
    use LengthUnits::{Inches, Millimetres, Mixed};
    let cases: &[(&str, &str, Expect)] = &[
        (
            "absolute lines; the first move's start is unknown and adds no time",
            "G21 G90\nG0 X0 Y0\nG1 X100 F600\nG1 Y50\n",
            Expect {
                min: [0.0; 3],
                max: [100.0, 50.0, 0.0],
                seconds: 15.0,
                units: Millimetres,
            },
        ),
        (
            "inches are converted, feed included",
            "G20 G90\nG0 X0 Y0 Z0\nG1 X1 Y2 F10\n",
            Expect {
                min: [0.0; 3],
                max: [25.4, 50.8, 0.0],
                seconds: 5f64.sqrt() * 25.4 / 254.0 * 60.0,
                units: Inches,
            },
        ),
        (
            "relative moves accumulate",
            "G21 G91\nG0 X10 Y10\nG1 X10 F300\nG1 Y-30\n",
            Expect {
                min: [10.0, -20.0, 0.0],
                max: [20.0, 10.0, 0.0],
                seconds: 8.0,
                units: Millimetres,
            },
        ),
        (
            "rapids at the default rate",
            "G21 G90\nG0 X0 Y0\nG0 X500\n",
            Expect {
                min: [0.0; 3],
                max: [500.0, 0.0, 0.0],
                seconds: 6.0,
                units: Millimetres,
            },
        ),
        (
            "full circle reaches all four extremes",
            "G21 G90\nG0 X10 Y0\nG2 X10 Y0 I-10 J0 F600\n",
            Expect {
                min: [-10.0, -10.0, 0.0],
                max: [10.0, 10.0, 0.0],
                seconds: 4.0 * QUARTER_ARC_LENGTH / 10.0,
                units: Millimetres,
            },
        ),
        (
            "clockwise half circle bulges below the chord",
            "G21 G90\nG0 X10 Y0\nG2 X-10 Y0 I-10 J0 F600\n",
            Expect {
                min: [-10.0, -10.0, 0.0],
                max: [10.0, 0.0, 0.0],
                seconds: 2.0 * QUARTER_ARC_LENGTH / 10.0,
                units: Millimetres,
            },
        ),
        (
            "counter-clockwise quarter",
            "G21 G90\nG0 X10 Y0\nG3 X0 Y10 I-10 J0 F600\n",
            Expect {
                min: [0.0; 3],
                max: [10.0, 10.0, 0.0],
                seconds: QUARTER_ARC_LENGTH / 10.0,
                units: Millimetres,
            },
        ),
        (
            "radius form: clockwise, centre right of the chord",
            "G21 G90\nG0 X0 Y0\nG2 X10 Y10 R10 F600\n",
            Expect {
                min: [0.0; 3],
                max: [10.0, 10.0, 0.0],
                seconds: QUARTER_ARC_LENGTH / 10.0,
                units: Millimetres,
            },
        ),
        (
            "radius form: negative R takes the long way round",
            "G21 G90\nG0 X0 Y0\nG2 X10 Y10 R-10 F600\n",
            Expect {
                min: [-10.0, 0.0, 0.0],
                max: [10.0, 20.0, 0.0],
                seconds: 3.0 * QUARTER_ARC_LENGTH / 10.0,
                units: Millimetres,
            },
        ),
        (
            "helix: length includes the descent",
            "G21 G90\nG0 X10 Y0 Z0\nG3 X10 Y0 Z-5 I-10 J0 F600\n",
            Expect {
                min: [-10.0, -10.0, -5.0],
                max: [10.0, 10.0, 0.0],
                seconds: (4.0 * QUARTER_ARC_LENGTH).hypot(5.0) / 10.0,
                units: Millimetres,
            },
        ),
        (
            "arc in the ZX plane",
            "G21 G90 G18\nG0 X10 Y0 Z0\nG2 X0 Z10 I-10 K0 F600\n",
            Expect {
                min: [0.0; 3],
                max: [10.0, 0.0, 10.0],
                seconds: QUARTER_ARC_LENGTH / 10.0,
                units: Millimetres,
            },
        ),
        (
            "arcs in inches",
            "G20 G90\nG0 X1 Y0\nG3 X0 Y1 I-1 J0 F10\n",
            Expect {
                min: [0.0; 3],
                max: [25.4, 25.4, 0.0],
                seconds: QUARTER_ARC_LENGTH * 2.54 / 254.0 * 60.0,
                units: Inches,
            },
        ),
        (
            "CNC dwell: P in seconds",
            "G21 G90\nG0 X1 Y1\nG4 P2\nG4 S1.5\n",
            Expect {
                min: [1.0, 1.0, 0.0],
                max: [1.0, 1.0, 0.0],
                seconds: 3.5,
                units: Millimetres,
            },
        ),
        (
            "printer dwell: P in milliseconds; retraction takes time",
            "G21 G90\nM83\nM104 S200\nG0 X1 Y1\nG4 P500\nG1 E-0.8 F2100\n",
            Expect {
                min: [1.0, 1.0, 0.0],
                max: [1.0, 1.0, 0.0],
                seconds: 0.5 + 0.8 / 2100.0 * 60.0,
                units: Millimetres,
            },
        ),
        (
            "after homing the position is known; absolute extrusion counts the difference",
            "G28\nG21 G90\nM82\nG92 E0\nG1 X10 Y0 E2 F600\nG1 E1 F600\n",
            Expect {
                min: [10.0, 0.0, 0.0],
                max: [10.0, 0.0, 0.0],
                seconds: 1.0 + 0.1,
                units: Millimetres,
            },
        ),
        (
            "switching units mid-program",
            "G21 G90\nG0 X0 Y0\nG1 X10 F600\nG20\nG1 X1\n",
            Expect {
                min: [0.0; 3],
                max: [25.4, 0.0, 0.0],
                seconds: 1.0 + 15.4 / 600.0 * 60.0,
                units: Mixed,
            },
        ),
        (
            "bare coordinates continue the modal motion",
            "G21 G90\nG1 X0 Y0 F600\nX10\nY10\n",
            Expect {
                min: [0.0; 3],
                max: [10.0, 10.0, 0.0],
                seconds: 2.0,
                units: Millimetres,
            },
        ),
    ];
    for (name, program, expect) in cases {
        check(name, program, expect);
    }
}

#[test]
fn words_lines_and_hash_are_reported() {
    let program = "; header\nG21 G90\nG0 X0 Y0\nG83 X1 Y1 Z-3 R1 Q1 F100\nM42 P1 S255\nG01 X5\n";
    let result = preflight_gcode("p.nc", program).unwrap();
    let words: Vec<&str> = result.words.iter().map(String::as_str).collect();
    assert_eq!(words, ["G0", "G1", "G21", "G83", "G90", "M42"]);
    let unsupported: Vec<&str> = result
        .unsupported_words
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(unsupported, ["G83", "M42"]);
    assert_eq!(result.lines, 6);
    assert_eq!(result.longest_line, "G83 X1 Y1 Z-3 R1 Q1 F100".len());
    // Known answer: sha256 of "G0 X1\n".
    assert_eq!(
        preflight_gcode("a.nc", "G0 X1\n").unwrap().sha256,
        "099ef6c70c0996f7a2db416258ff84ec726ac87f10bdfe5681022f5e406bcd69"
    );
}

#[test]
fn long_programs_are_parsed_in_chunks_without_changing_the_result() {
    let body = "G1 X10 F600\nG1 X0\n".repeat(LINES_PER_CHUNK);
    // A parenthesised comment spanning lines around the first chunk boundary.
    let comment_at = body
        .match_indices('\n')
        .nth(LINES_PER_CHUNK - 3)
        .map(|(index, _)| index + 1)
        .unwrap();
    let program = format!(
        "G21 G90\nG0 X0 Y0\n{}(long\ncomment\nover lines)\n{}G4 P2\n",
        &body[..comment_at],
        &body[comment_at..]
    );
    let pieces: Vec<Chunk<'_>> = chunks(&program).collect();
    assert!(pieces.len() >= 2);
    let mut line = 0;
    for piece in &pieces {
        assert_eq!(piece.first_line, line);
        assert_eq!(
            &program[piece.offset..piece.offset + piece.text.len()],
            piece.text
        );
        assert_eq!(
            piece.text.matches('(').count(),
            piece.text.matches(')').count()
        );
        line += piece.text.matches('\n').count();
    }
    let result = preflight_gcode("long.nc", &program).unwrap();
    // 2 * LINES_PER_CHUNK moves of 10 mm at 10 mm/s, plus the 2 s dwell.
    let expected = (2 * LINES_PER_CHUNK) as f64 + 2.0;
    assert!(
        (result.estimated_seconds - expected).abs() < 1e-6,
        "{}",
        result.estimated_seconds
    );

    let broken = format!("{program}G1 X$1\n");
    let errors = preflight_gcode("long.nc", &broken).unwrap_err();
    let last_line = broken.lines().count();
    assert_eq!(
        (errors[0].line, errors[0].column),
        (Some(last_line), Some(5))
    );
}

#[test]
fn uncertain_estimates_carry_warnings() {
    let result = preflight_gcode("p.nc", "G0 X0 Y0\nG1 X10\n").unwrap();
    assert_eq!(result.units, LengthUnits::Millimetres);
    assert_eq!(result.warnings.len(), 2, "{:?}", result.warnings);
    assert!(result.warnings[0].contains("no G20/G21"));
    assert!(result.warnings[1].contains("line 2: feed move before any F word"));
    assert_eq!(result.bounding_box.unwrap().size(), [10.0, 0.0, 0.0]);
}

#[test]
fn rejected_programs() {
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        ("empty", "", None, "program is empty"),
        ("comments only", "; a\n(b)\n\n", None, "program is empty"),
        (
            "bad character",
            "G21\nG90\nG1 X1 @ Y2\n",
            Some(3),
            "unexpected '@' in `G1 X1 @ Y2`",
        ),
        (
            "number without letter",
            "G21\nG1 X1..5\n",
            Some(2),
            "G-code syntax",
        ),
    ];
    for (name, program, line, message) in cases {
        let errors = preflight_gcode("p.nc", program).expect_err(name);
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert_eq!(errors[0].file.as_deref(), Some("p.nc"));
        assert_eq!(errors[0].line, *line, "{name}");
        assert!(
            errors[0].message.contains(message),
            "{name}: {}",
            errors[0].message
        );
    }
    let garbage = "\u{1}\u{2} binary @@@\n".repeat(10_000);
    let errors = preflight_gcode("photo.jpg", &garbage).unwrap_err();
    assert_eq!(errors.len(), MAX_REPORTED_SYNTAX_LINES + 1);
    assert!(
        errors[MAX_REPORTED_SYNTAX_LINES]
            .message
            .contains("9980 more lines"),
        "{errors:?}"
    );
    let huge = " ".repeat(usize::try_from(MAX_PROGRAM_BYTES).unwrap() + 1);
    let errors = preflight_gcode("big.nc", &huge).unwrap_err();
    assert!(
        errors[0]
            .message
            .contains("the limit is 67108864 bytes (64 MiB)"),
        "{errors:?}"
    );
}
