//! `wharf-init`: the helper wharf copies into a DAG-level container at `/.wharf/init`.
//!
//! It has no dependencies at all (no libc, no shell, no dynamic loader), so it runs in any
//! image of the machine's architecture, `FROM scratch` included. Three commands:
//!
//! - `keepalive`: the container's main process. Waits for signals: reaps orphans (it is
//!   PID 1) and exits on SIGTERM, SIGINT, SIGHUP or SIGQUIT.
//! - `run TOKEN PROGRAM ARGS...`: runs a step. The program runs in a session (and process
//!   group) of its own; signals the helper gets are passed to that group; when the program
//!   exits, what is left of its group is killed and the helper exits with the program's
//!   code (128 + the signal when a signal ended it).
//! - `signal SIGNAL TOKEN`: sends SIGNAL (a number) to the process group of the step that
//!   `run TOKEN` started. Docker has no call to signal an exec; this is wharf's way to stop
//!   a step inside the container without stopping the container.
//!
//! Built by the crate's build script as a static, freestanding executable.

#![no_std]
#![no_main]

use core::arch::naked_asm;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const FORK: usize = 57;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const SETSID: usize = 112;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const GETDENTS64: usize = 217;
    pub const OPENAT: usize = 257;

    #[inline(always)]
    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret,
                in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const CLONE: usize = 220;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
    pub const WAIT4: usize = 260;
    pub const KILL: usize = 129;
    pub const SETSID: usize = 157;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const GETDENTS64: usize = 61;
    pub const OPENAT: usize = 56;

    #[inline(always)]
    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret,
                in("x1") b, in("x2") c, in("x3") d, options(nostack));
        }
        ret
    }
}

const SIGINT: usize = 2;
const SIGQUIT: usize = 3;
const SIGHUP: usize = 1;
const SIGKILL: usize = 9;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;
const WNOHANG: usize = 1;
const AT_FDCWD: isize = -100;
const O_RDONLY_DIRECTORY: usize = 0o200000;
const ENOENT: isize = 2;
const EACCES: isize = 13;
const EINTR: isize = 4;

/// The entry point: the kernel leaves argc, argv and envp on the stack.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
unsafe extern "C" fn _start() -> ! {
    naked_asm!("mov rdi, rsp", "and rsp, -16", "call {main}", "ud2", main = sym start)
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
unsafe extern "C" fn _start() -> ! {
    naked_asm!("mov x0, sp", "bl {main}", "brk #0", main = sym start)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(101)
}

fn exit(code: i32) -> ! {
    unsafe {
        sys::call(sys::EXIT_GROUP, code as usize, 0, 0, 0);
    }
    loop {}
}

fn write_err(parts: &[&[u8]]) {
    for p in parts {
        unsafe {
            sys::call(sys::WRITE, 2, p.as_ptr() as usize, p.len(), 0);
        }
    }
}

/// A NUL-terminated C string as bytes (without the NUL).
unsafe fn cstr<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    unsafe {
        while core::ptr::read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

type SigSet = u64;
const ALL_SIGNALS: SigSet = !0;

fn block(set: SigSet, how: usize) {
    unsafe {
        sys::call(
            sys::RT_SIGPROCMASK,
            how,
            &set as *const SigSet as usize,
            0,
            8,
        );
    }
}

/// Waits for one of the blocked signals; returns its number.
fn wait_signal() -> usize {
    let set: SigSet = ALL_SIGNALS;
    let mut info = [0u64; 16];
    loop {
        let r = unsafe {
            sys::call(
                sys::RT_SIGTIMEDWAIT,
                &set as *const SigSet as usize,
                info.as_mut_ptr() as usize,
                0,
                8,
            )
        };
        if r > 0 {
            return r as usize;
        }
    }
}

unsafe extern "C" fn start(stack: *const usize) -> ! {
    let argc = unsafe { *stack };
    let argv = unsafe { stack.add(1) as *const *const u8 };
    let envp = unsafe { argv.add(argc + 1) };
    let arg = |i: usize| -> &[u8] {
        if i < argc {
            unsafe { cstr(*argv.add(i)) }
        } else {
            b""
        }
    };
    match arg(1) {
        b"keepalive" => keepalive(),
        b"run" if argc >= 4 => run(unsafe { argv.add(3) }, envp),
        b"signal" if argc == 4 => signal(arg(2), arg(3)),
        _ => {
            write_err(&[
                b"usage: init keepalive | run TOKEN PROGRAM [ARGS...] | signal SIGNAL TOKEN\n",
            ]);
            exit(2)
        }
    }
}

fn keepalive() -> ! {
    block(ALL_SIGNALS, 0);
    loop {
        match wait_signal() {
            SIGCHLD => reap(),
            SIGTERM | SIGINT | SIGHUP | SIGQUIT => exit(0),
            _ => {}
        }
    }
}

fn reap() {
    loop {
        let r = unsafe { sys::call(sys::WAIT4, usize::MAX, 0, WNOHANG, 0) };
        if r <= 0 {
            return;
        }
    }
}

fn fork() -> isize {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        sys::call(sys::FORK, 0, 0, 0, 0)
    }
    #[cfg(target_arch = "aarch64")]
    unsafe {
        sys::call(sys::CLONE, SIGCHLD, 0, 0, 0)
    }
}

fn run(argv: *const *const u8, envp: *const *const u8) -> ! {
    // Signals wait in the queue until the helper asks for them: none is lost between the
    // fork and the wait.
    block(ALL_SIGNALS, 0);
    let child = fork();
    if child < 0 {
        write_err(&[b"wharf: cannot start the step's process\n"]);
        exit(126);
    }
    if child == 0 {
        unsafe {
            sys::call(sys::SETSID, 0, 0, 0, 0);
        }
        block(ALL_SIGNALS, 1);
        exec(argv, envp);
    }
    let child = child as usize;
    loop {
        match wait_signal() {
            SIGCHLD => {
                let mut status: i32 = 0;
                let r = unsafe {
                    sys::call(
                        sys::WAIT4,
                        child,
                        &mut status as *mut i32 as usize,
                        WNOHANG,
                        0,
                    )
                };
                if r == child as isize {
                    // What the step left running in its group goes with it.
                    unsafe {
                        sys::call(sys::KILL, child.wrapping_neg(), SIGKILL, 0, 0);
                    }
                    let code = if status & 0x7f == 0 {
                        (status >> 8) & 0xff
                    } else {
                        128 + (status & 0x7f)
                    };
                    exit(code);
                }
            }
            sig => unsafe {
                sys::call(sys::KILL, child.wrapping_neg(), sig, 0, 0);
            },
        }
    }
}

/// Runs the program like `execvp`: a name without `/` is looked up in `PATH`.
fn exec(argv: *const *const u8, envp: *const *const u8) -> ! {
    let program = unsafe { cstr(*argv) };
    let mut buf = [0u8; 4096];
    let mut error = ENOENT;
    if program.contains(&b'/') {
        error = try_exec(program, &mut buf, argv, envp);
    } else {
        let path = env_var(envp, b"PATH").unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
        let mut denied = false;
        for dir in path.split(|c| *c == b':') {
            let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
            if dir.len() + program.len() + 2 > buf.len() {
                continue;
            }
            let mut full = [0u8; 4096];
            full[..dir.len()].copy_from_slice(dir);
            full[dir.len()] = b'/';
            full[dir.len() + 1..dir.len() + 1 + program.len()].copy_from_slice(program);
            let e = try_exec(&full[..dir.len() + 1 + program.len()], &mut buf, argv, envp);
            if e == EACCES {
                denied = true;
            }
        }
        if denied {
            error = EACCES;
        }
    }
    if error == EACCES {
        write_err(&[b"wharf: cannot run ", program, b": permission denied\n"]);
        exit(126);
    }
    write_err(&[b"wharf: ", program, b": command not found\n"]);
    exit(127)
}

/// execve(path); returns the error when it fails.
fn try_exec(
    path: &[u8],
    buf: &mut [u8; 4096],
    argv: *const *const u8,
    envp: *const *const u8,
) -> isize {
    if path.len() >= buf.len() {
        return ENOENT;
    }
    buf[..path.len()].copy_from_slice(path);
    buf[path.len()] = 0;
    let r = unsafe {
        sys::call(
            sys::EXECVE,
            buf.as_ptr() as usize,
            argv as usize,
            envp as usize,
            0,
        )
    };
    -r
}

fn env_var<'a>(envp: *const *const u8, name: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    loop {
        let p = unsafe { *envp.add(i) };
        if p.is_null() {
            return None;
        }
        let entry = unsafe { cstr(p) };
        if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
            return Some(&entry[name.len() + 1..]);
        }
        i += 1;
    }
}

fn parse_number(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    let mut n = 0usize;
    for c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(c - b'0');
    }
    Some(n)
}

/// `signal SIGNAL TOKEN`: the step process of `run TOKEN` is the child of the helper whose
/// command line holds the token; its process group gets the signal.
fn signal(sig: &[u8], token: &[u8]) -> ! {
    let Some(sig) = parse_number(sig).filter(|s| *s > 0 && *s < 65) else {
        write_err(&[b"wharf: not a signal number\n"]);
        exit(2)
    };
    let Some(helper) = find_process(|pid, buf| is_run_helper(pid, token, buf)) else {
        exit(1)
    };
    match find_process(|pid, buf| parent_of(pid, buf) == Some(helper)) {
        Some(child) => unsafe {
            sys::call(sys::KILL, child.wrapping_neg(), sig, 0, 0);
        },
        // The step's process is gone: the helper is about to end what is left.
        None => unsafe {
            sys::call(sys::KILL, helper, sig, 0, 0);
        },
    }
    exit(0)
}

/// The first process in /proc for which `pred` holds.
fn find_process(pred: impl Fn(usize, &mut [u8; 4096]) -> bool) -> Option<usize> {
    let fd = unsafe {
        sys::call(
            sys::OPENAT,
            AT_FDCWD as usize,
            b"/proc\0".as_ptr() as usize,
            O_RDONLY_DIRECTORY,
            0,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut dents = [0u8; 8192];
    let mut buf = [0u8; 4096];
    let mut found = None;
    'outer: loop {
        let n = unsafe {
            sys::call(
                sys::GETDENTS64,
                fd as usize,
                dents.as_mut_ptr() as usize,
                dents.len(),
                0,
            )
        };
        if n == -EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            let reclen = usize::from(u16::from_ne_bytes([dents[off + 16], dents[off + 17]]));
            if reclen == 0 {
                break 'outer;
            }
            let name_start = off + 19;
            let mut end = name_start;
            while end < off + reclen && dents[end] != 0 {
                end += 1;
            }
            if let Some(pid) = parse_number(&dents[name_start..end])
                && pred(pid, &mut buf)
            {
                found = Some(pid);
                break 'outer;
            }
            off += reclen;
        }
    }
    unsafe {
        sys::call(sys::CLOSE, fd as usize, 0, 0, 0);
    }
    found
}

/// Reads /proc/PID/FILE into buf; the number of bytes read.
fn read_proc(pid: usize, file: &[u8], buf: &mut [u8; 4096]) -> usize {
    let mut path = [0u8; 64];
    path[..6].copy_from_slice(b"/proc/");
    let mut len = 6;
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut p = pid;
    loop {
        digits[d] = b'0' + (p % 10) as u8;
        d += 1;
        p /= 10;
        if p == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[len] = digits[d];
        len += 1;
    }
    path[len] = b'/';
    len += 1;
    path[len..len + file.len()].copy_from_slice(file);
    len += file.len();
    path[len] = 0;
    let fd = unsafe { sys::call(sys::OPENAT, AT_FDCWD as usize, path.as_ptr() as usize, 0, 0) };
    if fd < 0 {
        return 0;
    }
    let mut total = 0;
    while total < buf.len() {
        let n = unsafe {
            sys::call(
                sys::READ,
                fd as usize,
                buf[total..].as_mut_ptr() as usize,
                buf.len() - total,
                0,
            )
        };
        if n <= 0 {
            break;
        }
        total += n as usize;
    }
    unsafe {
        sys::call(sys::CLOSE, fd as usize, 0, 0, 0);
    }
    total
}

/// Whether PID's command line is `... run TOKEN ...` (this helper running a step).
fn is_run_helper(pid: usize, token: &[u8], buf: &mut [u8; 4096]) -> bool {
    let n = read_proc(pid, b"cmdline", buf);
    let mut words = buf[..n].split(|c| *c == 0);
    let _program = words.next();
    words.next() == Some(b"run") && words.next() == Some(token)
}

/// The parent of PID, from /proc/PID/stat (the field after the state, after the last `)`).
fn parent_of(pid: usize, buf: &mut [u8; 4096]) -> Option<usize> {
    let n = read_proc(pid, b"stat", buf);
    let stat = &buf[..n];
    let close = stat.iter().rposition(|c| *c == b')')?;
    let mut fields = stat[close + 1..]
        .split(|c| *c == b' ')
        .filter(|f| !f.is_empty());
    let _state = fields.next()?;
    parse_number(fields.next()?)
}

// The compiler may call these for copies and fills; there is no libc to provide them.
// Volatile accesses keep the loops from being turned back into calls to themselves.

#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) < (src as usize) {
        for i in 0..n {
            unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        }
    } else {
        for i in (0..n).rev() {
            unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        }
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        unsafe { core::ptr::write_volatile(dst.add(i), c as u8) };
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// core refers to it; with `panic = "abort"` nothing unwinds, so it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    unsafe { memcmp(a, b, n) }
}
