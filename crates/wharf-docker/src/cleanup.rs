//! What crashed runs left behind: containers whose wharf process is gone.
//!
//! Every container wharf creates names, in its labels, the process that runs its step
//! (pid, start time, host) and whether the step wanted it removed (`autoRemove`). A
//! container whose process is gone belongs to a run that can no longer stop or remove
//! it: it is stopped if it still runs, and removed if its step asked for that (a kept
//! container is kept, as `docker run` without `--rm` keeps it). Containers of live runs,
//! of other hosts, and without wharf's labels are never touched.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use wharf_engine::labels;

use crate::describe;

/// A container that was removed.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub id: String,
    pub dag: String,
    pub run_id: String,
    pub step: String,
    /// Removed, or (kept on purpose: `autoRemove: false`) only stopped.
    pub removed: bool,
}

/// Removes the containers of runs whose process is gone; returns them.
pub async fn remove_leftovers(docker: &Docker) -> Result<Vec<Leftover>, crate::DockerError> {
    let filters = HashMap::from([("label".to_owned(), vec![labels::RUN.to_owned()])]);
    let options = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| crate::DockerError::List(describe(&e)))?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut removed = Vec::new();
    for c in containers {
        let Some(id) = c.id else { continue };
        let labels = c.labels.unwrap_or_default();
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        // A kept DAG-level container (`keepContainer`) outlives its run on purpose.
        if get(labels::HOST) != host || get(labels::KEEP) == "true" {
            continue;
        }
        let pid: i32 = get(labels::PID).parse().unwrap_or(0);
        let start: i64 = get(labels::PID_START).parse().unwrap_or(-1);
        let alive = pid > 0 && wharf_store::process_start(pid) == Some(start);
        if alive {
            continue;
        }
        use bollard::models::ContainerSummaryStateEnum as State;
        let running = matches!(
            c.state,
            Some(State::RUNNING | State::PAUSED | State::RESTARTING)
        );
        // A container created but not started may still have a start in flight (its run
        // was killed after asking for it): removing it is the only way to be sure it never
        // runs. A step that never ran left nothing to keep.
        let created = matches!(c.state, Some(State::CREATED));
        let remove = get(labels::AUTO_REMOVE) != "false" || created;
        if !remove && !running {
            continue; // Kept on purpose, and stopped already.
        }
        let result = if remove {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            // A container whose start is still going on in the daemon answers 409 until it
            // is done: asked again, it is removed, running or not.
            let mut tries = 0;
            loop {
                let result = docker.remove_container(&id, Some(options.clone())).await;
                match &result {
                    Err(e) if crate::status_of(e) == Some(409) && tries < 50 => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    _ => break result,
                }
            }
        } else {
            let options = bollard::query_parameters::KillContainerOptions {
                signal: "SIGKILL".into(),
            };
            docker.kill_container(&id, Some(options)).await
        };
        match result {
            Ok(()) => removed.push(Leftover {
                id,
                dag: get(labels::DAG),
                run_id: get(labels::RUN),
                step: get(labels::STEP),
                removed: remove,
            }),
            Err(e) if matches!(crate::status_of(&e), Some(404 | 409)) => {}
            Err(e) => {
                return Err(crate::DockerError::Cleanup {
                    id,
                    reason: describe(&e),
                });
            }
        }
    }
    removed.extend(remove_leftover_services(docker, &host).await?);
    Ok(removed)
}

/// Removes the Swarm jobs (services) of runs whose process is gone. An engine that is not
/// a swarm manager has none.
async fn remove_leftover_services(
    docker: &Docker,
    host: &str,
) -> Result<Vec<Leftover>, crate::DockerError> {
    let filters = HashMap::from([("label".to_owned(), vec![labels::RUN.to_owned()])]);
    let options = bollard::query_parameters::ListServicesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let services = match docker.list_services(Some(options)).await {
        Ok(s) => s,
        // 503: not a swarm manager, so no services.
        Err(e) if crate::status_of(&e) == Some(503) => return Ok(Vec::new()),
        Err(e) => return Err(crate::DockerError::List(describe(&e))),
    };
    let mut removed = Vec::new();
    for s in services {
        let Some(id) = s.id else { continue };
        let labels = s.spec.and_then(|s| s.labels).unwrap_or_default();
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let pid: i32 = get(labels::PID).parse().unwrap_or(0);
        let start: i64 = get(labels::PID_START).parse().unwrap_or(-1);
        if get(labels::HOST) != host || (pid > 0 && wharf_store::process_start(pid) == Some(start))
        {
            continue;
        }
        match docker.delete_service(&id).await {
            Ok(()) => removed.push(Leftover {
                id,
                dag: get(labels::DAG),
                run_id: get(labels::RUN),
                step: get(labels::STEP),
                removed: true,
            }),
            Err(e) if crate::status_of(&e) == Some(404) => {}
            Err(e) => {
                return Err(crate::DockerError::Cleanup {
                    id,
                    reason: describe(&e),
                });
            }
        }
    }
    Ok(removed)
}
