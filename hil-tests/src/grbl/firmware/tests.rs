use super::*;

fn config() -> FirmwareConfig {
    FirmwareConfig {
        rx_buffer: 128,
        line_buffer: 80,
        planner_blocks: 15,
        time_scale: 1.0,
        homing_lock: false,
        boot: Duration::from_millis(10),
        rapid_mm_per_min: 3000.0,
        hold_decel: Duration::from_millis(100),
        faults: Vec::new(),
    }
}

/// A booted controller and a clock to drive it.
struct Bench {
    firmware: Firmware,
    now: Instant,
}

impl Bench {
    fn new(config: FirmwareConfig) -> Bench {
        let now = Instant::now();
        let mut bench = Bench {
            firmware: Firmware::new(config, now),
            now,
        };
        assert_eq!(bench.wait(10), BANNER);
        bench
    }

    fn send(&mut self, bytes: &str) -> String {
        for byte in bytes.bytes() {
            self.firmware.receive(self.now, byte);
        }
        self.firmware.advance(self.now);
        self.output()
    }

    fn wait(&mut self, ms: u64) -> String {
        self.now += Duration::from_millis(ms);
        self.firmware.advance(self.now);
        self.output()
    }

    fn output(&mut self) -> String {
        String::from_utf8(self.firmware.take_output()).unwrap()
    }
}

#[test]
fn replies_to_lines_as_grbl_does() {
    let cases = [
        ("G21 G90\n", "ok\r\n"),
        ("g1 x1 (comment) f600 ; more\n", "ok\r\n"),
        ("G1 X2\n", "ok\r\n"),
        ("M6\n", "error:20\r\n"),
        ("G1 X\n", "error:2\r\n"),
        ("\"X1\n", "error:1\r\n"),
        ("G1 A1\n", "error:20\r\n"),
        ("$Q\n", "error:3\r\n"),
        (
            "$\n",
            "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]\r\nok\r\n",
        ),
        ("$X\n", "ok\r\n"),
        ("$H\n", "error:5\r\n"),
    ];
    let mut bench = Bench::new(config());
    for (line, reply) in cases {
        assert_eq!(bench.send(line), reply, "{line:?}");
    }
    assert_eq!(
        bench.send(&format!("G1X{}\n", "1".repeat(80))),
        "error:11\r\n"
    );
    let fresh = &mut Bench::new(config());
    assert_eq!(fresh.send("G1 X1\n"), "error:22\r\n", "no feed rate yet");
}

#[test]
fn a_full_receive_buffer_loses_bytes_while_the_planner_is_full() {
    let mut bench = Bench::new(config());
    bench.send("G1F60\n");
    // Fifteen 1 mm moves at 60 mm/min fill the planner for 15 s.
    let moves: String = (1..=15).map(|i| format!("X{i}\n")).collect();
    assert_eq!(bench.send(&moves), "ok\r\n".repeat(15));
    let waiting = "X100\n".repeat(26);
    assert_eq!(bench.send(&waiting), "", "held in the receive buffer");
    assert_eq!(bench.firmware.rx_overflow(), 2, "130 bytes into 128");
    // Real-time commands are taken out of the stream even now. The first waiting line has
    // moved on into the line buffer, freeing its four characters.
    let report = bench.send("?");
    assert!(
        report.starts_with("<Run|MPos:0.000,0.000,0.000|Bf:0,4|"),
        "{report}"
    );
    assert_eq!(bench.wait(1_000), "ok\r\n", "one move done, one line read");
    assert_eq!(bench.firmware.take_executed(), ["G1F60", "X1"]);
}

#[test]
fn feed_hold_stops_motion_until_cycle_start() {
    let mut bench = Bench::new(config());
    bench.send("G1X10F600\n");
    bench.wait(500);
    bench.send("!");
    assert!(bench.send("?").starts_with("<Hold:1|"));
    bench.wait(100);
    assert!(bench.send("?").starts_with("<Hold:0|MPos:5.000,"));
    bench.wait(10_000);
    assert!(bench.firmware.take_executed() == ["G1X10F600"][..0]);
    bench.send("~");
    bench.wait(500);
    assert_eq!(bench.firmware.take_executed(), ["G1X10F600"]);
    assert!(bench.send("?").starts_with("<Idle|MPos:10.000,"));
}

#[test]
fn reset_while_moving_raises_alarm_3_and_locks_gcode() {
    let mut bench = Bench::new(config());
    bench.send("G1X10F600\n");
    bench.wait(100);
    assert_eq!(
        bench.send("\u{18}"),
        format!("ALARM:3\r\n{BANNER}{UNLOCK_HINT}")
    );
    assert_eq!(bench.send("G0X0\n"), "error:9\r\n");
    assert_eq!(bench.send("$X\n"), "[MSG:Caution: Unlocked]\r\nok\r\n");
    assert_eq!(bench.send("G0X0\n"), "ok\r\n");
}

#[test]
fn after_a_hard_limit_only_a_reset_is_answered_then_unlock_works() {
    let mut bench = Bench::new(config());
    bench.send("G1X10F600\n");
    bench.firmware.inject(bench.now, FaultKind::Alarm(1));
    assert_eq!(bench.output(), "ALARM:1\r\n[MSG:Reset to continue]\r\n");
    assert_eq!(bench.send("$X\n?"), "", "neither $X nor ? is answered");
    assert_eq!(bench.wait(1_000), "");
    assert_eq!(bench.send("\u{18}"), format!("{BANNER}{UNLOCK_HINT}"));
    assert!(bench.send("?").starts_with("<Alarm|"));
    assert_eq!(bench.send("$X\n"), "[MSG:Caution: Unlocked]\r\nok\r\n");
    assert!(bench.send("?").starts_with("<Idle|"));
}

#[test]
fn an_open_door_holds_until_closed_and_cycle_started() {
    let mut bench = Bench::new(config());
    bench.send("G1X10F600\n");
    bench.wait(500);
    bench.firmware.inject(bench.now, FaultKind::DoorOpen);
    assert_eq!(bench.output(), "[MSG:Check Door]\r\n");
    assert!(bench.send("?").starts_with("<Door:2|"));
    bench.wait(100);
    assert!(bench.send("?").starts_with("<Door:1|MPos:5.000,"));
    bench.send("~");
    bench.wait(1_000);
    assert!(
        bench.send("?").starts_with("<Door:1|"),
        "no resume while ajar"
    );
    bench.firmware.inject(bench.now, FaultKind::DoorClose);
    assert!(bench.send("?").starts_with("<Door:0|"));
    bench.send("~");
    bench.wait(500);
    assert_eq!(bench.firmware.take_executed(), ["G1X10F600"]);
    assert!(bench.send("?").starts_with("<Idle|MPos:10.000,"));
}

#[test]
fn reset_after_a_completed_hold_keeps_position_without_alarm() {
    let mut bench = Bench::new(config());
    bench.send("G1X10F600\n");
    bench.wait(500);
    bench.send("!");
    bench.wait(100);
    assert_eq!(bench.send("\u{18}"), BANNER);
    assert!(bench.send("?").starts_with("<Idle|MPos:5.000,"));
}

#[test]
fn the_bootloader_eats_bytes_after_a_hardware_reset() {
    let mut bench = Bench::new(config());
    bench.firmware.hardware_reset(bench.now);
    assert_eq!(bench.send("G0X1\n?"), "");
    assert_eq!(bench.wait(10), BANNER);
    assert_eq!(
        bench.send("?"),
        "<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0|WCO:0.000,0.000,0.000>\r\n"
    );
}
