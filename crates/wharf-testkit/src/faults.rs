//! Faults for tests to inject: a Docker daemon that stalls or goes away (a proxy in front of
//! the real socket) and a full disk (a tiny tmpfs).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A proxy in front of the Docker daemon's socket that a test can stall (bytes are held,
/// nothing answers), resume, and cut (every connection closed, new ones refused).
pub struct DockerProxy {
    pub socket: PathBuf,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    stalled: Mutex<bool>,
    resumed: Condvar,
    refusing: AtomicBool,
    closed: AtomicBool,
    connections: Mutex<Vec<UnixStream>>,
}

fn upstream_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

impl DockerProxy {
    pub fn start(dir: &Path) -> Self {
        let socket = dir.join("docker-proxy.sock");
        let listener = UnixListener::bind(&socket).expect("bind the proxy");
        let state = Arc::new(ProxyState::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if shared.refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = UnixStream::connect(upstream_socket()) else {
                    continue;
                };
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone())
                    && let Ok(mut all) = shared.connections.lock()
                {
                    all.push(c);
                    all.push(s);
                }
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (Ok(server), Ok(client)),
                ] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let state = Arc::clone(&shared);
                        std::thread::spawn(move || relay(from, to, &state));
                    }
                }
            }
        });
        Self { socket, state }
    }

    /// `DOCKER_HOST` for wharf to go through the proxy.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn stall(&self) {
        if let Ok(mut s) = self.state.stalled.lock() {
            *s = true;
        }
    }

    pub fn resume(&self) {
        if let Ok(mut s) = self.state.stalled.lock() {
            *s = false;
            self.state.resumed.notify_all();
        }
    }

    /// Closes every connection and refuses new ones: the daemon is gone.
    pub fn cut(&self) {
        self.state.refusing.store(true, Ordering::SeqCst);
        if let Ok(mut all) = self.state.connections.lock() {
            for c in all.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        self.resume();
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accepting thread so that it sees `closed`.
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn relay(mut from: UnixStream, mut to: UnixStream, state: &ProxyState) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // While stalled, what was read is held: the other side hears nothing.
        if let Ok(mut stalled) = state.stalled.lock() {
            while *stalled {
                stalled = match state.resumed.wait(stalled) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A tmpfs of `size` mounted at a new folder, unmounted on drop.
pub struct TinyFs {
    pub path: PathBuf,
}

impl TinyFs {
    pub fn mount(path: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs (the tests run as root)");
        Self { path }
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
