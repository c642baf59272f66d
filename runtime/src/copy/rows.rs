//! Rows in PostgreSQL's COPY text format.
//!
//! Written by hand: the format is a few lines of escaping (PostgreSQL's documentation, "COPY",
//! "Text Format"), and the crates that write it belong to other drivers.

use std::fmt::{self, Display, Write as _};

/// Rows for `COPY ... FROM STDIN` in PostgreSQL's text format, collected in one buffer and
/// cut into batches at row boundaries by [`Op::copy_in`](crate::Op::copy_in).
///
/// Each field is written with its `Display` form, escaped (backslash, tab, newline, carriage
/// return); `None` is SQL NULL. The columns are those the COPY statement names, in its order.
///
/// ```
/// use sqlx_resilience_runtime::copy::CopyRows;
///
/// let mut rows = CopyRows::new();
/// rows.push([Some(&1 as &dyn std::fmt::Display), Some(&"Ada\tLovelace")]);
/// rows.push([Some(&2 as &dyn std::fmt::Display), None]);
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows.as_text(), "1\tAda\\tLovelace\n2\t\\N\n");
/// ```
#[derive(Clone, Default)]
pub struct CopyRows {
    text: String,
    /// Where each row ends in `text`.
    ends: Vec<usize>,
}

impl CopyRows {
    /// No rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one row; `None` fields are NULL.
    pub fn push<I, F>(&mut self, fields: I)
    where
        I: IntoIterator<Item = Option<F>>,
        F: Display,
    {
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.text.push('\t');
            }
            match field {
                None => self.text.push_str("\\N"),
                Some(value) => {
                    let _ = write!(Escaped(&mut self.text), "{value}");
                }
            }
        }
        self.text.push('\n');
        self.ends.push(self.text.len());
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No rows at all.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The rows as COPY text, one line per row.
    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// The rows cut into batches of at most `rows_per_batch` rows (at least 1): each batch's
    /// text and its number of rows.
    pub(crate) fn batches(&self, rows_per_batch: usize) -> Vec<(String, u64)> {
        let per = rows_per_batch.max(1);
        let mut out = Vec::new();
        let mut start = 0;
        for chunk in self.ends.chunks(per) {
            let end = *chunk.last().expect("chunks are never empty");
            out.push((self.text[start..end].to_owned(), chunk.len() as u64));
            start = end;
        }
        out
    }
}

impl fmt::Debug for CopyRows {
    /// The row count and size only: rows may hold personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyRows")
            .field("rows", &self.len())
            .field("bytes", &self.text.len())
            .finish()
    }
}

/// Escapes what it is given into COPY text.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '\t' => self.0.push_str("\\t"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped_and_none_is_null() {
        let mut rows = CopyRows::new();
        rows.push([Some("a\\b"), Some("tab\there"), Some("line\nbreak\r"), None]);
        assert_eq!(rows.as_text(), "a\\\\b\ttab\\there\tline\\nbreak\\r\t\\N\n");
    }

    #[test]
    fn batches_cut_at_row_boundaries() {
        let mut rows = CopyRows::new();
        for i in 0..5 {
            rows.push([Some(i)]);
        }
        let batches = rows.batches(2);
        assert_eq!(
            batches,
            vec![
                ("0\n1\n".to_owned(), 2),
                ("2\n3\n".to_owned(), 2),
                ("4\n".to_owned(), 1)
            ]
        );
        assert_eq!(rows.batches(0).len(), 5, "at least one row a batch");
        assert!(CopyRows::new().batches(10).is_empty());
    }

    #[test]
    fn debug_shows_no_row_data() {
        let mut rows = CopyRows::new();
        rows.push([Some("secret")]);
        assert!(!format!("{rows:?}").contains("secret"));
    }
}
