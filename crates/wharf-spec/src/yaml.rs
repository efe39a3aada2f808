//! A YAML document as a tree of nodes that remember where they were written.
//!
//! The DAG decoder needs three things that serde-based YAML crates do not give together:
//! every node's line and column (for diagnostics), every error of a file in one pass
//! (serde stops at the first), and `<<:` merge keys applied without losing either. So the
//! file is read as saphyr-parser events and built into this small tree here:
//!
//! - anchors are recorded as their nodes are built, and an alias is a copy of its anchor's
//!   node (spans included, so a diagnostic in aliased content points at the anchor's text);
//! - a mapping's `<<` entry (plain scalar key) merges the mapping, or each mapping of the
//!   sequence, it holds: merged keys never override keys written in the mapping itself, and
//!   of several merged mappings the first one wins (YAML merge key spec);
//! - a key written twice in one mapping is an error;
//! - the expansion of aliases is bounded, so a "billion laughs" file is an error, not an
//!   out-of-memory kill.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as PSpan};

use crate::diag::{Diagnostic, Pos, Span};

/// How many nodes a document may hold once its aliases are expanded.
const MAX_NODES: usize = 250_000;
/// How many bytes of text its scalars may hold once its aliases are expanded: a small file
/// that aliases a long string many times must not fill the memory either.
const MAX_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
    /// The span of the mapping key this node is the value of, if any.
    pub key: Option<Span>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Scalar {
    pub text: String,
    /// Quoted or block scalars are always strings; only plain ones can be null, bool or int.
    pub plain: bool,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
    /// The entry came from a `<<` merge rather than being written in this mapping.
    pub merged: bool,
}

impl Node {
    /// Where a diagnostic about this node points: a scalar at itself, a list or mapping
    /// at the key that holds it (a block mapping "starts" at its first child's key, which
    /// would mislead).
    pub fn at(&self) -> Span {
        match (&self.kind, self.key) {
            (Kind::Scalar(_), _) | (_, None) => self.span,
            (_, Some(key)) => key,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.plain && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar that is not null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) if !self.is_null() => Some(&s.text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            Kind::Scalar(s) if s.plain => match s.text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match &self.kind {
            Kind::Scalar(s) if s.plain => parse_int(&s.text),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A word for the kind of value, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar(_) if self.is_null() => "an empty value",
            Kind::Scalar(_) if self.as_bool().is_some() => "a boolean",
            Kind::Scalar(_) if self.as_int().is_some() => "a number",
            Kind::Scalar(s) if s.plain && s.text.parse::<f64>().is_ok() => "a number",
            Kind::Scalar(_) => "a string",
        }
    }

    /// Converts the node to JSON with YAML 1.2 core-schema typing of plain scalars.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Scalar(s) => {
                if self.is_null() {
                    Value::Null
                } else if let Some(b) = self.as_bool() {
                    Value::Bool(b)
                } else if let Some(i) = self.as_int() {
                    Value::from(i)
                } else if let Some(f) = s
                    .plain
                    .then(|| s.text.parse::<f64>().ok())
                    .flatten()
                    .and_then(serde_json::Number::from_f64)
                {
                    Value::Number(f)
                } else {
                    Value::String(s.text.clone())
                }
            }
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| {
                        (
                            e.key.as_str().unwrap_or_default().to_owned(),
                            e.value.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

/// The result of reading a file: the root node (None for an empty file) and the
/// non-fatal problems found on the way (duplicate keys, bad merges).
pub struct Document {
    pub root: Option<Node>,
    /// The documents after the first (`---`), in order.
    pub others: Vec<Node>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads one YAML document. A syntax error is returned as the error, with its position.
pub fn load(source: &str) -> Result<Document, Diagnostic> {
    let mut loader = Loader {
        parser: Parser::new_from_str(source),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        diagnostics: Vec::new(),
    };
    let mut roots = loader.documents()?.into_iter();
    let root = roots.next();
    Ok(Document {
        root,
        others: roots.collect(),
        diagnostics: loader.diagnostics,
    })
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    bytes: usize,
    diagnostics: Vec<Diagnostic>,
}

fn span(s: &PSpan) -> Span {
    Span {
        start: pos(&s.start),
        end: pos(&s.end),
    }
}

fn pos(m: &saphyr_parser::Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, PSpan), Diagnostic> {
        match self.parser.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => {
                let at = pos(e.marker());
                Err(Diagnostic::error(
                    Span { start: at, end: at },
                    format!("YAML syntax error: {}", e.info()),
                ))
            }
            None => Err(Diagnostic::error_at_end(
                "YAML syntax error: unexpected end of the file",
            )),
        }
    }

    /// The file's documents; an empty one (`---` and nothing) is left out.
    fn documents(&mut self) -> Result<Vec<Node>, Diagnostic> {
        let mut roots = Vec::new();
        loop {
            let (ev, sp) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(roots),
                Event::DocumentStart(_) => {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::DocumentEnd) {
                        continue;
                    }
                    // Anchors are the document's own.
                    self.anchors.clear();
                    roots.push(self.node(ev, sp)?);
                }
                other => roots.push(self.node(other, sp)?),
            }
        }
    }

    fn count(&mut self, (nodes, bytes): (usize, usize), at: Span) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(
                at,
                format!("the document expands to more than {MAX_NODES} values through its aliases"),
            ));
        }
        if self.bytes > MAX_BYTES {
            return Err(Diagnostic::error(
                at,
                format!(
                    "the document expands to more than {} MiB of text through its aliases",
                    MAX_BYTES / (1024 * 1024)
                ),
            ));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, sp: PSpan) -> Result<Node, Diagnostic> {
        let at = span(&sp);
        let text_len = match &ev {
            Event::Scalar(text, ..) => text.len(),
            _ => 0,
        };
        self.count((1, text_len), at)?;
        match ev {
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(Diagnostic::error(
                        at,
                        "alias to an anchor that is not defined before it",
                    ));
                };
                self.count(node_size(&node), at)?;
                // The copy keeps the anchor's spans for its content but the alias's own
                // position for itself, so "expected a list" points where the alias is used.
                Ok(Node {
                    span: at,
                    key: None,
                    ..node
                })
            }
            Event::Scalar(text, style, anchor, _tag) => {
                // The scanner's buffer keeps room for a long scalar; a DAG's are short.
                let mut text = text.into_owned();
                text.shrink_to_fit();
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        text,
                        plain: matches!(style, ScalarStyle::Plain),
                    }),
                    span: at,
                    key: None,
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(anchor, _tag) => {
                let mut items = Vec::new();
                let end = loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break span(&sp).end;
                    }
                    items.push(self.node(ev, sp)?);
                };
                items.shrink_to_fit();
                let node = Node {
                    kind: Kind::Seq(items),
                    span: Span {
                        start: at.start,
                        end,
                    },
                    key: None,
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, _tag) => {
                let mut entries: Vec<Entry> = Vec::new();
                let mut merges: Vec<Node> = Vec::new();
                let end = loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break span(&sp).end;
                    }
                    let key = self.node(ev, sp)?;
                    let (ev, sp) = self.next()?;
                    let mut value = self.node(ev, sp)?;
                    value.key = Some(key.span);
                    match &key.kind {
                        Kind::Scalar(s) if s.plain && s.text == "<<" => merges.push(value),
                        Kind::Scalar(s) => {
                            if let Some(first) =
                                entries.iter().find(|e| e.key.as_str() == Some(&s.text))
                            {
                                self.diagnostics.push(Diagnostic::error(
                                    key.span,
                                    format!(
                                        "duplicate key `{}` (first written at line {})",
                                        s.text, first.key.span.start.line
                                    ),
                                ));
                            } else {
                                entries.push(Entry {
                                    key,
                                    value,
                                    merged: false,
                                });
                            }
                        }
                        _ => self.diagnostics.push(Diagnostic::error(
                            key.span,
                            "a mapping key must be a plain value, not a list or mapping",
                        )),
                    }
                };
                for source in merges {
                    self.merge(&mut entries, source);
                }
                // A file's many small mappings (a step's two or three keys) without the
                // room a growing Vec keeps: a large DAG's tree is half the size.
                entries.shrink_to_fit();
                let node = Node {
                    kind: Kind::Map(entries),
                    span: Span {
                        start: at.start,
                        end,
                    },
                    key: None,
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            other => Err(Diagnostic::error(
                at,
                format!("YAML syntax error: unexpected {other:?}"),
            )),
        }
    }

    fn anchor(&mut self, id: usize, node: &Node) {
        if id != 0 {
            self.anchors.insert(id, node.clone());
        }
    }

    fn merge(&mut self, entries: &mut Vec<Entry>, source: Node) {
        let sources = match source.kind {
            Kind::Map(_) => vec![source],
            Kind::Seq(items) => items,
            _ => {
                self.diagnostics.push(Diagnostic::error(
                    source.at(),
                    "a merge key `<<` takes a mapping or a list of mappings",
                ));
                return;
            }
        };
        for source in sources {
            let Kind::Map(merged) = source.kind else {
                self.diagnostics.push(Diagnostic::error(
                    source.at(),
                    "a merge key `<<` takes a mapping or a list of mappings",
                ));
                continue;
            };
            for entry in merged {
                if !entries.iter().any(|e| e.key.as_str() == entry.key.as_str()) {
                    entries.push(Entry {
                        merged: true,
                        ..entry
                    });
                }
            }
        }
    }
}

/// The nodes and the bytes of scalar text in `node`.
fn node_size(node: &Node) -> (usize, usize) {
    let add = |(n, b): (usize, usize), (m, c): (usize, usize)| (n + m, b.saturating_add(c));
    match &node.kind {
        Kind::Scalar(s) => (1, s.text.len()),
        Kind::Seq(items) => items.iter().map(node_size).fold((1, 0), add),
        Kind::Map(entries) => entries
            .iter()
            .map(|e| add(node_size(&e.key), node_size(&e.value)))
            .fold((1, 0), add),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        load(src).ok().and_then(|d| d.root).expect("document")
    }

    fn get<'n>(node: &'n Node, key: &str) -> &'n Node {
        &node
            .as_map()
            .expect("map")
            .iter()
            .find(|e| e.key.as_str() == Some(key))
            .expect(key)
            .value
    }

    #[test]
    fn merge_keys_fill_in_but_never_override() {
        let n = root("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n");
        let x = get(&n, "x");
        assert_eq!(get(x, "a").as_int(), Some(1));
        assert_eq!(get(x, "b").as_int(), Some(3));
        assert!(x.as_map().expect("map").iter().any(|e| e.merged));
    }

    #[test]
    fn first_of_several_merged_mappings_wins() {
        let n = root("p: &p {a: 1}\nq: &q {a: 2, c: 3}\nx:\n  <<: [*p, *q]\n");
        let x = get(&n, "x");
        assert_eq!(get(x, "a").as_int(), Some(1));
        assert_eq!(get(x, "c").as_int(), Some(3));
    }

    #[test]
    fn positions_are_one_based() {
        let n = root("a:\n  b: hello\n");
        let b = get(get(&n, "a"), "b");
        assert_eq!((b.span.start.line, b.span.start.col), (2, 6));
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = load("a: [1, 2\nb: 3\n").err().expect("error");
        assert!(
            err.message.starts_with("YAML syntax error"),
            "{}",
            err.message
        );
        assert!(err.span.is_some());
    }

    #[test]
    fn billion_laughs_is_an_error() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = load(&src).err().expect("error");
        assert!(err.message.contains("aliases"), "{}", err.message);
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let n = root("a: 'true'\nb: \"12\"\nc: ~\n");
        assert_eq!(get(&n, "a").as_bool(), None);
        assert_eq!(get(&n, "b").as_int(), None);
        assert!(get(&n, "c").is_null());
    }
}
