//! `action: router.route` (Dagu 2.x) and its `with`: a value, and routes from a pattern to
//! the steps it sends the run to. What needs the whole DAG (the targets exist, none is
//! routed twice, the DAG is a graph) is checked where steps are linked.

use super::keys::Keys;
use super::reader::Decoder;
use crate::diag::Diagnostic;
use crate::model::RouterStep;
use crate::yaml::{Kind, Node};

const ROUTER_KEYS: Keys = Keys {
    known: &["value", "routes"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) fn router_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> RouterStep {
    let mut router = RouterStep::default();
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let Some(f) = d.fields(config, "`with` of `router.route`", &ROUTER_KEYS) else {
        return router;
    };
    match f.get("value") {
        Some(n) => {
            if let Some(v) = d.string(n, "`with.value`") {
                router.value = v;
            }
        }
        None => d.diags.push(
            Diagnostic::error(at.at(), "`action: router.route`: with.value is required")
                .with_help("the value the routes' patterns are matched against, e.g. `value: ${steps.check.outputs.status}`"),
        ),
    }
    let Some(routes) = f.get("routes") else {
        d.diags.push(
            Diagnostic::error(at.at(), "`action: router.route`: with.routes is required")
                .with_help("a mapping of patterns to the steps they run, e.g. `routes: {ok: [ship], \"re:^5\": [alert]}`"),
        );
        return router;
    };
    let Some(entries) = routes.as_map() else {
        d.expected(
            routes,
            "`with.routes`",
            "a mapping of patterns to lists of steps",
        );
        return router;
    };
    if entries.is_empty() {
        d.error(routes.at(), "a router step requires at least one route");
    }
    for e in entries {
        let pattern = e.key.as_str().unwrap_or_default().to_owned();
        if pattern.trim().is_empty() {
            d.error(e.key.span, "a route pattern cannot be empty");
            continue;
        }
        if let Some(why) = pattern_problem(&pattern) {
            d.diags.push(
                Diagnostic::error(e.key.span, format!("route `{pattern}`: {why}")).with_help(
                    "a pattern is an exact text, `re:REGEX`, or `num:` with >, >=, < or <= and a number (`num:>=0.9`)",
                ),
            );
        }
        let targets: Vec<String> = match &e.value.kind {
            Kind::Seq(items) => items
                .iter()
                .map(|n| n.as_str().unwrap_or_default().to_owned())
                .collect(),
            Kind::Scalar(_) if !e.value.is_null() => {
                vec![e.value.as_str().unwrap_or_default().to_owned()]
            }
            _ => Vec::new(),
        };
        if targets.is_empty() {
            d.error(e.value.at(), format!("route `{pattern}` has no targets"));
        } else if targets.iter().any(|t| t.trim().is_empty()) {
            d.error(e.value.at(), format!("route `{pattern}` has empty target"));
        }
        router.routes.push((pattern, targets));
    }
    router
}

/// Why a pattern cannot be matched (a bad `re:` or `num:`), if it cannot.
pub(crate) fn pattern_problem(pattern: &str) -> Option<String> {
    if let Some(re) = pattern.strip_prefix("re:") {
        if re.trim().is_empty() {
            return Some("regexp is empty".into());
        }
        return regex::Regex::new(re).err().map(|e| {
            // The regex crate's message spans lines (the pattern, a caret, the reason).
            let why = e.to_string();
            let reason = why
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            format!("regexp is invalid: {reason}")
        });
    }
    if let Some(num) = pattern.strip_prefix("num:") {
        return crate::formats::numeric_pattern(num)
            .err()
            .map(|e| format!("numeric comparison is invalid: {e}"));
    }
    None
}
