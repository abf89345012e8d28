//! Aligned plain-text tables for people; scripts use `--json`.

use serde_json::Value;

/// Renders `rows` under `headers`, columns two spaces apart. A column whose cells are all
/// numbers is right-aligned, header included; others are left-aligned.
pub fn render(headers: &[String], rows: &[Vec<Value>]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(text).collect()).collect();
    let right: Vec<bool> = (0..headers.len())
        .map(|c| {
            !rows.is_empty() && rows.iter().all(|row| row.get(c).is_some_and(Value::is_number))
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut out = String::new();
    for line in std::iter::once(headers).chain(cells.iter().map(Vec::as_slice)) {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if right[c] {
                text.push_str(&pad);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&pad);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// A cell's text: strings without quotes, nothing for null, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_align_right_and_text_left() {
        let headers = vec!["page".to_owned(), "visitors".to_owned()];
        let rows = vec![vec![json!("/"), json!(1200)], vec![json!("/pricing"), json!(7)]];
        assert_eq!(
            render(&headers, &rows),
            "page      visitors\n/             1200\n/pricing         7\n"
        );
    }

    #[test]
    fn headers_alone_when_there_are_no_rows() {
        assert_eq!(render(&["domain".to_owned()], &[]), "domain\n");
    }
}
