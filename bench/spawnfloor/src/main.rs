//! `spawnfloor N`: N times `sh -c true`, each spawned in its own process group with its
//! output piped and read to the end, then waited for, on a one-thread tokio runtime.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for _ in 0..n {
            let mut child = tokio::process::Command::new("/bin/sh")
                .args(["-c", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .expect("spawn sh");
            let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
            let drain = async {
                let mut buf = Vec::new();
                if let Some(o) = out.as_mut() {
                    let _ = o.read_to_end(&mut buf).await;
                }
                if let Some(e) = err.as_mut() {
                    let _ = e.read_to_end(&mut buf).await;
                }
            };
            let (_, status) = tokio::join!(drain, child.wait());
            assert!(status.expect("wait").success());
        }
    });
}
