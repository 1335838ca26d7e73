//! Printing results: one compact JSON line per result with `--json`, text for
//! people otherwise (with control characters and hidden marks escaped).
//! Results go to stdout; errors and progress to stderr.

use std::io::Write;

use serde::Serialize;

use crate::terminal_text::{json_safe, terminal_safe};

#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints one result: `json` in JSON mode, `text` otherwise.
    pub fn result(&self, json: &impl Serialize, text: impl FnOnce() -> String) {
        let line = if self.json {
            json_safe(serde_json::to_string(json).expect("results always serialize"))
        } else {
            terminal_safe(&text()).into_owned()
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`stele … | head`) is not an error worth a panic.
        let _ = writeln!(stdout, "{line}");
    }
}
