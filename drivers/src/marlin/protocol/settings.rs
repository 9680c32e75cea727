//! What a link is configured with.

use std::time::Duration;

use super::default_cancel_script;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Numbered lines sent but not yet acknowledged; `None` chooses from the firmware's family once
    /// the handshake has identified it ([`auto_line_window`](super::auto_line_window)), 1 until
    /// then. 1 is safe on every board (see the module documentation); more keeps the wire busy, and
    /// is refused (1, with a console note) on firmware that runs the tail of a line cut by its
    /// receive-buffer flush ([`runs_cut_tails`](super::runs_cut_tails): Marlin 1.1/2.x).
    pub in_flight: Option<usize>,
    /// Silence allowed while ordinary commands are in flight.
    pub command_timeout: Duration,
    /// Silence allowed while a long command (M109, M190, M400, G28, G29, ...) is in flight.
    pub long_command_timeout: Duration,
    /// Silence after which a probe goes out (a lost `ok`), before either timeout; longer than
    /// Marlin's 2 s keep-alive interval, so keep-alives hold it off.
    pub silence_probe: Duration,
    /// How often the handshake (`M110 N0`, then `M115`) is repeated until answered.
    pub handshake_retry: Duration,
    /// Temperature poll (`M105`) while idle or paused; also proves the link alive.
    pub poll_interval: Duration,
    /// After a resend request with later lines in flight that have not all been rejected yet,
    /// wait until no byte has arrived for this long, and as long after every one of them has
    /// reached the printer (the wire time of what was in flight when the last was sent),
    /// before resending: the rest were swallowed by a flush.
    pub resend_settle: Duration,
    /// One byte's time on the wire: 10 bits at the configured baud rate. Native USB is faster,
    /// which only makes the resend wait a little longer than needed.
    pub byte_time: Duration,
    /// Resend requests in a row for the same line before the link is declared faulty.
    pub max_consecutive_resends: u32,
    /// A numbered `M105` probe after this many lines, to resynchronise the `ok` count.
    pub resync_interval: usize,
    /// Marlin 2.x answers `Resend:` with an `ok` for the rejected line; some older builds do not.
    pub ok_after_resend: bool,
    /// End each job with `M400`, so "done" means the moves are finished, not just planned.
    pub finish_with_m400: bool,
    /// Sent after an abort or a failed job (`M108` ends a heating wait, `M410` stops moves).
    pub cancel_script: Vec<String>,
    /// Lines kept in the traffic ring.
    pub traffic_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            in_flight: None,
            command_timeout: Duration::from_secs(10),
            long_command_timeout: Duration::from_secs(900),
            silence_probe: Duration::from_millis(2500),
            handshake_retry: Duration::from_secs(2),
            poll_interval: Duration::from_secs(5),
            resend_settle: Duration::from_millis(3),
            byte_time: byte_time(115_200),
            max_consecutive_resends: 10,
            resync_interval: 200,
            ok_after_resend: true,
            finish_with_m400: true,
            cancel_script: default_cancel_script(),
            traffic_capacity: 500,
        }
    }
}

/// 10 bits (start, 8 data, stop) per byte.
pub fn byte_time(baud: u32) -> Duration {
    Duration::from_secs(10) / baud.max(1)
}
