//! Dagu 2.x `wait.*`: a step that waits, without a process, for a time to pass, a time to
//! come, a file to appear or go, or an HTTP endpoint to answer with a status. A stop (or
//! the step's `timeout_sec`) ends the wait.

use std::path::Path;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use wharf_engine::StepJob;
use wharf_spec::{WaitHttp, WaitStep};

use crate::{Ended, Output};

pub(crate) async fn run(wait: &WaitStep, dir: &Path, job: &StepJob, out: &mut Output) -> Ended {
    let waited = async {
        match wait {
            WaitStep::Duration(text) => {
                let d = duration(text, "duration")?;
                tokio::time::sleep(d).await;
                Ok(format!("waited {text}"))
            }
            WaitStep::Until(text) => {
                let until: jiff::Timestamp = text
                    .parse()
                    .map_err(|_| format!("`{text}` is not an RFC 3339 time"))?;
                let left = until.duration_since(jiff::Timestamp::now());
                if let Ok(left) = Duration::try_from(left) {
                    tokio::time::sleep(left).await;
                }
                Ok(format!("waited until {text}"))
            }
            WaitStep::File {
                path,
                missing,
                poll,
            } => {
                let every = duration(poll, "poll_interval")?;
                let file = dir.join(path);
                while file.exists() == *missing {
                    tokio::time::sleep(every).await;
                }
                Ok(format!(
                    "{path} {}",
                    if *missing { "is gone" } else { "is there" }
                ))
            }
            WaitStep::Http(h) => http(h).await,
        }
    };
    tokio::select! {
        done = waited => match done {
            Ok(said) => {
                out.stdout(format!("{said}\n").as_bytes()).await;
                Ended::Done
            }
            Err(e) => Ended::Failed(e),
        },
        () = job.stop.cancelled() => Ended::Stopped,
    }
}

fn duration(text: &str, what: &str) -> Result<Duration, String> {
    wharf_spec::formats::go_duration(text)
        .ok_or_else(|| format!("`{what}` is `{text}`: not a duration (`500ms`, `30s`, `5m`)"))
}

/// Asks until the answer has the status: no answer, a refused connection or another
/// status is "not yet".
async fn http(h: &WaitHttp) -> Result<String, String> {
    let every = duration(&h.poll, "poll_interval")?;
    let limit = duration(&h.request_timeout, "request_timeout")?;
    let method = Method::from_bytes(h.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", h.method))?;
    let uri = match h.url.parse::<Uri>() {
        Ok(u) if u.scheme().is_some() && u.host().is_some() => u,
        _ => {
            return Err(format!(
                "`{}` is not a URL (http://... or https://...)",
                h.url
            ));
        }
    };
    let client = crate::http::client(false)?;
    loop {
        let mut request = Request::builder().method(method.clone()).uri(uri.clone());
        for (name, value) in &h.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(h.body.clone().unwrap_or_default())))
            .map_err(|e| format!("the request cannot be made: {e}"))?;
        if let Ok(Ok(answer)) = tokio::time::timeout(limit, client.request(request)).await
            && answer.status().as_u16() == h.status
        {
            return Ok(format!("{method} {uri} answered {}", h.status));
        }
        tokio::time::sleep(every).await;
    }
}
