//! `wharf ls` (the DAGs of the folder), `wharf ps` (the runs running now) and `wharf
//! config` (where everything is), as Dagu 2.x has them.

use crate::ExitCode;
use crate::args::{LsArgs, PsArgs};
use crate::commands::{dag_name, open_store};
use crate::error::Result;
use crate::time;

/// `wharf ls`: one line a DAG file of the folder, by file name: the DAG's name, its
/// schedule, and with `--last`/`--next` its last run and next scheduled start. A file that
/// is not a valid DAG says so (`wharf validate` shows why).
pub(crate) fn ls(args: &LsArgs) -> Result<ExitCode> {
    let folder = wharf_engine::dags_dir(&wharf_store::default_home());
    let store = if args.last { Some(open_store()?) } else { None };
    let now = jiff::Timestamp::now();
    let mut rows: Vec<[String; 4]> = Vec::new();
    for (stem, path) in wharf_engine::dag_files(&folder) {
        let dag = wharf_spec::load_file(&path).ok().and_then(|l| l.dag);
        let name = dag
            .as_ref()
            .map_or_else(|| stem.clone(), |d| d.name.clone());
        if let Some(p) = &args.pattern
            && !name.contains(p.as_str())
            && !stem.contains(p.as_str())
        {
            continue;
        }
        let Some(dag) = dag else {
            rows.push([
                name,
                "(invalid: wharf validate says why)".into(),
                String::new(),
                String::new(),
            ]);
            continue;
        };
        let schedule = dag.schedule.start.join(", ");
        let last = store
            .as_ref()
            .and_then(|s| s.latest_run(&dag.name).ok().flatten())
            .map(|r| {
                let at = r.started_at.unwrap_or(r.created_at);
                format!("{} {}", r.status.as_str(), time::rfc3339(at))
            })
            .unwrap_or_else(|| if args.last { "-".into() } else { String::new() });
        let next = if args.next {
            dag.schedule
                .start
                .iter()
                .filter_map(|e| wharf_spec::cron::Cron::parse(e).ok()?.next_after(now))
                .min()
                .map_or_else(|| "-".into(), |t| time::rfc3339(t.as_millisecond()))
        } else {
            String::new()
        };
        let schedule = if schedule.is_empty() {
            "-".into()
        } else {
            schedule
        };
        rows.push([name, schedule, last, next]);
    }
    if rows.is_empty() {
        match &args.pattern {
            Some(p) => eprintln!("no DAG in {} matches `{p}`", folder.display()),
            None => eprintln!("no DAG files in {}", folder.display()),
        }
        return Ok(ExitCode::Success);
    }
    let mut heads = vec!["NAME", "SCHEDULE"];
    if args.last {
        heads.push("LAST RUN");
    }
    if args.next {
        heads.push("NEXT");
    }
    let shown: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r[0].as_str(), r[1].as_str()];
            if args.last {
                cells.push(&r[2]);
            }
            if args.next {
                cells.push(&r[3]);
            }
            cells
        })
        .collect();
    print_table(&heads, &shown);
    Ok(ExitCode::Success)
}

/// `wharf ps`: the runs running now (a run whose process died is marked failed first, as
/// every command does), with the process that runs each.
pub(crate) fn ps(args: &PsArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let name = args.dag.as_deref().map(dag_name);
    let runs: Vec<_> = store
        .running(name.as_deref())?
        .into_iter()
        .filter(|r| {
            args.run_id
                .as_deref()
                .is_none_or(|id| r.run_id.contains(id))
        })
        .collect();
    if runs.is_empty() {
        // Dagu's words, on stdout as Dagu prints them (scripts look for them there).
        println!("No running processes");
        if let Some(n) = &name {
            eprintln!("no run of `{n}` is running");
        }
        return Ok(ExitCode::Success);
    }
    let now = wharf_store::now_ms();
    let rows: Vec<[String; 5]> = runs
        .iter()
        .map(|r| {
            let since = r.started_at.unwrap_or(r.created_at);
            [
                r.dag.clone(),
                r.run_id.clone(),
                r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                time::rfc3339(since),
                time::between(Some(since), Some(now))
                    .map(time::duration)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let shown: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    print_table(&["DAG", "RUN ID", "PID", "STARTED", "RUNNING FOR"], &shown);
    Ok(ExitCode::Success)
}

/// `wharf config`: the paths wharf uses here, as the installation's settings resolve them
/// (a file that does not exist is said so).
pub(crate) fn config() -> ExitCode {
    let home = wharf_store::default_home();
    let shown = |p: &std::path::Path| {
        if p.exists() {
            p.display().to_string()
        } else {
            format!("{} (none yet)", p.display())
        }
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("Home", home.display().to_string()),
        ("Config file", shown(&home.join("config.yaml"))),
    ];
    if let Some(dagu) = std::env::var_os("DAGU_HOME").filter(|h| !h.is_empty()) {
        let dagu = std::path::PathBuf::from(dagu);
        rows.push(("Dagu config file", shown(&dagu.join("config.yaml"))));
    }
    rows.push((
        "Base config",
        shown(&wharf_spec::base_config().unwrap_or_else(|| home.join("base.yaml"))),
    ));
    rows.push(("DAGs directory", shown(&wharf_engine::dags_dir(&home))));
    rows.push(("Run records", shown(&home.join("wharf.db"))));
    rows.push(("Log directory", shown(&home.join("logs"))));
    rows.push(("Kept DAGs (exec, API)", shown(&home.join("specs"))));
    if let Ok(exe) = std::env::current_exe() {
        rows.push(("Executable", exe.display().to_string()));
    }
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    for (label, value) in rows {
        println!("{:<width$}  {value}", format!("{label}:"));
    }
    ExitCode::Success
}

/// Columns as wide as their widest cell, two spaces apart; the last one as it is.
fn print_table(heads: &[&str], rows: &[Vec<&str>]) {
    let widths: Vec<usize> = (0..heads.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain(std::iter::once(heads[i].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(heads);
    for r in rows {
        line(r);
    }
}
