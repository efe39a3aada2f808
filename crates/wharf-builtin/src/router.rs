//! `router.route`: the step reports its decision; the decision itself is its targets' own
//! preconditions (each its pattern against the same value), checked as they start.

use crate::{Ended, Output};

pub(crate) async fn run(value: &str, routes: &[(String, Vec<String>)], out: &mut Output) -> Ended {
    // Exact patterns first, then numeric ones, then regexes, a `re:.*` catch-all last.
    let rank = |p: &str| {
        if p == "re:.*" {
            3
        } else if p.starts_with("re:") {
            2
        } else if p.starts_with("num:") {
            1
        } else {
            0
        }
    };
    let mut shown: Vec<&(String, Vec<String>)> = routes.iter().collect();
    shown.sort_by_key(|(p, _)| rank(p));
    let mut text = format!("Router evaluating: {value}\n");
    for (pattern, targets) in shown {
        text.push_str(&format!("  {pattern} -> [{}]\n", targets.join(" ")));
    }
    out.stdout(text.as_bytes()).await;
    // A numeric route cannot decide on a value that is not a number: no target runs.
    if let Some((pattern, _)) = routes.iter().find(|(p, _)| p.starts_with("num:"))
        && wharf_spec::formats::finite_number(value).is_none()
    {
        return Ended::Failed(format!(
            "the value `{value}` is not a number, so the route `{pattern}` cannot be decided: no route is taken"
        ));
    }
    Ended::Done
}
