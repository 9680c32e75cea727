//! The Marlin driver against the Marlin simulator over real pseudo-terminals: a print runs to
//! the end with the execution log equal to the program, and each fault class injected mid-job
//! ends in the right events, with no line executed twice or skipped.

use std::time::Duration;

use microfab_drivers::{Condition, DriverEvent};
use microfab_hil::marlin::fault::Fault;
use microfab_hil::marlin::firmware::FirmwareConfig;
use microfab_hil::marlin::harness::{Comparison, Rig, stripped};

const BAUD: u32 = 115_200;

/// A small print: heat, home, moves, cool down. Comments and blank lines are stripped.
fn print_program(moves: usize) -> String {
    let mut program = String::from(
        "; a test print\nM140 S60\nM104 S200\nG28 ; home\nM190 S60\nM109 S200\nG90\n\n",
    );
    for i in 0..moves {
        program.push_str(&format!("G1 X{}.5 Y{} F6000\n", 10 + i % 50, 20 + i / 50));
    }
    program.push_str("M104 S0\nM140 S0\nM84\n");
    program
}

fn fast_firmware(faults: Vec<Fault>) -> FirmwareConfig {
    FirmwareConfig {
        time_scale: 200.0,
        faults,
        ..FirmwareConfig::default()
    }
}

fn comparison(rig: &Rig, program: &[String]) -> Comparison {
    Comparison::new(program, &rig.sim.execution_log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_print_completes_and_the_firmware_ran_exactly_the_program() {
    let text = print_program(200);
    let program = stripped(&text).unwrap();
    let mut rig = Rig::start(BAUD, fast_firmware(vec![]), |_| {})
        .await
        .unwrap();
    rig.run(1, &text).await.unwrap();
    let end = rig.job_end(1, Duration::from_secs(30)).await.unwrap();
    assert!(
        matches!(
            end,
            DriverEvent::JobFinished {
                job_id: 1,
                scrapped: 0,
                ..
            }
        ),
        "{end:?}"
    );
    let log = comparison(&rig, &program);
    assert!(log.is_exact(&program), "{log:?}");
    assert!(rig.events.contains(&DriverEvent::JobStarted { job_id: 1 }));
    assert!(rig.events.contains(&DriverEvent::JobProgress {
        job_id: 1,
        done: program.len() as u64,
        total: program.len() as u64
    }));
    rig.wait_for(Duration::from_secs(1), |e| {
        *e == DriverEvent::Condition(Condition::Idle)
    })
    .await
    .unwrap_or_else(|_| panic!("idle after the job: {:?}", rig.events));
    assert!(rig.driver.temperatures().is_some());
    assert_eq!(
        rig.driver.firmware(),
        Some("Marlin 2.1.2 (microfab simulator)")
    );
}
