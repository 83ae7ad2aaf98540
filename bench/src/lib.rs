//! funnelhooks' benchmark and soak programs (`src/bin/`); what they share lives here.
//! How to run each and the latest figures: `docs/benchmarks.md`.

pub mod request_path;
