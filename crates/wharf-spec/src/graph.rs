//! Step names and dependencies: the chain and graph rules, and the checks that need the
//! whole DAG (duplicate names, unknown dependencies, cycles).
//!
//! Rules (SPEC §3): in a `chain` DAG each item of `steps` depends on the item before it (a
//! parallel group is one item: its steps all follow the previous item, and the next item
//! follows all of them); an explicit `depends` adds to that, and `depends: []` removes it.
//! In a `graph` DAG only `depends` counts.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::decode::{Depends, RawStep};
use crate::diag::{Diagnostic, Span, did_you_mean};
use crate::model::{Condition, Dag, DagType, Executor, MatchHow, Step};

pub(crate) fn link(diags: &mut Vec<Diagnostic>, dag: &mut Dag, mut raw: Vec<RawStep>) {
    // A step with an id and no name is named by its id.
    for r in &mut raw {
        if r.step.generated_name
            && let Some(id) = &r.step.id
        {
            r.step.name = id.clone();
            r.step.generated_name = false;
        }
    }
    check_ids(diags, &raw);
    // Names: explicit ones first, so a generated name never takes one a user wrote.
    let mut taken: HashMap<String, Span> = HashMap::new();
    let mut duplicates = false;
    for r in raw.iter().filter(|r| !r.step.generated_name) {
        if let Some(first) = taken.get(&r.step.name) {
            duplicates = true;
            diags.push(
                Diagnostic::error(
                    r.step.span,
                    format!("duplicate step name `{}`", r.step.name),
                )
                .with_help(format!(
                    "the first step with that name is at line {}",
                    first.start.line
                )),
            );
        } else {
            taken.insert(r.step.name.clone(), r.step.span);
        }
    }
    let mut written: Vec<(usize, Depends)> = Vec::with_capacity(raw.len());
    for (position, r) in raw.iter_mut().enumerate() {
        if r.step.generated_name {
            // As Dagu names them: by kind, counting from the step's position.
            let kind = match (&r.step.executor, &r.step.script, &r.step.command) {
                (Executor::Docker(_), _, _) => "docker",
                (Executor::Approval(_), _, _) => "hitl",
                (_, Some(_), _) => "script",
                (_, None, Some(_)) => "cmd",
                _ => "step",
            };
            let mut counter = position;
            let name = loop {
                counter += 1;
                let candidate = format!("{kind}_{counter}");
                if !taken.contains_key(&candidate) {
                    break candidate;
                }
            };
            taken.insert(name.clone(), r.step.span);
            r.step.name = name;
        }
        written.push((r.item, r.depends.take()));
    }
    // In place: the steps take the raw steps' room rather than a second copy of them all.
    let mut steps: Vec<Step> = raw.into_iter().map(|r| r.step).collect();

    // Dependencies, by name or by id.
    let names: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
    let known: HashSet<&str> = names.iter().map(String::as_str).collect();
    let by_id: HashMap<&str, &str> = steps
        .iter()
        .filter_map(|s| s.id.as_deref().map(|id| (id, s.name.as_str())))
        .collect();
    let written: Vec<(usize, Depends)> = written
        .into_iter()
        .map(|(item, depends)| {
            let depends = depends.map(|list| {
                list.into_iter()
                    .map(|(dep, span)| match by_id.get(dep.as_str()) {
                        Some(name) if !known.contains(dep.as_str()) => ((*name).to_owned(), span),
                        _ => (dep, span),
                    })
                    .collect()
            });
            (item, depends)
        })
        .collect();
    let mut edge_spans: HashMap<(usize, String), Span> = HashMap::new();
    // Each item's steps, and the items met so far: a chain's implicit edges in n log n.
    let mut steps_of_item: HashMap<usize, Vec<usize>> = HashMap::new();
    for (j, (it, _)) in written.iter().enumerate() {
        steps_of_item.entry(*it).or_default().push(j);
    }
    let mut earlier_items: BTreeSet<usize> = BTreeSet::new();
    for (i, (item, depends)) in written.iter().enumerate() {
        let mut deps: Vec<String> = Vec::new();
        let implicit =
            dag.kind == DagType::Chain && !matches!(depends, Some(list) if list.is_empty());
        if implicit {
            // The steps of the nearest earlier item.
            if let Some(prev) = earlier_items.range(..*item).next_back() {
                for j in &steps_of_item[prev] {
                    deps.push(names[*j].clone());
                }
            }
        }
        earlier_items.insert(*item);
        for (dep, span) in depends.iter().flatten() {
            if *dep == names[i] {
                diags.push(Diagnostic::error(
                    *span,
                    format!("the step `{dep}` depends on itself"),
                ));
                continue;
            }
            if !known.contains(dep.as_str()) {
                let mut diag = Diagnostic::error(
                    *span,
                    format!("`depends` names `{dep}`, which is not a step of this DAG"),
                );
                if let Some(s) = did_you_mean(dep, names.iter().map(String::as_str)) {
                    diag = diag.with_help(format!("did you mean `{s}`?"));
                }
                diags.push(diag);
                continue;
            }
            edge_spans.insert((i, dep.clone()), *span);
            if !deps.contains(dep) {
                deps.push(dep.clone());
            }
        }
        steps[i].depends = deps;
    }
    route(diags, dag.kind, &mut steps);
    dag.steps = steps;
    // With two steps of one name the edges are ambiguous: the duplicate is the error.
    if !duplicates {
        report_cycles(diags, dag, &edge_spans);
    }
}

/// Router steps (Dagu 2.x `router.route`): each target depends on its router and gets a
/// precondition of its own, its pattern against the router's value, so it runs only when
/// that matches; a target routed away is skipped without stopping the steps after it.
fn route(diags: &mut Vec<Diagnostic>, kind: DagType, steps: &mut [Step]) {
    let routers: Vec<(usize, crate::model::RouterStep)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.executor {
            Executor::Router(r) => Some((i, (**r).clone())),
            _ => None,
        })
        .collect();
    if kind == DagType::Chain {
        for (r, _) in &routers {
            diags.push(
                Diagnostic::error(steps[*r].span, "router steps require type 'graph'")
                    .with_help("write `type: graph` (the default of Dagu 2.7+ files): a router decides which steps run, a chain runs them all in turn"),
            );
        }
        return;
    }
    let mut routed: HashMap<usize, String> = HashMap::new();
    for (r, router) in routers {
        let router_name = steps[r].name.clone();
        let span = steps[r].span;
        for (pattern, targets) in &router.routes {
            for target in targets.iter().filter(|t| !t.trim().is_empty()) {
                let found = steps
                    .iter()
                    .position(|s| s.name == *target || s.id.as_deref() == Some(target.as_str()));
                let Some(j) = found else {
                    let mut diag = Diagnostic::error(
                        span,
                        format!("route `{pattern}` references non-existent step `{target}`"),
                    );
                    if let Some(s) = did_you_mean(target, steps.iter().map(|s| s.name.as_str())) {
                        diag = diag.with_help(format!("did you mean `{s}`?"));
                    }
                    diags.push(diag);
                    continue;
                };
                if j == r {
                    diags.push(Diagnostic::error(
                        span,
                        format!("route `{pattern}` targets the router `{target}` itself"),
                    ));
                    continue;
                }
                if let Some(first) = routed.insert(j, pattern.clone()) {
                    diags.push(
                        Diagnostic::error(
                            span,
                            format!("step `{target}` is targeted by multiple routes (`{first}` and `{pattern}`)"),
                        )
                        .with_help("a step has one route; list it once"),
                    );
                    continue;
                }
                let step = &mut steps[j];
                if !step.depends.contains(&router_name) {
                    step.depends.push(router_name.clone());
                }
                step.preconditions.push(Condition::Match {
                    condition: router.value.clone(),
                    expected: pattern.clone(),
                    negate: false,
                    how: MatchHow::Resolved,
                });
                step.continue_on.get_or_insert_default().skipped = true;
            }
        }
    }
}

/// Reports each dependency cycle once, at the `depends` entry that closes it.
fn report_cycles(
    diags: &mut Vec<Diagnostic>,
    dag: &Dag,
    edge_spans: &HashMap<(usize, String), Span>,
) {
    let index: HashMap<&str, usize> = dag
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let n = dag.steps.len();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; n];
    let mut reported: HashSet<Vec<usize>> = HashSet::new();
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        // Iterative DFS: (node, next dependency to look at).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let deps = &dag.steps[node].depends;
            if *next < deps.len() {
                let dep = &deps[*next];
                *next += 1;
                let Some(&j) = index.get(dep.as_str()) else {
                    continue;
                };
                match state[j] {
                    0 => {
                        state[j] = 1;
                        stack.push((j, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(s, _)| *s == j).unwrap_or(0);
                        // cycle[k] depends on cycle[k + 1], and the last on the first.
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(s, _)| *s).collect();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if reported.insert(key) {
                            // Point at a `depends` the user wrote (the chain's own edges
                            // have no text), and start the path from its step.
                            let len = cycle.len();
                            let edge =
                                |k: usize| (cycle[k], dag.steps[cycle[(k + 1) % len]].name.clone());
                            let written = (0..len).find(|&k| edge_spans.contains_key(&edge(k)));
                            let span = match written {
                                Some(k) => edge_spans[&edge(k)],
                                None => dag.steps[node].span,
                            };
                            cycle.rotate_left(written.unwrap_or(0));
                            cycle.push(cycle[0]);
                            let path: Vec<&str> =
                                cycle.iter().map(|&s| dag.steps[s].name.as_str()).collect();
                            diags.push(
                                Diagnostic::error(span, format!("dependency cycle: {}", path.join(" -> ")))
                                    .with_help("each arrow reads \"depends on\"; remove one of these dependencies"),
                            );
                        }
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
}

/// For each step (by position), the positions of the steps it depends on.
pub fn dependency_indices(dag: &Dag) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = dag
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    dag.steps
        .iter()
        .map(|s| {
            s.depends
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect()
}

/// For each step (by position), the positions of the steps that depend on it: the edges of
/// [`dependency_indices`] the other way round.
pub fn dependents(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &j in ds {
            dependents[j].push(i);
        }
    }
    dependents
}

/// The steps in an order they can run in: each after its dependencies, otherwise in file
/// order. Steps on a cycle (never in a valid DAG) come last.
pub fn execution_order(dag: &Dag) -> Vec<usize> {
    let deps = dependency_indices(dag);
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let dependents = dependents(&deps);
    let mut ready: std::collections::BTreeSet<usize> =
        (0..dag.steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(dag.steps.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &k in &dependents[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                ready.insert(k);
            }
        }
    }
    let mut placed = vec![false; dag.steps.len()];
    for &i in &order {
        placed[i] = true;
    }
    order.extend((0..dag.steps.len()).filter(|&i| !placed[i]));
    order
}

/// Ids name one step each, and never another step's name.
fn check_ids(diags: &mut Vec<Diagnostic>, raw: &[RawStep]) {
    let mut ids: HashMap<&str, Span> = HashMap::new();
    for r in raw {
        let Some(id) = r.step.id.as_deref() else {
            continue;
        };
        if let Some(first) = ids.get(id) {
            diags.push(
                Diagnostic::error(r.step.span, format!("duplicate step id `{id}`")).with_help(
                    format!(
                        "the first step with that id is at line {}",
                        first.start.line
                    ),
                ),
            );
            continue;
        }
        ids.insert(id, r.step.span);
        if let Some(other) = raw
            .iter()
            .find(|o| !std::ptr::eq(*o, r) && !o.step.generated_name && o.step.name == id)
        {
            diags.push(
                Diagnostic::error(
                    r.step.span,
                    format!("the step id `{id}` is the name of another step"),
                )
                .with_help(format!(
                    "a reference to `{id}` would be ambiguous: rename one (the other step is at line {})",
                    other.step.span.start.line
                )),
            );
        }
    }
}
