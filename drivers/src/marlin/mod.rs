//! Marlin (and Marlin-compatible) 3D printers over USB serial.

pub mod protocol;
pub mod reply;

#[cfg(test)]
mod transcripts;
