//! Cedar's errors rendered as `file:line:col: message (help)`, one line per
//! problem, so an author can go straight to it.

use miette::Diagnostic;

pub(crate) fn render(file: &str, text: &str, diagnostic: &dyn Diagnostic) -> Vec<String> {
    render_at(file, text, diagnostic, Position::AsCedarSaysIt)
}

/// A Cedar syntax error, rendered where the fault most likely is.
pub(crate) fn render_syntax(file: &str, text: &str, diagnostic: &dyn Diagnostic) -> Vec<String> {
    render_at(file, text, diagnostic, Position::EndOfUnfinishedLine)
}

/// Where a diagnostic is said to be.
#[derive(Clone, Copy)]
enum Position {
    AsCedarSaysIt,
    /// A parser notices a missing `)` or `;` only at the next token, which
    /// is often on the next line: when that token is the first of its line
    /// and the line before does not end a statement or open a block, the
    /// fault is at the end of the line before, and said to be there (with
    /// where the parser stopped).
    EndOfUnfinishedLine,
}

fn render_at(
    file: &str,
    text: &str,
    diagnostic: &dyn Diagnostic,
    position: Position,
) -> Vec<String> {
    let mut lines = vec![render_one(file, text, diagnostic, position)];
    if let Some(related) = diagnostic.related() {
        for inner in related {
            lines.extend(render_at(file, text, inner, position));
        }
    }
    lines
}

fn render_one(file: &str, text: &str, diagnostic: &dyn Diagnostic, position: Position) -> String {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let moved = match (position, offset) {
        (Position::EndOfUnfinishedLine, Some(offset)) => end_of_unfinished_line(text, offset),
        _ => None,
    };
    let mut line = match (offset, moved) {
        (Some(stopped), Some(fault)) => {
            let (row, column) = line_and_column(text, fault);
            let (stop_row, stop_column) = line_and_column(text, stopped);
            format!(
                "{file}:{row}:{column}: {diagnostic} (something is missing at the end of line {row}: the parser stopped at {stop_row}:{stop_column})"
            )
        }
        (Some(offset), None) => {
            let (row, column) = line_and_column(text, offset);
            format!("{file}:{row}:{column}: {diagnostic}")
        }
        (None, _) => format!("{file}: {diagnostic}"),
    };
    // What Cedar says underneath ("in attribute `x` on `User::\"a\"`…"):
    // without it an entity error names neither the entity nor the attribute.
    let mut cause = diagnostic.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !line.contains(&said) {
            line.push_str(&format!(": {said}"));
        }
        cause = inner.source();
    }
    if let Some(help) = diagnostic.help() {
        line.push_str(&format!(" (help: {help})"));
    }
    line
}

/// The end of the line before `offset`, when `offset` is the first token of
/// its line and that line ends without finishing a statement (`;`) or
/// opening or closing a block or list.
fn end_of_unfinished_line(text: &str, offset: usize) -> Option<usize> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    if !before[line_start..].trim().is_empty() || line_start == 0 {
        return None;
    }
    let previous = before[..line_start].trim_end();
    let last = previous.chars().last()?;
    // A comment line ends in anything: leave such cases to Cedar.
    let previous_line = &previous[previous.rfind('\n').map_or(0, |i| i + 1)..];
    if previous_line.contains("//") || matches!(last, ';' | '{' | '}' | '(' | '[' | ',') {
        return None;
    }
    Some(previous.len())
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (row, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::{end_of_unfinished_line, line_and_column};

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (2, 2));
        assert_eq!(line_and_column(text, 8), (3, 1));
        assert_eq!(line_and_column(text, 6), (2, 3));
        assert_eq!(line_and_column(text, 99), (3, 2));
    }

    #[test]
    fn a_token_missing_at_a_line_end_is_placed_there() {
        let text = "permit (\n  principal,\n  action,\n  resource\nwhen { true };\n";
        let when = text.find("when").unwrap();
        let fault = end_of_unfinished_line(text, when).unwrap();
        assert_eq!(line_and_column(text, fault), (4, 11));
        // The first token after a finished statement is the fault itself.
        let text = "permit (principal, action, resource);\npermt (principal, action, resource);\n";
        assert_eq!(
            end_of_unfinished_line(text, text.find("permt").unwrap()),
            None
        );
        // So is a token in the middle of a line.
        assert_eq!(
            end_of_unfinished_line(text, text.find("action").unwrap()),
            None
        );
    }
}
