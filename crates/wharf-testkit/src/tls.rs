//! Certificates for tests of TLS: made by Debian's `openssl` in a folder of the test's.

use std::path::Path;
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; the test fails when it does.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In `dir`: a self-signed CA named `name`, valid a day: its certificate `cert`, its key
/// `key`.
pub fn authority(dir: &Path, key: &str, cert: &str, name: &str) {
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days",
            "1", "-subj", &subject,
        ],
    );
}

/// In `dir`: a CA (`ca.pem`, `ca-key.pem`) and a server certificate for 127.0.0.1 it
/// signed (`server.pem`, `server-key.pem`, the key readable by its owner alone), valid a
/// day.
pub fn server_certificates(dir: &Path) {
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("san");
    authority(dir, "ca-key.pem", "ca.pem", "wharf-test-ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server-key.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("key mode");
}
