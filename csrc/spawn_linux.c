/* spawn_linux.c: fork/exec of the agent with no_new_privs, Landlock and a
 * seccomp filter whose user-notification listener is handed to the parent.
 * Called from aegis/sandbox/linux.py; the listener is served by
 * observe_seccomp.c.
 *
 * Protocol with the child over a SOCK_SEQPACKET socketpair ("control"):
 *   child -> parent: the listener fd (SCM_RIGHTS), or a 4-byte errno if setup failed
 *   parent -> child: one "go" byte once the observer is serving (execve itself is notified)
 *   child -> parent: a 4-byte errno if execve failed; EOF (close-on-exec) when it succeeded */
#define _GNU_SOURCE
#include "spawn_linux.h"

#ifdef __linux__
#include "compat_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
/* The first Landlock ABI with audit logging and LANDLOCK_RESTRICT_SELF_LOG_* flags. */
#ifndef LANDLOCK_LOG_ABI
#define LANDLOCK_LOG_ABI 7
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

struct aegis_bpf {
    size_t len;
    size_t n_notify;         /* 0: no listener is created (inotify fallback) */
    struct sock_filter insns[];
};

#if defined(__x86_64__)
#define AUDIT_ARCH_NATIVE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_NATIVE AUDIT_ARCH_AARCH64
#else
#error "seccomp filter: unsupported architecture"
#endif

#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))

/* Layout: architecture check, the datagram/raw socket block (when asked), the
 * flag checks (deny_flags[i] = {nr, arg index, mask, errno}: deny when the
 * argument has any bit of mask), then one "jeq nr; ret" pair per syscall, so no
 * jump ever exceeds the 8-bit range. Syscall numbers come from
 * aegis/policy/seccomp.py. */
struct aegis_bpf *aegis_bpf_build(const int *notify, size_t n_notify, const int *deny, const int *deny_errno,
                                  size_t n_deny, const struct aegis_flag_deny *deny_flags, size_t n_deny_flags,
                                  int deny_inet_datagram)
{
    size_t cap = 6 + 11 + 5 * n_deny_flags + 2 * (n_notify + n_deny) + 1;
    struct aegis_bpf *bpf = calloc(1, sizeof(*bpf) + cap * sizeof(struct sock_filter));
    if (!bpf)
        return NULL;
    struct sock_filter *p = bpf->insns;
    *p++ = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_NATIVE, 1, 0);
    *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    *p++ = (struct sock_filter)LOAD_NR;
    /* x32 syscalls (bit 30) would bypass every number below */
    *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
    *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    for (size_t i = 0; i < n_deny_flags; i++) {
        const struct aegis_flag_deny *f = &deny_flags[i];
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)f->nr, 0, 4);
        if (f->arg_index < 0 || f->arg_index > 5) {
            free(bpf);
            return NULL;
        }
        /* the low 32 bits of the argument (little-endian) */
        *p++ = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args) +
                                                                          8 * (unsigned)f->arg_index);
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (unsigned)f->mask, 0, 1);
        *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (f->error & SECCOMP_RET_DATA));
        *p++ = (struct sock_filter)LOAD_NR;
    }
    if (deny_inet_datagram) {
        /* Network denied: only unix and netlink sockets and TCP over IPv4/IPv6
         * (which Landlock and the supervisor decide) can be created; UDP, raw,
         * packet, vsock and every other family cannot. */
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 10);
        *p++ = (struct sock_filter)ARG_LO(0);
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 7, 0);
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 6, 0);
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0);
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 3);
        *p++ = (struct sock_filter)ARG_LO(1);
        *p++ = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf);
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 1, 0);
        *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
        *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    for (size_t i = 0; i < n_deny; i++) {
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)deny[i], 0, 1);
        *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (deny_errno[i] & SECCOMP_RET_DATA));
    }
    for (size_t i = 0; i < n_notify; i++) {
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)notify[i], 0, 1);
        *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    }
    *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    bpf->len = (size_t)(p - bpf->insns);
    bpf->n_notify = n_notify;
    return bpf;
}

size_t aegis_bpf_length(const struct aegis_bpf *bpf)
{
    return bpf->len;
}

void aegis_bpf_free(struct aegis_bpf *bpf)
{
    free(bpf);
}

static void child_fail(int control, int err)
{
    int e = err;
    (void)!write(control, &e, sizeof(e));
    _exit(127);
}

static int send_fd(int sock, int fd)
{
    char byte = 'L';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Receives either an fd (returned) or a 4-byte errno from the child (-errno). */
static int recv_fd(int sock)
{
    char data[sizeof(int)];
    struct iovec iov = {data, sizeof(data)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
        int fd;
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        return fd;
    }
    if (n == 1 && data[0] == 'N')
        return -ENODATA; /* a filter without notifications: no listener */
    if (n == (ssize_t)sizeof(int)) {
        int err;
        memcpy(&err, data, sizeof(err));
        return -err;
    }
    return -ECHILD;
}

static void child(int control, pid_t parent, const char *file, char *const *argv, char *const *envp,
                  const char *cwd, int ruleset_fd, unsigned restrict_flags, const struct aegis_bpf *bpf)
{
    /* Die with Aegis; and if Aegis already died between fork and here, stop now. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
        _exit(127);
    /* Signal dispositions and mask must be the agent's defaults, not Python's. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* No Aegis descriptor may reach the agent: everything above stdio closes at exec. */
    if (syscall(__NR_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        child_fail(control, errno);
    if (cwd && chdir(cwd) < 0)
        child_fail(control, errno);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(control, errno);
    if (ruleset_fd >= 0 && syscall(__NR_landlock_restrict_self, ruleset_fd, restrict_flags) < 0)
        child_fail(control, errno);
    struct sock_fprog prog = {.len = (unsigned short)bpf->len, .filter = (struct sock_filter *)bpf->insns};
    /* WAIT_KILLABLE_RECV (5.19+): once the supervisor has received a notification,
     * only a fatal signal interrupts the wait. Without it a signal restarts the
     * syscall while the supervisor is already acting on it (a second unlink, a
     * FIFO end opened twice). Older kernels: retried without. */
    unsigned long flags = bpf->n_notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                                        : 0;
    int listener = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (listener < 0 && errno == EINVAL && bpf->n_notify)
        listener = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0)
        child_fail(control, errno);
    if (!bpf->n_notify) {
        if (write(control, "N", 1) != 1)
            _exit(127);
    } else {
        if (send_fd(control, listener) < 0)
            _exit(127);
        close(listener);
    }
    char go;
    ssize_t n;
    do
        n = read(control, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);
    execve(file, argv, envp);
    child_fail(control, errno);
}

/* Returns the child's pid, with *listener_fd (-1 when the filter notifies
 * nothing) and *control_fd set; or -errno.
 * The child waits for aegis_spawn_release(control_fd) before it execs. */
int aegis_spawn(const char *file, char *const *argv, char *const *envp, const char *cwd, int ruleset_fd,
                const struct aegis_bpf *bpf, int *listener_fd, int *control_fd)
{
    /* Landlock ABI 7 logs denials to audit, but by default stops after the first
     * execve, i.e. for everything the agent runs: keep logging across exec so the
     * denial harvester (aegis/nets/landlock_audit.py) sees them. Asked here, in the
     * parent, of the running kernel (older ones reject the flag). */
    unsigned restrict_flags = 0;
    if (ruleset_fd >= 0 &&
        syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) >= LANDLOCK_LOG_ABI)
        restrict_flags = LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return -err;
    }
    if (pid == 0) {
        close(sv[0]);
        child(sv[1], parent, file, argv, envp, cwd, ruleset_fd, restrict_flags, bpf);
    }
    close(sv[1]);
    int fd = recv_fd(sv[0]);
    if (fd == -ENODATA)
        fd = -1;
    else if (fd < 0) {
        close(sv[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return fd;
    }
    *listener_fd = fd;
    *control_fd = sv[0];
    return pid;
}

/* Lets the child exec; returns 0 when execve succeeded, else -errno of execve.
 * Closes control_fd. The observer must already be serving the listener. */
int aegis_spawn_release(int control_fd)
{
    char go = 'G';
    int rc = 0;
    if (write(control_fd, &go, 1) != 1) {
        rc = -errno;
    } else {
        int err;
        ssize_t n;
        do
            n = read(control_fd, &err, sizeof(err));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(err))
            rc = -err;
        else if (n < 0)
            rc = -errno;
    }
    close(control_fd);
    return rc;
}

/* Orphans of the agent (daemons) are re-parented to Aegis rather than init,
 * so the session can find and end them. */
int aegis_set_child_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

#else
#include <errno.h>
struct aegis_bpf *aegis_bpf_build(const int *notify, size_t n_notify, const int *deny, const int *deny_errno,
                                  size_t n_deny, const struct aegis_flag_deny *deny_flags, size_t n_deny_flags,
                                  int deny_inet_datagram)
{ (void)notify; (void)n_notify; (void)deny; (void)deny_errno; (void)n_deny; (void)deny_flags; (void)n_deny_flags;
  (void)deny_inet_datagram; return 0; }
size_t aegis_bpf_length(const struct aegis_bpf *bpf) { (void)bpf; return 0; }
void aegis_bpf_free(struct aegis_bpf *bpf) { (void)bpf; }
int aegis_spawn(const char *file, char *const *argv, char *const *envp, const char *cwd, int ruleset_fd,
                const struct aegis_bpf *bpf, int *listener_fd, int *control_fd)
{ (void)file; (void)argv; (void)envp; (void)cwd; (void)ruleset_fd; (void)bpf; (void)listener_fd; (void)control_fd;
  return -ENOSYS; }
int aegis_spawn_release(int control_fd) { (void)control_fd; return -ENOSYS; }
int aegis_set_child_subreaper(void) { return -ENOSYS; }
#endif
