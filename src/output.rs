//! Printing results: one compact JSON line per result with `--json`, text for
//! people otherwise. Results go to stdout; errors and progress to stderr.

use std::io::Write;

use serde::Serialize;

#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints one result: `json` in JSON mode, `text` otherwise.
    pub fn result(&self, json: &impl Serialize, text: impl FnOnce() -> String) {
        let line = if self.json {
            serde_json::to_string(json).expect("results always serialize")
        } else {
            text()
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`stele … | head`) is not an error worth a panic.
        let _ = writeln!(stdout, "{line}");
    }
}
