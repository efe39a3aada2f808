//! `wharf human-task complete`: a waiting human task (Dagu 2.x `action: human.task`) given
//! its answer; the run taken up again once no task of it waits.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use wharf_spec::form::Given;
use wharf_store::{Completion, Status};

use crate::ExitCode;
use crate::args::CompleteArgs;
use crate::commands::{dag_name, open_store};
use crate::error::{Error, Result};

pub(crate) fn complete(args: &CompleteArgs) -> Result<ExitCode> {
    let Some(run_id) = args.run_id.as_deref() else {
        return Err(Error::Usage(
            "`--run-id` is required: the run whose human task to complete".into(),
        ));
    };
    let Some(step) = args.step.as_deref().map(str::trim) else {
        return Err(Error::Usage(
            "`--step` is required: the id of the human task's step".into(),
        ));
    };
    let given = answer(args)?;
    let store = open_store().map_err(|e| Error::Usage(format!("the DAG-run store: {e}")))?;
    let name = dag_name(&args.dag);
    let run = store.run(&name, run_id)?.ok_or_else(|| Error::NoSuchRun {
        dag: name.clone(),
        run_id: run_id.to_owned(),
    })?;
    let completion =
        wharf_engine::task::complete(&store, &run, step, given).map_err(Error::Usage)?;
    let resumed = match completion {
        Completion::Completed { resume: false, .. } => {
            println!("Completed human task {step}; DAG-run remains waiting.");
            return Ok(ExitCode::Success);
        }
        Completion::Completed { resume: true, .. } => {
            format!("Completed human task {step}; DAG-run resume requested.")
        }
        Completion::Repeated { resume: false } => {
            println!("Human task {step} was already completed.");
            return Ok(ExitCode::Success);
        }
        Completion::Repeated { resume: true } => {
            format!("Human task {step} was already completed; DAG-run resume requested.")
        }
        Completion::Different => {
            return Err(Error::Usage(format!(
                "human task `{step}` was already completed with a different input"
            )));
        }
        Completion::RunNotWaiting(status) => {
            return Err(Error::Usage(format!(
                "run {run_id} of `{name}` is not waiting (it is {status}): human task `{step}` cannot be completed"
            )));
        }
        Completion::StepNotWaiting(status) => {
            return Err(Error::Usage(format!(
                "human task `{step}` of run {run_id} is not waiting (it is {status})"
            )));
        }
    };
    let home = wharf_store::default_home();
    if let Err(e) = wharf_control::retry(&home, &run, None, false) {
        let _ = store.release_resume(run.key, &task_step_name(&store, &run, step));
        return Err(Error::Usage(format!(
            "human task `{step}` was completed, but its run could not be resumed: {e} (run the same command again to resume it)"
        )));
    }
    println!("{resumed}");
    Ok(ExitCode::Success)
}

/// The name of the step the task `id` is (the store knows steps by name).
fn task_step_name(store: &wharf_store::Store, run: &wharf_store::RunRecord, id: &str) -> String {
    wharf_engine::task::dag_of(store, run)
        .ok()
        .and_then(|dag| wharf_engine::task::task_of(&dag, id).map(|(s, _)| s.name.clone()))
        .unwrap_or_else(|| id.to_owned())
}

/// The answer as given: `--input k=v` pairs or `--inputs-json`, not both; nothing is an
/// empty answer (an acknowledgement).
fn answer(args: &CompleteArgs) -> Result<Given> {
    if !args.inputs.is_empty() && args.inputs_json.is_some() {
        return Err(Error::Usage(
            "give the answer with `--input` or with `--inputs-json`, not both".into(),
        ));
    }
    if let Some(json) = &args.inputs_json {
        let mut de = serde_json::Deserializer::from_str(json);
        let value = Strict::deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v.0))
            .map_err(|e| Error::Usage(format!("`--inputs-json` is not a JSON object: {e}")))?;
        let Value::Object(map) = value else {
            return Err(Error::Usage(format!(
                "`--inputs-json` is a JSON object of the answer's fields, not {}",
                match value {
                    Value::Null => "null",
                    Value::Array(_) => "an array",
                    _ => "a single value",
                }
            )));
        };
        return Ok(Given::Json(map));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for input in &args.inputs {
        let Some((key, value)) = input.split_once('=') else {
            return Err(Error::Usage(format!("`--input {input}` is not key=value")));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::Usage(format!(
                "`--input {input}` has no name before `=` (key=value)"
            )));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(Error::Usage(format!(
                "`--input`: `{key}` is a duplicate (each field is given once)"
            )));
        }
        pairs.push((key.to_owned(), value.to_owned()));
    }
    Ok(Given::Text(pairs))
}

/// A JSON value whose objects hold each member name once, at any depth.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the member `{key}` is a duplicate"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The human tasks of `run` that wait, for `wharf status`: each one's id, prompt and form.
pub(crate) fn print_open(store: &wharf_store::Store, run: &wharf_store::RunRecord, indent: &str) {
    if run.status != Status::Waiting {
        return;
    }
    for task in wharf_engine::task::open_tasks(store, run) {
        println!("{indent}Waiting: human task {}", task.id);
        println!("{indent}  prompt: {}", task.prompt);
        if let Some(form) = &task.form {
            println!("{indent}  form: {form}");
        }
        println!(
            "{indent}  complete it with: wharf human-task complete --run-id {} --step {} {}{}",
            run.run_id,
            task.id,
            run.dag,
            if task.form.is_some() {
                " --input FIELD=VALUE"
            } else {
                ""
            }
        );
    }
}
