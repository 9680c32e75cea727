use super::*;
use crate::traffic::Direction;

#[test]
fn the_auto_window_is_above_1_only_for_firmware_that_rejects_a_cut_tail() {
    let cases = [
        (
            "FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin \
             FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0 \
             MACHINE_TYPE:Prusa i3 MK3S EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-000000000000",
            TAIL_REJECTING_WINDOW,
        ),
        (
            "FIRMWARE_NAME:Prusa-Firmware 3.14.1+8237_abcdef0 based on Marlin \
             FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0",
            TAIL_REJECTING_WINDOW,
        ),
        (
            "FIRMWARE_NAME:Marlin V1.0.2; Sprinter/grbl mashup for gen6 \
             FIRMWARE_URL:https://github.com/prusa3d/Prusa-i3-Plus/ PROTOCOL_VERSION:1.0 \
             MACHINE_TYPE:Prusa i3 EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-000000000000",
            TAIL_REJECTING_WINDOW,
        ),
        (
            "FIRMWARE_NAME:Marlin V1; Sprinter/grbl mashup for gen6 \
             FIRMWARE_URL:https://www.github.com/tenlog PROTOCOL_VERSION:1.0.0 \
             MACHINE_TYPE:TL 3D Printer EXTRUDER_COUNT:2",
            TAIL_REJECTING_WINDOW,
        ),
        (
            "FIRMWARE_NAME:Sprinter FIRMWARE_URL:http%%3A/github.com/kliment/Sprinter/ \
             PROTOCOL_VERSION:1.0 MACHINE_TYPE:Mendel EXTRUDER_COUNT:1",
            TAIL_REJECTING_WINDOW,
        ),
        (
            "FIRMWARE_NAME:Sprinter/grbl mashup for gen6 FIRMWARE_URL:http://www.mendel-parts.com \
             PROTOCOL_VERSION:1.0 MACHINE_TYPE:Mendel EXTRUDER_COUNT:1",
            TAIL_REJECTING_WINDOW,
        ),
        (
            "FIRMWARE_NAME:Marlin bugfix-2.1.x (Jun 12 2023 12:00:00) \
             SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 \
             MACHINE_TYPE:3D Printer EXTRUDER_COUNT:1 UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff",
            1,
        ),
        (
            "FIRMWARE_NAME:Marlin 2.1.2 (microfab simulator) \
             SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0",
            1,
        ),
        (
            "FIRMWARE_NAME:Marlin 1.1.9.1 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin \
             PROTOCOL_VERSION:1.0 MACHINE_TYPE:3D Printer EXTRUDER_COUNT:1",
            1,
        ),
        (
            "FIRMWARE_NAME:Marlin 1.1.0-RC8 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin \
             PROTOCOL_VERSION:1.0 MACHINE_TYPE:ANYCUBIC EXTRUDER_COUNT:1",
            1,
        ),
        // A vendor's Marlin 1.1/2.x (Kingroon KP3S stock) claiming 1.0.0.
        (
            "FIRMWARE_NAME:Marlin 1.0.0 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin \
             PROTOCOL_VERSION:1.0 MACHINE_TYPE:3D Printer EXTRUDER_COUNT:2",
            1,
        ),
        (
            "FIRMWARE_NAME:Marlin V1.1.4 (Jun 28 2022 14:16:31) \
             SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 \
             MACHINE_TYPE:Ender-3 V2 Neo EXTRUDER_COUNT:1",
            1,
        ),
        (
            "FIRMWARE_NAME:Prusa-Firmware-Buddy 5.1.0 (Github) \
             SOURCE_CODE_URL:https://github.com/prusa3d/Prusa-Firmware-Buddy PROTOCOL_VERSION:1.0 \
             MACHINE_TYPE:Prusa-MK4 EXTRUDER_COUNT:1",
            1,
        ),
        (
            "FIRMWARE_NAME:Klipper FIRMWARE_VERSION:v0.12.0-60-g0665dc89",
            1,
        ),
        ("FIRMWARE_NAME:", 1),
        (
            "FIRMWARE_NAME:Pr\u{fffd}sa-Firmware 3.13.3 based on Marlin",
            1,
        ),
        (
            "FIRMWARE_NAME:Marlin V\u{fffd}; Sprinter/grbl mashup for gen6",
            1,
        ),
    ];
    for (line, window) in cases {
        let name = firmware_name(line);
        assert_eq!(auto_line_window(Some(&name)), window, "{name}");
    }
    assert_eq!(auto_line_window(None), 1, "no answer to M115");
}

#[test]
fn a_configured_window_is_refused_on_firmware_that_runs_cut_tails() {
    let cases = [
        (
            "Marlin 2.1.2 (Mar 1 2024) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin",
            1,
        ),
        (
            "Prusa-Firmware-Buddy 5.1.0 (Github) PROTOCOL_VERSION:1.0",
            1,
        ),
        (
            "Prusa-Firmware 3.13.3 based on Marlin PROTOCOL_VERSION:1.0",
            4,
        ),
        (
            "Marlin V1; Sprinter/grbl mashup for gen6 PROTOCOL_VERSION:1.0",
            4,
        ),
        ("Klipper FIRMWARE_VERSION:v0.12.0", 4),
    ];
    for (info, window) in cases {
        let settings = Settings {
            in_flight: Some(4),
            ..Settings::default()
        };
        let now = Instant::now();
        let mut protocol = Protocol::new(settings, now);
        protocol.receive(b"ok\n", now);
        protocol.receive(format!("FIRMWARE_NAME:{info}\nok\n").as_bytes(), now);
        assert!(protocol.is_ready(), "{info}");
        assert_eq!(protocol.line_window(), window, "{info}");
        let refused = u64::from(window == 1);
        let traffic = protocol.traffic();
        assert_eq!(traffic.counters.window_fallbacks, refused, "{info}");
        let notes = traffic.lines().filter(|l| l.direction == Direction::Note);
        assert_eq!(notes.count() as u64, refused, "{info}");
    }
}
