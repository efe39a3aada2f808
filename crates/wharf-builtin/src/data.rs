//! `data.convert` and `data.pick`: structured data (JSON, YAML, CSV, TSV or text) read
//! from `with.data` or a file, re-encoded, or a value picked out of it with a jq path (on
//! jaq, as `jq` steps run). Objects are written with their keys sorted, as Dagu writes them:
//! JSON indented by two spaces, YAML in block style, CSV and TSV with a header row.

use std::path::Path;

use serde_json::Value;
use wharf_spec::{DataFormat, DataSource, DataStep};

use crate::{Ended, Output};

pub(crate) async fn run(data: &DataStep, dir: &Path, out: &mut Output) -> Ended {
    match render(data, dir) {
        Ok(text) => {
            out.stdout(text.as_bytes()).await;
            Ended::Done
        }
        Err(e) => Ended::Failed(e),
    }
}

fn render(data: &DataStep, dir: &Path) -> Result<String, String> {
    let value = read(data, dir)?;
    if !data.pick {
        return write(&value, data.to.unwrap_or(DataFormat::Json), data);
    }
    let select = data.select.as_deref().unwrap_or(".");
    let results = crate::jq::evaluate(select, value)
        .map_err(|e| format!("failed to resolve select path `{select}`: {e}"))?;
    let picked = match results.into_iter().next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(format!("failed to resolve select path `{select}`: {e}")),
        None => Value::Null,
    };
    if data.raw {
        let mut text = match &picked {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push('\n');
        return Ok(text);
    }
    write(&picked, data.to.unwrap_or(DataFormat::Json), data)
}

/// The data as a value: parsed as `from` says (CSV and TSV fields are strings).
fn read(data: &DataStep, dir: &Path) -> Result<Value, String> {
    let text = match &data.source {
        DataSource::Value(v) => {
            return match data.from {
                DataFormat::Json | DataFormat::Yaml => Ok(v.clone()),
                _ => Err("`with.data` written as YAML structure is read as json or yaml: give csv, tsv or text data as a string".into()),
            };
        }
        DataSource::Text(t) => t.clone(),
        DataSource::File(f) => {
            let path = wharf_spec::formats::resolve_path(dir, f);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the input {}: {e}", path.display()))?
        }
    };
    match data.from {
        DataFormat::Json => {
            serde_json::from_str(&text).map_err(|e| format!("failed to decode JSON: {e}"))
        }
        DataFormat::Yaml => wharf_spec::formats::yaml_to_json(&text)
            .map_err(|e| format!("failed to decode YAML: {e}")),
        DataFormat::Text => Ok(Value::String(text)),
        DataFormat::Csv | DataFormat::Tsv => {
            let delimiter = data.delimiter.unwrap_or(if data.from == DataFormat::Tsv {
                '\t'
            } else {
                ','
            });
            let mut input = std::io::Cursor::new(text.as_bytes());
            let mut line = 0;
            let mut records = Vec::new();
            while let Some(r) =
                crate::sql::read_record(&mut input, delimiter, &mut line, "the data")?
            {
                records.push(r);
            }
            let mut records = records.into_iter();
            let names: Option<Vec<String>> = if data.has_header {
                let header = records.next().unwrap_or_default();
                Some(if data.columns.is_empty() {
                    header
                } else {
                    data.columns.clone()
                })
            } else {
                (!data.columns.is_empty()).then(|| data.columns.clone())
            };
            Ok(Value::Array(
                records
                    .map(|fields| match &names {
                        Some(names) => Value::Object(
                            names
                                .iter()
                                .cloned()
                                .zip(fields.into_iter().map(Value::String))
                                .collect(),
                        ),
                        None => Value::Array(fields.into_iter().map(Value::String).collect()),
                    })
                    .collect(),
            ))
        }
    }
}

/// `value` encoded as `to`, ending with a line break.
fn write(value: &Value, to: DataFormat, data: &DataStep) -> Result<String, String> {
    let value = crate::jq::sorted(value.clone());
    let mut text = match to {
        DataFormat::Json => {
            let mut buf = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"  ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
            serde::Serialize::serialize(&value, &mut ser).map_err(|e| e.to_string())?;
            String::from_utf8(buf).map_err(|e| e.to_string())?
        }
        DataFormat::Yaml => {
            let mut out = String::new();
            yaml(&value, 0, &mut out);
            return Ok(out);
        }
        DataFormat::Text => match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        DataFormat::Csv | DataFormat::Tsv => {
            let delimiter =
                data.delimiter
                    .unwrap_or(if to == DataFormat::Tsv { '\t' } else { ',' });
            return table(&value, delimiter, data);
        }
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Rows (objects, or lists of fields) as CSV or TSV.
fn table(value: &Value, delimiter: char, data: &DataStep) -> Result<String, String> {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![value],
        _ => {
            return Err(
                "only a list of rows (objects or lists) can be written as CSV or TSV".into(),
            );
        }
    };
    let field = |v: Option<&Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => crate::sql::delimited_field(s, delimiter),
        Some(other) => crate::sql::delimited_field(&other.to_string(), delimiter),
    };
    let sep = delimiter.to_string();
    let mut out = String::new();
    let objects = rows.iter().all(|r| r.is_object());
    if objects {
        let columns: Vec<String> = if data.columns.is_empty() {
            let mut all: Vec<String> = rows
                .iter()
                .filter_map(|r| r.as_object())
                .flat_map(|o| o.keys().cloned())
                .collect();
            all.sort();
            all.dedup();
            all
        } else {
            data.columns.clone()
        };
        if data.headers {
            let head: Vec<String> = columns
                .iter()
                .map(|c| crate::sql::delimited_field(c, delimiter))
                .collect();
            out.push_str(&head.join(&sep));
            out.push('\n');
        }
        for row in &rows {
            let cells: Vec<String> = columns.iter().map(|c| field(row.get(c))).collect();
            out.push_str(&cells.join(&sep));
            out.push('\n');
        }
    } else {
        for row in &rows {
            let cells: Vec<String> = match row {
                Value::Array(items) => items.iter().map(|v| field(Some(v))).collect(),
                other => vec![field(Some(other))],
            };
            out.push_str(&cells.join(&sep));
            out.push('\n');
        }
    }
    Ok(out)
}

/// `value` as YAML in block style, `indent` spaces in.
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                out.push_str(&pad);
                out.push_str(&scalar(&Value::String(k.clone())));
                out.push(':');
                nested(v, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for v in items {
                out.push_str(&pad);
                out.push('-');
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key on the dash's line, the others under it.
                        let mut first = String::new();
                        yaml(v, indent + 2, &mut first);
                        out.push(' ');
                        out.push_str(first.trim_start());
                    }
                    _ => nested(v, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// What follows `key:` or `-`: a scalar on the line, or a block under it.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml(v, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

/// A scalar as YAML writes it: quoted when plain text would read as something else.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        Value::String(s) => {
            let reads_as_other = wharf_spec::formats::yaml_to_json(s)
                .map(|parsed| parsed != Value::String(s.clone()))
                .unwrap_or(true);
            let special = s.is_empty()
                || s.trim() != s
                || s.contains(['\n', '#', ':', '"', '\''])
                || s.starts_with([
                    '-', '?', '[', ']', '{', '}', ',', '&', '*', '!', '|', '>', '%', '@', '`',
                ]);
            if reads_as_other || special {
                serde_json::to_string(s).unwrap_or_default()
            } else {
                s.clone()
            }
        }
    }
}
