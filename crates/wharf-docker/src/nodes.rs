//! The nodes of the swarm the engine manages, and wharf's Swarm jobs on each: what the
//! server shows as its workers (wharf has none of its own; steps that leave this machine
//! are Swarm jobs).

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::{ListNodesOptions, ListTasksOptions};
use wharf_engine::labels;

use crate::{Client, DockerError};

/// A node of the swarm.
#[derive(Debug, Clone)]
pub struct SwarmNode {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    /// The node's CPUs, as Swarm counts them for placing tasks.
    pub cpus: Option<f64>,
    /// When the swarm last changed what it knows of the node (RFC 3339).
    pub updated_at: String,
    /// wharf's Swarm jobs that run there now.
    pub jobs: Vec<SwarmJob>,
}

/// One of wharf's Swarm jobs on a node: its DAG, run, step and when its task was made.
#[derive(Debug, Clone)]
pub struct SwarmJob {
    pub dag: String,
    pub run_id: String,
    pub step: String,
    pub created_at: String,
}

/// The swarm's nodes; None when the engine is in no swarm or is not one of its managers
/// (only a manager can list them).
pub async fn swarm_nodes(client: &Client) -> Result<Option<Vec<SwarmNode>>, DockerError> {
    let docker = client.get().await?;
    let reach = |e: bollard::errors::Error| DockerError::List(e.to_string());
    let info = docker.info().await.map_err(reach)?;
    let manager = info
        .swarm
        .as_ref()
        .is_some_and(|s| s.control_available == Some(true));
    if !manager {
        return Ok(None);
    }
    let nodes = docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(reach)?;
    let filters = HashMap::from([("desired-state".to_owned(), vec!["running".to_owned()])]);
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(reach)?;
    let mut jobs: HashMap<String, Vec<SwarmJob>> = HashMap::new();
    for task in tasks {
        let container_labels = task
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let (Some(dag), Some(run_id), Some(node)) = (
            container_labels.get(labels::DAG),
            container_labels.get(labels::RUN),
            task.node_id.clone(),
        ) else {
            continue;
        };
        jobs.entry(node).or_default().push(SwarmJob {
            dag: dag.clone(),
            run_id: run_id.clone(),
            step: container_labels
                .get(labels::STEP)
                .cloned()
                .unwrap_or_default(),
            created_at: task.created_at.map(|d| d.to_string()).unwrap_or_default(),
        });
    }
    let word = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    let mut found: Vec<SwarmNode> = nodes
        .into_iter()
        .map(|n| {
            let id = n.id.clone().unwrap_or_default();
            let spec = n.spec.clone().unwrap_or_default();
            SwarmNode {
                hostname: n
                    .description
                    .as_ref()
                    .and_then(|d| d.hostname.clone())
                    .unwrap_or_else(|| id.clone()),
                role: word(spec.role.map(|r| r.to_string())),
                availability: word(spec.availability.map(|a| a.to_string())),
                state: word(
                    n.status
                        .as_ref()
                        .and_then(|s| s.state)
                        .map(|s| s.to_string()),
                ),
                labels: spec.labels.unwrap_or_default().into_iter().collect(),
                cpus: n
                    .description
                    .as_ref()
                    .and_then(|d| d.resources.as_ref())
                    .and_then(|r| r.nano_cpus)
                    .map(|n| n as f64 / 1e9),
                updated_at: n.updated_at.map(|d| d.to_string()).unwrap_or_default(),
                jobs: jobs.remove(&id).unwrap_or_default(),
                id,
            }
        })
        .collect();
    found.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(Some(found))
}
