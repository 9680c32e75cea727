//! Protocol-level machine simulators (GRBL and Marlin firmware emulations on real
//! pseudo-terminals) and the streaming benchmark. The hardware-in-the-loop tests in `tests/`
//! run the real `microfab` binary against them.

pub mod bench;
pub mod grbl;
pub mod marlin;
pub mod opcua;
pub mod pty;
pub mod streaming;
