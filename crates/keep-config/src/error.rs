//! The error type of this crate: every problem names the file, line, column and key.

use std::fmt;
use std::path::{Path, PathBuf};

/// A `Keep.toml` that cannot be used, with the place of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the configuration came from (or a description such as `<string>`).
    pub path: PathBuf,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// 1-based column of the problem, when known.
    pub column: Option<usize>,
    /// Dotted key of the offending value, e.g. `files[2].port`, when known.
    pub key: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// An error about the whole file (it cannot be read, for instance).
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error at a byte offset in `text`, converted to line and column.
    pub(crate) fn at_offset(
        path: &Path,
        text: &str,
        offset: Option<usize>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = match offset {
            Some(offset) => {
                let (line, column) = line_column(text, offset);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Self {
            path: path.to_owned(),
            line,
            column,
            key: key.filter(|k| !k.is_empty() && k != "."),
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_line_and_column() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // The byte after the two-byte `é` is the third character of line 2.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn display_names_file_line_column_and_key() {
        let err = ConfigError::at_offset(
            Path::new("Keep.toml"),
            "x\ny",
            Some(2),
            Some("files[0].port".into()),
            "bad",
        );
        assert_eq!(err.to_string(), "Keep.toml:2:1: key `files[0].port`: bad");
    }
}
