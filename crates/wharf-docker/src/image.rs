//! Making sure a step's image is there: the pull policies, and pull errors that say what
//! went wrong.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use wharf_spec::PullPolicy;

use crate::{describe, status_of};

/// The platform an image was built for, as `os/arch[/variant]`.
fn platform_of(image: &bollard::models::ImageInspect) -> String {
    let mut p = format!(
        "{}/{}",
        image.os.as_deref().unwrap_or("linux"),
        image.architecture.as_deref().unwrap_or("amd64")
    );
    if let Some(v) = image.variant.as_deref().filter(|v| !v.is_empty()) {
        p.push('/');
        p.push_str(v);
    }
    p
}

fn same_platform(have: &str, want: &str) -> bool {
    // A wanted platform without a variant matches any variant.
    have == want || (want.matches('/').count() == 1 && have.starts_with(&format!("{want}/")))
}

/// Ensures `image` is present per `policy`; `notice` is told about pulls. Returns the
/// local image's details when it was used without a pull.
pub(crate) async fn ensure(
    docker: &Docker,
    auths: &crate::Auths,
    image: &str,
    policy: PullPolicy,
    platform: Option<&str>,
    notice: &(dyn Fn(String) + Sync),
    activity: &(dyn Fn(Option<String>) + Sync),
) -> Result<Option<bollard::models::ImageInspect>, String> {
    let local = match docker.inspect_image(image).await {
        Ok(found) => Some(found),
        Err(e) if status_of(&e) == Some(404) => None,
        Err(e) => {
            return Err(format!(
                "cannot inspect the image {image}: {}",
                describe(&e)
            ));
        }
    };
    let local_platform = local.as_ref().map(platform_of);
    let matches = match (&local_platform, platform) {
        (Some(have), Some(want)) => same_platform(have, want),
        (Some(_), None) => true,
        (None, _) => false,
    };
    let pull = match policy {
        PullPolicy::Always | PullPolicy::Fallback => true,
        PullPolicy::Missing => !matches,
        PullPolicy::Never => false,
    };
    if !pull {
        return match (matches, &local_platform, platform) {
            (true, _, _) => Ok(local),
            (false, Some(have), Some(want)) => Err(format!(
                "image {image} exists locally for {have}, wanted {want} (and pull is `never`)"
            )),
            _ => Err(format!(
                "image {image} not found locally, and pull is `never`"
            )),
        };
    }
    let lookup = auths
        .lookup(image)
        .await
        .map_err(|e| format!("cannot pull {image}: {e}"))?;
    let source = lookup.found.as_ref().map(|f| f.source.clone());
    let started = std::time::Instant::now();
    activity(Some(format!("pulling {image}")));
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        platform: platform.unwrap_or_default().to_owned(),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), None, lookup.found.map(|f| f.credentials));
    let mut failure = None;
    // Per layer: bytes downloaded and their total, for the progress shown on a terminal.
    let mut layers: std::collections::HashMap<String, (i64, i64)> =
        std::collections::HashMap::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(detail);
                }
                let (Some(id), Some(status)) = (info.id, info.status) else {
                    continue;
                };
                let progress = info.progress_detail.unwrap_or_default();
                if status == "Downloading" {
                    layers.insert(
                        id,
                        (progress.current.unwrap_or(0), progress.total.unwrap_or(0)),
                    );
                } else if matches!(
                    status.as_str(),
                    "Download complete" | "Pull complete" | "Already exists"
                ) {
                    let entry = layers.entry(id).or_insert((0, 0));
                    entry.0 = entry.1.max(entry.0);
                }
                let (done, total) = layers
                    .values()
                    .fold((0, 0), |(d, t), (c, n)| (d + c, t + n));
                let text = if total > 0 {
                    format!(
                        "pulling {image}: {} of {} ({} layers)",
                        megabytes(done),
                        megabytes(total),
                        layers.len()
                    )
                } else {
                    format!("pulling {image}: {}", status.to_lowercase())
                };
                activity(Some(text));
            }
            Err(e) => {
                failure = Some(describe(&e));
                break;
            }
        }
    }
    activity(None);
    match failure {
        None => {
            notice(format!(
                "pulled {image} in {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            Ok(None)
        }
        // `fallback`: a failed pull is no failure while the image is here.
        Some(message) if policy == PullPolicy::Fallback && matches => {
            notice(format!(
                "pull of {image} failed ({}): using the local image (pull is `fallback`)",
                message.trim()
            ));
            Ok(local)
        }
        Some(message) => {
            let error = pull_error(image, platform, &local_platform, &message);
            Err(if error.contains("authentication refused") {
                let whose = match source {
                    Some(source) => format!("with the credentials from {source}"),
                    None => format!(
                        "without credentials: none found for {} in `registryAuths`, DOCKER_AUTH_CONFIG or the Docker config",
                        lookup.registry
                    ),
                };
                format!("{error}; registry {}, {whose}", lookup.registry)
            } else {
                error
            })
        }
    }
}

fn megabytes(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// Says which of the ways a pull fails this was.
fn pull_error(
    image: &str,
    platform: Option<&str>,
    local: &Option<String>,
    message: &str,
) -> String {
    let lower = message.to_lowercase();
    if let (Some(have), Some(want)) = (local, platform) {
        // The daemon words this case as a missing manifest or a failed download: say
        // what is really the matter.
        if !same_platform(have, want) {
            return format!(
                "image {image} exists locally for {have}, wanted {want} (pulling it failed: {})",
                message.trim()
            );
        }
    }
    let kind = if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
        || lower.contains("incorrect username or password")
        || lower.contains("no basic auth credentials")
    {
        "authentication refused"
    } else if lower.contains("not found")
        || lower.contains("manifest unknown")
        || lower.contains("does not exist")
    {
        "image not found"
    } else if lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("timeout")
        || lower.contains("dial tcp")
        || lower.contains("i/o timeout")
        || lower.contains("server gave http response")
    {
        "registry unreachable"
    } else {
        "pull failed"
    };
    format!("cannot pull {image}: {kind} ({})", message.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_errors_are_told_apart() {
        let none = None;
        assert!(
            pull_error("x", None, &none, "unauthorized: authentication required")
                .contains("authentication refused")
        );
        assert!(
            pull_error("x", None, &none, "manifest unknown: manifest unknown")
                .contains("image not found")
        );
        assert!(
            pull_error(
                "x",
                None,
                &none,
                "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused"
            )
            .contains("registry unreachable")
        );
        let local = Some("linux/amd64".to_owned());
        assert!(
            pull_error(
                "x",
                Some("linux/arm64"),
                &local,
                "no matching manifest for linux/arm64 in the manifest list entries"
            )
            .starts_with("image x exists locally for linux/amd64, wanted linux/arm64")
        );
    }
}
