//! The real Docker daemon in tests: names no other test uses, with a guard that removes
//! their containers, the test images, and registries of the tests' own.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A DAG name no other test uses, and the removal of every container that carries it
/// (also when the test fails).
pub struct Unique {
    pub name: String,
}

impl Unique {
    pub fn new(what: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Self {
            name: format!("dk-{what}-{}-{n}", std::process::id()),
        }
    }

    /// Starts `NAME-suffix`, a container of the user's that sleeps (for steps to exec
    /// into), and returns its name. It carries the DAG's label only so that the guard
    /// removes it.
    pub fn user_container(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.name);
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &format!("wharf.dag={}", self.name),
            "wharf-test/base:latest",
            "sleep",
            "600",
        ]);
        name
    }

    /// Containers (running or not) of this DAG.
    pub fn containers(&self) -> Vec<String> {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=wharf.dag={}", self.name),
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }
}

impl Drop for Unique {
    fn drop(&mut self) {
        let owned = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={OWNER}={}", self.name),
        ]);
        for id in self
            .containers()
            .iter()
            .map(String::as_str)
            .chain(owned.lines())
        {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
    }
}

/// The label that marks containers a test starts itself (not through wharf), so that the
/// test's guard removes them even when it fails.
pub const OWNER: &str = "wharf-test.owner";

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI (for test set-up)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn images_are_built() {
    let out = docker(&[
        "image",
        "inspect",
        "--format",
        "ok",
        "wharf-test/base:latest",
        "wharf-test/dispatcher:latest",
    ]);
    assert!(
        out.lines().count() == 2,
        "run scripts/test-images first (scripts/test does)"
    );
}

pub fn b64(text: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A registry of the test's own (Debian's docker-registry) on a free loopback port, with
/// its storage in a temporary folder; with `password`, it takes only that user.
pub struct Registry {
    child: std::process::Child,
    pub addr: String,
    dir: tempfile::TempDir,
    pushed: Vec<String>,
    password: Option<String>,
}

impl Registry {
    pub fn start(password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let auth = match password {
            Some(pw) => {
                let htpasswd = dir.path().join("htpasswd");
                let status = Command::new("htpasswd")
                    .args(["-Bbc"])
                    .arg(&htpasswd)
                    .args(["tester", pw])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(status.status.success(), "htpasswd failed");
                format!(
                    "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            dir,
            pushed: Vec::new(),
            password: password.map(str::to_owned),
        }
    }

    /// Pushes a local image under `name` and removes the local tag again.
    pub fn push(&mut self, local: &str, name: &str) -> String {
        let reference = format!("{}/{name}", self.addr);
        docker(&["tag", local, &reference]);
        // The push logs in through a Docker config of its own (user `tester`).
        let config = self.dir.path().join("push-config");
        if let Some(pw) = &self.password {
            std::fs::create_dir_all(&config).expect("mkdir");
            let auth = b64(&format!("tester:{pw}"));
            std::fs::write(
                config.join("config.json"),
                format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, self.addr),
            )
            .expect("push config");
        }
        let out = Command::new("docker")
            .arg("--config")
            .arg(&config)
            .args(["push", &reference])
            .output()
            .expect("docker push");
        assert!(
            out.status.success(),
            "push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        docker(&["image", "rm", &reference]);
        self.pushed.push(reference.clone());
        reference
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for image in &self.pushed {
            let _ = docker(&["image", "rm", "-f", image]);
        }
    }
}
