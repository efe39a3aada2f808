//! The file of an import (CSV, TSV or JSON lines), read a record at a time.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;
use wharf_spec::SqlImport;

/// One data row: a value per column (NULL, text, or a JSON number or boolean).
pub(crate) type Record = Vec<Value>;

/// A JSON line's object and the line it is on.
type JsonLine = (u64, serde_json::Map<String, Value>);

enum Format {
    /// CSV or TSV, with this delimiter.
    Delimited(char),
    Jsonl,
}

pub(crate) struct ImportFile {
    input: std::io::BufReader<std::fs::File>,
    format: Format,
    /// The columns the values go to; None: the table's own, in order.
    columns: Option<Vec<String>>,
    null_values: Vec<String>,
    skip: u64,
    max: u64,
    /// The line the next record starts on, for messages.
    line: u64,
    name: String,
    /// Data rows read from the file (skipped ones not counted), and skipped.
    pub(crate) rows_read: u64,
    pub(crate) rows_skipped: u64,
    /// A JSON line read to learn the columns, not yet given out.
    pending: Option<Record>,
}

impl ImportFile {
    pub(crate) fn open(import: &SqlImport, dir: &Path) -> Result<Self, String> {
        let path = dir.join(&import.input_file);
        let name = import.input_file.clone();
        let format = match import.format.as_deref() {
            Some(f) => f.to_owned(),
            None => match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("csv") => "csv".into(),
                Some("tsv" | "tab") => "tsv".into(),
                Some("jsonl" | "ndjson") => "jsonl".into(),
                _ => {
                    return Err(format!(
                        "cannot tell the format of `{name}` from its name: set `format` (csv, tsv or jsonl)"
                    ));
                }
            },
        };
        let format = match format.as_str() {
            "csv" | "tsv" => {
                let default = if format == "tsv" { '\t' } else { ',' };
                Format::Delimited(
                    import
                        .delimiter
                        .as_deref()
                        .and_then(|d| d.chars().next())
                        .unwrap_or(default),
                )
            }
            "jsonl" => Format::Jsonl,
            other => {
                return Err(format!("`format` is csv, tsv or jsonl, found `{other}`"));
            }
        };
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read the import file {}: {e}", path.display()))?;
        let mut this = Self {
            input: std::io::BufReader::new(file),
            format,
            columns: (!import.columns.is_empty()).then(|| import.columns.clone()),
            null_values: import
                .null_values
                .clone()
                .unwrap_or_else(|| ["", "NULL", "null", "\\N"].map(String::from).to_vec()),
            skip: import.skip_rows,
            max: import.max_rows,
            line: 1,
            name,
            rows_read: 0,
            rows_skipped: 0,
            pending: None,
        };
        match this.format {
            Format::Delimited(_) if import.has_header => {
                let header = this.fields()?.unwrap_or_default();
                if this.columns.is_none() {
                    let header: Vec<String> = header
                        .into_iter()
                        .enumerate()
                        .map(|(i, h)| {
                            if i == 0 {
                                h.trim_start_matches('\u{feff}').to_owned()
                            } else {
                                h
                            }
                        })
                        .collect();
                    if header.iter().any(|h| h.trim().is_empty()) {
                        return Err(format!(
                            "the header of `{}` has an empty column name",
                            this.name
                        ));
                    }
                    this.columns = Some(header);
                }
            }
            Format::Delimited(_) => {}
            Format::Jsonl => {
                // The first object's keys, unless `columns` names them.
                if let Some((line, object)) = this.json_object()? {
                    let columns = this
                        .columns
                        .get_or_insert_with(|| object.keys().cloned().collect())
                        .clone();
                    this.pending = Some(this.json_record(line, object, &columns)?);
                }
            }
        }
        Ok(this)
    }

    pub(crate) fn columns(&self) -> Option<&[String]> {
        self.columns.as_deref()
    }

    /// The next data row to import (after `skip_rows`, up to `max_rows`), None at the end.
    pub(crate) fn next(&mut self) -> Result<Option<Record>, String> {
        loop {
            if self.max > 0 && self.rows_read >= self.max {
                return Ok(None);
            }
            let record = match self.pending.take() {
                Some(r) => Some(r),
                None => self.record()?,
            };
            let Some(record) = record else {
                return Ok(None);
            };
            if self.rows_skipped < self.skip {
                self.rows_skipped += 1;
                continue;
            }
            self.rows_read += 1;
            return Ok(Some(record));
        }
    }

    fn record(&mut self) -> Result<Option<Record>, String> {
        match self.format {
            Format::Delimited(_) => {
                let at = self.line;
                let Some(fields) = self.fields()? else {
                    return Ok(None);
                };
                if let Some(columns) = &self.columns
                    && fields.len() != columns.len()
                {
                    return Err(format!(
                        "`{}` line {at} has {} fields where there are {} columns ({})",
                        self.name,
                        fields.len(),
                        columns.len(),
                        columns.join(", ")
                    ));
                }
                Ok(Some(
                    fields
                        .into_iter()
                        .map(|f| {
                            if self.null_values.contains(&f) {
                                Value::Null
                            } else {
                                Value::String(f)
                            }
                        })
                        .collect(),
                ))
            }
            Format::Jsonl => {
                let Some((line, object)) = self.json_object()? else {
                    return Ok(None);
                };
                let columns = self.columns.clone().unwrap_or_default();
                self.json_record(line, object, &columns).map(Some)
            }
        }
    }

    /// The next JSON line's object (blank lines skipped), with its line number.
    fn json_object(&mut self) -> Result<Option<JsonLine>, String> {
        loop {
            let mut text = String::new();
            let n = self
                .input
                .read_line(&mut text)
                .map_err(|e| format!("cannot read `{}`: {e}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            let at = self.line;
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Object(object)) => Ok(Some((at, object))),
                Ok(_) => Err(format!("`{}` line {at} is not a JSON object", self.name)),
                Err(e) => Err(format!("`{}` line {at} is not JSON: {e}", self.name)),
            };
        }
    }

    fn json_record(
        &self,
        line: u64,
        mut object: serde_json::Map<String, Value>,
        columns: &[String],
    ) -> Result<Record, String> {
        let record = columns
            .iter()
            .map(|c| match object.remove(c) {
                None | Some(Value::Null) => Value::Null,
                Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v,
                Some(other) => Value::String(other.to_string()),
            })
            .collect();
        if let Some(extra) = object.keys().next() {
            return Err(format!(
                "`{}` line {line} has the field `{extra}`, not among the columns imported ({})",
                self.name,
                columns.join(", ")
            ));
        }
        Ok(record)
    }

    /// The next delimited record's fields, None at the end.
    fn fields(&mut self) -> Result<Option<Vec<String>>, String> {
        let Format::Delimited(delimiter) = self.format else {
            return Ok(None);
        };
        read_record(&mut self.input, delimiter, &mut self.line, &self.name)
    }
}

/// The next record of CSV or TSV text (quoted fields may hold the delimiter, quotes and
/// line breaks; blank lines are skipped), None at the end; `line` counts the lines read.
pub(crate) fn read_record(
    input: &mut impl BufRead,
    delimiter: char,
    line: &mut u64,
    name: &str,
) -> Result<Option<Vec<String>>, String> {
    let mut text = String::new();
    loop {
        text.clear();
        let n = input
            .read_line(&mut text)
            .map_err(|e| format!("cannot read `{name}`: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        *line += 1;
        if !text.trim_end_matches(['\r', '\n']).is_empty() {
            break;
        }
    }
    let start = *line - 1;
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_start = true;
    loop {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                } else {
                    field.push(c);
                }
            } else if c == '"' && at_start {
                quoted = true;
                at_start = false;
            } else if c == delimiter {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            } else if c == '\n' || (c == '\r' && chars.peek() == Some(&'\n')) {
                // The record's end.
            } else {
                field.push(c);
                at_start = false;
            }
        }
        if !quoted {
            break;
        }
        // A quoted field goes on past the line's end.
        text.clear();
        let n = input
            .read_line(&mut text)
            .map_err(|e| format!("cannot read `{name}`: {e}"))?;
        if n == 0 {
            return Err(format!(
                "`{name}` line {start}: a quoted field is not closed before the file ends"
            ));
        }
        *line += 1;
    }
    fields.push(field);
    Ok(Some(fields))
}
