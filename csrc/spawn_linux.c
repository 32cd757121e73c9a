/* spawn_linux.c: starting the agent under no_new_privs, Landlock and a seccomp
 * filter whose user-notification listener is handed to the parent.
 * Called from aegis/sandbox/linux.py; the listener is served by
 * observe_seccomp.c.
 *
 * Two processes are created. The session init (the parent's child) is, when the
 * kernel allows it, process 1 of a new PID namespace; the agent is its child.
 * When Aegis dies (even by SIGKILL) the init dies with it (PDEATHSIG, and its
 * lifeline socket hangs up), and the kernel then kills every process of the
 * namespace: a daemon the agent started cannot outlive Aegis and keep writing
 * through descriptors it already holds. Without a namespace (no privilege, no
 * user namespaces) the init is only a subreaper and that guarantee is lost.
 *
 * With a namespace the session also gets a mount namespace of its own, in which
 * Aegis's own directories (ledger, keys, policies) are covered by an empty
 * read-only tmpfs: whatever the supervisor decides or does not see, the agent
 * finds nothing there. Landlock forbids a sandboxed process any change of the
 * mount topology, so it cannot uncover them.
 *
 * With a session cgroup (the fanotify observer's), the agent is born in it
 * (clone3 with CLONE_INTO_CGROUP): moving it in afterwards through cgroup.procs
 * waits for an RCU grace period, milliseconds of every session start.
 *
 * Protocol over a SOCK_SEQPACKET socketpair ("control"), agent <-> parent:
 *   agent -> parent: a 1-byte hello (1: born in the session cgroup, else 0) carrying
 *                    the listener fd (SCM_RIGHTS) if there is one; or a 4-byte errno
 *                    if setup failed
 *   parent -> agent: one "go" byte once the observer is serving (execve itself is notified)
 *   agent -> parent: a 4-byte errno if execve failed; EOF (close-on-exec) when it succeeded
 * and over a second one ("lifeline"), init -> parent: the agent's wait status
 * (4 bytes) when it exits. The parent closes the lifeline to end the session:
 * the init then exits, taking whatever is left of the namespace with it. */
#define _GNU_SOURCE
#include "spawn_linux.h"

#ifdef __linux__
#include "compat_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
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
#ifndef CLONE_NEWPID
#define CLONE_NEWPID 0x20000000
#endif
#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER 0x10000000
#endif
#ifndef CLONE_NEWNS
#define CLONE_NEWNS 0x00020000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
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

/* How a refused syscall fails. With a listener, the supervisor answers it, with
 * the same errno, after recording the attempt (observe_seccomp.c); except ENOSYS,
 * which says "not implemented here" so that libc falls back (clone3 -> clone):
 * that is no refusal worth a record, and it comes with every fork. */
static struct sock_filter refuse(int error, int listener)
{
    if (listener && error != ENOSYS)
        return (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    return (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)error & SECCOMP_RET_DATA));
}
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
        *p++ = refuse(f->error, n_notify > 0);
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
        *p++ = refuse(EACCES, n_notify > 0);
        *p++ = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    for (size_t i = 0; i < n_deny; i++) {
        *p++ = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)deny[i], 0, 1);
        *p++ = refuse(deny_errno[i], n_notify > 0);
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

/* The agent's hello (see the protocol above); `listener` < 0: none attached. */
static int send_hello(int sock, char in_cgroup, int listener)
{
    struct iovec iov = {&in_cgroup, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (listener >= 0) {
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof(u.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &listener, sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Receives the agent's hello (0, *listener -1 when none came with it) or its
 * 4-byte errno (-errno). */
static int recv_hello(int sock, int *listener, int *in_cgroup)
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
    int fd = -1;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (n == 1) {
        *listener = fd;
        *in_cgroup = data[0] == 1;
        return 0;
    }
    if (fd >= 0)
        close(fd);
    if (n == (ssize_t)sizeof(int)) {
        int err;
        memcpy(&err, data, sizeof(err));
        return -err;
    }
    return -ECHILD;
}

static void child(int control, pid_t parent, int in_cgroup, const char *file, char *const *argv,
                  char *const *envp, const char *cwd, int ruleset_fd, unsigned restrict_flags,
                  const struct aegis_bpf *bpf)
{
    /* Die with the init; and if it already died between fork and here, stop now. */
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
    if (send_hello(control, (char)in_cgroup, bpf->n_notify ? listener : -1) < 0)
        _exit(127);
    if (bpf->n_notify)
        close(listener);
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

/* fork() for a child that only makes raw syscalls: glibc's fork would take its
 * malloc and stdio locks, which another thread of the caller may hold (and, in
 * the init, which was itself made this way, may hold forever). */
static pid_t raw_clone(unsigned long flags)
{
    return (pid_t)syscall(__NR_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

/* The uapi struct clone_args up to .cgroup (CLONE_ARGS_SIZE_VER2), spelled out:
 * <linux/sched.h> does not mix with glibc's <sched.h>. */
struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
        cgroup;
};

/* raw_clone(0), but the child is born in the cgroup of `cgroup_fd` (a directory fd)
 * when there is one: clone3 with no stack forks like clone. *in_cgroup says
 * whether it was (in the child too). Where clone3 cannot do it, a plain fork,
 * left to the caller to move: no clone3 (before 5.3, or a seccomp profile that
 * refuses it: ENOSYS), or none with a .cgroup field (5.3-5.6: E2BIG for the
 * larger struct, EINVAL for the flag). Any other error (a cgroup that cannot
 * take processes) fails. */
static pid_t clone_into_cgroup(int cgroup_fd, int *in_cgroup)
{
    *in_cgroup = 0;
    if (cgroup_fd >= 0) {
        struct clone_args_v2 args = {
            .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgroup_fd};
        pid_t pid = (pid_t)syscall(__NR_clone3, &args, sizeof(args));
        if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL)) {
            *in_cgroup = pid >= 0;
            return pid;
        }
    }
    return raw_clone(0);
}

/* Closes every descriptor above stdio except the `n` in `keep` (ascending). */
static void close_all_but(const int *keep, int n)
{
    unsigned lo = 3;
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < lo)
            continue;
        if ((unsigned)keep[i] > lo)
            syscall(__NR_close_range, lo, (unsigned)keep[i] - 1, 0);
        lo = (unsigned)keep[i] + 1;
    }
    syscall(__NR_close_range, lo, ~0U, 0);
}

/* "ID ID 1\n" into a user namespace's uid_map or gid_map: the caller's own id,
 * the only mapping an unprivileged process may write. */
static int write_id_map(const char *file, unsigned id)
{
    char text[40], digits[12];
    int nd = 0, len = 0;
    do
        digits[nd++] = (char)('0' + id % 10);
    while ((id /= 10) && nd < (int)sizeof(digits));
    for (int twice = 0; twice < 2; twice++) {
        for (int i = nd - 1; i >= 0; i--)
            text[len++] = digits[i];
        text[len++] = ' ';
    }
    text[len++] = '1';
    text[len++] = '\n';
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, (size_t)len);
    int err = errno;
    close(fd);
    errno = err;
    return n == len ? 0 : -1;
}

/* In a new user namespace (no privilege needed), the caller keeps its own uid
 * and gid; supplementary groups cannot be changed there, and stay. */
static int map_own_ids(unsigned uid, unsigned gid)
{
    int fd = open("/proc/self/setgroups", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, "deny", 4);
    close(fd);
    if (n != 4)
        return -1;
    return write_id_map("/proc/self/uid_map", uid) < 0 || write_id_map("/proc/self/gid_map", gid) < 0 ? -1 : 0;
}

/* Covers each directory in `hidden` with an empty read-only tmpfs, in this (new)
 * mount namespace only: first every mount becomes a slave, so nothing mounted
 * here propagates back to the host's namespace. */
static int hide_directories(const char *const *hidden, size_t n_hidden)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return -1;
    for (size_t i = 0; i < n_hidden; i++)
        if (mount("aegis", hidden[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0") < 0)
            return -1;
    return 0;
}

struct agent_spec {
    const char *file;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int ruleset_fd;
    int cgroup_fd;           /* the session cgroup's directory, or -1 */
    unsigned restrict_flags;
    const struct aegis_bpf *bpf;
    const char *const *hidden;
    size_t n_hidden;
};

/* The session init: starts the agent, reports its exit status, reaps orphans,
 * and exits when the parent closes the lifeline or dies. Ignores the terminal's
 * signals (Ctrl-C reaches the agent itself; the init must outlive it to report). */
static void session_init(int control, int lifeline, int containment, unsigned uid, unsigned gid,
                         const struct agent_spec *a)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(control, errno);
    prctl(PR_SET_NAME, "aegis-init", 0, 0, 0);
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        int ignore = sig == SIGINT || sig == SIGQUIT || sig == SIGTERM || sig == SIGHUP || sig == SIGTSTP ||
                     sig == SIGTTIN || sig == SIGTTOU || sig == SIGPIPE || sig == SIGUSR1 || sig == SIGUSR2;
        struct sigaction act = {.sa_handler = ignore ? SIG_IGN : SIG_DFL};
        sigaction(sig, &act, NULL);
    }
    int keep[] = {control, lifeline, a->ruleset_fd, a->cgroup_fd};
    for (int i = 1; i < 4; i++) /* ascending, for close_all_but */
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    close_all_but(keep, 4);
    if (containment == AEGIS_CONTAIN_USERNS_PIDNS && map_own_ids(uid, gid) < 0)
        child_fail(control, errno);
    if (containment != AEGIS_CONTAIN_NONE && hide_directories(a->hidden, a->n_hidden) < 0)
        child_fail(control, errno);
    /* Orphans come here, not to Aegis (as process 1 of a namespace, they would anyway). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        child_fail(control, errno);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        child_fail(control, errno);
    pid_t self = getpid();
    int in_cgroup;
    pid_t agent = clone_into_cgroup(a->cgroup_fd, &in_cgroup);
    if (agent < 0)
        child_fail(control, errno);
    if (agent == 0) {
        close(lifeline);
        close(sfd);
        if (a->cgroup_fd >= 0)
            close(a->cgroup_fd);
        child(control, self, in_cgroup, a->file, a->argv, a->envp, a->cwd, a->ruleset_fd, a->restrict_flags,
              a->bpf);
    }
    /* From here the parent hears only the agent on `control` (EOF after its execve). */
    close(control);
    if (a->ruleset_fd >= 0)
        close(a->ruleset_fd);
    if (a->cgroup_fd >= 0)
        close(a->cgroup_fd);
    struct pollfd p[2] = {{.fd = lifeline, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (p[1].revents) {
            struct signalfd_siginfo info;
            while (read(sfd, &info, sizeof(info)) == (ssize_t)sizeof(info))
                ;
            int status;
            pid_t gone;
            while ((gone = waitpid(-1, &status, WNOHANG)) > 0)
                if (gone == agent)
                    (void)!send(lifeline, &status, sizeof(status), MSG_NOSIGNAL);
        }
        if (p[0].revents)
            _exit(0); /* the parent hung up (or died): end the namespace */
    }
}

/* Returns the session init's pid, with *listener_fd (-1 when the filter
 * notifies nothing), *control_fd, *lifeline_fd and *in_cgroup set; or -errno.
 * `cgroup_fd` (or -1) is a cgroup v2 directory the agent is to be born in;
 * *in_cgroup is 0 when it was not (no cgroup_fd, or a kernel without
 * CLONE_INTO_CGROUP): the caller then moves it there itself.
 * `hidden` (existing directories) are hidden from the agent when there is a
 * namespace (containment other than AEGIS_CONTAIN_NONE).
 * The agent waits for aegis_spawn_release(control_fd) before it execs; its own
 * pid is the init's only child (/proc/INIT/task/INIT/children). */
int aegis_spawn(const char *file, char *const *argv, char *const *envp, const char *cwd, int ruleset_fd,
                int cgroup_fd, const struct aegis_bpf *bpf, int containment, const char *const *hidden,
                size_t n_hidden, int *listener_fd, int *control_fd, int *lifeline_fd, int *in_cgroup)
{
    /* Landlock ABI 7 logs denials to audit, but by default stops after the first
     * execve, i.e. for everything the agent runs: keep logging across exec so the
     * denial harvester (aegis/nets/landlock_audit.py) sees them. Asked here, in the
     * parent, of the running kernel (older ones reject the flag). */
    unsigned restrict_flags = 0;
    if (ruleset_fd >= 0 &&
        syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) >= LANDLOCK_LOG_ABI)
        restrict_flags = LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON;
    unsigned long ns_flags = containment == AEGIS_CONTAIN_PIDNS           ? CLONE_NEWPID | CLONE_NEWNS
                             : containment == AEGIS_CONTAIN_USERNS_PIDNS ? CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS
                                                                         : 0;
    if (containment < AEGIS_CONTAIN_NONE || containment > AEGIS_CONTAIN_USERNS_PIDNS)
        return -EINVAL;
    struct agent_spec spec = {file, argv, envp, cwd, ruleset_fd, cgroup_fd, restrict_flags, bpf, hidden, n_hidden};
    int sv[2], lv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, lv) < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return -err;
    }
    unsigned uid = (unsigned)geteuid(), gid = (unsigned)getegid();
    /* No signal may run a handler of the caller's (Python's) in the child before
     * it has reset them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = raw_clone(ns_flags);
    if (pid == 0) {
        close(sv[0]);
        close(lv[0]);
        session_init(sv[1], lv[1], containment, uid, gid, &spec);
    }
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    close(lv[1]);
    if (pid < 0) {
        close(sv[0]);
        close(lv[0]);
        return -err;
    }
    int rc = recv_hello(sv[0], listener_fd, in_cgroup);
    if (rc < 0) {
        close(sv[0]);
        close(lv[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return rc;
    }
    *control_fd = sv[0];
    *lifeline_fd = lv[0];
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
                int cgroup_fd, const struct aegis_bpf *bpf, int containment, const char *const *hidden,
                size_t n_hidden, int *listener_fd, int *control_fd, int *lifeline_fd, int *in_cgroup)
{ (void)file; (void)argv; (void)envp; (void)cwd; (void)ruleset_fd; (void)cgroup_fd; (void)bpf; (void)containment;
  (void)hidden; (void)n_hidden; (void)listener_fd; (void)control_fd; (void)lifeline_fd; (void)in_cgroup;
  return -ENOSYS; }
int aegis_spawn_release(int control_fd) { (void)control_fd; return -ENOSYS; }
#endif
