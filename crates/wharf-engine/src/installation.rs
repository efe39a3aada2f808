//! What an installation sets for all its DAGs, whichever command runs them: the DAGs
//! folder, the base configuration, the global queues, the default shell and the time zone
//! of schedules.
//!
//! Each setting comes from wharf's environment variable (`WHARF_*`), else Dagu's
//! (`DAGU_*`), else wharf's `$WHARF_HOME/config.yaml`, else a Dagu installation's
//! `$DAGU_HOME/config.yaml`, else its default.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// A global queue of the configuration: at most `max_concurrency` runs of the DAGs that
/// name it (`queue: NAME`) run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalQueue {
    pub name: String,
    pub max_concurrency: u32,
}

/// The settings of an installation.
#[derive(Debug, Clone, Default)]
pub struct Installation {
    /// Where DAGs are found by name.
    pub dags: PathBuf,
    /// The DAG fields every DAG inherits (`base.yaml`), when there is one.
    pub base_config: Option<PathBuf>,
    /// The global queues (`queues.config`); none when `queues.enabled` is false.
    pub queues: Vec<GlobalQueue>,
    /// The shell of steps whose DAG and step name none (`defaultShell`).
    pub default_shell: Option<String>,
    /// The zone of schedules that name none (`tz`).
    pub tz: Option<String>,
    /// Where the containers of docker steps whose step and DAG name no `backend` run
    /// (`docker.backend`: `local` or `swarm`).
    pub docker_backend: Option<wharf_spec::Backend>,
    /// The dialect of every DAG file (`dialect`: `1` or `2`); by default each file's keys
    /// say.
    pub dialect: Option<wharf_spec::Dialect>,
}

/// The config files of an installation: wharf's own, then Dagu's.
struct Files {
    own: wharf_spec::ForeignSettings,
    dagu: wharf_spec::ForeignSettings,
    dagu_home: Option<PathBuf>,
}

impl Files {
    fn read(home: &Path) -> Result<Self, String> {
        let read = |file: PathBuf| -> Result<wharf_spec::ForeignSettings, String> {
            match std::fs::read_to_string(&file) {
                Ok(text) => wharf_spec::flat_settings_with_lists(&text)
                    .map_err(|e| format!("{}: {e}", file.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
                Err(e) => Err(format!("cannot read {}: {e}", file.display())),
            }
        };
        let dagu_home = var("DAGU_HOME").map(PathBuf::from);
        Ok(Self {
            own: read(home.join("config.yaml"))?,
            dagu: match &dagu_home {
                Some(h) => read(h.join("config.yaml"))?,
                None => Default::default(),
            },
            dagu_home,
        })
    }

    /// A setting by wharf's variable name (`WHARF_X`, also read as `DAGU_X`) and its keys
    /// in the files (wharf's key, then Dagu's spellings).
    fn get(&self, env: &str, own_key: &str, dagu_keys: &[&str]) -> Option<String> {
        let find = |s: &wharf_spec::ForeignSettings, k: &str| {
            s.values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        var(env)
            .or_else(|| var(&env.replacen("WHARF_", "DAGU_", 1)))
            .or_else(|| find(&self.own, own_key))
            .or_else(|| dagu_keys.iter().find_map(|k| find(&self.dagu, k)))
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Installation {
    /// Reads the settings of the installation whose wharf home is `home`. A config file
    /// that cannot be read, or a setting that is not what its key takes, is an error.
    pub fn read(home: &Path) -> Result<Self, String> {
        let files = Files::read(home)?;
        let dags = files.dags(home);
        let existing = |p: PathBuf| p.is_file().then_some(p);
        let base_config = files
            .get(
                "WHARF_BASE_CONFIG",
                "baseConfig",
                &["paths.baseConfig", "baseConfig"],
            )
            .map(PathBuf::from)
            .or_else(|| existing(home.join("base.yaml")))
            .or_else(|| {
                files
                    .dagu_home
                    .as_ref()
                    .and_then(|h| existing(h.join("base.yaml")))
            });
        let enabled = files
            .get("WHARF_QUEUE_ENABLED", "queues.enabled", &["queues.enabled"])
            .is_none_or(|v| !matches!(v.as_str(), "false" | "no" | "off" | "0"));
        let mut queues = Vec::new();
        if enabled {
            // wharf's own list wins over Dagu's for a name both have.
            for settings in [&files.own, &files.dagu] {
                for (_, rows) in settings.tables.iter().filter(|(k, _)| k == "queues.config") {
                    for row in rows {
                        let get = |k: &str| row.iter().find(|(key, _)| key == k).map(|(_, v)| v);
                        let Some(name) = get("name").filter(|n| !n.trim().is_empty()) else {
                            return Err("a queue of `queues.config` has no `name`".into());
                        };
                        // `maxActiveRuns` is the name Dagu had before 1.22.
                        let size = get("maxConcurrency").or_else(|| get("maxActiveRuns"));
                        let max_concurrency = match size.map(|s| s.trim().parse::<u32>()) {
                            Some(Ok(n)) if n > 0 => n,
                            None => 1,
                            Some(_) => {
                                return Err(format!(
                                    "queue `{name}`: `maxConcurrency` must be a whole number of at least 1"
                                ));
                            }
                        };
                        if !queues.iter().any(|q: &GlobalQueue| q.name == *name) {
                            queues.push(GlobalQueue {
                                name: name.trim().to_owned(),
                                max_concurrency,
                            });
                        }
                    }
                }
            }
        }
        let tz = files.get("WHARF_TZ", "tz", &["tz"]);
        let docker_backend = match files
            .get("WHARF_DOCKER_BACKEND", "docker.backend", &[])
            .as_deref()
        {
            None => None,
            Some("local") => Some(wharf_spec::Backend::Local),
            Some("swarm") => Some(wharf_spec::Backend::Swarm),
            Some(other) => {
                return Err(format!(
                    "the setting `docker.backend` is `local` or `swarm`, not `{other}`"
                ));
            }
        };
        let dialect = match files.get("WHARF_DIALECT", "dialect", &[]).as_deref() {
            None => None,
            Some("1" | "1.x") => Some(wharf_spec::Dialect::V1),
            Some("2" | "2.x") => Some(wharf_spec::Dialect::V2),
            Some(other) => {
                return Err(format!(
                    "the setting `dialect` is `1` or `2`, not `{other}`"
                ));
            }
        };
        Ok(Self {
            dialect,
            dags,
            base_config,
            queues,
            default_shell: files.get("WHARF_DEFAULT_SHELL", "defaultShell", &["defaultShell"]),
            tz,
            docker_backend,
        })
    }

    /// Makes these settings the ones of this process: its DAGs inherit the base
    /// configuration, its steps get the default shell, its schedules the zone.
    pub fn install(&self) -> Result<(), String> {
        wharf_spec::cron::set_default_zone(self.tz.clone())
            .map_err(|e| format!("the setting `tz`: {e}"))?;
        wharf_spec::set_base_config(self.base_config.clone());
        wharf_spec::set_default_backend(self.docker_backend);
        wharf_spec::set_dialect(self.dialect);
        *DEFAULT_SHELL
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.default_shell.clone();
        *QUEUES
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.queues.clone();
        *DAGS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(self.dags.clone());
        Ok(())
    }
}

static DEFAULT_SHELL: RwLock<Option<String>> = RwLock::new(None);
static QUEUES: RwLock<Vec<GlobalQueue>> = RwLock::new(Vec::new());
/// The installed DAGs folder (read once, not at each `call` step).
static DAGS: RwLock<Option<PathBuf>> = RwLock::new(None);

/// The installation's default shell, when it sets one.
pub(crate) fn default_shell() -> Option<String> {
    DEFAULT_SHELL
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The global queues of this process's installation.
pub fn global_queues() -> Vec<GlobalQueue> {
    QUEUES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The queue a run of `dag` waits in and its size: a global queue of the installation
/// that the DAG names (its `maxConcurrency`), else the DAG's own queue (named after it,
/// or as its `queue:` says, of `maxActiveRuns`, 1 by default). None when the DAG has
/// neither `queue` nor `maxActiveRuns` (its runs never wait), or `maxActiveRuns` is
/// negative (queueing turned off).
pub fn queue_place(dag: &wharf_spec::Dag) -> Option<(String, u32)> {
    let global = QUEUES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|q| dag.queue.as_deref() == Some(q.name.as_str()))
        .cloned();
    match global {
        Some(q) => Some((q.name, q.max_concurrency)),
        None => dag.queue_place(),
    }
}

/// The size of the queue the recorded `run` waits in: the global queue of that name's
/// `maxConcurrency`, else (its DAG's own queue, or another it was enqueued to) its DAG's
/// `maxActiveRuns`, 1 by default.
pub fn queue_size_of(run: &wharf_store::RunRecord) -> Option<u32> {
    let mut dag = wharf_spec::load_file(&run.file).ok()?.dag?;
    dag.queue = Some(run.queue.clone()?);
    queue_place(&dag).map(|(_, n)| n)
}

/// Where a run of `dag` keeps its logs (the base folder of `logDir`, when the DAG sets
/// one) and the queue it takes a place in ([`queue_place`]).
pub fn placement(dag: &wharf_spec::Dag) -> (Option<PathBuf>, Option<(String, u32)>) {
    let log_base = dag
        .log_dir
        .as_ref()
        .map(|d| wharf_spec::formats::resolve_path(&dag.working_dir, d));
    (log_base, queue_place(dag))
}

/// The DAG files of a folder (`*.yaml`, `*.yml`) by their file name (the stem), sorted by
/// it regardless of case.
pub fn dag_files(folder: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let ext = path.extension()?.to_str()?;
            if !matches!(ext, "yaml" | "yml") || !path.is_file() {
                return None;
            }
            Some((path.file_stem()?.to_str()?.to_owned(), path))
        })
        .collect();
    files.sort_by_key(|(n, _)| n.to_lowercase());
    files
}

/// The DAGs folder, where DAGs are found by name: `$WHARF_DAGS` (or Dagu's `$DAGU_DAGS`,
/// `$DAGU_DAGS_DIR`), else the config files' (`dags`; Dagu's `paths.dagsDir`), else
/// `dags` of a Dagu installation (`$DAGU_HOME`), else `dags` in wharf's home `home`. Once
/// an installation is installed ([`Installation::install`]), its folder.
pub fn dags_dir(home: &Path) -> PathBuf {
    if let Some(dags) = DAGS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    {
        return dags;
    }
    match Files::read(home) {
        Ok(files) => files.dags(home),
        Err(_) => Files {
            own: Default::default(),
            dagu: Default::default(),
            dagu_home: var("DAGU_HOME").map(PathBuf::from),
        }
        .dags(home),
    }
}

impl Files {
    fn dags(&self, home: &Path) -> PathBuf {
        var("DAGU_DAGS_DIR")
            .filter(|_| var("WHARF_DAGS").is_none())
            .or_else(|| self.get("WHARF_DAGS", "dags", &["paths.dagsDir", "dagsDir", "dags"]))
            .map(PathBuf::from)
            .or_else(|| self.dagu_home.as_ref().map(|h| h.join("dags")))
            .unwrap_or_else(|| home.join("dags"))
    }
}
