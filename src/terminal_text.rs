//! Text from a bundle, a message or a node, made safe to print to a
//! terminal: control characters (ESC sequences, carriage returns), and
//! marks that reorder or hide text (bidirectional overrides, zero-width
//! characters), are shown as `\u{…}` escapes. A `.cedar` comment must not
//! be able to move the cursor, recolour or hide a line the approver is
//! about to sign.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every character a terminal would not print as itself
/// escaped; newlines and tabs kept.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            let _ = write!(safe, "\\u{{{:x}}}", c as u32);
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

/// A JSON text with the same characters escaped the JSON way (`\u202e`):
/// the same data, and a terminal shown it raw obeys none of them. serde_json
/// escapes only U+0000 to U+001F itself.
pub fn json_safe(json: String) -> String {
    if !json.chars().any(is_hidden) {
        return json;
    }
    let mut safe = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_hidden(c) {
            // Every hidden character is in the basic plane: one escape.
            let _ = write!(safe, "\\u{:04x}", c as u32);
        } else {
            safe.push(c);
        }
    }
    safe
}

fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            // Bidirectional marks, embeddings, overrides and isolates.
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            // Zero-width characters and the byte-order mark.
            | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
            // Line and paragraph separators, which some terminals break on.
            | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn escape_sequences_and_bidi_marks_are_shown_not_obeyed() {
        assert_eq!(
            terminal_safe("a\u{1b}[2K\rb\u{202e}c\u{200b}"),
            "a\\u{1b}[2K\\u{d}b\\u{202e}c\\u{200b}"
        );
        assert_eq!(terminal_safe("line\n\tnext é"), "line\n\tnext é");
    }

    #[test]
    fn json_keeps_its_data_and_loses_the_marks() {
        let json = serde_json::to_string(&"x\u{202e}y\u{9b}z\u{1b}").unwrap();
        let safe = super::json_safe(json);
        assert_eq!(safe, r#""x\u202ey\u009bz\u001b""#);
        assert_eq!(
            serde_json::from_str::<String>(&safe).unwrap(),
            "x\u{202e}y\u{9b}z\u{1b}"
        );
    }
}
