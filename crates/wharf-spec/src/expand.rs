//! `${NAME}` and `$NAME` in strings.
//!
//! Names are looked up by the caller (params, env, outputs, host environment, in the
//! order SPEC §3 gives); a name nothing knows is left as written, so that a shell or
//! the container can still expand it. `$1`, `$2`, ... are positional params.

/// Expands the variables of `text` with `lookup`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    expand_with(text, &lookup)
}

fn expand_with(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            if let Some(end) = inner.find('}') {
                let name = &inner[..end];
                if is_name(name) {
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&rest[at..at + 2 + end + 1]),
                    }
                    rest = &inner[end + 1..];
                    continue;
                }
            }
            // A shell-style form (`${NAME:-default}`, `${NAME:4:10}`): applied when NAME
            // is known, else left as written for whatever reads the text next.
            if let Some(end) = closing_brace(inner)
                && let Some(v) = operator(&inner[..end], lookup)
            {
                out.push_str(&v);
                rest = &inner[end + 1..];
                continue;
            }
            out.push('$');
            rest = after;
            continue;
        }
        let len = name_len(after);
        if len == 0 {
            out.push('$');
            rest = after;
            continue;
        }
        let name = &after[..len];
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The `}` that closes a `${` whose text starts `inner`, past nested `${...}`.
fn closing_brace(inner: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = inner.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `NAME:-WORD`, `NAME-WORD`, `NAME:+WORD`, `NAME+WORD` (WORD expanded in turn) and
/// `NAME:OFFSET[:LENGTH]` (in characters; negative counts from the end, as bash does), as
/// the shell reads them, when NAME is known; None when NAME is not, or the text is no
/// such form.
fn operator(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let len = name_len(text);
    let (name, op) = text.split_at(len);
    if len == 0 || name.as_bytes()[0].is_ascii_digit() && len != name.len() {
        return None;
    }
    let word = |w: &str| expand_with(w, lookup);
    let value = || lookup(name);
    if let Some(w) = op.strip_prefix(":-") {
        let v = value()?;
        return Some(if v.is_empty() { word(w) } else { v });
    }
    if let Some(w) = op.strip_prefix(":+") {
        let v = value()?;
        return Some(if v.is_empty() { String::new() } else { word(w) });
    }
    if let Some(w) = op.strip_prefix('-') {
        let _ = w;
        return value();
    }
    if let Some(w) = op.strip_prefix('+') {
        value()?;
        return Some(word(w));
    }
    let spec = op.strip_prefix(':')?;
    let (offset, length) = match spec.split_once(':') {
        Some((o, l)) => (o, Some(l)),
        None => (spec, None),
    };
    let offset: i64 = offset.trim().parse().ok()?;
    let length: Option<i64> = match length {
        Some(l) => Some(l.trim().parse().ok()?),
        None => None,
    };
    let v = value()?;
    let chars: Vec<char> = v.chars().collect();
    let n = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let start = if offset < 0 {
        (n + offset).max(0)
    } else {
        offset.min(n)
    };
    let end = match length {
        None => n,
        Some(l) if l < 0 => (n + l).max(start),
        Some(l) => (start + l).min(n),
    };
    let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
    Some(chars[start..end.max(start)].iter().collect())
}

/// [`expand`], except inside single quotes: `'$HOME'` stays as written (Dagu 2.x leaves
/// single-quoted variables to whatever reads the text next). An unclosed quote runs to
/// the end.
pub fn expand_unquoted(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('\'') {
        out.push_str(&expand(&rest[..open], &lookup));
        match rest[open + 1..].find('\'') {
            Some(close) => {
                out.push_str(&rest[open..open + 2 + close]);
                rest = &rest[open + 2 + close..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(&expand(rest, &lookup));
    out
}

/// Whether `text` refers to any variable at all.
pub fn has_vars(text: &str) -> bool {
    expand(text, |_| Some(String::new())) != text
}

/// A name in braces: a variable, a positional param (`1`), or a reference into a step
/// (`id.exitCode`: a step id, then names, joined by dots). Without a dot, `-` is not part
/// of a name (`${A-b}` is the shell's own default-value form).
fn is_name(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    if name.bytes().all(|b| b.is_ascii_digit()) || crate::formats::is_var_name(name) {
        return true;
    }
    let mut parts = name.split('.');
    let Some(id) = parts.next() else { return false };
    let id_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let mut rest = parts.peekable();
    id_ok
        && rest.peek().is_some()
        && rest.all(|p| {
            // A key, then indexes: `items[0]`.
            let (key, indexes) = p.split_once('[').map_or((p, ""), |(k, i)| (k, i));
            (!key.is_empty() || !indexes.is_empty())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && (indexes.is_empty()
                    || indexes.split('[').all(|i| {
                        i.strip_suffix(']')
                            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    }))
        })
}

fn name_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_digit() => 1,
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => bytes
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("x".into()),
            "1" => Some("first".into()),
            _ => None,
        }
    }

    #[test]
    fn braces_bare_and_positional() {
        assert_eq!(expand("${A}-$A-$1-$A_B", vars), "x-x-first-$A_B");
    }

    #[test]
    fn references_into_steps_are_names() {
        let lookup = |n: &str| (n == "risky.exitCode").then(|| "3".to_owned());
        assert_eq!(expand("code=${risky.exitCode}", lookup), "code=3");
        assert_eq!(expand("${other.stdout}", lookup), "${other.stdout}");
        assert_eq!(expand("${a..b}", lookup), "${a..b}");
        assert_eq!(expand("${A-default}", |_| Some("x".into())), "x");
        assert_eq!(expand("${A-default}", |_| None), "${A-default}");
        assert_eq!(
            expand("${J.items[0].name}", |n| (n == "J.items[0].name")
                .then(|| "x".into())),
            "x"
        );
        assert_eq!(
            expand("${J.items[a]}", |_| Some("x".into())),
            "${J.items[a]}"
        );
    }

    #[test]
    fn shell_style_forms_apply_to_known_names_only() {
        let vars = |n: &str| match n {
            "S" => Some("service".to_owned()),
            "E" => Some(String::new()),
            "D" => Some("dflt".to_owned()),
            _ => None,
        };
        assert_eq!(
            expand("${S:-x} ${E:-x} ${E:-$D} ${E:-${D}}", vars),
            "service x dflt dflt"
        );
        assert_eq!(
            expand("${S:+set} [${E:+set}] ${S-x} ${S+y}", vars),
            "set [] service y"
        );
        assert_eq!(
            expand("${S:4:10} ${S:1:2} ${S: -3} ${S:0:-4}", vars),
            "ice er ice ser"
        );
        assert_eq!(
            expand("${M:-default} ${M:4:10} ${M+x} ${S:x}", vars),
            "${M:-default} ${M:4:10} ${M+x} ${S:x}"
        );
    }

    #[test]
    fn unknown_and_odd_forms_stay() {
        assert_eq!(
            expand("${NOPE} $ ${ $$ ${a b}", vars),
            "${NOPE} $ ${ $$ ${a b}"
        );
        assert!(has_vars("${A}"));
        assert!(!has_vars("cost: $ 5"));
    }
}

/// Dagu 2.x references in `text`: each unescaped `${NAMESPACE.path}` that `lookup` knows
/// is put in; `\${...}` (an odd run of backslashes before `$`) is the text `${...}`, one
/// backslash fewer; anything else with a `$` is left to whatever reads the text next.
pub fn references(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut plain = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || bytes.get(i + 1) != Some(&b'{') {
            i += 1;
            continue;
        }
        let slashes = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
        let Some(end) = text[i + 2..].find('}').map(|e| i + 2 + e) else {
            break;
        };
        let name = &text[i + 2..end];
        if slashes % 2 == 1 {
            // Escaped: drop the marker, keep the reference as text.
            out.push_str(&text[plain..i - 1]);
            out.push_str(&text[i..=end]);
        } else if let Some(value) = name.contains('.').then(|| lookup(name)).flatten() {
            out.push_str(&text[plain..i]);
            out.push_str(&value);
        } else {
            out.push_str(&text[plain..=end]);
        }
        i = end + 1;
        plain = i;
    }
    out.push_str(&text[plain..]);
    out
}

/// The unescaped `${NAMESPACE.path}` references of `text`.
pub fn references_in(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("${").map(|a| a + i) {
        let slashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        let Some(end) = text[at + 2..].find('}').map(|e| at + 2 + e) else {
            break;
        };
        let name = &text[at + 2..end];
        if slashes % 2 == 0 && name.contains('.') {
            found.push(name);
        }
        i = end + 1;
    }
    found
}

#[cfg(test)]
mod reference_tests {
    #[test]
    fn references_and_their_escapes() {
        let lookup = |n: &str| (n == "params.name").then(|| "prod".to_owned());
        assert_eq!(super::references("a ${params.name} b", lookup), "a prod b");
        assert_eq!(
            super::references(r"\${params.name}", lookup),
            "${params.name}"
        );
        assert_eq!(super::references(r"\\${params.name}", lookup), r"\\prod");
        assert_eq!(
            super::references(r"\\\${params.name}", lookup),
            r"\\${params.name}"
        );
        assert_eq!(
            super::references("${HOME} $X ${params.other}", lookup),
            "${HOME} $X ${params.other}"
        );
        assert_eq!(super::references_in(r"${a.b} \${c.d} ${E}"), vec!["a.b"]);
    }

    #[test]
    fn single_quoted_variables_stay() {
        let lookup = |n: &str| (n == "HOME").then(|| "/root".to_owned());
        assert_eq!(
            super::expand_unquoted("$HOME '$HOME' ${HOME} '${HOME}", lookup),
            "/root '$HOME' /root '${HOME}"
        );
    }
}
