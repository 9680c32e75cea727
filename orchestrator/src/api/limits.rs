//! The API's limits: body sizes, free-text lengths, amounts. Each one over its limit answers
//! with the JSON error naming it.

/// Largest body of `POST /api/v1/orders`: a spec and its programs at their limits, each byte
/// escaped in two as JSON at worst (newline, tab, quote, backslash; a spec or program with
/// other control characters is refused anyway). So every spec `spec check` accepts fits.
pub const MAX_SUBMISSION_BYTES: usize = 2
    * (microfab_job_specs::MAX_SPEC_BYTES + microfab_job_specs::MAX_PROGRAMS_TOTAL_BYTES) as usize;

/// Submissions read and checked at once: each holds up to [`MAX_SUBMISSION_BYTES`] in memory
/// (twice, while it is parsed), so this bounds what uploads can take.
pub(super) const SUBMISSIONS_AT_ONCE: usize = 2;

/// Largest body of every other request: an operator's action with its reason.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Longest reason (reject, cancel, scrap, adjust, resolve, resume, maintenance), in characters:
/// room for what an operator found, short enough to show in every list that carries it.
pub const MAX_REASON_CHARS: usize = 1000;

/// Largest amount of material one restock or adjustment moves, in the account's unit.
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000;

/// Longest short label (lot code, actor, submission key, spec file name, maintenance task), in
/// characters.
pub const MAX_LABEL_CHARS: usize = 200;
