//! The small string formats of the dialect: volumes, ports, networks, platforms, cron
//! expressions, signals and variable names. Each parser returns the value or a lowercase
//! fragment saying what is wrong, for the caller to put in a diagnostic.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use crate::model::{Network, Param, Platform, PortMapping, Protocol, Signal, Volume, VolumeSource};

pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A param word: `NAME=value` is named, anything else positional. A `foreach` item's
/// run gets its scope as params named `foreach.NAME` (references, not variables of the
/// steps' processes).
pub fn param_word(word: &str) -> Param {
    let named =
        |name: &str| is_var_name(name) || name.strip_prefix("foreach.").is_some_and(is_var_name);
    match word.split_once('=') {
        Some((name, value)) if named(name) => Param {
            name: Some(name.to_owned()),
            value: value.to_owned(),
        },
        _ => Param {
            name: None,
            value: word.to_owned(),
        },
    }
}

fn is_object_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `source:target[:ro|rw]`.
pub(crate) fn volume(text: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [source, target] => (*source, *target, None),
        [source, target, mode] => (*source, *target, Some(*mode)),
        [_] => return Err("expected source:target[:ro|rw], found no `:`".into()),
        _ => return Err("expected source:target[:ro|rw], found too many `:`".into()),
    };
    if source.is_empty() {
        return Err("the source is empty".into());
    }
    if !target.starts_with('/') {
        return Err(format!(
            "the target `{target}` must be an absolute path in the container"
        ));
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return Err(format!("the mode must be ro or rw, found `{other}`")),
    };
    let source = if source.starts_with('/') || source.starts_with('.') || source.starts_with('~') {
        VolumeSource::Bind(source.to_owned())
    } else if is_object_name(source) {
        VolumeSource::Named(source.to_owned())
    } else {
        return Err(format!(
            "the source `{source}` is neither a path (absolute, or starting with `.` or `~`) nor a volume name"
        ));
    };
    Ok(Volume {
        source,
        target: target.to_owned(),
        read_only,
    })
}

/// `80`, `8080:80`, `127.0.0.1:8080:80`, `[::1]:8080:80`, each with an optional
/// `/tcp`, `/udp` or `/sctp` on the container port.
pub(crate) fn port(text: &str) -> Result<PortMapping, String> {
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Protocol::Tcp),
        Some((rest, "udp")) => (rest, Protocol::Udp),
        Some((rest, "sctp")) => (rest, Protocol::Sctp),
        Some((_, other)) => {
            return Err(format!(
                "the protocol must be tcp, udp or sctp, found `{other}`"
            ));
        }
        None => (text, Protocol::Tcp),
    };
    let (host_ip, rest) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, after) = after
            .split_once("]:")
            .ok_or("an IPv6 address must be followed by `]:`")?;
        (Some(ip), after)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => {
                let (ip, after) = rest.split_once(':').unwrap_or_default();
                (Some(ip), after)
            }
            _ => return Err("expected [ip:]hostPort:containerPort".into()),
        }
    };
    if let Some(ip) = host_ip {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("`{ip}` is not an IP address"))?;
    }
    let number = |s: &str, what: &str| -> Result<u16, String> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!(
                "the {what} port must be a number from 1 to 65535, found `{s}`"
            )),
        }
    };
    let (host_port, container_port) = match rest.split_once(':') {
        Some((host, container)) => (Some(number(host, "host")?), number(container, "container")?),
        None if host_ip.is_some() => return Err("expected ip:hostPort:containerPort".into()),
        None => (None, number(rest, "container")?),
    };
    Ok(PortMapping {
        host_ip: host_ip.map(str::to_owned),
        host_port,
        container_port,
        protocol,
    })
}

pub(crate) fn network(text: &str) -> Result<Network, String> {
    Ok(match text {
        "bridge" => Network::Bridge,
        "host" => Network::Host,
        "none" => Network::None,
        _ => match text.strip_prefix("container:") {
            Some("") => return Err("`container:` needs a container name or id".into()),
            Some(name) if is_object_name(name) => Network::Container(name.to_owned()),
            Some(name) => return Err(format!("`{name}` is not a container name or id")),
            None if is_object_name(text) => Network::Custom(text.to_owned()),
            None => return Err("a network name uses letters, digits, `_`, `.` and `-`".into()),
        },
    })
}

const OSES: &[&str] = &[
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "solaris",
    "illumos",
    "aix",
    "android",
    "ios",
    "dragonfly",
    "plan9",
    "js",
    "wasip1",
];
const ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips", "mipsle",
    "mips64", "mips64le", "loong64", "wasm",
];

/// `os/arch[/variant]`; `x86_64` and `aarch64` are read as `amd64` and `arm64`.
pub(crate) fn platform(text: &str) -> Result<Platform, String> {
    let lower = text.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(*variant)),
        _ => return Err("expected os/arch[/variant]".into()),
    };
    if !OSES.contains(&os) {
        return Err(format!("unknown operating system `{os}`"));
    }
    let arch = match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" => "386",
        other => other,
    };
    if !ARCHES.contains(&arch) {
        return Err(format!("unknown architecture `{arch}`"));
    }
    if let Some(v) = variant {
        let ok = v
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !ok {
            return Err(format!(
                "unknown variant `{v}` (expected v5, v6, v7, v8, ...)"
            ));
        }
    }
    Ok(Platform {
        os: os.to_owned(),
        arch: arch.to_owned(),
        variant: variant.map(str::to_owned),
    })
}

/// A 5-field cron expression (minute hour day-of-month month day-of-week), optionally
/// after `CRON_TZ=Zone ` or `TZ=Zone `, or one of `@yearly`, `@monthly`, `@weekly`,
/// `@daily`, `@midnight`, `@hourly`.
pub(crate) fn cron(text: &str) -> Result<(), String> {
    crate::cron::Cron::parse(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn signal(text: &str) -> Option<Signal> {
    let upper = text.trim().to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return SIGNALS
            .iter()
            .find(|(_, num)| *num == n)
            .map(|(name, number)| Signal {
                number: *number,
                name,
            });
    }
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(name, _)| *name == full)
        .map(|(name, number)| Signal {
            number: *number,
            name,
        })
}

/// `path` against `base`: `~` is the home directory, a relative path is joined to `base`,
/// and `.`/`..` are folded away without touching the file system.
pub fn resolve_path(base: &Path, path: &str) -> PathBuf {
    let joined = if path == "~" || path.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        home.join(path.trim_start_matches('~').trim_start_matches('/'))
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A regex error in one line (the crate's message spans several).
pub(crate) fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_start_matches("error: ").to_owned())
            .unwrap_or_else(|| text.clone()),
        other => other.to_string(),
    }
}

/// Whether a `shell` runs `nix-shell`, which takes a step's `shellPackages`.
/// A `select` path (`.a.b[0]`, `.[1].c`, `.` for the whole value) as its parts; None when
/// it is not one.
pub fn select_path(text: &str) -> Option<Vec<crate::model::PathPart>> {
    use crate::model::PathPart;
    let text = text.trim();
    let rest = text.strip_prefix('.')?;
    let mut parts = Vec::new();
    if rest.is_empty() {
        return Some(parts);
    }
    for segment in rest.split('.') {
        let (field, mut indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !field.is_empty() {
            if !field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            parts.push(PathPart::Field(field.to_owned()));
        } else if indexes.is_empty() {
            return None;
        }
        while !indexes.is_empty() {
            let inner = indexes.strip_prefix('[')?;
            let end = inner.find(']')?;
            parts.push(PathPart::Index(inner[..end].parse().ok()?));
            indexes = &inner[end + 1..];
        }
    }
    Some(parts)
}

/// A Go duration (`500ms`, `30s`, `1m30s`, `1.5h`; units ns, us, ms, s, m, h), as Dagu
/// writes them; None when it is not one or is negative.
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// A YAML text as the JSON value it holds (null when it holds none).
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, String> {
    crate::yaml::load(text)
        .map(|doc| doc.root.map(|n| n.to_json()).unwrap_or_default())
        .map_err(|e| e.message)
}

/// The value at `path` in `value`, if there is one.
pub fn select<'v>(
    value: &'v serde_json::Value,
    path: &[crate::model::PathPart],
) -> Option<&'v serde_json::Value> {
    use crate::model::PathPart;
    path.iter().try_fold(value, |at, part| match part {
        PathPart::Field(f) => at.get(f),
        PathPart::Index(i) => at.get(*i),
    })
}

pub fn is_nix_shell(shell: &[String]) -> bool {
    shell.first().is_some_and(|program| {
        Path::new(program)
            .file_name()
            .is_some_and(|n| n == "nix-shell")
    })
}

/// Whether the slash-separated `path` matches the glob `pattern`: `*` and `?` within one
/// part of the path, `**` across parts, `[abc]`, `[a-z]` and `[!a]` one character.
pub fn glob(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    glob_at(&p, &s)
}

fn glob_at(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            // `**/` also matches no folder at all.
            let rest = &p[2..];
            let rest_after_slash = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=s.len()).any(|i| glob_at(rest, &s[i..]))
                || (rest.first() == Some(&'/') && glob_at(rest_after_slash, s))
        }
        Some('*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &s[i..])),
        Some('?') => s.first().is_some_and(|c| *c != '/') && glob_at(&p[1..], &s[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(2).position(|c| *c == ']').map(|i| i + 2) else {
                return s.first() == Some(&'[') && glob_at(&p[1..], &s[1..]);
            };
            let Some(c) = s.first() else { return false };
            let (negated, class) = match p[1] {
                '!' | '^' => (true, &p[2..close]),
                _ => (false, &p[1..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negated && *c != '/' && glob_at(&p[close + 1..], &s[1..])
        }
        Some(c) => s.first() == Some(c) && glob_at(&p[1..], &s[1..]),
    }
}

/// A `num:` pattern's comparison: `>`, `>=`, `<` or `<=`, and its threshold (a number, or
/// one whole `${...}` reference resolved when it is matched).
#[derive(Debug, Clone, PartialEq)]
pub struct NumericPattern {
    pub op: NumericOp,
    pub threshold: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericOp {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// The text after `num:` read as a comparison; why not, if it is not one.
pub fn numeric_pattern(text: &str) -> Result<NumericPattern, String> {
    let text = text.trim();
    let (op, rest) = if let Some(r) = text.strip_prefix(">=") {
        (NumericOp::GreaterOrEqual, r)
    } else if let Some(r) = text.strip_prefix("<=") {
        (NumericOp::LessOrEqual, r)
    } else if let Some(r) = text.strip_prefix('>') {
        (NumericOp::Greater, r)
    } else if let Some(r) = text.strip_prefix('<') {
        (NumericOp::Less, r)
    } else {
        return Err(format!("`{text}` does not start with >, >=, < or <="));
    };
    let threshold = rest.trim();
    let reference = threshold.starts_with("${")
        && threshold.ends_with('}')
        && threshold.matches("${").count() == 1;
    if !reference && finite_number(threshold).is_none() {
        return Err(format!("`{threshold}` is not a finite number"));
    }
    Ok(NumericPattern {
        op,
        threshold: threshold.to_owned(),
    })
}

/// `text` (trimmed) as a finite number.
pub fn finite_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

impl NumericPattern {
    /// Whether `value` compares as the pattern says with its threshold (the threshold
    /// resolved); an error when the threshold is not a number.
    pub fn holds(&self, value: f64, threshold: &str) -> Result<bool, String> {
        let limit = finite_number(threshold)
            .ok_or_else(|| format!("the threshold `{threshold}` is not a finite number"))?;
        Ok(match self.op {
            NumericOp::Greater => value > limit,
            NumericOp::GreaterOrEqual => value >= limit,
            NumericOp::Less => value < limit,
            NumericOp::LessOrEqual => value <= limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_of_the_seed() {
        assert_eq!(
            volume("./data:/data").map(|v| v.source),
            Ok(VolumeSource::Bind("./data".into()))
        );
        assert_eq!(volume("/data:/data:ro").map(|v| v.read_only), Ok(true));
        assert_eq!(
            volume("cache:/cache:rw").map(|v| v.source),
            Ok(VolumeSource::Named("cache".into()))
        );
        assert!(volume("~/x:/x").is_ok());
        assert!(volume("../x:/x").is_ok());
        for bad in ["/data", "/a:/b:rx", "/a:b", ":/b", "a:b:c:d", "my vol:/x"] {
            assert!(volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_of_the_seed() {
        assert_eq!(
            port("80").map(|p| (p.host_port, p.container_port)),
            Ok((None, 80))
        );
        assert_eq!(
            port("8080:80").map(|p| (p.host_port, p.container_port)),
            Ok((Some(8080), 80))
        );
        let p = port("127.0.0.1:8080:80/udp").expect("port");
        assert_eq!(
            (p.host_ip.as_deref(), p.protocol),
            (Some("127.0.0.1"), Protocol::Udp)
        );
        assert!(port("[::1]:8080:80").is_ok());
        assert!(port("53/sctp").is_ok());
        for bad in [
            "",
            "http",
            "80/icmp",
            "70000",
            "1.2.3.4:80",
            "a:b:c:d",
            "999.1.1.1:80:80",
            "0",
        ] {
            assert!(port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms() {
        assert!(platform("linux/amd64").is_ok());
        assert!(platform("linux/arm/v7").is_ok());
        assert_eq!(platform("linux/x86_64").map(|p| p.arch), Ok("amd64".into()));
        for bad in ["linux", "amd64/linux", "linux/amd64/7", "linux/amd64/v7/x"] {
            assert!(platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_expressions() {
        for ok in [
            "5 4 * * *",
            "*/15 0-6 1,15 jan-mar mon-fri",
            "@daily",
            "CRON_TZ=Asia/Tokyo 0 9 * * 1",
        ] {
            assert!(cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "5-1 * * * *",
            "*/0 * * * *",
            "@sometimes",
        ] {
            assert!(cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal("SIGTERM").map(|s| s.number), Some(15));
        assert_eq!(signal("int").map(|s| s.name), Some("SIGINT"));
        assert_eq!(signal("9").map(|s| s.name), Some("SIGKILL"));
        assert!(signal("SIGNOPE").is_none());
    }

    #[test]
    fn paths_fold_dots() {
        assert_eq!(
            resolve_path(Path::new("/a/b"), "../c/./d"),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(resolve_path(Path::new("/a/b"), "/x"), PathBuf::from("/x"));
    }

    #[test]
    fn globs_match_within_and_across_folders() {
        assert!(glob("*.txt", "a.txt"));
        assert!(!glob("*.txt", "sub/a.txt"));
        assert!(glob("**/*.txt", "sub/deeper/a.txt"));
        assert!(glob("**/*.txt", "a.txt"));
        assert!(glob("sub/?.log", "sub/a.log"));
        assert!(!glob("sub/?.log", "sub/ab.log"));
        assert!(glob("[a-c]*.md", "b-notes.md"));
        assert!(!glob("[!a-c]*.md", "b-notes.md"));
    }
}
