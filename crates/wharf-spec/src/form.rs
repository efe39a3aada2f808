//! What a person gives a waiting step (Dagu 2.x `action: human.task`): a flat object of
//! scalar fields (`string`, `integer`, `number`, `boolean`), each with its constraints
//! (`enum`, `oneOf`, `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`) and
//! `default`, the names it must have (`required`) and whether others are kept
//! (`additionalProperties`).
//!
//! The form is checked when the file is read ([`read`]): every keyword known, every
//! constraint fitting its type, every default passing its field. An answer is made
//! canonical ([`Form::canonical`]): text values (`--input k=v`) coerced to the declared
//! types, defaults filled in, then every rule checked.

use serde_json::{Map, Value};

use crate::diag::Diagnostic;
use crate::yaml::{Kind, Node};

/// The type of a scalar field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ScalarType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            _ => return None,
        })
    }

    /// The type a scalar value has on its own: whole numbers are integers.
    fn of(value: &Value) -> Option<Self> {
        match value {
            Value::String(_) => Some(Self::String),
            Value::Bool(_) => Some(Self::Boolean),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Self::Integer),
            Value::Number(n) => Some(if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                Self::Integer
            } else {
                Self::Number
            }),
            _ => None,
        }
    }

    /// Whether `value` is of this type (an integer is a number too).
    fn holds(self, value: &Value) -> bool {
        match (self, value) {
            (Self::String, Value::String(_)) | (Self::Boolean, Value::Bool(_)) => true,
            (Self::Number, Value::Number(n)) => n.as_f64().is_some_and(f64::is_finite),
            (Self::Integer, Value::Number(n)) => {
                n.is_i64()
                    || n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            }
            _ => false,
        }
    }
}

/// One of a field's `oneOf` choices.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub value: Value,
    pub title: Option<String>,
    pub description: Option<String>,
}

/// A scalar field of a form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub ty: ScalarType,
    pub title: Option<String>,
    pub description: Option<String>,
    pub default: Option<Value>,
    /// `enum`: the values it may have.
    pub allowed: Option<Vec<Value>>,
    pub one_of: Vec<Choice>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<String>,
}

/// A form: its fields in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Form {
    pub title: Option<String>,
    pub description: Option<String>,
    pub properties: Vec<(String, Field)>,
    pub required: Vec<String>,
    /// `additionalProperties`: names the form does not declare are kept (as given), not
    /// refused; they never become outputs.
    pub additional: bool,
}

/// An answer as given: text values (`--input k=v`, a web form), or a JSON object whose
/// values keep their types.
#[derive(Debug, Clone)]
pub enum Given {
    Text(Vec<(String, String)>),
    Json(Map<String, Value>),
}

impl Form {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
    }

    /// The form as JSON Schema, each field with its type: what a person is shown.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        root.insert("type".into(), "object".into());
        if let Some(t) = &self.title {
            root.insert("title".into(), t.clone().into());
        }
        if let Some(d) = &self.description {
            root.insert("description".into(), d.clone().into());
        }
        let mut properties = Map::new();
        for (name, f) in &self.properties {
            properties.insert(name.clone(), f.to_json());
        }
        root.insert("properties".into(), Value::Object(properties));
        if !self.required.is_empty() {
            root.insert(
                "required".into(),
                Value::Array(self.required.iter().map(|r| r.clone().into()).collect()),
            );
        }
        root.insert("additionalProperties".into(), self.additional.into());
        Value::Object(root)
    }

    /// The answer made canonical: text coerced to the declared types, defaults filled in,
    /// every rule checked. An error names the field and what it must be.
    pub fn canonical(&self, given: Given) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        match given {
            Given::Text(pairs) => {
                for (name, text) in pairs {
                    let value = match self.field(&name) {
                        Some(f) => coerce(&text, f.ty).ok_or_else(|| {
                            format!(
                                "`{name}` must be {} (`type: {}`), not `{text}`",
                                article(f.ty),
                                f.ty.as_str()
                            )
                        })?,
                        None => Value::String(text),
                    };
                    out.insert(name, value);
                }
            }
            Given::Json(map) => out = map,
        }
        if !self.additional
            && let Some(name) = out.keys().find(|k| self.field(k).is_none())
        {
            return Err(if self.properties.is_empty() {
                format!("the form declares no field `{name}` (it declares none)")
            } else {
                format!(
                    "the form declares no field `{name}` (`additionalProperties` is false); it declares {}",
                    self.properties
                        .iter()
                        .map(|(n, _)| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        for (name, f) in &self.properties {
            if !out.contains_key(name)
                && let Some(d) = &f.default
            {
                out.insert(name.clone(), d.clone());
            }
        }
        if let Some(missing) = self.required.iter().find(|r| !out.contains_key(*r)) {
            return Err(format!("`{missing}` is required"));
        }
        for (name, f) in &self.properties {
            if let Some(v) = out.get(name) {
                f.check(v).map_err(|why| format!("`{name}` {why}"))?;
            }
        }
        Ok(out)
    }

    /// The outputs of a canonical answer: each declared field it holds, a string as its
    /// text and any other value as its JSON.
    pub fn outputs(&self, canonical: &Map<String, Value>) -> Vec<(String, String)> {
        self.properties
            .iter()
            .filter_map(|(name, _)| {
                let v = canonical.get(name)?;
                Some((name.clone(), scalar_text(v)))
            })
            .collect()
    }
}

/// A scalar's text: a string as it is, anything else as JSON.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn article(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::Integer => "an integer",
        ScalarType::Number => "a number",
        ScalarType::Boolean => "a boolean",
        ScalarType::String => "a string",
    }
}

/// `text` as a value of type `ty`, as a command line gives it.
fn coerce(text: &str, ty: ScalarType) -> Option<Value> {
    let trimmed = text.trim_matches([' ', '\t', '\r', '\n']);
    match ty {
        ScalarType::String => Some(Value::String(text.to_owned())),
        ScalarType::Integer => {
            let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
            let well_formed = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            well_formed
                .then(|| trimmed.parse::<i64>().ok())
                .flatten()
                .map(Value::from)
        }
        ScalarType::Number => {
            let re = regex::Regex::new(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$").ok()?;
            if !re.is_match(trimmed) {
                return None;
            }
            if let Ok(i) = trimmed.parse::<i64>() {
                return Some(Value::from(i));
            }
            let f = trimmed.parse::<f64>().ok().filter(|f| f.is_finite())?;
            serde_json::Number::from_f64(f).map(Value::Number)
        }
        ScalarType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
    }
}

/// Scalar equality: strings and booleans exactly, numbers by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

impl Field {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.ty.as_str().into());
        if let Some(t) = &self.title {
            m.insert("title".into(), t.clone().into());
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), d.clone().into());
        }
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        if let Some(a) = &self.allowed {
            m.insert("enum".into(), Value::Array(a.clone()));
        }
        if !self.one_of.is_empty() {
            let choices = self
                .one_of
                .iter()
                .map(|c| {
                    let mut o = Map::new();
                    o.insert("const".into(), c.value.clone());
                    if let Some(t) = &c.title {
                        o.insert("title".into(), t.clone().into());
                    }
                    if let Some(d) = &c.description {
                        o.insert("description".into(), d.clone().into());
                    }
                    Value::Object(o)
                })
                .collect();
            m.insert("oneOf".into(), Value::Array(choices));
        }
        let number = |f: f64| {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Value::from(f as i64)
            } else {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
        };
        if let Some(x) = self.minimum {
            m.insert("minimum".into(), number(x));
        }
        if let Some(x) = self.maximum {
            m.insert("maximum".into(), number(x));
        }
        if let Some(x) = self.min_length {
            m.insert("minLength".into(), x.into());
        }
        if let Some(x) = self.max_length {
            m.insert("maxLength".into(), x.into());
        }
        if let Some(p) = &self.pattern {
            m.insert("pattern".into(), p.clone().into());
        }
        Value::Object(m)
    }

    /// Whether `value` passes the field: its type, choices, bounds, length and pattern.
    /// The error says which rule it breaks.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if !self.ty.holds(value) {
            return Err(format!(
                "must be {} (`type: {}`), not {}",
                article(self.ty),
                self.ty.as_str(),
                value
            ));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| same(a, value))
        {
            return Err(format!(
                "must be one of {} (`enum`), not {value}",
                allowed
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.one_of.is_empty() && !self.one_of.iter().any(|c| same(&c.value, value)) {
            return Err(format!(
                "must be one of {} (`oneOf`), not {value}",
                self.one_of
                    .iter()
                    .map(|c| c.value.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = self.minimum
                && n < min
            {
                return Err(format!("must be at least {min} (`minimum`), not {value}"));
            }
            if let Some(max) = self.maximum
                && n > max
            {
                return Err(format!("must be at most {max} (`maximum`), not {value}"));
            }
        }
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if let Some(min) = self.min_length
                && len < min
            {
                return Err(format!(
                    "must have at least {min} characters (`minLength`), not {len}"
                ));
            }
            if let Some(max) = self.max_length
                && len > max
            {
                return Err(format!(
                    "must have at most {max} characters (`maxLength`), not {len}"
                ));
            }
            if let Some(p) = &self.pattern
                && let Ok(re) = regex::Regex::new(p)
                && !re.is_match(s)
            {
                return Err(format!("must match `{p}` (`pattern`)"));
            }
        }
        Ok(())
    }
}

const FORM_KEYS: &[&str] = &[
    "type",
    "title",
    "description",
    "properties",
    "required",
    "additionalProperties",
];

const FIELD_KEYS: &[&str] = &[
    "type",
    "title",
    "description",
    "default",
    "enum",
    "oneOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
];

/// Reads the form `node` (at `path`, e.g. `with.form`); problems go to `diags`, each
/// naming the keyword's path. None when it cannot be read at all.
pub fn read(node: &Node, path: &str, diags: &mut Vec<Diagnostic>) -> Option<Form> {
    if node.is_null() {
        diags.push(
            Diagnostic::error(node.at(), format!("`{path}` is empty"))
                .with_help("a task that only asks for an acknowledgement has no `form`"),
        );
        return None;
    }
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::error(
            node.at(),
            format!(
                "`{path}` is an object schema (`type: object`, `properties`), not {}",
                node.describe()
            ),
        ));
        return None;
    };
    let before = diags.len();
    let mut form = Form::default();
    let mut ty = None;
    let mut required = None;
    for e in entries {
        let key = e.key.as_str().unwrap_or_default();
        let at = format!("{path}.{key}");
        match key {
            "type" => ty = Some(&e.value),
            "title" => form.title = text(&e.value, &at, diags),
            "description" => form.description = text(&e.value, &at, diags),
            "properties" => match e.value.as_map() {
                Some(props) => {
                    for p in props {
                        let name = p.key.as_str().unwrap_or_default();
                        if !property_name(name) {
                            diags.push(
                                Diagnostic::error(
                                    p.key.span,
                                    format!("`{at}`: `{name}` is not a field name"),
                                )
                                .with_help(
                                    "a field name is a letter, then letters, digits and `_`",
                                ),
                            );
                            continue;
                        }
                        if let Some(f) = read_field(&p.value, &format!("{at}.{name}"), diags) {
                            form.properties.push((name.to_owned(), f));
                        }
                    }
                }
                None if e.value.is_null() => {}
                None => diags.push(Diagnostic::error(
                    e.value.at(),
                    format!("`{at}` is a mapping of field names to their schemas"),
                )),
            },
            "required" => required = Some(&e.value),
            "additionalProperties" => match e.value.as_bool() {
                Some(b) => form.additional = b,
                None => diags.push(Diagnostic::error(
                    e.value.at(),
                    format!("`{at}` is true or false"),
                )),
            },
            other => diags.push(
                Diagnostic::error(e.key.span, format!("`{path}` has no `{other}`"))
                    .with_help(format!("a form has {}", FORM_KEYS.join(", "))),
            ),
        }
    }
    match ty.map(|t| (t, t.as_str())) {
        Some((_, Some("object"))) => {}
        Some((t, _)) => diags.push(Diagnostic::error(
            t.at(),
            format!("`{path}.type` must be `object`"),
        )),
        None => diags.push(Diagnostic::error(
            node.at(),
            format!("`{path}` needs `type: object`"),
        )),
    }
    if let Some(r) = required {
        let at = format!("{path}.required");
        match r.as_seq() {
            Some(items) => {
                for item in items {
                    let Some(name) = item.as_str() else {
                        diags.push(Diagnostic::error(
                            item.at(),
                            format!("`{at}` lists field names"),
                        ));
                        continue;
                    };
                    if form.field(name).is_none() {
                        diags.push(Diagnostic::error(
                            item.at(),
                            format!("`{at}`: `{name}` is not a field of `{path}.properties`"),
                        ));
                    } else if form.required.iter().any(|n| n == name) {
                        diags.push(Diagnostic::error(
                            item.at(),
                            format!("`{at}`: `{name}` is listed twice"),
                        ));
                    } else {
                        form.required.push(name.to_owned());
                    }
                }
            }
            None => diags.push(Diagnostic::error(
                r.at(),
                format!("`{at}` is a list of field names"),
            )),
        }
    }
    let failed = diags[before..]
        .iter()
        .any(|d| d.severity == crate::diag::Severity::Error);
    (!failed).then_some(form)
}

/// A field name: a letter, then letters, digits and `_`.
fn property_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn text(node: &Node, at: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match &node.kind {
        Kind::Scalar(_) if !node.is_null() => node.as_str().map(str::to_owned),
        _ => {
            diags.push(Diagnostic::error(node.at(), format!("`{at}` is text")));
            None
        }
    }
}

/// A scalar value of the form (a default, a choice): null, lists and mappings refused.
fn scalar(node: &Node, at: &str, diags: &mut Vec<Diagnostic>) -> Option<Value> {
    match node.to_json() {
        v @ (Value::String(_) | Value::Bool(_) | Value::Number(_)) => Some(v),
        _ => {
            diags.push(Diagnostic::error(
                node.at(),
                format!(
                    "`{at}` is a string, a number or a boolean, not {}",
                    node.describe()
                ),
            ));
            None
        }
    }
}

fn read_field(node: &Node, path: &str, diags: &mut Vec<Diagnostic>) -> Option<Field> {
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::error(
            node.at(),
            format!("`{path}` is a field schema (`type`, `enum` or `oneOf`, and constraints)"),
        ));
        return None;
    };
    let before = diags.len();
    let get = |k: &str| entries.iter().find(|e| e.key.as_str() == Some(k));
    for e in entries {
        let key = e.key.as_str().unwrap_or_default();
        if !FIELD_KEYS.contains(&key) {
            diags.push(
                Diagnostic::error(e.key.span, format!("`{path}` has no `{key}`"))
                    .with_help(format!("a field has {}", FIELD_KEYS.join(", "))),
            );
        }
    }
    let declared = get("type").and_then(|e| match e.value.as_str().and_then(ScalarType::parse) {
        Some(t) => Some(t),
        None => {
            diags.push(Diagnostic::error(
                e.value.at(),
                format!("`{path}.type` is string, integer, number or boolean"),
            ));
            None
        }
    });
    let mut allowed = None;
    if let Some(e) = get("enum") {
        let at = format!("{path}.enum");
        match e.value.as_seq().filter(|s| !s.is_empty()) {
            Some(items) => {
                let mut values: Vec<Value> = Vec::new();
                for item in items {
                    if let Some(v) = scalar(item, &at, diags) {
                        if values.iter().any(|x| same(x, &v)) {
                            diags.push(Diagnostic::error(
                                item.at(),
                                format!("`{at}` lists {v} twice"),
                            ));
                        }
                        values.push(v);
                    }
                }
                allowed = Some(values);
            }
            None => diags.push(Diagnostic::error(
                e.value.at(),
                format!("`{at}` is a list of one or more values"),
            )),
        }
    }
    let mut one_of = Vec::new();
    let mut choice_types = Vec::new();
    if let Some(e) = get("oneOf") {
        let at = format!("{path}.oneOf");
        match e.value.as_seq().filter(|s| !s.is_empty()) {
            Some(items) => {
                for item in items {
                    let Some(fields) = item.as_map() else {
                        diags.push(Diagnostic::error(
                            item.at(),
                            format!("each of `{at}` is a mapping with `const`"),
                        ));
                        continue;
                    };
                    let mut choice = Choice {
                        value: Value::Null,
                        title: None,
                        description: None,
                    };
                    for f in fields {
                        match f.key.as_str().unwrap_or_default() {
                            "const" => {
                                if let Some(v) = scalar(&f.value, &format!("{at}.const"), diags) {
                                    choice.value = v;
                                }
                            }
                            "title" => choice.title = text(&f.value, &format!("{at}.title"), diags),
                            "description" => {
                                choice.description =
                                    text(&f.value, &format!("{at}.description"), diags)
                            }
                            "type" => match f.value.as_str().and_then(ScalarType::parse) {
                                Some(t) => choice_types.push((t, f.value.at())),
                                None => diags.push(Diagnostic::error(
                                    f.value.at(),
                                    format!("`{at}.type` is string, integer, number or boolean"),
                                )),
                            },
                            other => diags.push(
                                Diagnostic::error(f.key.span, format!("`{at}` has no `{other}`"))
                                    .with_help("a choice has const, type, title, description"),
                            ),
                        }
                    }
                    if choice.value.is_null() {
                        if !fields.iter().any(|f| f.key.as_str() == Some("const")) {
                            diags.push(Diagnostic::error(
                                item.at(),
                                format!("each of `{at}` needs `const`"),
                            ));
                        }
                        continue;
                    }
                    if one_of
                        .iter()
                        .any(|c: &Choice| same(&c.value, &choice.value))
                    {
                        diags.push(Diagnostic::error(
                            item.at(),
                            format!("`{at}` has the choice {} twice", choice.value),
                        ));
                    }
                    one_of.push(choice);
                }
            }
            None => diags.push(Diagnostic::error(
                e.value.at(),
                format!("`{at}` is a list of one or more choices"),
            )),
        }
    }
    if diags[before..]
        .iter()
        .any(|d| d.severity == crate::diag::Severity::Error)
    {
        return None;
    }
    // The type: the one written, else the one the choices all have.
    let ty = match declared {
        Some(t) => {
            let values = allowed
                .iter()
                .flatten()
                .chain(one_of.iter().map(|c| &c.value));
            if let Some(v) = values.into_iter().find(|v| !t.holds(v)) {
                diags.push(Diagnostic::error(
                    node.at(),
                    format!(
                        "`{path}`: the choice {v} is not {} (`type: {}`)",
                        article(t),
                        t.as_str()
                    ),
                ));
                return None;
            }
            t
        }
        None => {
            let values: Vec<&Value> = allowed
                .iter()
                .flatten()
                .chain(one_of.iter().map(|c| &c.value))
                .collect();
            if values.is_empty() {
                diags.push(Diagnostic::error(
                    node.at(),
                    format!("`{path}` needs `type`, `enum` or `oneOf`"),
                ));
                return None;
            }
            let types: Vec<ScalarType> = values.iter().filter_map(|v| ScalarType::of(v)).collect();
            let numeric = |t: &ScalarType| matches!(t, ScalarType::Integer | ScalarType::Number);
            if types.iter().all(numeric) {
                if types.contains(&ScalarType::Number) {
                    ScalarType::Number
                } else {
                    ScalarType::Integer
                }
            } else if types.iter().all(|t| *t == types[0]) {
                types[0]
            } else {
                diags.push(Diagnostic::error(
                    node.at(),
                    format!(
                        "`{path}`: its choices mix types; write `type`, or choices of one type"
                    ),
                ));
                return None;
            }
        }
    };
    for (t, at) in choice_types {
        if t != ty && !(ty == ScalarType::Number && t == ScalarType::Integer) {
            diags.push(Diagnostic::error(
                at,
                format!(
                    "`{path}.oneOf`: a choice's `type` is `{}`, the field's",
                    ty.as_str()
                ),
            ));
        }
    }
    let mut field = Field {
        ty,
        title: get("title").and_then(|e| text(&e.value, &format!("{path}.title"), diags)),
        description: get("description")
            .and_then(|e| text(&e.value, &format!("{path}.description"), diags)),
        default: None,
        allowed,
        one_of,
        minimum: None,
        maximum: None,
        min_length: None,
        max_length: None,
        pattern: None,
    };
    let numeric = matches!(ty, ScalarType::Integer | ScalarType::Number);
    for (key, slot) in [
        ("minimum", &mut field.minimum),
        ("maximum", &mut field.maximum),
    ] {
        let Some(e) = get(key) else { continue };
        if !numeric {
            diags.push(Diagnostic::error(
                e.key.span,
                format!(
                    "`{path}.{key}` is for integer and number fields, not {}",
                    ty.as_str()
                ),
            ));
            continue;
        }
        match e.value.to_json().as_f64() {
            Some(x) => *slot = Some(x),
            None => diags.push(Diagnostic::error(
                e.value.at(),
                format!("`{path}.{key}` is a number"),
            )),
        }
    }
    if let (Some(min), Some(max)) = (field.minimum, field.maximum)
        && min > max
    {
        diags.push(Diagnostic::error(
            node.at(),
            format!("`{path}`: `minimum` ({min}) is more than `maximum` ({max})"),
        ));
    }
    for (key, slot) in [
        ("minLength", &mut field.min_length),
        ("maxLength", &mut field.max_length),
    ] {
        let Some(e) = get(key) else { continue };
        if ty != ScalarType::String {
            diags.push(Diagnostic::error(
                e.key.span,
                format!("`{path}.{key}` is for string fields, not {}", ty.as_str()),
            ));
            continue;
        }
        match e.value.as_int().and_then(|i| u64::try_from(i).ok()) {
            Some(x) => *slot = Some(x),
            None => diags.push(Diagnostic::error(
                e.value.at(),
                format!("`{path}.{key}` is a whole number, 0 or more"),
            )),
        }
    }
    if let (Some(min), Some(max)) = (field.min_length, field.max_length)
        && min > max
    {
        diags.push(Diagnostic::error(
            node.at(),
            format!("`{path}`: `minLength` ({min}) is more than `maxLength` ({max})"),
        ));
    }
    if let Some(e) = get("pattern") {
        if ty != ScalarType::String {
            diags.push(Diagnostic::error(
                e.key.span,
                format!("`{path}.pattern` is for string fields, not {}", ty.as_str()),
            ));
        } else if let Some(p) = text(&e.value, &format!("{path}.pattern"), diags) {
            match regex::Regex::new(&p) {
                Ok(_) => field.pattern = Some(p),
                Err(err) => diags.push(Diagnostic::error(
                    e.value.at(),
                    format!("`{path}.pattern` is not a valid regular expression: {err}"),
                )),
            }
        }
    }
    if let Some(e) = get("default")
        && let Some(v) = scalar(&e.value, &format!("{path}.default"), diags)
    {
        match field.check(&v) {
            Ok(()) => field.default = Some(v),
            Err(why) => diags.push(Diagnostic::error(
                e.value.at(),
                format!("`{path}.default` {why}"),
            )),
        }
    }
    let failed = diags[before..]
        .iter()
        .any(|d| d.severity == crate::diag::Severity::Error);
    (!failed).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(yaml: &str) -> Result<Form, Vec<String>> {
        let doc = crate::yaml::load(yaml).expect("yaml");
        let node = doc.root.expect("root");
        let mut diags = Vec::new();
        match read(&node, "with.form", &mut diags) {
            Some(f) if diags.is_empty() => Ok(f),
            _ => Err(diags.into_iter().map(|d| d.message).collect()),
        }
    }

    const RELEASE: &str = "type: object\nproperties:\n  environment:\n    type: string\n    enum: [staging, production]\n  replicas:\n    type: integer\n    minimum: 1\n    default: 2\n  notify:\n    type: boolean\n    default: true\nrequired: [environment]\n";

    #[test]
    fn text_answers_are_coerced_and_defaulted() {
        let f = form(RELEASE).unwrap();
        let c = f
            .canonical(Given::Text(vec![(
                "environment".into(),
                "production".into(),
            )]))
            .unwrap();
        assert_eq!(
            Value::Object(c.clone()),
            serde_json::json!({"environment": "production", "replicas": 2, "notify": true})
        );
        let outs = f.outputs(&c);
        assert_eq!(
            outs,
            vec![
                ("environment".to_owned(), "production".to_owned()),
                ("replicas".to_owned(), "2".to_owned()),
                ("notify".to_owned(), "true".to_owned())
            ]
        );
        let c = f
            .canonical(Given::Text(vec![
                ("environment".into(), "staging".into()),
                ("replicas".into(), " 5 ".into()),
                ("notify".into(), "FALSE".into()),
            ]))
            .unwrap();
        assert_eq!(c["replicas"], 5);
        assert_eq!(c["notify"], false);
    }

    #[test]
    fn wrong_answers_name_the_field_and_the_rule() {
        let f = form(RELEASE).unwrap();
        let err = |g| f.canonical(g).unwrap_err();
        assert!(err(Given::Text(vec![])).contains("`environment` is required"));
        let e = err(Given::Text(vec![("environment".into(), "dev".into())]));
        assert!(e.contains("environment") && e.contains("enum"), "{e}");
        let e = err(Given::Text(vec![
            ("environment".into(), "staging".into()),
            ("replicas".into(), "0".into()),
        ]));
        assert!(e.contains("replicas") && e.contains("minimum"), "{e}");
        let e = err(Given::Text(vec![
            ("environment".into(), "staging".into()),
            ("replicas".into(), "02".into()),
        ]));
        assert!(e.contains("replicas") && e.contains("integer"), "{e}");
        let e = err(Given::Json(
            serde_json::json!({"environment": "staging", "replicas": "3"})
                .as_object()
                .unwrap()
                .clone(),
        ));
        assert!(e.contains("replicas") && e.contains("integer"), "{e}");
        let e = err(Given::Text(vec![
            ("environment".into(), "staging".into()),
            ("region".into(), "eu".into()),
        ]));
        assert!(
            e.contains("region") && e.contains("additionalProperties"),
            "{e}"
        );
    }

    #[test]
    fn bad_forms_are_refused_naming_the_keyword() {
        for (yaml, expect) in [
            ("type: array\n", "with.form.type"),
            ("type: object\ncolor: red\n", "has no `color`"),
            (
                "type: object\nproperties:\n  1x: {type: string}\n",
                "not a field name",
            ),
            (
                "type: object\nproperties:\n  a: {type: date}\n",
                "with.form.properties.a.type",
            ),
            (
                "type: object\nproperties:\n  a: {type: string, minimum: 1}\n",
                "minimum",
            ),
            (
                "type: object\nproperties:\n  a: {type: integer, minimum: 5, maximum: 1}\n",
                "more than",
            ),
            (
                "type: object\nproperties:\n  a: {enum: [1, x]}\n",
                "mix types",
            ),
            ("type: object\nproperties:\n  a: {enum: [x, x]}\n", "twice"),
            (
                "type: object\nproperties:\n  a: {type: string, pattern: '('}\n",
                "regular expression",
            ),
            (
                "type: object\nproperties:\n  a: {type: integer, default: x}\n",
                "default",
            ),
            (
                "type: object\nproperties:\n  a: {title: x}\n",
                "needs `type`",
            ),
            (
                "type: object\nproperties:\n  a: {type: string}\nrequired: [b]\n",
                "not a field",
            ),
            (
                "type: object\nadditionalProperties: maybe\n",
                "true or false",
            ),
        ] {
            let errors = form(yaml).expect_err(yaml);
            assert!(
                errors.iter().any(|e| e.contains(expect)),
                "{yaml}: {errors:?}"
            );
        }
    }

    #[test]
    fn choice_types_are_inferred() {
        let f = form("type: object\nproperties:\n  n:\n    enum: [1, 2.5]\n  s:\n    oneOf:\n      - const: a\n        title: A\n").unwrap();
        assert_eq!(f.field("n").unwrap().ty, ScalarType::Number);
        assert_eq!(f.field("s").unwrap().ty, ScalarType::String);
        let c = f
            .canonical(Given::Text(vec![("n".into(), "2.5".into())]))
            .unwrap();
        assert_eq!(c["n"], 2.5);
        assert!(
            f.canonical(Given::Text(vec![("s".into(), "b".into())]))
                .unwrap_err()
                .contains("oneOf")
        );
    }
}
