//! `${NAME}` and `$NAME` in strings.
//!
//! Names are looked up by the caller (params, env, outputs, host environment, in the
//! order SPEC §3 gives); a name nothing knows is left as written, so that a shell or
//! the container can still expand it. `$1`, `$2`, ... are positional params.

/// Expands the variables of `text` with `lookup`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
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
        assert_eq!(expand("${A-default}", |_| Some("x".into())), "${A-default}");
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
    fn unknown_and_odd_forms_stay() {
        assert_eq!(
            expand("${NOPE} $ ${ $$ ${a b}", vars),
            "${NOPE} $ ${ $$ ${a b}"
        );
        assert!(has_vars("${A}"));
        assert!(!has_vars("cost: $ 5"));
    }
}
