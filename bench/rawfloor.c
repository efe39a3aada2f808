/*
 * rawfloor N: the kernel's floor under a chained local step. N times `sh -c true`, one
 * after the other, each started as wharf starts a step (clone with CLONE_VM | CLONE_VFORK
 * | CLONE_PIDFD, a process group of its own, stdin /dev/null, stdout and stderr pipes),
 * its pipes read to their end and its exit waited for through one epoll set, as an event
 * loop does; no runtime, no allocation, no other work. What wharf and bench/spawnfloor
 * take beyond this is their own.
 *
 * rawfloor N WORK_US [split]: after each clone the parent also spins WORK_US microseconds
 * (work of its own, as an engine's bookkeeping), and with `split` the parent stays on CPU 0
 * while each child moves to CPU 1 before its exec: whether a chain's own work gains by
 * running beside its child on another CPU.
 *
 * Built by bench/harness.py with the machine's C compiler.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

struct child_args {
    int null, out, err;
};

static char stack[64 * 1024] __attribute__((aligned(16)));
static int split;

static void on_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void spin(double us) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double end = t.tv_sec * 1e6 + t.tv_nsec / 1e3 + us;
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while (t.tv_sec * 1e6 + t.tv_nsec / 1e3 < end);
}

static int child(void *p) {
    struct child_args *a = p;
    char *argv[] = {"sh", "-c", "true", NULL};
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
    if (split)
        on_cpu(1);
    if (setpgid(0, 0) != 0 || dup2(a->null, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
        _exit(126);
    execve("/bin/sh", argv, envp);
    _exit(127);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    double work = argc > 2 ? atof(argv[2]) : 0;
    split = argc > 3 && argv[3][0] == 's';
    if (split)
        on_cpu(0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (ep < 0 || null < 0)
        die("setup");
    for (long i = 0; i < n; i++) {
        int out[2], err[2];
        if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
            die("pipe2");
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(err[0], F_SETFL, O_NONBLOCK);
        struct child_args a = {null, out[1], err[1]};
        int pidfd = -1;
        int pid = clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD,
                        &a, &pidfd);
        if (pid < 0)
            die("clone");
        if (work > 0)
            spin(work);
        close(out[1]);
        close(err[1]);
        int fds[3] = {out[0], err[0], pidfd};
        for (int k = 0; k < 3; k++) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fds[k]};
            epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &ev);
        }
        int open_pipes = 2, status = -1;
        while (open_pipes > 0 || status < 0) {
            struct epoll_event evs[3];
            int ready = epoll_wait(ep, evs, 3, -1);
            for (int k = 0; k < ready; k++) {
                int fd = evs[k].data.fd;
                if (fd == pidfd) {
                    if (waitpid(pid, &status, WNOHANG) != pid)
                        status = -1;
                } else {
                    char buf[4096];
                    ssize_t got;
                    while ((got = read(fd, buf, sizeof buf)) > 0)
                        ;
                    if (got == 0)
                        open_pipes--;
                }
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "sh -c true failed\n");
            return 1;
        }
        for (int k = 0; k < 3; k++) {
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
            close(fds[k]);
        }
    }
    return 0;
}
