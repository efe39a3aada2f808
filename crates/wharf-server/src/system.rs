//! What the server tells of the machine and the installation's services: the schedulers
//! that run (`/services/scheduler`), and the machine's CPU, memory, disk and load sampled
//! every `monitoring.interval` and kept for `monitoring.retention` in memory
//! (`/services/resources/history`, the System page).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// One sample: when (seconds since the epoch) and the four values (percent, percent,
/// percent, the 1-minute load average).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub at: i64,
    pub cpu: f64,
    pub memory: f64,
    pub disk: f64,
    pub load: f64,
}

/// The samples kept, oldest first.
pub(crate) struct Samples {
    points: Mutex<VecDeque<Point>>,
    retention: Duration,
}

impl Samples {
    /// Starts sampling every `interval` (the disk of the filesystem that holds `home`).
    pub(crate) fn start(home: PathBuf, interval: Duration, retention: Duration) -> Arc<Self> {
        let samples = Arc::new(Self {
            points: Mutex::new(VecDeque::new()),
            retention,
        });
        let kept = Arc::clone(&samples);
        tokio::spawn(async move {
            let mut before = cpu_times();
            loop {
                tokio::time::sleep(interval).await;
                let now = cpu_times();
                let cpu = match (before, now) {
                    (Some((busy0, all0)), Some((busy1, all1))) if all1 > all0 => {
                        (busy1.saturating_sub(busy0)) as f64 * 100.0 / (all1 - all0) as f64
                    }
                    _ => 0.0,
                };
                before = now;
                let point = Point {
                    at: wharf_store::now_ms() / 1000,
                    cpu,
                    memory: memory_used().unwrap_or(0.0),
                    disk: disk_used(&home).unwrap_or(0.0),
                    load: load_average().unwrap_or(0.0),
                };
                kept.add(point);
            }
        });
        samples
    }

    fn add(&self, point: Point) {
        let mut points = self
            .points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        points.push_back(point);
        let oldest = point.at - i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX / 2);
        while points.front().is_some_and(|p| p.at < oldest) {
            points.pop_front();
        }
    }

    /// The samples of the last `seconds`, oldest first.
    pub(crate) fn last(&self, seconds: u64) -> Vec<Point> {
        let since = wharf_store::now_ms() / 1000 - i64::try_from(seconds).unwrap_or(i64::MAX / 2);
        self.points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|p| p.at >= since)
            .copied()
            .collect()
    }

    /// `ResourceHistory`: `{cpu, memory, disk, load}`, each a list of `{timestamp, value}`.
    pub(crate) fn history(&self, seconds: u64) -> Value {
        let points = self.last(seconds);
        let series = |f: fn(&Point) -> f64| -> Vec<Value> {
            points
                .iter()
                .map(|p| json!({"timestamp": p.at, "value": (f(p) * 100.0).round() / 100.0}))
                .collect()
        };
        json!({
            "cpu": series(|p| p.cpu),
            "memory": series(|p| p.memory),
            "disk": series(|p| p.disk),
            "load": series(|p| p.load),
        })
    }
}

/// The CPU's busy and total time since boot (clock ticks), from `/proc/stat`.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    let all: u64 = ticks.iter().take(8).sum();
    // idle and iowait are not busy.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Some((all.saturating_sub(idle), all))
}

/// The memory in use, in percent (what is not available), from `/proc/meminfo`.
fn memory_used() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0.0).then(|| (total - available) * 100.0 / total)
}

/// The disk in use of the filesystem that holds `path`, in percent.
fn disk_used(path: &Path) -> Option<f64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let total = s.blocks() as f64;
    let free = s.blocks_available() as f64;
    (total > 0.0).then(|| (total - free) * 100.0 / total)
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A duration such as `30m`, `1h` or `24h`, in seconds.
pub(crate) fn seconds(text: &str) -> Option<u64> {
    crate::config::duration(text)
        .map(|d| d.as_secs())
        .filter(|s| *s > 0)
}

/// `SchedulerStatusResponse`: the schedulers of the installation.
pub(crate) fn schedulers(home: &Path) -> Result<Value, String> {
    let store = wharf_store::Store::open(home).map_err(|e| e.to_string())?;
    let found = store.services("scheduler").map_err(|e| e.to_string())?;
    Ok(json!({
        "schedulers": found
            .iter()
            .map(|s| json!({
                "instanceId": s.id,
                "host": s.host,
                "status": if s.active { "active" } else { "inactive" },
                "startedAt": crate::rfc3339(s.started_at),
            }))
            .collect::<Vec<_>>()
    }))
}

/// The swarm's nodes as Dagu's workers are shown, or why there are none: the engine's
/// answer within a few seconds.
pub(crate) async fn swarm_nodes(
    client: &wharf_docker::Client,
) -> Result<Vec<wharf_docker::SwarmNode>, String> {
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        wharf_docker::swarm_nodes(client),
    )
    .await;
    match asked {
        Ok(Ok(Some(nodes))) => Ok(nodes),
        Ok(Ok(None)) => Err(
            "The Docker engine is in no swarm, or is not a manager of one: steps run on this \
             machine, and steps with backend: swarm cannot run"
                .into(),
        ),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("The Docker engine did not answer within 5 s".into()),
    }
}

/// `WorkersListResponse`: each node of the swarm as a worker (its labels, its CPUs as
/// its places, wharf's jobs running there), or why there are none.
pub(crate) fn workers(nodes: &Result<Vec<wharf_docker::SwarmNode>, String>) -> Value {
    match nodes {
        Err(why) => json!({"workers": [], "errors": [why]}),
        Ok(nodes) => json!({
            "workers": nodes.iter().map(|n| json!({
                "id": n.hostname,
                "labels": n.labels,
                "totalPollers": n.cpus.map_or(0, |c| c.round() as i64),
                "busyPollers": n.jobs.len(),
                "runningTasks": n.jobs.iter().map(|j| json!({
                    "dagRunId": j.run_id,
                    "dagName": j.dag,
                    "startedAt": j.created_at,
                })).collect::<Vec<_>>(),
                "lastHeartbeatAt": n.updated_at,
                "healthStatus": health(n),
            })).collect::<Vec<_>>(),
        }),
    }
}

/// A node's health in Dagu's words: ready and taking tasks, ready but not taking them
/// (paused, drained), or not ready.
pub(crate) fn health(n: &wharf_docker::SwarmNode) -> &'static str {
    match (n.state.as_str(), n.availability.as_str()) {
        ("ready", "active") => "healthy",
        ("ready", _) => "warning",
        _ => "unhealthy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_read() {
        let (busy, all) = cpu_times().expect("/proc/stat");
        assert!(all > 0 && busy <= all);
        let memory = memory_used().expect("/proc/meminfo");
        assert!((0.0..=100.0).contains(&memory));
        let disk = disk_used(Path::new("/")).expect("statvfs");
        assert!((0.0..=100.0).contains(&disk));
        assert!(load_average().expect("/proc/loadavg") >= 0.0);
    }

    #[test]
    fn old_samples_are_let_go() {
        let samples = Samples {
            points: Mutex::new(VecDeque::new()),
            retention: Duration::from_secs(60),
        };
        let now = wharf_store::now_ms() / 1000;
        for at in [now - 120, now - 30, now] {
            samples.add(Point {
                at,
                cpu: 1.0,
                memory: 2.0,
                disk: 3.0,
                load: 0.5,
            });
        }
        assert_eq!(
            samples.last(3600).len(),
            2,
            "older than the retention: gone"
        );
        assert_eq!(samples.last(10).len(), 1);
        let h = samples.history(3600);
        assert_eq!(h["load"][1]["value"], 0.5);
        assert_eq!(h["cpu"][0]["timestamp"], now - 30);
    }
}
