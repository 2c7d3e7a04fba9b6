//! Text for people on stdout, or exactly one JSON document on stdout for programs. Logs and progress always go
//! to stderr, so `--output json | jq` never sees them.

use release::Error;
use serde::Serialize;

use crate::args::OutputFormat;

pub struct Output {
    format: OutputFormat,
    /// Whether the one JSON document was printed already (a failing command may have reported first).
    printed: std::cell::Cell<bool>,
}

impl Output {
    pub fn new(format: OutputFormat) -> Self {
        Self { format, printed: std::cell::Cell::new(false) }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints a command's result: `text` in text mode, `value` as JSON otherwise.
    pub fn result<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        match self.format {
            OutputFormat::Text => {
                let t = text();
                if !t.is_empty() {
                    emit(t.trim_end());
                }
            }
            OutputFormat::Json => match serde_json::to_string_pretty(value) {
                Ok(s) => {
                    emit(&s);
                    self.printed.set(true);
                }
                Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
            },
        }
    }

    /// A progress or log line, always on stderr.
    pub fn progress(&self, line: impl AsRef<str>) {
        eprintln!("{}", line.as_ref());
    }

    pub fn error(&self, e: &Error) {
        for d in e.details() {
            eprintln!("{d}");
        }
        eprintln!("error: {}", e.message());
        self.json_error_only(e);
    }

    /// The JSON error document alone (when the message was already printed, or for usage errors).
    pub fn json_error_only(&self, e: &Error) {
        if !self.is_json() || self.printed.get() {
            return;
        }
        let mut error = serde_json::json!({
            "kind": e.kind().as_str(),
            "message": e.message(),
            "details": e.details(),
            "exit_code": e.kind().exit_code(),
        });
        if let Some(code) = e.code() {
            error["aws_code"] = code.into();
        }
        if let Some(rb) = e.rolled_back() {
            error["rolled_back"] = rb.into();
        }
        let mut doc = serde_json::Map::new();
        // The fields of what the command did before it failed (release id, hooks), as a rolled-back rollout
        // prints its report next to `error`.
        if let Some(report) = e.report() {
            doc.extend(report.iter().filter(|(k, _)| *k != "ok" && *k != "error").map(|(k, v)| (k.clone(), v.clone())));
        }
        doc.insert("ok".into(), false.into());
        doc.insert("error".into(), error);
        emit(&serde_json::to_string_pretty(&serde_json::Value::Object(doc)).unwrap_or_default());
        self.printed.set(true);
    }
}

/// Writes one result to stdout. A reader that stopped early (`release history | head`) is not a failure of the
/// command, whose work is done by now: the rest of the output is dropped instead of panicking like `println!`.
fn emit(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}").and_then(|()| out.flush());
}

/// A text table whose columns are as wide as their widest cell (actor names and environments vary in length).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                l.push_str(&format!("{cell:<w$} ", w = widths[i]));
            } else {
                l.push_str(cell);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}
