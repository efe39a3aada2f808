//! `type: http`: `command: METHOD URL` with `headers`, `query`, `body`, `timeout`,
//! `silent`, `json`/`format`, `debug` and `skipTLSVerify`, as Dagu has them.
//!
//! The answer goes to stdout as it arrives: its status line and headers (unless `silent`
//! and the status is 2xx), then the body, streamed. With `json`, the answer is one JSON
//! object `{status_code, headers, body}` (the body parsed as JSON, so held whole). A
//! status outside 2xx fails the step after its answer is written; redirects are followed
//! (ten at most). TLS is rustls with the system's root certificates, the ones every other
//! program on the machine trusts; `skipTLSVerify` turns the check off.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use wharf_engine::StepJob;
use wharf_spec::HttpStep;

use crate::{Ended, Output};

const MAX_REDIRECTS: usize = 10;

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

pub(crate) async fn run(
    method: &str,
    url: &str,
    config: &HttpStep,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let exchange = exchange(method, url, config, out);
    let timeout = config.timeout.filter(|t| *t > 0).map(Duration::from_secs);
    tokio::select! {
        ended = async {
            match timeout {
                Some(t) => tokio::time::timeout(t, exchange).await.unwrap_or_else(|_| {
                    Ended::Failed(format!("no complete answer within {}s (timeout)", t.as_secs()))
                }),
                None => exchange.await,
            }
        } => ended,
        () = job.stop.cancelled() => Ended::Stopped,
    }
}

async fn exchange(method: &str, url: &str, config: &HttpStep, out: &mut Output) -> Ended {
    let client = match client(config.skip_tls_verify) {
        Ok(c) => c,
        Err(e) => return Ended::Failed(e),
    };
    let Ok(mut method) = Method::from_bytes(method.as_bytes()) else {
        return Ended::Failed(format!("`{method}` is not an HTTP method"));
    };
    let mut uri = match with_query(url, &config.query).parse::<Uri>() {
        Ok(u) if u.scheme().is_some() && u.host().is_some() => u,
        _ => return Ended::Failed(format!("`{url}` is not a URL (http://... or https://...)")),
    };
    let mut body = config.body.clone().unwrap_or_default();
    let mut hops = 0;
    let response = loop {
        let mut request = Request::builder().method(method.clone()).uri(uri.clone());
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = match request.body(Full::new(Bytes::from(body.clone()))) {
            Ok(r) => r,
            Err(e) => return Ended::Failed(format!("the request cannot be made: {e}")),
        };
        if config.debug {
            out.stderr(format!("> {method} {uri}\n").as_bytes()).await;
            for (name, _) in &config.headers {
                out.stderr(format!("> {name}: (set)\n").as_bytes()).await;
            }
        }
        let response = match client.request(request).await {
            Ok(r) => r,
            Err(e) => return Ended::Failed(format!("{method} {uri}: {}", chain(&e))),
        };
        if config.debug {
            out.stderr(format!("< {}\n", response.status()).as_bytes())
                .await;
        }
        let status = response.status();
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match (status.is_redirection(), location) {
            (true, Some(location)) if hops < MAX_REDIRECTS => {
                hops += 1;
                uri = match resolve(&uri, &location) {
                    Some(u) => u,
                    None => {
                        return Ended::Failed(format!("the redirect to `{location}` is not a URL"));
                    }
                };
                // As browsers and Go do: a 303, and a 301 or 302 after a POST, become a GET.
                if status == StatusCode::SEE_OTHER
                    || (method == Method::POST
                        && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                {
                    method = Method::GET;
                    body.clear();
                }
            }
            (true, Some(_)) => {
                return Ended::Failed(format!("more than {MAX_REDIRECTS} redirects"));
            }
            _ => break response,
        }
    };
    let status = response.status();
    let ok = status.is_success();
    let mut head = String::new();
    if !config.silent || !ok {
        head.push_str(&format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        ));
    }
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                canonical(k.as_str()),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut body = response.into_body();
    if config.json {
        let mut whole = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(data) = f.data_ref() {
                        whole.extend_from_slice(data);
                    }
                }
                Err(e) => return Ended::Failed(format!("the answer was cut: {}", chain(&e))),
            }
        }
        let parsed: serde_json::Value = match serde_json::from_slice(&whole) {
            Ok(v) => v,
            Err(e) => {
                return Ended::Failed(format!("the answer's body is not JSON (`json: true`): {e}"));
            }
        };
        let shown = !config.silent || !ok;
        let mut grouped = serde_json::Map::new();
        for (name, value) in &headers {
            if let Some(values) = grouped
                .entry(name.clone())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                .as_array_mut()
            {
                values.push(serde_json::Value::String(value.clone()));
            }
        }
        let result = serde_json::json!({
            "status_code": if shown { status.as_u16() } else { 0 },
            "headers": if shown { serde_json::Value::Object(grouped) } else { serde_json::Value::Null },
            "body": parsed,
        });
        let mut buf = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
        let _ = serde::Serialize::serialize(&result, &mut ser);
        buf.push(b'\n');
        out.stdout(&buf).await;
    } else {
        if !config.silent || !ok {
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {value}\n"));
            }
            out.stdout(head.as_bytes()).await;
        }
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(data) = f.data_ref() {
                        out.stdout(data).await;
                    }
                }
                Err(e) => return Ended::Failed(format!("the answer was cut: {}", chain(&e))),
            }
        }
    }
    if ok {
        Ended::Done
    } else {
        Ended::Failed(format!(
            "the answer's status is {} (not 2xx)",
            status.as_u16()
        ))
    }
}

pub(crate) fn client(skip_tls_verify: bool) -> Result<HttpsClient, String> {
    client_for(skip_tls_verify)
}

/// The HTTP(S) client of requests whose body is a `B`.
pub(crate) fn client_for<B>(
    skip_tls_verify: bool,
) -> Result<
    Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, B>,
    String,
>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if skip_tls_verify {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoCheck))
        .with_no_client_auth();
        builder.with_tls_config(config)
    } else {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        builder.with_tls_config(config.with_root_certificates(roots).with_no_client_auth())
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// `skipTLSVerify`: every certificate is taken (the signatures are still checked).
#[derive(Debug)]
pub(crate) struct NoCheck;

impl rustls::client::danger::ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `url` with `query` added (percent-encoded).
fn with_query(url: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return url.to_owned();
    }
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{encoded}")
}

/// A redirect's `Location`, absolute or relative to `base`.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if let Ok(u) = location.parse::<Uri>()
        && u.scheme().is_some()
    {
        return Some(u);
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

/// `content-type` → `Content-Type` (how Go names headers, as Dagu prints them).
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// An error and its causes, in one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
