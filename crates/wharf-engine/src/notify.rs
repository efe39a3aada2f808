//! The mail about a run: `mailOn` at its end (`errorMail` for a failure, `infoMail` for a
//! success) or when it waits for a person (`waitMail`), and `mailOnError` when a step
//! fails. The subject is `PREFIX NAME (STATUS)`; the body an HTML summary of the run and
//! its steps; `attachLogs` attaches the steps' logs. A mail that cannot be sent is written in the run log (and told to whoever
//! watches the run); the run's status stays what it is.

use std::path::PathBuf;
use std::sync::Arc;

use wharf_spec::{Dag, MailConfig};
use wharf_store::{Status, StepRecord};

use crate::{Notification, Notifier, SharedStore};

/// The notification the run's end asks for, if any.
pub(crate) fn at_end(dag: &Dag, status: Status) -> Option<&MailConfig> {
    match status {
        Status::Failed | Status::Aborted | Status::Rejected if dag.mail_on.failure => {
            dag.error_mail.as_ref()
        }
        Status::Succeeded | Status::PartiallySucceeded if dag.mail_on.success => {
            dag.info_mail.as_ref()
        }
        Status::Waiting if dag.mail_on.wait => dag.wait_mail.as_ref(),
        _ => None,
    }
}

/// Makes and sends a notification of run `run_id`; a failure is said in the run log.
pub(crate) async fn send(
    notifier: Option<Arc<dyn Notifier>>,
    store: SharedStore,
    run: wharf_store::RunKey,
    dag: Arc<Dag>,
    config: MailConfig,
    (run_id, status, run_log): (String, Status, PathBuf),
    expand: impl Fn(&str) -> String + Send + Sync,
) -> Option<String> {
    let Some(smtp) = dag.smtp.as_ref() else {
        let why = "mail: no notification sent: the DAG has no `smtp` server".to_owned();
        crate::dispatcher::append_run_log(&run_log, &why);
        return Some(why);
    };
    let Some(notifier) = notifier else {
        let why = "mail: no notification sent: this process cannot send mail".to_owned();
        crate::dispatcher::append_run_log(&run_log, &why);
        return Some(why);
    };
    let (steps, logs) = store
        .call(move |s| {
            let steps = s.steps(run).unwrap_or_default();
            let logs: Vec<PathBuf> = steps
                .iter()
                .filter_map(|st| s.attempts(run, &st.name).ok()?.last().cloned())
                .flat_map(|a| [a.stdout, a.stderr])
                .filter(|p| p.is_file())
                .collect();
            (steps, logs)
        })
        .await
        .unwrap_or_default();
    let mail = Notification {
        smtp: crate::step::expand_smtp(smtp, &expand),
        from: expand(&config.from),
        to: config.to.iter().map(|t| expand(t)).collect(),
        subject: format!("{} {} ({status})", expand(&config.prefix), dag.name)
            .trim()
            .to_owned(),
        body: html(&dag.name, &run_id, status, &steps),
        attachments: if config.attach_logs { logs } else { Vec::new() },
    };
    match notifier.send(&mail).await {
        Ok(()) => {
            crate::dispatcher::append_run_log(
                &run_log,
                &format!("mail: sent \"{}\" to {}", mail.subject, mail.to.join(", ")),
            );
            None
        }
        Err(e) => {
            let why = format!("mail: the notification could not be sent: {e}");
            crate::dispatcher::append_run_log(&run_log, &why);
            Some(why)
        }
    }
}

fn html(name: &str, run_id: &str, status: Status, steps: &[StepRecord]) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let time = |ms: Option<i64>| {
        ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    let mut rows = String::new();
    for (i, st) in steps.iter().enumerate() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            i + 1,
            esc(&st.name),
            time(st.started_at),
            time(st.finished_at),
            st.status,
            esc(st.error.as_deref().unwrap_or_default()),
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n\
         <h2>{} ({status})</h2>\n<p>Run <code>{}</code></p>\n\
         <table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n\
         <tr><th>#</th><th>Step</th><th>Started</th><th>Finished</th><th>Status</th><th>Error</th></tr>\n\
         {rows}</table>\n</body></html>\n",
        esc(name),
        esc(run_id),
    )
}
