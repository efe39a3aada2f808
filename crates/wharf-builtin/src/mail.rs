//! Mail through the DAG's `smtp` server, with lettre: the `mail` step, and the mail about
//! runs ([`SmtpNotifier`]).
//!
//! As Dagu connects: port 465 is TLS from the first byte; any other port starts in plain
//! text and upgrades with STARTTLS when the server offers it. Credentials are sent only
//! when `username` is set. Certificates are checked against the system's roots.

use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use wharf_engine::{BoxFuture, Notification, Notifier, StepJob};
use wharf_spec::{MailStep, Smtp};

use crate::{Ended, Output};

/// How long a server has to answer each command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A message to send.
struct Outgoing<'a> {
    from: &'a str,
    to: &'a [String],
    subject: &'a str,
    body: &'a str,
    html: bool,
    attachments: Vec<(String, Vec<u8>)>,
}

pub(crate) async fn run_step(
    smtp: Option<&Smtp>,
    mail: &MailStep,
    dir: &Path,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let Some(smtp) = smtp else {
        return Ended::Failed("a `mail` step needs the DAG's `smtp` server (host, port)".into());
    };
    let mut attachments = Vec::new();
    for name in &mail.attachments {
        let path = wharf_spec::formats::resolve_path(dir, name);
        match std::fs::read(&path) {
            Ok(bytes) => attachments.push((file_name(&path), bytes)),
            Err(e) => {
                return Ended::Failed(format!("cannot attach {}: {e}", path.display()));
            }
        }
    }
    let message = Outgoing {
        from: &mail.from,
        to: &mail.to,
        subject: &mail.subject,
        body: &mail.message,
        html: false,
        attachments,
    };
    let sent = tokio::select! {
        sent = send(smtp, &message) => sent,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    match sent {
        Ok(()) => {
            out.stdout(
                format!(
                    "mail sent through {}:{} from {} to {}: {}\n",
                    smtp.host,
                    smtp.port,
                    mail.from,
                    mail.to.join(", "),
                    mail.subject
                )
                .as_bytes(),
            )
            .await;
            Ended::Done
        }
        Err(e) => Ended::Failed(e),
    }
}

/// Sends the mail about runs through their DAG's `smtp`.
#[derive(Debug, Default)]
pub struct SmtpNotifier;

impl Notifier for SmtpNotifier {
    fn send<'a>(&'a self, mail: &'a Notification) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut attachments = Vec::new();
            for path in &mail.attachments {
                if let Ok(bytes) = std::fs::read(path) {
                    let name = path
                        .parent()
                        .and_then(Path::file_name)
                        .map(|step| format!("{}-{}", step.to_string_lossy(), file_name(path)))
                        .unwrap_or_else(|| file_name(path));
                    attachments.push((name, bytes));
                }
            }
            send(
                &mail.smtp,
                &Outgoing {
                    from: &mail.from,
                    to: &mail.to,
                    subject: &mail.subject,
                    body: &mail.body,
                    html: true,
                    attachments,
                },
            )
            .await
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into())
}

async fn send(smtp: &Smtp, mail: &Outgoing<'_>) -> Result<(), String> {
    let from: Mailbox = mail
        .from
        .parse()
        .map_err(|e| format!("`from` is not a mail address (`{}`): {e}", mail.from))?;
    let mut builder = Message::builder().from(from).subject(mail.subject);
    if mail.to.is_empty() {
        return Err("the mail has no recipient (`to`)".into());
    }
    for to in mail.to {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("`to` is not a mail address (`{to}`): {e}"))?;
        builder = builder.to(to);
    }
    let kind = if mail.html {
        ContentType::TEXT_HTML
    } else {
        ContentType::TEXT_PLAIN
    };
    let text = SinglePart::builder()
        .header(kind)
        .body(mail.body.to_owned());
    let message = if mail.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for (name, bytes) in &mail.attachments {
            let kind =
                ContentType::parse("application/octet-stream").unwrap_or(ContentType::TEXT_PLAIN);
            parts = parts.singlepart(Attachment::new(name.clone()).body(bytes.clone(), kind));
        }
        builder.multipart(parts)
    }
    .map_err(|e| format!("the mail cannot be made: {e}"))?;
    let tls =
        TlsParameters::new(smtp.host.clone()).map_err(|e| format!("TLS for {}: {e}", smtp.host))?;
    let mut transport = if smtp.port == 465 {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host).tls(Tls::Wrapper(tls))
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .tls(Tls::Opportunistic(tls))
    }
    .port(smtp.port)
    .timeout(Some(SMTP_TIMEOUT));
    if let Some(user) = &smtp.username {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            smtp.password.clone().unwrap_or_default(),
        ));
    }
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "the mail server {}:{} refused the mail: {e}",
                smtp.host, smtp.port
            )
        })
}
