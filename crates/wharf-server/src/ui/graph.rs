//! The DAG's steps as a picture: one column per dependency level, a line per dependency,
//! each box coloured by the step's status in a run; the handlers in a column of their
//! own after the steps (dashed: they run on an event, not after a step). The template
//! draws it.

use wharf_store::Status;

pub(crate) struct Box {
    pub name: String,
    /// The name as shown in the box (cut to fit).
    pub label: String,
    pub status: &'static str,
    pub x: usize,
    pub y: usize,
    pub fill: &'static str,
    pub stroke: &'static str,
    /// A step that runs another DAG: the DAG's name (drawn as a double box).
    pub calls: Option<String>,
    /// A handler: the event it runs on (drawn dashed, with no lines).
    pub on: Option<&'static str>,
}

pub(crate) struct Graph {
    pub width: usize,
    pub height: usize,
    pub box_width: usize,
    pub box_height: usize,
    /// From (x, y) to (x, y).
    pub lines: Vec<(usize, usize, usize, usize)>,
    pub boxes: Vec<Box>,
    /// The run the colours come from: its id and status.
    pub shown: Option<(String, &'static str)>,
}

/// The picture of `dag`, coloured by `statuses` (a step's name and its status).
pub(crate) fn of(
    dag: &wharf_spec::Dag,
    statuses: &[(String, Status)],
    shown: Option<(String, &'static str)>,
) -> Graph {
    let n = dag.steps.len();
    let deps = wharf_spec::dependency_indices(dag);
    let mut level = vec![0usize; n];
    for i in wharf_spec::execution_order(dag) {
        level[i] = deps[i].iter().map(|&j| level[j] + 1).max().unwrap_or(0);
    }
    let mut rows_in_level: Vec<usize> = Vec::new();
    let mut pos = vec![(0usize, 0usize); n];
    for i in 0..n {
        let l = level[i];
        if rows_in_level.len() <= l {
            rows_in_level.resize(l + 1, 0);
        }
        pos[i] = (l, rows_in_level[l]);
        rows_in_level[l] += 1;
    }
    let (w, h, gap_x, gap_y) = (170, 34, 60, 18);
    let xy = |i: usize| {
        let (l, r) = pos[i];
        (10 + l * (w + gap_x), 10 + r * (h + gap_y))
    };
    let mut lines = Vec::new();
    for (i, ds) in deps.iter().enumerate() {
        for &j in ds {
            let (x1, y1) = xy(j);
            let (x2, y2) = xy(i);
            lines.push((x1 + w, y1 + h / 2, x2, y2 + h / 2));
        }
    }
    let colours = |status: Status| match status {
        Status::Succeeded => ("#d7f3df", "#2e9e5b"),
        Status::Failed => ("#fde0de", "#d0443a"),
        Status::Running => ("#dde9ff", "#3a6fe0"),
        Status::Aborted => ("#ffe9cc", "#d98a1f"),
        Status::PartiallySucceeded => ("#fff3c4", "#c9a400"),
        Status::Waiting => ("#efe4ff", "#7d4cdb"),
        Status::Rejected => ("#fde0de", "#8b1d16"),
        Status::Skipped | Status::NotStarted | Status::Queued => ("#f1f2f5", "#a7afbf"),
    };
    let status_of = |key: &str| {
        statuses
            .iter()
            .find(|(n, _)| n == key)
            .map_or(Status::NotStarted, |(_, s)| *s)
    };
    let mut boxes: Vec<Box> = dag
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let status = status_of(&step.name);
            let (fill, stroke) = colours(status);
            let (x, y) = xy(i);
            Box {
                name: step.name.clone(),
                label: fit(&step.name),
                status: status.as_str(),
                x,
                y,
                fill,
                stroke,
                calls: step.call.as_ref().map(|c| {
                    let parallel = if c.parallel.is_some() {
                        " (parallel)"
                    } else {
                        ""
                    };
                    format!("{}{parallel}", c.target)
                }),
                on: None,
            }
        })
        .collect();
    let handlers_at = rows_in_level.len();
    let mut handlers = 0;
    for (event, step) in dag.handlers.iter() {
        let status = status_of(&format!("on {event}"));
        let (fill, stroke) = colours(status);
        boxes.push(Box {
            name: step.name.clone(),
            label: fit(&format!("on {event}: {}", step.name)),
            status: status.as_str(),
            x: 10 + handlers_at * (w + gap_x),
            y: 10 + handlers * (h + gap_y),
            fill,
            stroke,
            calls: None,
            on: Some(event),
        });
        handlers += 1;
    }
    let columns = rows_in_level.len() + usize::from(handlers > 0);
    let rows = rows_in_level
        .iter()
        .max()
        .copied()
        .unwrap_or(1)
        .max(handlers);
    Graph {
        width: columns * (w + gap_x) + 20,
        height: rows * (h + gap_y) + 20,
        box_width: w,
        box_height: h,
        lines,
        boxes,
        shown,
    }
}

/// A name as it fits in a box: cut with an ellipsis past 22 characters.
fn fit(name: &str) -> String {
    if name.chars().count() <= 22 {
        return name.to_owned();
    }
    let mut cut: String = name.chars().take(21).collect();
    cut.push('…');
    cut
}
