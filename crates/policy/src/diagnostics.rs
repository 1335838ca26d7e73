//! Cedar's errors rendered as `file:line:col: message (help)`, one line per
//! problem, so an author can go straight to it.

use miette::Diagnostic;

pub(crate) fn render(file: &str, text: &str, diagnostic: &dyn Diagnostic) -> Vec<String> {
    let mut lines = vec![render_one(file, text, diagnostic)];
    if let Some(related) = diagnostic.related() {
        for inner in related {
            lines.extend(render(file, text, inner));
        }
    }
    lines
}

fn render_one(file: &str, text: &str, diagnostic: &dyn Diagnostic) -> String {
    let location = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| line_and_column(text, label.offset()));
    let mut line = match location {
        Some((row, column)) => format!("{file}:{row}:{column}: {diagnostic}"),
        None => format!("{file}: {diagnostic}"),
    };
    if let Some(help) = diagnostic.help() {
        line.push_str(&format!(" (help: {help})"));
    }
    line
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
    use super::line_and_column;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (2, 2));
        assert_eq!(line_and_column(text, 8), (3, 1));
        assert_eq!(line_and_column(text, 6), (2, 3));
        assert_eq!(line_and_column(text, 99), (3, 2));
    }
}
