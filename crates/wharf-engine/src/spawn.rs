//! Starting a host step's process, cheaper than std's spawn.
//!
//! std (and tokio over it) starts a process with glibc's `posix_spawn`, whose child, before
//! it execs, looks up and resets the handler of each of the 64 signals: 128 system calls,
//! a third of what a `sh -c true` step costs beyond the shell's own loop
//! (BENCHMARKS.md, "Where a chained local step's time goes"). This module does what that
//! child does with the same primitive (`clone` with `CLONE_VM | CLONE_VFORK`: the child
//! borrows wharf's memory until it execs, nothing is copied) but resets only the signals
//! that can have a handler in wharf: every standard signal wharf does not ignore, and the
//! real-time signals that had one when the first step started (wharf sets none). The
//! child also gets its pidfd from the `clone` itself (`CLONE_PIDFD`), which the wait then
//! uses.
//!
//! Between the `clone` and the `execve` the child shares wharf's memory and runs on a
//! stack of its own: it makes system calls through libc's thin wrappers only (no
//! allocation, no lock), reads what the parent prepared, and reports a failure by writing
//! its errno where the parent, resumed once the child has exec'd or exited, reads it. All
//! signals are blocked around the `clone`, so no handler of wharf's can run in the child
//! before it has reset them.
//!
//! Anything this path does not take (a program given by bare name, which std looks up
//! on the `PATH` it is given; a kernel that refuses `CLONE_PIDFD`) goes through tokio's
//! `Command` as before, with the same result.
#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::libc;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe::Receiver;

/// A process to start: its program, arguments, environment (nothing inherited) and
/// working directory; stdin is `/dev/null`, stdout and stderr pipes, and it leads a new
/// process group.
pub struct Process {
    program: OsString,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: Env,
    dir: PathBuf,
}

/// A process's environment as it is built: each `NAME=value` entry in one buffer, in the
/// order they were set (a step's dozens of variables are not two allocations each, and
/// are copied once more only into the spawn's own buffer). A name set again takes its
/// last value.
#[derive(Default)]
struct Env {
    /// `NAME=value` entries, each ended by a NUL.
    text: Vec<u8>,
    /// Where each entry starts in `text`, and its name's length.
    entries: Vec<(usize, usize)>,
    /// A name or value held a NUL byte (which no environment can carry).
    nul: bool,
}

impl Env {
    fn set(&mut self, key: &[u8], value: &[u8]) {
        if self.entries.capacity() == 0 {
            // Room for a step's usual environment at once, not grown a few bytes at a time.
            self.text.reserve(1024);
            self.entries.reserve(32);
        }
        self.nul |= key.contains(&0) || value.contains(&0);
        self.entries.push((self.text.len(), key.len()));
        self.text.extend_from_slice(key);
        self.text.push(b'=');
        self.text.extend_from_slice(value);
        self.text.push(0);
    }

    fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.nul = false;
    }

    /// Each entry that no later one replaces, in the order they were set: its
    /// `NAME=value` (without the NUL) and its name's length.
    fn kept(&self) -> Vec<(&[u8], usize)> {
        let mut kept: Vec<(&[u8], usize)> = Vec::with_capacity(self.entries.len());
        let mut seen = std::collections::HashSet::new();
        let mut end = self.text.len();
        for &(at, key) in self.entries.iter().rev() {
            let entry = &self.text[at..end - 1];
            end = at;
            let name = &entry[..key];
            // A step's few dozen names are compared directly; many are hashed.
            let replaced = if self.entries.len() <= 64 {
                kept.iter().any(|(e, k)| *k == key && &e[..key] == name)
            } else {
                !seen.insert(name)
            };
            if !replaced {
                kept.push((entry, key));
            }
        }
        kept.reverse();
        kept
    }
}

impl Process {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env: Env::default(),
            dir: PathBuf::from("."),
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// The name the program sees as its own (`argv[0]`); the program's path by default.
    pub fn arg0(&mut self, name: impl AsRef<OsStr>) -> &mut Self {
        self.arg0 = Some(name.as_ref().to_owned());
        self
    }

    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.dir = dir.into();
        self
    }

    pub fn spawn(&self) -> io::Result<Child> {
        if self.program.as_bytes().contains(&b'/') && !CLONE_REFUSED.load(Ordering::Relaxed) {
            match self.spawn_cloned() {
                Err(Refused) => CLONE_REFUSED.store(true, Ordering::Relaxed),
                Ok(started) => return started,
            }
        }
        self.spawn_std()
    }

    fn spawn_std(&self) -> io::Result<Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        if let Some(name) = &self.arg0 {
            cmd.arg0(name);
        }
        if self.env.nul {
            return Err(nul_error());
        }
        cmd.args(&self.args).env_clear();
        for (entry, key) in self.env.kept() {
            cmd.env(
                OsStr::from_bytes(&entry[..key]),
                OsStr::from_bytes(&entry[key + 1..]),
            );
        }
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let pipe = |fd: Option<io::Result<OwnedFd>>| -> io::Result<Option<Receiver>> {
            fd.transpose()?.map(Receiver::from_owned_fd).transpose()
        };
        let stdout = pipe(child.stdout.take().map(|p| p.into_owned_fd()))?;
        let stderr = pipe(child.stderr.take().map(|p| p.into_owned_fd()))?;
        Ok(Child {
            pid: child.id().unwrap_or(0),
            inner: Inner::Std(child),
            stdout,
            stderr,
        })
    }

    /// Ok(the spawn's result), or Refused when the kernel does not take this way of
    /// starting a process (then std's is used from now on).
    fn spawn_cloned(&self) -> Result<io::Result<Child>, Refused> {
        let prepared = match self.prepare() {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let (out_read, out_write) = match pipe() {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let (err_read, err_write) = match pipe() {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let null = match dev_null() {
            Ok(fd) => fd,
            Err(e) => return Ok(Err(e)),
        };
        let pointers = prepared.pointers();
        let mut args = ChildArgs {
            program: prepared.at(prepared.program),
            argv: pointers.as_ptr(),
            // SAFETY: within `pointers`, whose argv part ends with its null.
            envp: unsafe { pointers.as_ptr().add(prepared.argc + 1) },
            dir: prepared.at(prepared.dir),
            fds: [null, out_write.as_raw_fd(), err_write.as_raw_fd()],
            reset: signal_resets(),
            errno: 0,
        };
        let mut stack = STACK
            .take()
            .unwrap_or_else(|| Box::new_uninit_slice(CHILD_STACK));
        let mut pidfd: libc::c_int = -1;
        // SAFETY: the child runs `child` on `stack`, which outlives it (the parent is
        // suspended until the child execs or exits: CLONE_VFORK), reading `args`, the
        // pointers and the strings they point to, all alive until then. All signals are
        // blocked around the clone so that no handler runs in the child before it resets
        // them; the parent's mask is put back right after.
        let (pid, clone_errno) = unsafe {
            let top = (stack.as_mut_ptr().add(CHILD_STACK) as usize & !15) as *mut libc::c_void;
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                (&raw mut args).cast::<libc::c_void>(),
                &raw mut pidfd,
            );
            let clone_errno = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            (pid, clone_errno)
        };
        STACK.set(Some(stack));
        drop((out_write, err_write));
        if pid < 0 {
            return match clone_errno.raw_os_error() {
                Some(libc::EINVAL | libc::ENOSYS | libc::EPERM) => Err(Refused),
                _ => Ok(Err(clone_errno)),
            };
        }
        // SAFETY: clone succeeded with CLONE_PIDFD: `pidfd` is a descriptor now ours.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        // SAFETY: the child has exec'd or exited (CLONE_VFORK); a read of what it wrote.
        let errno = unsafe { std::ptr::read_volatile(&raw const args.errno) };
        if errno != 0 {
            // It exited without exec'ing: collect it and say why.
            let mut status = 0;
            // SAFETY: waiting for our own child, by pid.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Ok(Err(io::Error::from_raw_os_error(errno)));
        }
        let started = (|| {
            // SAFETY: the AsyncFd owns the pidfd, open until it is dropped.
            let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
            Ok(Child {
                pid: pid.cast_unsigned(),
                inner: Inner::Cloned {
                    pidfd,
                    status: None,
                },
                stdout: Some(receiver(out_read)?),
                stderr: Some(receiver(err_read)?),
            })
        })();
        if started.is_err() {
            reap_in_background(pid);
        }
        Ok(started)
    }

    /// Every string the child needs, NUL-terminated in one buffer.
    fn prepare(&self) -> io::Result<Prepared> {
        if self.env.nul {
            return Err(nul_error());
        }
        let arg0 = self.arg0.as_deref().unwrap_or(&self.program);
        let argv = std::iter::once(arg0).chain(self.args.iter().map(OsString::as_os_str));
        let size = self.program.len()
            + self.dir.as_os_str().len()
            + argv.clone().map(|a| a.len() + 1).sum::<usize>()
            + self.env.text.len()
            + 2;
        let mut text = Vec::with_capacity(size);
        let mut put = |part: &[u8]| -> io::Result<usize> {
            if part.contains(&0) {
                return Err(nul_error());
            }
            let at = text.len();
            text.extend_from_slice(part);
            text.push(0);
            Ok(at)
        };
        let program = put(self.program.as_bytes())?;
        let dir = put(self.dir.as_os_str().as_bytes())?;
        let mut strings = Vec::with_capacity(self.args.len() + 1 + self.env.entries.len());
        for a in argv {
            strings.push(put(a.as_bytes())?);
        }
        // The entries hold no NUL (checked as they were set).
        for (entry, _) in self.env.kept() {
            strings.push(text.len());
            text.extend_from_slice(entry);
            text.push(0);
        }
        Ok(Prepared {
            text,
            program,
            dir,
            argc: self.args.len() + 1,
            strings,
        })
    }
}

impl crate::vars::EnvCommand for Process {
    fn clear_env(&mut self) {
        self.env.clear();
    }
    fn set_env(&mut self, key: &OsStr, value: &OsStr) {
        self.env.set(key.as_bytes(), value.as_bytes());
    }
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "nul byte found in provided data",
    )
}

/// A started process: its output pipes and its end.
pub struct Child {
    pid: u32,
    inner: Inner,
    pub stdout: Option<Receiver>,
    pub stderr: Option<Receiver>,
}

enum Inner {
    Cloned {
        pidfd: AsyncFd<OwnedFd>,
        status: Option<ExitStatus>,
    },
    Std(tokio::process::Child),
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to end (once ended, its status again at each call).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let pid = self.pid.cast_signed();
        match &mut self.inner {
            Inner::Std(child) => child.wait().await,
            Inner::Cloned {
                status: Some(s), ..
            } => Ok(*s),
            Inner::Cloned { pidfd, status } => loop {
                let mut ready = pidfd.readable().await?;
                let mut raw = 0;
                // SAFETY: our own child, not yet collected: its pid cannot have been
                // reused (we hold its pidfd and have not waited for it).
                match unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) } {
                    0 => ready.clear_ready(),
                    p if p == pid => {
                        let s = ExitStatus::from_raw(raw);
                        *status = Some(s);
                        return Ok(s);
                    }
                    _ => return Err(io::Error::last_os_error()),
                }
            },
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Given up before its end (the run's task dropped): nothing of the step outlives
        // it, and no zombie stays behind.
        let pid = self.pid.cast_signed();
        let kill = || {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        match &mut self.inner {
            Inner::Cloned { status: None, .. } => {
                kill();
                reap_in_background(pid);
            }
            // tokio collects it once it has ended.
            Inner::Std(child) => {
                if matches!(child.try_wait(), Ok(None)) {
                    kill();
                }
            }
            Inner::Cloned { .. } => {}
        }
    }
}

fn reap_in_background(pid: libc::pid_t) {
    std::thread::spawn(move || {
        let mut raw = 0;
        // SAFETY: our own child, collected by nobody else.
        unsafe { libc::waitpid(pid, &mut raw, 0) };
    });
}

const CHILD_STACK: usize = 64 * 1024;

thread_local! {
    /// The child's stack, made once per thread: a thread is suspended while its child
    /// runs on it (`CLONE_VFORK`), so one serves all its spawns.
    static STACK: std::cell::Cell<Option<Box<[std::mem::MaybeUninit<u8>]>>> =
        const { std::cell::Cell::new(None) };
}

static CLONE_REFUSED: AtomicBool = AtomicBool::new(false);

struct Refused;

/// What [`Process::prepare`] made: the strings, and where each starts in `text`.
struct Prepared {
    text: Vec<u8>,
    program: usize,
    dir: usize,
    /// argv's strings, then envp's.
    strings: Vec<usize>,
    argc: usize,
}

impl Prepared {
    fn at(&self, offset: usize) -> *const libc::c_char {
        self.text[offset..].as_ptr().cast()
    }

    /// argv's pointers and a null, then envp's and a null: what `execve` takes.
    fn pointers(&self) -> Vec<*const libc::c_char> {
        let (argv, env) = self.strings.split_at(self.argc);
        let mut all = Vec::with_capacity(self.strings.len() + 2);
        all.extend(argv.iter().map(|&o| self.at(o)));
        all.push(std::ptr::null());
        all.extend(env.iter().map(|&o| self.at(o)));
        all.push(std::ptr::null());
        all
    }
}

/// What the child reads (and, on a failure, writes: `errno`).
#[repr(C)]
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    dir: *const libc::c_char,
    fds: [RawFd; 3],
    reset: u64,
    errno: libc::c_int,
}

/// The child, between `clone` and `execve`: async-signal-safe system calls only.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive while the parent is suspended.
    unsafe {
        let a = &mut *arg.cast::<ChildArgs>();
        let fail = |a: &mut ChildArgs| -> ! {
            std::ptr::write_volatile(&raw mut a.errno, *libc::__errno_location());
            libc::_exit(127)
        };
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for sig in 1..64 {
            if a.reset & (1u64 << sig) != 0 {
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(a);
        }
        for (target, fd) in (0..).zip(a.fds) {
            if libc::dup2(fd, target) < 0 {
                fail(a);
            }
        }
        if libc::chdir(a.dir) != 0 {
            fail(a);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(a.program, a.argv, a.envp);
        fail(a)
    }
}

/// The signals the child sets back to their default action: the standard ones wharf
/// does not ignore (SIGPIPE always, as std does), and the real-time ones that had a
/// handler when the first process was started.
fn signal_resets() -> u64 {
    static RESETS: OnceLock<u64> = OnceLock::new();
    *RESETS.get_or_init(|| {
        let mut resets = 0u64;
        for sig in 1..64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..libc::SIGRTMIN()).contains(&sig)
            {
                continue;
            }
            // SAFETY: a query of the signal's current action.
            let action = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old.sa_sigaction
            };
            let standard = sig < 32;
            let reset = if sig == libc::SIGPIPE {
                true
            } else if standard {
                action != libc::SIG_IGN
            } else {
                action != libc::SIG_IGN && action != libc::SIG_DFL
            };
            if reset {
                resets |= 1u64 << sig;
            }
        }
        resets
    })
}

/// A pipe: its read end non-blocking for wharf, its write end for the child (both closed
/// on exec; the child's copy on fd 1 or 2 is not), neither on fds 0-2.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors, ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (read, write) = (above_stdio(read)?, above_stdio(write)?);
    // SAFETY: a flag change on our own descriptor.
    if unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((read, write))
}

/// `fd`, moved above 0-2 when it is one of them (wharf started with one closed): the
/// child's `dup2` onto 0-2 must never take a descriptor it still has to copy.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: a copy of our own descriptor, closed on exec.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: new, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// `/dev/null`, opened once (read-only, closed on exec) for every child's stdin.
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let file = std::fs::File::open("/dev/null")?;
    let fd = above_stdio(OwnedFd::from(file))?;
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

fn receiver(fd: OwnedFd) -> io::Result<Receiver> {
    // The read end is a pipe's, already non-blocking.
    Receiver::from_owned_fd_unchecked(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn output(child: &mut Child) -> (String, String, ExitStatus) {
        let (mut out, mut err) = (String::new(), String::new());
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        let status = child.wait().await.unwrap();
        (out, err, status)
    }

    /// What the process wrote to stdout, its lines sorted; it must succeed.
    async fn sorted_lines(p: &mut Process) -> Vec<String> {
        let (out, _, status) = output(&mut p.spawn().unwrap()).await;
        assert!(status.success());
        let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
        lines.sort_unstable();
        lines
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_process_gets_its_arguments_environment_folder_and_group() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let mut p = Process::new("/bin/sh");
            p.arg0("named")
                .args(["-c", "echo \"$(tr '\\0' '\\n' < /proc/$$/cmdline | head -1) $0 [$X] [$HOME] $(pwd) $$ $(ps -o pgid= -p $$)\"; cat; echo oops >&2; exit 7", "one"])
                .current_dir(dir.path());
            crate::vars::EnvCommand::set_env(&mut p, OsStr::new("X"), OsStr::new("a b"));
            crate::vars::EnvCommand::set_env(&mut p, OsStr::new("PATH"), OsStr::new("/usr/bin:/bin"));
            let mut child = p.spawn().unwrap();
            let pid = child.id();
            let (out, err, status) = output(&mut child).await;
            let fields: Vec<&str> = out.split_whitespace().collect();
            assert_eq!(fields[..4], ["named", "one", "[a", "b]"], "{out}");
            assert_eq!(fields[4], "[]", "nothing of wharf's environment is passed: {out}");
            assert_eq!(
                std::path::Path::new(fields[5]).canonicalize().unwrap(),
                dir.path().canonicalize().unwrap()
            );
            assert_eq!(fields[6], pid.to_string());
            assert_eq!(fields[7], pid.to_string(), "the process leads its own group");
            assert_eq!(err, "oops\n");
            assert_eq!(status.code(), Some(7));
            // The status is kept for a second look.
            assert_eq!(child.wait().await.unwrap().code(), Some(7));
        });
    }

    #[test]
    fn what_cannot_start_says_why() {
        runtime().block_on(async {
            let missing = Process::new("/nonexistent/program").spawn().err().unwrap();
            assert_eq!(missing.kind(), io::ErrorKind::NotFound);
            let mut p = Process::new("/bin/true");
            p.current_dir("/nonexistent/folder");
            assert_eq!(p.spawn().err().unwrap().kind(), io::ErrorKind::NotFound);
            let not_executable = tempfile::NamedTempFile::new().unwrap();
            let denied = Process::new(not_executable.path()).spawn().err().unwrap();
            assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
            let mut p = Process::new("/bin/true");
            p.arg("a\0b");
            assert_eq!(p.spawn().err().unwrap().kind(), io::ErrorKind::InvalidInput);
            let mut p = Process::new("/bin/true");
            crate::vars::EnvCommand::set_env(&mut p, OsStr::new("X"), OsStr::new("a\0b"));
            assert_eq!(p.spawn().err().unwrap().kind(), io::ErrorKind::InvalidInput);
        });
    }

    #[test]
    fn every_variable_arrives_and_none_when_none_is_set() {
        runtime().block_on(async {
            let mut p = Process::new("/usr/bin/env");
            for i in 0..40 {
                let value = format!("{}{i}", "v".repeat(i * 7));
                crate::vars::EnvCommand::set_env(
                    &mut p,
                    OsStr::new(&format!("V{i}")),
                    value.as_ref(),
                );
            }
            // A later value of the same name replaces the earlier one.
            crate::vars::EnvCommand::set_env(&mut p, OsStr::new("V3"), OsStr::new("=last="));
            let got = sorted_lines(&mut p).await;
            let mut want: Vec<String> = (0..40)
                .map(|i| match i {
                    3 => "V3==last=".to_owned(),
                    _ => format!("V{i}={}{i}", "v".repeat(i * 7)),
                })
                .collect();
            want.sort_unstable();
            assert_eq!(got, want);

            let (out, _, status) = output(&mut Process::new("/usr/bin/env").spawn().unwrap()).await;
            assert!(status.success());
            assert_eq!(out, "", "no variable at all");

            // Many names, each set three times: the last value of each, once.
            let mut p = Process::new("/usr/bin/env");
            for round in 0..3 {
                for i in 0..100 {
                    crate::vars::EnvCommand::set_env(
                        &mut p,
                        OsStr::new(&format!("N{i}")),
                        OsStr::new(&format!("{round}")),
                    );
                }
            }
            crate::vars::EnvCommand::set_env(&mut p, OsStr::new("N7"), OsStr::new(""));
            let got = sorted_lines(&mut p).await;
            let mut want: Vec<String> = (0..100)
                .map(|i| {
                    if i == 7 {
                        "N7=".to_owned()
                    } else {
                        format!("N{i}=2")
                    }
                })
                .collect();
            want.sort_unstable();
            assert_eq!(got, want);
        });
    }

    #[test]
    fn a_signal_ends_it_with_that_signal() {
        runtime().block_on(async {
            let mut p = Process::new("/bin/sh");
            p.args(["-c", "kill -TERM $$; sleep 5"]);
            let mut child = p.spawn().unwrap();
            let (_, _, status) = output(&mut child).await;
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        });
    }

    #[test]
    fn sigpipe_is_back_to_its_default_and_a_dropped_child_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        runtime().block_on(async {
            let mut p = Process::new("/bin/sh");
            // SIGPIPE is ignored in wharf (as in every Rust program): the step gets it back.
            p.args([
                "-c",
                &format!(
                    "grep -q '^SigIgn:.*[1-9a-f]000$' /proc/self/status && echo ignored; sleep 30 & echo $$ $! > {}; wait",
                    pids.display()
                ),
            ]);
            let mut child = p.spawn().unwrap();
            let mut out = child.stdout.take().unwrap();
            let mut line = String::new();
            while !pids.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            drop(child);
            out.read_to_string(&mut line).await.unwrap();
            assert_eq!(line, "", "SIGPIPE is back to its default in the child");
        });
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.split_whitespace() {
            let gone = (0..200).any(|_| {
                let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                    && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z "));
                if alive {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                !alive
            });
            assert!(
                gone,
                "process {pid} of the dropped child's group is still there"
            );
        }
    }
}
