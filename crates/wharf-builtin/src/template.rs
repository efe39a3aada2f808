//! `template.render`: a Go `text/template` (the language Dagu's templates are written in)
//! rendered over `with.data`, with a missing key an error (`missingkey=error`).
//!
//! What is understood: text, `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* */}}`
//! comments; `.`, `.a.b`, `$`, `$x.a`; strings (`"..."`, `` `...` ``), numbers, `true`,
//! `false`, `nil`; pipelines (`.x | upper`); `( )`; `$x := ...` and `$x = ...`; `if`/
//! `else if`/`else`, `range` (with `$i, $v :=`, and `else`), `with`, `end`. Functions:
//! Go's `and or not eq ne lt le gt ge len index print printf println` and a hermetic part
//! of sprig (strings, lists, dicts, numbers, encodings; none reads the environment, the
//! clock or randomness), the pipeline-friendly ones taking the piped value last.

use std::path::Path;

use serde_json::{Map, Value};
use wharf_spec::TemplateStep;

use crate::{Ended, Output};

pub(crate) async fn run(step: &TemplateStep, dir: &Path, out: &mut Output) -> Ended {
    let text = step.template.as_deref().unwrap_or_default();
    let rendered = match parse(text).and_then(|nodes| render(&nodes, &step.data)) {
        Ok(r) => r,
        Err(e) => return Ended::Failed(e),
    };
    match &step.output {
        Some(file) => {
            let path = wharf_spec::formats::resolve_path(dir, file);
            if let Some(parent) = path.parent()
                && let Err(e) = tokio::fs::create_dir_all(parent).await
            {
                return Ended::Failed(format!("cannot make the folder {}: {e}", parent.display()));
            }
            if let Err(e) = tokio::fs::write(&path, rendered.as_bytes()).await {
                return Ended::Failed(format!("cannot write {}: {e}", path.display()));
            }
        }
        None => out.stdout(rendered.as_bytes()).await,
    }
    Ended::Done
}

// ---- parsing ----

#[derive(Debug, Clone)]
enum Arg {
    /// `.a.b` (empty: `.` itself).
    Field(Vec<String>),
    /// `$x.a.b` (`$` alone: the data).
    Var(String, Vec<String>),
    Str(String),
    Num(Value),
    Bool(bool),
    Nil,
    Func(String),
    Sub(Box<Pipeline>),
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// `$x :=` (declare) or `$x =` (assign).
    bind: Option<(Vec<String>, bool)>,
    commands: Vec<Vec<Arg>>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Out(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

fn parse_error(what: impl std::fmt::Display) -> String {
    format!("template: parse error: {what}")
}

/// The template's text and actions, trimmed as `{{-` and `-}}` say.
fn pieces(text: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        let mut before = rest[..at].to_owned();
        let mut inner = &rest[at + 2..];
        if let Some(r) = inner
            .strip_prefix("- ")
            .or_else(|| inner.strip_prefix("-\n"))
        {
            before = before.trim_end().to_owned();
            inner = r;
        }
        // The action's end, outside its quoted strings and comment.
        let end = action_end(inner).ok_or_else(|| parse_error("unclosed action (no `}}`)"))?;
        let mut action = inner[..end].to_owned();
        let mut after = &inner[end + 2..];
        if action.ends_with(" -") || action.ends_with("\n-") {
            action.truncate(action.len() - 2);
            after = after.trim_start();
        }
        out.push((false, before));
        out.push((true, action));
        rest = after;
    }
    out.push((false, rest.to_owned()));
    Ok(out)
}

fn action_end(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if bytes[i + 1] == b'*' => {
                let close = inner[i + 2..].find("*/")?;
                i += close + 4;
                continue;
            }
            b'}' if bytes[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse(text: &str) -> Result<Vec<Node>, String> {
    let pieces = pieces(text)?;
    let mut iter = pieces.into_iter();
    let (nodes, end) = block(&mut iter)?;
    match end {
        None => Ok(nodes),
        Some(word) => Err(parse_error(format!("unexpected {{{{{word}}}}}"))),
    }
}

type Pieces = std::vec::IntoIter<(bool, String)>;

/// Nodes up to an `end`, `else` or `else if ...` (returned, its text) or the template's end.
fn block(iter: &mut Pieces) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some((action, text)) = iter.next() {
        if !action {
            if !text.is_empty() {
                nodes.push(Node::Text(text));
            }
            continue;
        }
        let t = text.trim();
        if t.starts_with("/*") {
            continue;
        }
        let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        match word {
            "end" | "else" => return Ok((nodes, Some(t.to_owned()))),
            "if" | "range" | "with" => nodes.push(branches(word, rest, iter)?),
            "define" | "template" | "block" | "break" | "continue" => {
                return Err(parse_error(format!("`{word}` is not supported here")));
            }
            _ => nodes.push(Node::Out(pipeline(t)?)),
        }
    }
    Ok((nodes, None))
}

/// An `if`, `range` or `with` after its keyword: its pipeline, its body, and its
/// `else`: a block, or an `else if` / `else with` chain that ends at the same `end`.
fn branches(word: &str, rest: &str, iter: &mut Pieces) -> Result<Node, String> {
    let pipe = pipeline(rest)?;
    let (body, end) = block(iter)?;
    let otherwise = match end.as_deref() {
        Some("end") => Vec::new(),
        Some("else") => {
            let (e, close) = block(iter)?;
            if close.as_deref() != Some("end") {
                return Err(parse_error(format!("`{word}`'s else has no end")));
            }
            e
        }
        Some(e) if e.starts_with("else ") => {
            let chained = e["else ".len()..].trim();
            let (next, more) = chained
                .split_once(char::is_whitespace)
                .unwrap_or((chained, ""));
            if next != "if" && next != "with" {
                return Err(parse_error(format!("unexpected `{e}`")));
            }
            vec![branches(next, more, iter)?]
        }
        _ => return Err(parse_error(format!("`{word}` has no end"))),
    };
    Ok(match word {
        "if" => Node::If(pipe, body, otherwise),
        "range" => Node::Range(pipe, body, otherwise),
        _ => Node::With(pipe, body, otherwise),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Pipe,
    Open,
    Close,
    Comma,
    Declare,
    Assign,
}

fn tokens(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(parse_error("unterminated quoted string"));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            '`' => {
                let rest: String = chars[i + 1..].iter().collect();
                let end = rest
                    .find('`')
                    .ok_or_else(|| parse_error("unterminated raw string"))?;
                out.push(Tok::Str(rest[..end].to_owned()));
                i += end + 2;
            }
            _ => {
                let start = i;
                // A word ends at a blank, a mark of the language, `:=` or `=`.
                let ends = |i: usize| {
                    let c = chars[i];
                    c.is_whitespace()
                        || matches!(c, '|' | '(' | ')' | ',' | '"' | '`')
                        || (c == ':' && chars.get(i + 1) == Some(&'='))
                        || (c == '=' && i > start)
                };
                while i < chars.len() && !ends(i) {
                    i += 1;
                }
                if i == start {
                    return Err(parse_error(format!("unexpected `{c}`")));
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn pipeline(text: &str) -> Result<Pipeline, String> {
    let toks = tokens(text)?;
    let mut at = 0;
    let pipe = pipeline_of(&toks, &mut at)?;
    if at < toks.len() {
        return Err(parse_error(format!(
            "unexpected {:?} in `{text}`",
            toks[at]
        )));
    }
    if pipe.commands.is_empty() {
        return Err(parse_error(format!("missing value in `{{{{{text}}}}}`")));
    }
    Ok(pipe)
}

fn pipeline_of(toks: &[Tok], at: &mut usize) -> Result<Pipeline, String> {
    // `$a :=`, `$a, $b :=` or `$a =`.
    let mut bind = None;
    let mut names = Vec::new();
    let mut j = *at;
    while let Some(Tok::Word(w)) = toks.get(j) {
        if !w.starts_with('$') || w.contains('.') {
            break;
        }
        names.push(w.clone());
        j += 1;
        match toks.get(j) {
            Some(Tok::Comma) => j += 1,
            Some(Tok::Declare) => {
                bind = Some((names.clone(), true));
                *at = j + 1;
                break;
            }
            Some(Tok::Assign) => {
                bind = Some((names.clone(), false));
                *at = j + 1;
                break;
            }
            _ => break,
        }
    }
    let mut commands = Vec::new();
    let mut command = Vec::new();
    while let Some(t) = toks.get(*at) {
        match t {
            Tok::Close => break,
            Tok::Pipe => {
                if command.is_empty() {
                    return Err(parse_error("missing command before `|`"));
                }
                commands.push(std::mem::take(&mut command));
                *at += 1;
            }
            Tok::Open => {
                *at += 1;
                let inner = pipeline_of(toks, at)?;
                if toks.get(*at) != Some(&Tok::Close) {
                    return Err(parse_error("unclosed `(`"));
                }
                *at += 1;
                command.push(Arg::Sub(Box::new(inner)));
            }
            Tok::Str(s) => {
                command.push(Arg::Str(s.clone()));
                *at += 1;
            }
            Tok::Word(w) => {
                command.push(word(w)?);
                *at += 1;
            }
            other => return Err(parse_error(format!("unexpected {other:?}"))),
        }
    }
    if !command.is_empty() {
        commands.push(command);
    }
    Ok(Pipeline { bind, commands })
}

fn path(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn word(w: &str) -> Result<Arg, String> {
    Ok(match w {
        "true" => Arg::Bool(true),
        "false" => Arg::Bool(false),
        "nil" => Arg::Nil,
        w if w.starts_with('.') => Arg::Field(path(w)),
        w if w.starts_with('$') => {
            let (name, rest) = match w.find('.') {
                Some(at) => (&w[..at], &w[at..]),
                None => (w, ""),
            };
            Arg::Var(name.to_owned(), path(rest))
        }
        w if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') => {
            let n: Value = serde_json::from_str(w.trim_start_matches('+'))
                .map_err(|_| parse_error(format!("bad number syntax: {w}")))?;
            Arg::Num(n)
        }
        w if FUNCTIONS.contains(&w) => Arg::Func(w.to_owned()),
        w => return Err(parse_error(format!("function \"{w}\" not defined"))),
    })
}

// ---- evaluation ----

struct Scope<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
}

fn render(nodes: &[Node], data: &Value) -> Result<String, String> {
    let mut scope = Scope {
        root: data,
        vars: vec![("$".to_owned(), data.clone())],
    };
    let mut out = String::new();
    exec(nodes, data, &mut scope, &mut out)?;
    Ok(out)
}

fn exec(nodes: &[Node], dot: &Value, scope: &mut Scope, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Out(p) => {
                let v = eval(p, dot, scope)?;
                if p.bind.is_none() {
                    out.push_str(&show(&v));
                }
            }
            Node::If(p, yes, no) => {
                let depth = scope.vars.len();
                let v = eval(p, dot, scope)?;
                exec(if truthy(&v) { yes } else { no }, dot, scope, out)?;
                scope.vars.truncate(depth);
            }
            Node::With(p, yes, no) => {
                let depth = scope.vars.len();
                let v = eval(p, dot, scope)?;
                if truthy(&v) {
                    exec(yes, &v, scope, out)?;
                } else {
                    exec(no, dot, scope, out)?;
                }
                scope.vars.truncate(depth);
            }
            Node::Range(p, body, no) => {
                let depth = scope.vars.len();
                let names = p.bind.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
                let plain = Pipeline {
                    bind: None,
                    commands: p.commands.clone(),
                };
                let v = eval(&plain, dot, scope)?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x.clone()))
                        .collect(),
                    Value::Object(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), m[k].clone()))
                            .collect()
                    }
                    Value::Number(n) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0))
                        .map(|i| (Value::from(i), Value::from(i)))
                        .collect(),
                    Value::Null => Vec::new(),
                    other => return Err(format!("range can't iterate over {}", show(other))),
                };
                if items.is_empty() {
                    exec(no, dot, scope, out)?;
                }
                for (key, item) in items {
                    let inner = scope.vars.len();
                    match names.as_slice() {
                        [v] => scope.vars.push((v.clone(), item.clone())),
                        [k, v] => {
                            scope.vars.push((k.clone(), key));
                            scope.vars.push((v.clone(), item.clone()));
                        }
                        _ => {}
                    }
                    exec(body, &item, scope, out)?;
                    scope.vars.truncate(inner);
                }
                scope.vars.truncate(depth);
            }
        }
    }
    Ok(())
}

fn eval(p: &Pipeline, dot: &Value, scope: &mut Scope) -> Result<Value, String> {
    let mut piped: Option<Value> = None;
    for command in &p.commands {
        piped = Some(command_value(command, piped, dot, scope)?);
    }
    let v = piped.unwrap_or(Value::Null);
    if let Some((names, declare)) = &p.bind
        && let Some(name) = names.last()
    {
        if *declare {
            scope.vars.push((name.clone(), v.clone()));
        } else {
            match scope.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v.clone(),
                None => return Err(format!("undefined variable: {name}")),
            }
        }
    }
    Ok(v)
}

fn command_value(
    command: &[Arg],
    piped: Option<Value>,
    dot: &Value,
    scope: &mut Scope,
) -> Result<Value, String> {
    let Some(first) = command.first() else {
        return Ok(Value::Null);
    };
    if let Arg::Func(name) = first {
        let mut args = Vec::with_capacity(command.len());
        for a in &command[1..] {
            args.push(arg_value(a, dot, scope)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        return call(name, args);
    }
    if command.len() > 1 || piped.is_some() {
        return Err(format!(
            "can't give argument to non-function {}",
            describe(first)
        ));
    }
    arg_value(first, dot, scope)
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Field(p) => format!(".{}", p.join(".")),
        Arg::Var(n, p) if p.is_empty() => n.clone(),
        Arg::Var(n, p) => format!("{n}.{}", p.join(".")),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Num(n) => n.to_string(),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Func(f) => f.clone(),
        Arg::Sub(_) => "( )".into(),
    }
}

fn arg_value(a: &Arg, dot: &Value, scope: &mut Scope) -> Result<Value, String> {
    Ok(match a {
        Arg::Field(p) => field(dot, p)?,
        Arg::Var(name, p) => {
            let base = if name == "$" {
                scope.root.clone()
            } else {
                scope
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: {name}"))?
            };
            field(&base, p)?
        }
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => n.clone(),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Null,
        Arg::Func(name) => call(name, Vec::new())?,
        Arg::Sub(p) => eval(p, dot, scope)?,
    })
}

/// `.a.b` of `value`; a missing key is an error (`missingkey=error`).
fn field(value: &Value, path: &[String]) -> Result<Value, String> {
    let mut v = value;
    for key in path {
        v = match v {
            Value::Object(m) => m
                .get(key)
                .ok_or_else(|| format!("template: map has no entry for key \"{key}\""))?,
            Value::Null => return Err(format!("template: nil pointer evaluating .{key}")),
            other => {
                return Err(format!(
                    "template: can't evaluate field {key} in {}",
                    kind(other)
                ));
            }
        };
    }
    Ok(v.clone())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// A value as Go's template prints it.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", show(&m[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => show(other),
    }
}

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".to_owned()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number")),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::Null => Ok(0.0),
        other => Err(format!("{} is not a number", kind(other))),
    }
}

fn from_f64(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

const FUNCTIONS: &[&str] = &[
    // Go's own.
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "index",
    "print",
    "printf",
    "println",
    // Strings.
    "upper",
    "lower",
    "title",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "repeat",
    "indent",
    "nindent",
    "quote",
    "squote",
    "split",
    "splitList",
    "join",
    "substr",
    "trunc",
    "toString",
    "nospace",
    "abbrev",
    // Values.
    "default",
    "empty",
    "coalesce",
    "ternary",
    "toJson",
    "toPrettyJson",
    "fromJson",
    "b64enc",
    "b64dec",
    "int",
    "int64",
    "float64",
    "atoi",
    // Lists and dicts.
    "list",
    "first",
    "last",
    "rest",
    "initial",
    "append",
    "uniq",
    "sortAlpha",
    "reverse",
    "has",
    "dict",
    "keys",
    "values",
    "get",
    "hasKey",
    "pluck",
    "count",
    // Numbers.
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "add1",
    "round",
    "floor",
    "ceil",
];

fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "template: wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    let at_least = |n: usize| -> Result<(), String> {
        if args.len() >= n {
            Ok(())
        } else {
            Err(format!(
                "template: wrong number of args for {name}: want at least {n} got {}",
                args.len()
            ))
        }
    };
    let s = |i: usize| text(&args[i]);
    let cmp = |a: &Value, b: &Value| -> Result<std::cmp::Ordering, String> {
        match (a, b) {
            (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
            _ => num(a)?
                .partial_cmp(&num(b)?)
                .ok_or_else(|| "incomparable values".to_owned()),
        }
    };
    let list = |v: &Value| -> Vec<Value> {
        match v {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        }
    };
    Ok(match name {
        "and" => {
            at_least(1)?;
            args.iter()
                .find(|v| !truthy(v))
                .unwrap_or(&args[args.len() - 1])
                .clone()
        }
        "or" => {
            at_least(1)?;
            args.iter()
                .find(|v| truthy(v))
                .unwrap_or(&args[args.len() - 1])
                .clone()
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "eq" => {
            at_least(2)?;
            Value::Bool(args[1..].iter().any(|b| {
                args[0] == *b
                    || (args[0].is_number() && b.is_number() && num(&args[0]).ok() == num(b).ok())
            }))
        }
        "ne" => {
            want(2)?;
            Value::Bool(
                !(args[0] == args[1]
                    || (args[0].is_number()
                        && args[1].is_number()
                        && num(&args[0]).ok() == num(&args[1]).ok())),
            )
        }
        "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = cmp(&args[0], &args[1])?;
            Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Value::String(x) => x.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => return Err(format!("len of {}", kind(other))),
            })
        }
        "index" => {
            at_least(1)?;
            let mut v = args[0].clone();
            for k in &args[1..] {
                v = match (&v, k) {
                    (Value::Array(a), k) => {
                        let i = num(k)? as usize;
                        a.get(i)
                            .cloned()
                            .ok_or_else(|| format!("index out of range: {i}"))?
                    }
                    (Value::Object(m), k) => m.get(&text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Null, _) => Value::Null,
                    (other, _) => return Err(format!("can't index item of type {}", kind(other))),
                };
            }
            v
        }
        "print" => Value::String(args.iter().map(show).collect::<Vec<_>>().join("")),
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(show).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            at_least(1)?;
            Value::String(printf(&s(0), &args[1..]))
        }
        "upper" => {
            want(1)?;
            Value::String(s(0).to_uppercase())
        }
        "lower" => {
            want(1)?;
            Value::String(s(0).to_lowercase())
        }
        "title" => {
            want(1)?;
            Value::String(
                s(0).split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        "trim" => {
            want(1)?;
            Value::String(s(0).trim().to_owned())
        }
        "nospace" => {
            want(1)?;
            Value::String(s(0).chars().filter(|c| !c.is_whitespace()).collect())
        }
        "trimAll" => {
            want(2)?;
            let cut: Vec<char> = s(0).chars().collect();
            Value::String(s(1).trim_matches(|c| cut.contains(&c)).to_owned())
        }
        "trimPrefix" => {
            want(2)?;
            Value::String(s(1).strip_prefix(&s(0)).map_or_else(|| s(1), str::to_owned))
        }
        "trimSuffix" => {
            want(2)?;
            Value::String(s(1).strip_suffix(&s(0)).map_or_else(|| s(1), str::to_owned))
        }
        "replace" => {
            want(3)?;
            Value::String(s(2).replace(&s(0), &s(1)))
        }
        "contains" => {
            want(2)?;
            Value::Bool(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            want(2)?;
            Value::Bool(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            want(2)?;
            Value::Bool(s(1).ends_with(&s(0)))
        }
        "repeat" => {
            want(2)?;
            Value::String(s(1).repeat(num(&args[0])? as usize))
        }
        "indent" | "nindent" => {
            want(2)?;
            let pad = " ".repeat(num(&args[0])? as usize);
            let body = s(1)
                .split('\n')
                .map(|l| format!("{pad}{l}"))
                .collect::<Vec<_>>()
                .join("\n");
            Value::String(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "quote" => Value::String(
            args.iter()
                .map(|a| serde_json::to_string(&text(a)).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::String(
            args.iter()
                .map(|a| format!("'{}'", text(a)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "split" | "splitList" => {
            want(2)?;
            Value::Array(
                s(1).split(&s(0))
                    .map(|p| Value::String(p.to_owned()))
                    .collect(),
            )
        }
        "join" => {
            want(2)?;
            Value::String(
                list(&args[1])
                    .iter()
                    .map(text)
                    .collect::<Vec<_>>()
                    .join(&s(0)),
            )
        }
        "substr" => {
            want(3)?;
            let chars: Vec<char> = s(2).chars().collect();
            let start = (num(&args[0])?.max(0.0) as usize).min(chars.len());
            let end = (num(&args[1])?.max(0.0) as usize).clamp(start, chars.len());
            Value::String(chars[start..end].iter().collect())
        }
        "trunc" => {
            want(2)?;
            Value::String(
                s(1).chars()
                    .take(num(&args[0])?.max(0.0) as usize)
                    .collect(),
            )
        }
        "abbrev" => {
            want(2)?;
            let n = num(&args[0])? as usize;
            let t = s(1);
            Value::String(if t.chars().count() <= n || n < 4 {
                t
            } else {
                format!("{}...", t.chars().take(n - 3).collect::<String>())
            })
        }
        "toString" => {
            want(1)?;
            Value::String(text(&args[0]))
        }
        "default" => {
            at_least(1)?;
            match args.get(1) {
                Some(v) if truthy(v) => v.clone(),
                _ => args[0].clone(),
            }
        }
        "empty" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "coalesce" => args
            .iter()
            .find(|v| truthy(v))
            .cloned()
            .unwrap_or(Value::Null),
        "ternary" => {
            want(3)?;
            if truthy(&args[2]) {
                args[0].clone()
            } else {
                args[1].clone()
            }
        }
        "toJson" => {
            want(1)?;
            Value::String(args[0].to_string())
        }
        "toPrettyJson" => {
            want(1)?;
            Value::String(serde_json::to_string_pretty(&args[0]).unwrap_or_default())
        }
        "fromJson" => {
            want(1)?;
            serde_json::from_str(&s(0)).unwrap_or(Value::Null)
        }
        "b64enc" => {
            want(1)?;
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(s(0)))
        }
        "b64dec" => {
            want(1)?;
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s(0).trim())
                .map_err(|e| format!("b64dec: {e}"))?;
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        "int" | "int64" | "atoi" => {
            want(1)?;
            Value::from(num(&args[0]).unwrap_or(0.0).trunc() as i64)
        }
        "float64" => {
            want(1)?;
            from_f64(num(&args[0]).unwrap_or(0.0))
        }
        "list" => Value::Array(args),
        "first" => list(args.first().unwrap_or(&Value::Null))
            .first()
            .cloned()
            .unwrap_or(Value::Null),
        "last" => list(args.first().unwrap_or(&Value::Null))
            .last()
            .cloned()
            .unwrap_or(Value::Null),
        "rest" => Value::Array(
            list(args.first().unwrap_or(&Value::Null))
                .into_iter()
                .skip(1)
                .collect(),
        ),
        "initial" => {
            let mut l = list(args.first().unwrap_or(&Value::Null));
            l.pop();
            Value::Array(l)
        }
        "append" => {
            want(2)?;
            let mut l = list(&args[0]);
            l.push(args[1].clone());
            Value::Array(l)
        }
        "uniq" => {
            let mut out: Vec<Value> = Vec::new();
            for v in list(args.first().unwrap_or(&Value::Null)) {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Value::Array(out)
        }
        "sortAlpha" => {
            let mut l: Vec<String> = list(args.first().unwrap_or(&Value::Null))
                .iter()
                .map(text)
                .collect();
            l.sort();
            Value::Array(l.into_iter().map(Value::String).collect())
        }
        "reverse" => {
            let mut l = list(args.first().unwrap_or(&Value::Null));
            l.reverse();
            Value::Array(l)
        }
        "has" => {
            want(2)?;
            Value::Bool(list(&args[1]).contains(&args[0]))
        }
        "count" => {
            // Pipeline-friendly: `.list | count` (or `count SUB TEXT`).
            match args.as_slice() {
                [one] => Value::from(match one {
                    Value::String(x) => x.chars().count(),
                    other => list(other).len(),
                }),
                [sub, text_] => Value::from(text(text_).matches(&text(sub)).count()),
                _ => {
                    return Err(format!(
                        "template: wrong number of args for count: want 1 or 2 got {}",
                        args.len()
                    ));
                }
            }
        }
        "dict" => {
            let mut m = Map::new();
            for pair in args.chunks(2) {
                m.insert(text(&pair[0]), pair.get(1).cloned().unwrap_or(Value::Null));
            }
            Value::Object(m)
        }
        "keys" => {
            let mut k: Vec<String> = args
                .iter()
                .filter_map(|d| d.as_object())
                .flat_map(|m| m.keys().cloned())
                .collect();
            k.sort();
            Value::Array(k.into_iter().map(Value::String).collect())
        }
        "values" => {
            want(1)?;
            Value::Array(
                args[0]
                    .as_object()
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default(),
            )
        }
        "get" => {
            want(2)?;
            args[0]
                .get(s(1))
                .cloned()
                .unwrap_or(Value::String(String::new()))
        }
        "hasKey" => {
            want(2)?;
            Value::Bool(args[0].get(s(1)).is_some())
        }
        "pluck" => {
            at_least(1)?;
            let key = s(0);
            Value::Array(
                args[1..]
                    .iter()
                    .filter_map(|d| d.get(&key).cloned())
                    .collect(),
            )
        }
        "add" => from_f64(args.iter().map(num).sum::<Result<f64, _>>()?),
        "mul" => from_f64(args.iter().map(num).product::<Result<f64, _>>()?),
        "add1" => {
            want(1)?;
            from_f64(num(&args[0])? + 1.0)
        }
        "sub" | "div" | "mod" => {
            want(2)?;
            let (a, b) = (num(&args[0])?, num(&args[1])?);
            if (name == "div" || name == "mod") && b == 0.0 {
                return Err(format!("{name}: division by zero"));
            }
            from_f64(match name {
                "sub" => a - b,
                "div" if a.fract() == 0.0 && b.fract() == 0.0 => (a / b).trunc(),
                "div" => a / b,
                _ => a % b,
            })
        }
        "max" | "min" => {
            at_least(1)?;
            let nums = args.iter().map(num).collect::<Result<Vec<f64>, _>>()?;
            let pick = if name == "max" {
                nums.iter().copied().fold(f64::MIN, f64::max)
            } else {
                nums.iter().copied().fold(f64::MAX, f64::min)
            };
            from_f64(pick)
        }
        "round" | "floor" | "ceil" => {
            at_least(1)?;
            let x = num(&args[0])?;
            from_f64(match name {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                _ => x.round(),
            })
        }
        other => return Err(format!("template: function \"{other}\" not defined")),
    })
}

/// Go's `printf` for the common verbs: `%s %v %d %f %.Nf %q %t %x %%`.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = digits.parse::<usize>().ok();
        }
        let Some(verb) = chars.next() else {
            out.push('%');
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        match verb {
            'd' => out.push_str(
                &num(arg).map_or_else(|_| show(arg), |f| format!("{}", f.trunc() as i64)),
            ),
            'f' => out.push_str(
                &num(arg).map_or_else(|_| show(arg), |f| format!("{f:.*}", precision.unwrap_or(6))),
            ),
            'q' => out.push_str(&serde_json::to_string(&text(arg)).unwrap_or_default()),
            'x' => out.push_str(&num(arg).map_or_else(
                |_| text(arg).bytes().map(|b| format!("{b:02x}")).collect(),
                |f| format!("{:x}", f as i64),
            )),
            _ => out.push_str(&show(arg)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(template: &str, data: Value) -> Result<String, String> {
        parse(template).and_then(|n| render(&n, &data))
    }

    #[test]
    fn go_templates_render_as_go_renders_them() {
        let data = serde_json::json!({
            "service": "checkout", "replicas": 3, "tags": ["a", "b"],
            "env": {"B": "2", "A": "1"}, "empty": "", "on": true
        });
        assert_eq!(
            go("name: {{ .service }}\nn: {{ .replicas }}\n", data.clone()).unwrap(),
            "name: checkout\nn: 3\n"
        );
        assert_eq!(
            go("{{ .service | upper }}-{{ upper .service }}", data.clone()).unwrap(),
            "CHECKOUT-CHECKOUT"
        );
        assert_eq!(
            go(
                "{{ range $i, $t := .tags }}{{ $i }}={{ $t }};{{ end }}",
                data.clone()
            )
            .unwrap(),
            "0=a;1=b;"
        );
        assert_eq!(
            go(
                "{{ range $k, $v := .env }}{{ $k }}{{ $v }} {{ end }}",
                data.clone()
            )
            .unwrap(),
            "A1 B2 "
        );
        assert_eq!(
            go("{{ range .tags -}}\n  {{ . }}\n{{- end }}", data.clone()).unwrap(),
            "ab"
        );
        assert_eq!(
            go(
                "{{ if .empty }}x{{ else if .on }}on{{ else }}no{{ end }}",
                data.clone()
            )
            .unwrap(),
            "on"
        );
        assert_eq!(
            go(
                "{{ with .env }}{{ .A }}{{ end }}{{/* note */}}",
                data.clone()
            )
            .unwrap(),
            "1"
        );
        assert_eq!(
            go(
                "{{ $x := add .replicas 2 }}{{ $x }} {{ join \",\" .tags }} {{ .tags }}",
                data.clone()
            )
            .unwrap(),
            "5 a,b [a b]"
        );
        assert_eq!(
            go(
                "{{ printf \"%s=%d %.1f\" .service .replicas 2.25 }}",
                data.clone()
            )
            .unwrap(),
            "checkout=3 2.2"
        );
        assert_eq!(
            go(
                "{{ default \"x\" .empty }} {{ .missing | default \"y\" }}",
                serde_json::json!({"empty": "", "missing": null})
            )
            .unwrap(),
            "x y"
        );
        assert_eq!(
            go("literal ${env.X} stays", data.clone()).unwrap(),
            "literal ${env.X} stays"
        );
        assert!(
            go("{{ .nope }}", data.clone())
                .unwrap_err()
                .contains("map has no entry for key \"nope\"")
        );
        assert!(
            go("{{ env \"HOME\" }}", data.clone())
                .unwrap_err()
                .contains("function \"env\" not defined")
        );
        assert!(
            go("{{ now }}", data.clone())
                .unwrap_err()
                .contains("function \"now\" not defined")
        );
        assert!(
            go("{{ if .on }}x", data.clone())
                .unwrap_err()
                .contains("template: parse error")
        );
        assert!(
            go("{{ .service ", data)
                .unwrap_err()
                .contains("template: parse error")
        );
    }
}
