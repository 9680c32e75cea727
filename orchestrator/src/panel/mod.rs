//! The web panel (PANEL-FLOOR writes the framework; this file is a placeholder until it lands).

pub mod gantt;
