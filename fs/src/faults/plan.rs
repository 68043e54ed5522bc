//! Fault plans: the faults a volume arms when it is mounted
//! (`durafs mount --faults FILE`), in TOML.
//!
//! ```toml
//! # Cut the power when the WAL's 3rd fsync returns.
//! [[fault]]
//! action = "cut"
//! op = "fsync"
//! path = "^/wal"
//! nth = 3
//!
//! [[fault]]
//! action = "error"
//! errno = "ENOSPC"
//! op = "write"
//! path = "^/data/"
//! forever = true
//! ```
//!
//! Each `[[fault]]` table is the `fault add` command of the control file
//! written as keys: `action` is the action's name, `errno` (error) and
//! `ms` (delay) its argument, and every other key an option (`after_ops`
//! or `after-ops` is `--after-ops`; `true` sets a flag; a list is
//! comma-separated, `keep = [1, 3]`). So a plan takes exactly what the
//! control file takes, and is checked by the same grammar
//! ([`super::args`]). A malformed plan is refused whole, with the line and
//! column of the table (or of the TOML error).

use super::{FaultError, spec_text};
use toml::Value;

/// One fault of a plan: its `fault add` words and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub words: Vec<String>,
    /// 1-based line and column of its `[[fault]]` table.
    pub line: usize,
    pub column: usize,
}

impl Planned {
    /// The words as one line.
    pub fn spec(&self) -> String {
        spec_text(&self.words)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    fault: Vec<toml::Spanned<toml::Table>>,
}

/// 1-based line and column of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn word(key: &str, v: &Value) -> Result<Option<String>, String> {
    Ok(Some(match v {
        Value::String(s) => s.clone(),
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Boolean(_) => return Ok(None),
        Value::Array(items) => {
            let parts: Result<Vec<String>, String> = items
                .iter()
                .map(|i| match i {
                    Value::Integer(n) => Ok(n.to_string()),
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("{key}: a list of numbers or strings")),
                })
                .collect();
            parts?.join(",")
        }
        _ => return Err(format!("{key}: expected a string, number, boolean or list")),
    }))
}

/// The `fault add` words of one table.
fn words_of(t: &toml::Table) -> Result<Vec<String>, String> {
    let action = match t.get("action") {
        Some(Value::String(a)) => a.clone(),
        Some(_) => {
            return Err(
                "action must be a string (cut, error, delay, torn, torn-seq, fsync-fail)".into(),
            );
        }
        None => {
            return Err("missing action (cut, error, delay, torn, torn-seq or fsync-fail)".into());
        }
    };
    let mut words = vec![action.clone()];
    let positional = match action.as_str() {
        "error" => Some("errno"),
        "delay" => Some("ms"),
        _ => None,
    };
    if let Some(key) = positional {
        match t.get(key).map(|v| word(key, v)) {
            Some(Ok(Some(w))) => words.push(w),
            Some(Err(e)) => return Err(e),
            _ => return Err(format!("{action} needs {key}")),
        }
    }
    for (key, v) in t {
        if key == "action" || Some(key.as_str()) == positional {
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match (v, word(key, v)?) {
            (Value::Boolean(true), _) => words.push(flag),
            (Value::Boolean(false), _) => {}
            (_, Some(w)) => {
                words.push(flag);
                words.push(w);
            }
            (_, None) => {}
        }
    }
    Ok(words)
}

/// Parses a plan and checks each fault against the grammar; nothing is
/// armed here. Errors name the line and column.
pub fn parse(text: &str) -> Result<Vec<Planned>, FaultError> {
    let file: PlanFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(text, s.start);
                format!("line {l}, column {c}: ")
            })
            .unwrap_or_default();
        FaultError(format!("{at}{}", e.message()))
    })?;
    let mut out = Vec::new();
    for (i, table) in file.fault.iter().enumerate() {
        let (line, column) = line_col(text, table.span().start);
        let at = |msg: String| {
            FaultError(format!(
                "line {line}, column {column}: fault {}: {msg}",
                i + 1
            ))
        };
        let words = words_of(table.get_ref()).map_err(at)?;
        // Checked by building the fault, as arming it will.
        super::Faults::default()
            .add_words(&words)
            .map_err(|e| at(e.0))?;
        out.push(Planned {
            words,
            line,
            column,
        });
    }
    Ok(out)
}
