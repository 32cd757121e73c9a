/* observe_seccomp.c: the seccomp user-notification supervisor (see
 * observe_seccomp.h). Started and stopped by aegis/observer/seccomp.py; the
 * listener comes from spawn_linux.c; records go to ring.c.
 *
 * Order for every notification: read what the agent passed (process_vm_readv,
 * page-safe) -> resolve against the agent's cwd/dirfd, canonicalise, resolve
 * symlinks in the agent's view -> check SECCOMP_IOCTL_NOTIF_ID_VALID (the pid
 * may have been reused) -> decide (Aegis guard, decision table, residual
 * callback) -> record -> answer.
 *
 * Answers: a denial is an errno, without running the syscall. An allowed open,
 * unlink, rename, mkdir, link, symlink or truncate is performed here, on the
 * decided path with symlinks refused, and its result (for open, the descriptor,
 * injected with SECCOMP_IOCTL_NOTIF_ADDFD) returned: the kernel never re-reads
 * the agent's memory, so a second agent thread rewriting the path buffer after
 * the decision changes nothing. execve and connect cannot be done on the
 * agent's behalf: they CONTINUE, with Landlock as the kernel backstop.
 *
 * The common case, a read the table allows of a path without symlinks, takes a
 * shorter way (open_fast): decided on the lexical path and opened with every
 * symlink refused, so one path walk both proves the path is already resolved and
 * opens it; the record follows the answer. Per open that leaves the receive, one
 * read of the agent's memory, naming its cwd or directory descriptor (cached for
 * tree walkers, see agent_dir), the open, the injection and a close. */
#define _GNU_SOURCE
#include "observe_seccomp.h"

#include "aegis_actions.h"

#ifdef __linux__
#include "compat_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PATH_BUF 4096
#define PROC_CACHE 1024
#define MAX_ARGV 64

struct proc_info {
    int tid, tgid, ppid, valid;
    unsigned fsuid, umask;
    char exe[AEGIS_REC_EXE_MAX];
};

#define DIRFD_CACHE 8

#define UNPINNED (-1)   /* seen once: duplicated at its next use */
#define UNPINNABLE (-2) /* duplicating it failed: named by readlink at every use */

struct dirfd_entry {
    int tgid, agent_fd;
    int local_fd;            /* Aegis's duplicate of the agent's descriptor, or UNPINNED/UNPINNABLE */
    char path[PATH_BUF];
};

struct aegis_observer {
    struct aegis_observer_config cfg;
    char **protected_paths;
    struct aegis_net_rule *net_rules;
    int stop_fd;
    pthread_t thread;
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    size_t req_size, resp_size;
    struct proc_info procs[PROC_CACHE];
    _Atomic uint64_t notifications, records, denied, vanished, residual, on_behalf;
    _Atomic int finished, stopping;
    int sync_wakeup;
    int blocking_recv; /* waits in RECV itself, not in poll() (see receive) */
    unsigned euid; /* Aegis's: on-behalf operations only for agents with the same fsuid */
    struct dirfd_entry dirfds[DIRFD_CACHE];
    unsigned dirfd_next;
    int kcmp_works;
    int self_pid; /* Aegis's, for kcmp: getpid() is a syscall */
};

/* ---- pure helpers ---- */

/* Joins base and path and removes ".", ".." and repeated slashes, lexically.
 * Returns the length written (always absolute), or 0 if it does not fit. */
size_t aegis_canonicalize(const char *base, const char *path, char *out, size_t cap)
{
    if (cap < 2)
        return 0;
    size_t len = 0;
    const char *parts[2] = {path[0] == '/' ? "" : (base ? base : ""), path};
    out[len++] = '/';
    for (int k = 0; k < 2; k++) {
        const char *s = parts[k];
        while (*s) {
            while (*s == '/')
                s++;
            const char *start = s;
            while (*s && *s != '/')
                s++;
            size_t n = (size_t)(s - start);
            if (n == 0 || (n == 1 && start[0] == '.'))
                continue;
            if (n == 2 && start[0] == '.' && start[1] == '.') {
                while (len > 1 && out[len - 1] != '/')
                    len--;
                if (len > 1)
                    len--;
                continue;
            }
            if (len + (len > 1) + n + 1 > cap)
                return 0;
            if (len > 1)
                out[len++] = '/';
            memcpy(out + len, start, n);
            len += n;
        }
    }
    out[len] = '\0';
    return len;
}

/* Reads `len` bytes at `addr` of process `pid`, never asking for bytes across a
 * page it has not checked: one remote iovec per page, so what precedes an
 * unmapped page still reads. Returns the bytes read, or -errno. */
static ssize_t read_remote_span(int pid, uint64_t addr, char *out, size_t len)
{
    const size_t page = 4096;
    struct iovec local = {out, len};
    struct iovec remote[PATH_BUF / 4096 + 2];
    size_t nr = 0, covered = 0;
    while (covered < len && nr < sizeof(remote) / sizeof(remote[0])) {
        uint64_t at = addr + covered;
        size_t chunk = page - (size_t)(at % page);
        if (chunk > len - covered)
            chunk = len - covered;
        remote[nr].iov_base = (void *)(uintptr_t)at;
        remote[nr].iov_len = chunk;
        nr++;
        covered += chunk;
    }
    local.iov_len = covered;
    ssize_t got = process_vm_readv(pid, &local, 1, remote, nr, 0);
    return got < 0 ? -errno : got;
}

/* Paths are short: the first read asks for this much (one page to pin, not two),
 * the rest only when no NUL came. */
#define REMOTE_STRING_FIRST 256

/* Reads a NUL-terminated string from the agent's memory (see read_remote_span).
 * Returns the length, -ENAMETOOLONG if no NUL within cap-1 bytes, or -errno. */
int aegis_read_remote_string(int pid, uint64_t addr, char *out, size_t cap)
{
    size_t first = cap - 1 < REMOTE_STRING_FIRST ? cap - 1 : REMOTE_STRING_FIRST;
    ssize_t got = read_remote_span(pid, addr, out, first);
    if (got < 0)
        return (int)got;
    char *nul = memchr(out, '\0', (size_t)got);
    if (!nul && (size_t)got == first && first < cap - 1) {
        ssize_t more = read_remote_span(pid, addr + first, out + first, cap - 1 - first);
        if (more > 0) {
            nul = memchr(out + first, '\0', (size_t)more);
            got += more;
        }
    }
    if (!nul) {
        out[got] = '\0';
        return (size_t)got == cap - 1 ? -ENAMETOOLONG : -EFAULT;
    }
    return (int)(nul - out);
}

static int read_remote(int pid, uint64_t addr, void *out, size_t len)
{
    struct iovec local = {out, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return got == (ssize_t)len ? 0 : -EFAULT;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- per-process facts (pid, ppid, executable), cached by tid ---- */

/* Tgid, PPid, filesystem uid and umask from /proc/TID/status. */
static void read_status(int tid, struct proc_info *p)
{
    char file[64], buf[1024];
    snprintf(file, sizeof(file), "/proc/%d/status", tid);
    p->fsuid = (unsigned)-1; /* unknown: never matches, so nothing is opened on its behalf */
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *field;
    if ((field = strstr(buf, "\nTgid:")))
        p->tgid = atoi(field + 6);
    if ((field = strstr(buf, "\nPPid:")))
        p->ppid = atoi(field + 6);
    if ((field = strstr(buf, "Umask:")))
        p->umask = (unsigned)strtoul(field + 6, NULL, 8);
    unsigned ids[4];
    if ((field = strstr(buf, "\nUid:")) && sscanf(field + 5, "%u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3]) == 4)
        p->fsuid = ids[3];
}

static struct proc_info *proc_lookup(struct aegis_observer *obs, int tid)
{
    struct proc_info *p = &obs->procs[(unsigned)tid % PROC_CACHE];
    if (p->valid && p->tid == tid)
        return p;
    memset(p, 0, sizeof(*p));
    p->tid = p->tgid = tid;
    read_status(tid, p);
    char file[64];
    snprintf(file, sizeof(file), "/proc/%d/exe", tid);
    ssize_t n = readlink(file, p->exe, sizeof(p->exe) - 1);
    p->exe[n > 0 ? n : 0] = '\0';
    p->valid = 1;
    return p;
}

static void proc_forget(struct aegis_observer *obs, int tid)
{
    struct proc_info *p = &obs->procs[(unsigned)tid % PROC_CACHE];
    if (p->tid == tid)
        p->valid = 0;
}

/* ---- paths ---- */

static int open_how2(const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return (int)syscall(__NR_openat2, AT_FDCWD, path, &how, sizeof(how));
}

/* The path of the agent's cwd, or of its descriptor `dirfd`, from procfs. */
static int read_agent_link(int pid, int dirfd, char *out, size_t cap)
{
    char link[64];
    if (dirfd == AT_FDCWD)
        snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
    else
        snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, dirfd);
    ssize_t n = readlink(link, out, cap - 1);
    if (n < 0)
        return -errno;
    out[n] = '\0';
    return 0;
}

/* ---- directory descriptors the agent opens relative to, cached ----
 *
 * Tree walkers (fts: grep -r, find, rm -r) open every entry relative to the
 * descriptor of its directory, and the procfs readlink naming that descriptor was
 * the costliest step of such an open. A descriptor seen a second time is
 * duplicated into Aegis (pidfd_getfd) and named from that duplicate, which the
 * agent cannot change; later uses are checked with kcmp(KCMP_FILE), which says
 * whether the agent's descriptor is still that same open file (a closed and
 * reused number, another process, a dead one all fail it). The name is dropped
 * when the agent renames or removes a directory (the cached name could be stale);
 * a directory renamed by a process outside the sandbox keeps its old name here,
 * and the open on the agent's behalf, which uses the name decided, then fails or
 * opens what that name now holds, never a path other than the one decided. */
static void dirfd_forget_all(struct aegis_observer *obs)
{
    for (size_t i = 0; i < DIRFD_CACHE; i++) {
        if (obs->dirfds[i].local_fd >= 0)
            close(obs->dirfds[i].local_fd);
        obs->dirfds[i] = (struct dirfd_entry){.tgid = 0, .agent_fd = -1, .local_fd = UNPINNED};
    }
}

static struct dirfd_entry *dirfd_find(struct aegis_observer *obs, int tgid, int dirfd)
{
    for (size_t i = 0; i < DIRFD_CACHE; i++)
        if (obs->dirfds[i].tgid == tgid && obs->dirfds[i].agent_fd == dirfd)
            return &obs->dirfds[i];
    return NULL;
}

/* Names `dirfd` of the agent from a duplicate of it: 0, or -1 (entry unchanged). */
static int dirfd_pin(struct dirfd_entry *e, int tgid, int dirfd)
{
    int pidfd = (int)syscall(__NR_pidfd_open, tgid, 0);
    if (pidfd < 0)
        return -1;
    int local = (int)syscall(__NR_pidfd_getfd, pidfd, dirfd, 0);
    close(pidfd);
    if (local < 0)
        return -1;
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", local);
    ssize_t n = readlink(link, e->path, sizeof(e->path) - 1);
    if (n <= 0 || e->path[0] != '/') {
        close(local);
        return -1;
    }
    e->path[n] = '\0';
    e->local_fd = local;
    return 0;
}

/* The directory a relative path is resolved against: the agent's cwd or dirfd. */
static int agent_dir(struct aegis_observer *obs, int pid, int dirfd, char *out, size_t cap)
{
    if (dirfd == AT_FDCWD || !obs->kcmp_works)
        return read_agent_link(pid, dirfd, out, cap);
    int tgid = proc_lookup(obs, pid)->tgid;
    struct dirfd_entry *e = dirfd_find(obs, tgid, dirfd);
    if (e && e->local_fd >= 0 &&
        syscall(__NR_kcmp, pid, obs->self_pid, KCMP_FILE, dirfd, e->local_fd) != 0) {
        close(e->local_fd); /* another file now, or the process is gone */
        e->local_fd = UNPINNED;
    }
    if (e && e->local_fd == UNPINNED && dirfd_pin(e, tgid, dirfd) < 0)
        e->local_fd = UNPINNABLE; /* e.g. not allowed to duplicate it: named by readlink from now on */
    if (e && e->local_fd >= 0) {
        size_t n = strlen(e->path);
        if (n >= cap)
            return -ENAMETOOLONG;
        memcpy(out, e->path, n + 1);
        return 0;
    }
    int rc = read_agent_link(pid, dirfd, out, cap);
    if (rc == 0 && !e) { /* seen once: pinned if it comes again */
        e = &obs->dirfds[obs->dirfd_next++ % DIRFD_CACHE];
        if (e->local_fd >= 0)
            close(e->local_fd);
        *e = (struct dirfd_entry){.tgid = tgid, .agent_fd = dirfd, .local_fd = UNPINNED};
    }
    return rc;
}

/* `/proc/self` and `/proc/thread-self` in the agent's path mean the agent, not Aegis. */
static int agent_proc_self(char *path, int tgid, int tid)
{
    char tmp[PATH_BUF];
    int len = 0;
    if (strncmp(path, "/proc/self", 10) == 0 && (path[10] == '/' || path[10] == '\0'))
        len = snprintf(tmp, sizeof(tmp), "/proc/%d%s", tgid, path + 10);
    else if (strncmp(path, "/proc/thread-self", 17) == 0 && (path[17] == '/' || path[17] == '\0'))
        len = snprintf(tmp, sizeof(tmp), "/proc/%d/task/%d%s", tgid, tid, path + 17);
    else
        return 0;
    if (len >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(path, tmp, (size_t)len + 1);
    return 0;
}

/* 1 when every component of the canonical `path` exists and none is a symlink
 * (the last one may be when !follow): then it is already resolved. One path walk
 * in the kernel instead of a readlink per component, which dominated the cost
 * of an open on deep trees. O_PATH opens nothing (no FIFO wait, no device open).
 * Under /proc, magic links are the rule and are resolved the slow way. */
static int no_symlinks_on_the_way(const char *path, int follow)
{
    if (strncmp(path, "/proc", 5) == 0 && (path[5] == '/' || path[5] == '\0'))
        return 0;
    int fd = open_how2(path, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW), 0, RESOLVE_NO_SYMLINKS);
    if (fd < 0)
        return 0; /* a symlink (ELOOP), a missing component, no permission: the slow way */
    close(fd);
    return 1;
}

/* Resolves symlinks in the canonical `path` component by component, as the
 * agent would (its /proc/self; Aegis's own realpath would follow Aegis's):
 * every component when `follow`, all but the last otherwise. Magic links of
 * procfs (/proc/PID/fd/N, cwd, root, exe) resolve to what they name when that
 * is a path; links to pipes, sockets and the like stay as written. Components
 * that do not exist are kept. Returns 0, -ELOOP or -ENAMETOOLONG. */
static int resolve_in_agent_view(char *path, int tgid, int tid, int follow)
{
    char out[PATH_BUF], target[PATH_BUF], next[PATH_BUF];
    for (int hops = 0; hops <= 40; hops++) {
        if (agent_proc_self(path, tgid, tid) < 0)
            return -ENAMETOOLONG;
        if (hops == 0 && no_symlinks_on_the_way(path, follow))
            return 0;
        size_t olen = 0;
        const char *s = path;
        int restart = 0;
        for (;;) {
            while (*s == '/')
                s++;
            if (!*s)
                break;
            const char *start = s;
            while (*s && *s != '/')
                s++;
            size_t n = (size_t)(s - start);
            const char *rest = s;
            while (*rest == '/')
                rest++;
            if (olen + 1 + n >= PATH_BUF)
                return -ENAMETOOLONG;
            out[olen++] = '/';
            memcpy(out + olen, start, n);
            olen += n;
            out[olen] = '\0';
            if (!*rest && !follow)
                break;
            ssize_t len = readlink(out, target, sizeof(target) - 1);
            if (len <= 0)
                continue; /* not a link, or not there yet */
            target[len] = '\0';
            if (target[0] != '/' && strncmp(out, "/proc/", 6) == 0)
                continue; /* pipe:[N], socket:[N], anon_inode:...: not a path */
            char *base = out;
            if (target[0] != '/') {
                char *slash = strrchr(out, '/');
                *slash = '\0';
                base = slash == out ? "/" : out;
            }
            if (snprintf(next, sizeof(next), "%s/%s", target, rest) >= (int)sizeof(next) ||
                aegis_canonicalize(base, next, path, PATH_BUF) == 0)
                return -ENAMETOOLONG;
            restart = 1;
            break;
        }
        if (!restart) {
            if (olen == 0)
                out[olen++] = '/';
            out[olen] = '\0';
            memcpy(path, out, olen + 1);
            return 0;
        }
    }
    return -ELOOP;
}

/* Reads path `addr` of the agent and leaves its lexically canonical absolute
 * form (joined to its cwd or dirfd, "." and ".." removed; symlinks untouched)
 * in `out` (PATH_BUF bytes). */
static int agent_path_lexical(struct aegis_observer *obs, int pid, int dirfd, uint64_t addr, char *out)
{
    char raw[PATH_BUF], base[PATH_BUF];
    int n = aegis_read_remote_string(pid, addr, raw, sizeof(raw));
    if (n < 0)
        return n;
    base[0] = '\0';
    if (raw[0] != '/' && agent_dir(obs, pid, dirfd, base, sizeof(base)) < 0)
        return -EBADF;
    if (aegis_canonicalize(base, n ? raw : ".", out, PATH_BUF) == 0)
        return -ENAMETOOLONG;
    return 0;
}

/* Finishes what agent_path_lexical began: /proc/self made the agent's, and
 * symlinks resolved in the agent's view when the observer resolves them. */
static int agent_path_resolve(struct aegis_observer *obs, int pid, int follow, char *path)
{
    int tgid = proc_lookup(obs, pid)->tgid;
    if (obs->cfg.resolve_symlinks)
        return resolve_in_agent_view(path, tgid, pid, follow);
    return agent_proc_self(path, tgid, pid);
}

/* Reads path `addr` of the agent and leaves its canonical absolute form, with
 * symlinks resolved in the agent's view, in `out` (PATH_BUF bytes). */
static int agent_path(struct aegis_observer *obs, int pid, int dirfd, uint64_t addr, int follow, char *out)
{
    int rc = agent_path_lexical(obs, pid, dirfd, addr, out);
    return rc < 0 ? rc : agent_path_resolve(obs, pid, follow, out);
}

static int under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/' || (n == 1 && prefix[0] == '/'));
}

struct event {
    int action;
    int policy_index;
    int decision;
    int64_t arg;
    char path[PATH_BUF];
    char extra[AEGIS_REC_EXTRA_MAX];
    size_t extra_len;
    int extra_truncated;
};

/* ---- opening on the agent's behalf ---- */

/* Flags open(2) accepts; openat2 rejects anything else, open(2) ignores it. */
#define OPEN_FLAGS (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | \
                    FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | \
                    O_SYNC | O_PATH | O_TMPFILE)
#define ANSWERED (-3)

/* Answers notification `id` with `fd` installed in the agent (SECCOMP_ADDFD_FLAG_SEND:
 * atomically its syscall's result), or with -err when fd < 0. Consumes fd.
 * Returns 0, or -1 when the agent is gone. `resp` is scratch of resp_size bytes. */
static int inject(int listener, struct seccomp_notif_resp *resp, size_t resp_size, uint64_t id, int fd, int err,
                  uint32_t newfd_flags)
{
    if (fd >= 0) {
        struct seccomp_notif_addfd addfd = {.id = id, .flags = SECCOMP_ADDFD_FLAG_SEND, .srcfd = (__u32)fd,
                                            .newfd = 0, .newfd_flags = newfd_flags};
        int rc = (int)ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
        err = errno;
        close(fd);
        if (rc >= 0)
            return 0;
        if (err == ENOENT)
            return -1;
        /* e.g. EMFILE in the agent: its open fails the way its own would */
    }
    memset(resp, 0, resp_size);
    resp->id = id;
    resp->error = -err;
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 ? -1 : 0;
}

/* Opening a FIFO blocks until the other end is opened, possibly by another
 * agent process whose open the supervisor must serve meanwhile: such an open
 * runs in its own thread. It owns everything it uses (a listener duplicate),
 * so it may outlive the observer if the other end never comes. */
struct fifo_open {
    int listener, probe, flags;
    uint32_t newfd_flags;
    uint64_t id;
    size_t resp_size;
};

/* A thread of its own for one call that may block (a FIFO open, a connect), so
 * that the supervisor keeps serving; detached: it answers the agent and frees
 * its state itself. Returns 0 or an errno. */
static int start_detached(void *(*run)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t thread;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&thread, &attr, run, arg);
        pthread_attr_destroy(&attr);
    }
    return rc;
}

static void *fifo_opener(void *arg)
{
    struct fifo_open *f = arg;
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", f->probe);
    int fd = open(self, f->flags);
    int err = errno;
    close(f->probe);
    struct seccomp_notif_resp *resp = calloc(1, f->resp_size);
    if (resp)
        inject(f->listener, resp, f->resp_size, f->id, fd, err, f->newfd_flags);
    else if (fd >= 0)
        close(fd);
    free(resp);
    close(f->listener);
    free(f);
    return NULL;
}

static int open_fifo_in_thread(struct aegis_observer *obs, uint64_t id, int probe, int flags, uint32_t newfd_flags)
{
    struct fifo_open *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    *f = (struct fifo_open){.listener = fcntl(obs->cfg.listener_fd, F_DUPFD_CLOEXEC, 0), .probe = probe,
                            .flags = flags, .newfd_flags = newfd_flags, .id = id, .resp_size = obs->resp_size};
    int rc = f->listener < 0 ? errno : start_detached(fifo_opener, f);
    if (rc != 0) {
        if (f->listener >= 0)
            close(f->listener);
        free(f);
        return -rc;
    }
    return 0;
}

/* Opens `path` (already decided, canonical, symlinks resolved) for the agent and
 * injects the descriptor as the syscall's result: the kernel never re-reads the
 * agent's path buffer, so a thread rewriting it after the decision changes
 * nothing. Symlinks are refused (RESOLVE_NO_SYMLINKS) since the decided path has
 * none; one appearing now is a race and fails. What remains under /proc after
 * resolution is procfs's own (files, links to pipes and sockets), which the
 * agent cannot re-link: opened following links (entries of processes outside
 * the sandbox never get here, see outside_proc).
 * Returns ANSWERED, or 0 when the kernel must do it itself (CONTINUE): a process
 * with other credentials than Aegis (never open with more rights than it has)
 * and openat2 calls with resolve flags (the caller checks those). */
static int open_on_behalf(struct aegis_observer *obs, const struct seccomp_notif *req, struct proc_info *proc,
                          const char *path, uint64_t flags, uint64_t mode)
{
    if (proc->fsuid != obs->euid)
        return 0;
    flags &= OPEN_FLAGS;
    uint32_t newfd_flags = (uint32_t)(flags & O_CLOEXEC);
    /* An O_PATH descriptor cannot be injected (SECCOMP_IOCTL_NOTIF_ADDFD takes the
     * file with fget(), which refuses O_PATH files: EBADF), so the kernel opens it.
     * A race wins nothing here: an O_PATH descriptor reads no data, and every use
     * that would (openat on it, /proc/self/fd/N, execveat) is decided again on the
     * path it names. */
    if (flags & O_PATH)
        return 0;
    flags |= O_CLOEXEC | O_NOCTTY; /* a terminal opened here must not become Aegis's */
    uint64_t resolve = strncmp(path, "/proc/", 6) == 0 ? 0 : RESOLVE_NO_SYMLINKS;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        read_status(req->pid, proc); /* the umask right now */
        mode = mode & ~(uint64_t)proc->umask & 07777;
    } else {
        mode = 0;
    }
    int fd, err = 0;
    atomic_fetch_add(&obs->on_behalf, 1);
    if ((flags & __O_TMPFILE) == __O_TMPFILE || (flags & O_PATH)) {
        fd = open_how2(path, flags, mode, resolve);
        err = errno;
    } else {
        /* A FIFO opened in blocking mode waits for its other end, perhaps opened by
         * another agent process this supervisor must serve meanwhile: it gets a
         * thread. Anything else is opened non-blocking (a FIFO swapped in since
         * the stat cannot stall the supervisor either), then given the agent's
         * own mode back. */
        struct stat st;
        int fifo = !(flags & O_NONBLOCK) &&
                   fstatat(AT_FDCWD, path, &st, resolve ? AT_SYMLINK_NOFOLLOW : 0) == 0 && S_ISFIFO(st.st_mode);
        if (fifo) {
            int probe = open_how2(path, O_PATH | O_CLOEXEC | (flags & O_NOFOLLOW), 0, resolve);
            int reopen = (int)(flags & ~(uint64_t)(O_CREAT | O_EXCL | O_NOFOLLOW));
            int rc = probe < 0 ? -errno : open_fifo_in_thread(obs, req->id, probe, reopen, newfd_flags);
            if (rc == 0)
                return ANSWERED;
            if (probe >= 0)
                close(probe);
            fd = -1;
            err = -rc;
        } else {
            fd = open_how2(path, flags | O_NONBLOCK, mode, resolve);
            err = errno;
            if (fd >= 0 && !(flags & O_NONBLOCK))
                fcntl(fd, F_SETFL, (int)(flags & (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME)));
        }
    }
    if (inject(obs->cfg.listener_fd, obs->resp, obs->resp_size, req->id, fd, err, newfd_flags) < 0)
        atomic_fetch_add(&obs->vanished, 1);
    return ANSWERED;
}

/* The directory holding `path` (canonical, symlinks resolved), opened without
 * following any symlink; *base is its last component. -errno on failure. */
static int open_parent(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash[1] == '\0')
        return -EBUSY; /* "/" itself: nothing to create, remove or rename */
    char dir[PATH_BUF];
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    *base = slash + 1;
    int fd = open_how2(dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                       strncmp(dir, "/proc/", 6) == 0 ? 0 : RESOLVE_NO_SYMLINKS);
    return fd < 0 ? -errno : fd;
}

/* Unlink, rmdir, mkdir, rename, link, symlink and truncate done by the
 * supervisor on the decided paths, the result returned as the syscall's (the
 * same reason as open_on_behalf: the agent's buffers are never read twice).
 * Returns ANSWERED, or 0 to let the kernel do it (other credentials than
 * Aegis's; linkat following symlinks). */
static int path_op_on_behalf(struct aegis_observer *obs, const struct seccomp_notif *req, struct proc_info *proc,
                             const struct event *ev)
{
    const __u64 *a = req->data.args;
    const int nr = req->data.nr;
    if (proc->fsuid != obs->euid || (nr == __NR_linkat && a[4] != 0))
        return 0;
    const char *base = NULL, *base2 = NULL;
    int dirfd = open_parent(ev[0].path, &base), dirfd2 = -1, rc = -1, err = 0;
    char target[PATH_BUF];
    if (dirfd < 0) {
        err = -dirfd;
        goto answer;
    }
    switch (nr) {
    case __NR_unlink:
    case __NR_unlinkat:
    case __NR_rmdir:
        rc = unlinkat(dirfd, base, nr == __NR_rmdir ? AT_REMOVEDIR
                                   : nr == __NR_unlinkat ? (int)(a[2] & AT_REMOVEDIR) : 0);
        break;
    case __NR_mkdir:
    case __NR_mkdirat:
        read_status(req->pid, proc);
        rc = mkdirat(dirfd, base, (mode_t)((nr == __NR_mkdir ? a[1] : a[2]) & ~(uint64_t)proc->umask & 07777));
        break;
    case __NR_symlink:
    case __NR_symlinkat:
        /* the link's contents are data, read once */
        rc = aegis_read_remote_string((int)req->pid, a[0], target, sizeof(target));
        if (rc < 0) {
            errno = rc == -ENAMETOOLONG ? ENAMETOOLONG : EFAULT;
            rc = -1;
        } else {
            rc = symlinkat(target, dirfd, base);
        }
        break;
    case __NR_truncate: {
        int fd = openat(dirfd, base, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        rc = fd < 0 ? -1 : ftruncate(fd, (off_t)a[1]);
        if (fd >= 0) {
            int e = errno;
            close(fd);
            errno = e;
        }
        break;
    }
    default: /* rename*, link*: a second name */
        dirfd2 = open_parent(ev[1].path, &base2);
        if (dirfd2 < 0) {
            errno = -dirfd2;
            break;
        }
        if (nr == __NR_link || nr == __NR_linkat)
            rc = linkat(dirfd, base, dirfd2, base2, 0);
        else
            rc = renameat2(dirfd, base, dirfd2, base2, nr == __NR_renameat2 ? (unsigned)a[4] : 0);
        break;
    }
    err = rc < 0 ? errno : 0;
    close(dirfd);
    if (dirfd2 >= 0)
        close(dirfd2);
answer:
    atomic_fetch_add(&obs->on_behalf, 1);
    memset(obs->resp, 0, obs->resp_size);
    obs->resp->id = req->id;
    obs->resp->error = -err;
    if (ioctl(obs->cfg.listener_fd, SECCOMP_IOCTL_NOTIF_SEND, obs->resp) < 0)
        atomic_fetch_add(&obs->vanished, 1);
    return ANSWERED;
}

/* connect() and bind() done here on the agent's own socket (a duplicate from
 * pidfd_getfd: the same open file description, so its blocking mode, options and
 * the resulting connection are the agent's) with the address that was decided,
 * read once. A connect may block (a TCP handshake), so each runs in its own
 * thread, which owns everything it uses. Returns ANSWERED, or 0 to CONTINUE (a
 * process with other credentials than Aegis's). */
struct net_call {
    int listener, sock, nr;
    uint64_t id;
    size_t resp_size;
    socklen_t len;
    struct sockaddr_storage addr;
};

static void *net_caller(void *arg)
{
    struct net_call *c = arg;
    int rc = c->nr == __NR_connect ? connect(c->sock, (struct sockaddr *)&c->addr, c->len)
                                   : bind(c->sock, (struct sockaddr *)&c->addr, c->len);
    int err = rc < 0 ? errno : 0;
    close(c->sock);
    struct seccomp_notif_resp *resp = calloc(1, c->resp_size);
    if (resp)
        inject(c->listener, resp, c->resp_size, c->id, -1, err, 0);
    free(resp);
    close(c->listener);
    free(c);
    return NULL;
}

static int net_on_behalf(struct aegis_observer *obs, const struct seccomp_notif *req, struct proc_info *proc,
                         const struct sockaddr_storage *addr, socklen_t len)
{
    if (proc->fsuid != obs->euid)
        return 0;
    int err = 0, sock = -1;
    int pidfd = (int)syscall(__NR_pidfd_open, proc->tgid, 0);
    if (pidfd < 0 || (sock = (int)syscall(__NR_pidfd_getfd, pidfd, (int)req->data.args[0], 0)) < 0)
        err = errno;
    if (pidfd >= 0)
        close(pidfd);
    struct net_call *c = err ? NULL : calloc(1, sizeof(*c));
    if (!err && !c)
        err = ENOMEM;
    if (c) {
        *c = (struct net_call){.listener = fcntl(obs->cfg.listener_fd, F_DUPFD_CLOEXEC, 0), .sock = sock,
                               .nr = (int)req->data.nr, .id = req->id, .resp_size = obs->resp_size, .len = len};
        memcpy(&c->addr, addr, sizeof(c->addr));
        int rc = c->listener < 0 ? errno : start_detached(net_caller, c);
        if (rc == 0) {
            atomic_fetch_add(&obs->on_behalf, 1);
            return ANSWERED;
        }
        if (c->listener >= 0)
            close(c->listener);
        free(c);
        err = rc;
    }
    if (sock >= 0)
        close(sock);
    /* EBADF/ENOTSOCK from the agent's fd argument are what the kernel would say */
    if (inject(obs->cfg.listener_fd, obs->resp, obs->resp_size, req->id, -1, err, 0) < 0)
        atomic_fetch_add(&obs->vanished, 1);
    return ANSWERED;
}

/* ---- network ---- */

static int net_rule_matches(const struct aegis_net_rule *r, int family, const uint8_t *addr, int port)
{
    if (r->family != family || (r->port && r->port != port))
        return 0;
    int bits = r->prefix_len;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        if ((addr[i] & mask) != (r->addr[i] & mask))
            return 0;
    }
    return 1;
}

/* ---- decisions and records ---- */


/* 1 if process `pid` is in the sandbox: Aegis is among its ancestors (orphans
 * of the agent are re-parented to Aegis, its subreaper). Aegis itself is not. */
static int in_sandbox(int pid)
{
    const int self = getpid();
    for (int depth = 0; depth < 128 && pid > 1 && pid != self; depth++) {
        char file[64], buf[512];
        snprintf(file, sizeof(file), "/proc/%d/status", pid);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            return 0;
        buf[n] = '\0';
        char *ppid = strstr(buf, "\nPPid:");
        if (!ppid)
            return 0;
        pid = atoi(ppid + 6);
        if (pid == self)
            return 1;
    }
    return 0;
}

/* Entries of /proc/PID that any process may read about any other (ps, top). */
static const char *const PROC_PUBLIC[] = {"stat", "status", "statm", "cmdline", "comm"};

/* 1 if `path` reaches into /proc/N of a process outside the sandbox (Aegis, or
 * anything else on the machine) beyond its public entries. Landlock's ptrace
 * scoping gives the same protection in the kernel; here it also holds for the
 * opens the supervisor makes on the agent's behalf. */
static int outside_proc(const char *path)
{
    if (strncmp(path, "/proc/", 6) != 0 || path[6] < '1' || path[6] > '9')
        return 0;
    char *end;
    long pid = strtol(path + 6, &end, 10);
    if ((*end != '/' && *end != '\0') || end[*end == '/'] == '\0')
        return 0; /* not a pid, or the directory itself (its entry names are harmless) */
    for (size_t i = 0; i < sizeof(PROC_PUBLIC) / sizeof(PROC_PUBLIC[0]); i++)
        if (strcmp(end + 1, PROC_PUBLIC[i]) == 0)
            return 0;
    return !in_sandbox((int)pid);
}

/* The guard, then the compiled table: ALLOW, DENY, or RESIDUAL when the table
 * cannot decide (the slow path's business, see decide). */
static int decide_by_table(struct aegis_observer *obs, struct event *ev)
{
    for (size_t i = 0; i < obs->cfg.n_protected; i++)
        if (under(ev->path, obs->protected_paths[i])) {
            ev->policy_index = AEGIS_POLICY_GUARD;
            return ev->decision = AEGIS_DECISION_DENY;
        }
    if (ev->action != AEGIS_ACT_NET_CONNECT && outside_proc(ev->path)) {
        ev->policy_index = AEGIS_POLICY_GUARD;
        return ev->decision = AEGIS_DECISION_DENY;
    }
    int d = AEGIS_DECISION_RESIDUAL;
    ev->policy_index = AEGIS_POLICY_NONE;
    if (obs->cfg.decide && obs->cfg.table)
        d = obs->cfg.decide(obs->cfg.table, ev->action, ev->path, strlen(ev->path), &ev->policy_index);
    return ev->decision = d;
}

static int decide(struct aegis_observer *obs, struct event *ev, int pid, const char *exe)
{
    int d = decide_by_table(obs, ev);
    if (d == AEGIS_DECISION_RESIDUAL) {
        atomic_fetch_add(&obs->residual, 1);
        ev->policy_index = AEGIS_POLICY_NONE;
        /* No slow path means no way to decide: fail closed. */
        d = obs->cfg.residual ? obs->cfg.residual(ev->action, ev->path, pid, exe, &ev->policy_index)
                              : AEGIS_DECISION_DENY;
    }
    return ev->decision = d == AEGIS_DECISION_ALLOW ? AEGIS_DECISION_ALLOW : AEGIS_DECISION_DENY;
}

static void record(struct aegis_observer *obs, const struct seccomp_notif *req, const struct proc_info *proc,
                   const struct event *ev, int error)
{
    struct aegis_record rec;
    memset(&rec, 0, offsetof(struct aegis_record, exe));
    rec.ts_ns = now_ns();
    rec.pid = proc->tgid;
    rec.tid = (int32_t)req->pid;
    rec.ppid = proc->ppid;
    rec.action = ev->action;
    rec.decision = ev->decision;
    rec.policy_index = ev->policy_index;
    rec.syscall_nr = req->data.nr;
    rec.error = error;
    rec.arg = ev->arg;
    size_t n = strlen(proc->exe);
    memcpy(rec.exe, proc->exe, n + 1);
    n = strlen(ev->path);
    if (n >= AEGIS_REC_PATH_MAX) {
        n = AEGIS_REC_PATH_MAX - 1;
        rec.truncated |= AEGIS_REC_PATH_TRUNCATED;
    }
    memcpy(rec.path, ev->path, n);
    rec.path[n] = '\0';
    rec.path_len = (uint32_t)n;
    memcpy(rec.extra, ev->extra, ev->extra_len);
    rec.extra[ev->extra_len] = '\0';
    rec.extra_len = (uint32_t)ev->extra_len;
    if (ev->extra_truncated)
        rec.truncated |= AEGIS_REC_EXTRA_TRUNCATED;
    /* A full ring delays the agent a little (the consumer drains every few ms),
     * then the record is dropped and counted: never an unbounded block. */
    if (aegis_ring_push_wait(obs->cfg.ring, &rec, obs->cfg.ring_wait_ms) == 0)
        atomic_fetch_add(&obs->records, 1);
}

static void read_argv(int pid, uint64_t argv_addr, struct event *ev)
{
    ev->extra_len = 0;
    ev->extra_truncated = 0;
    if (!argv_addr)
        return;
    uint64_t ptrs[MAX_ARGV];
    size_t count = 0;
    for (; count < MAX_ARGV; count++)
        if (read_remote(pid, argv_addr + count * 8, &ptrs[count], 8) < 0 || ptrs[count] == 0)
            break;
    if (count == MAX_ARGV)
        ev->extra_truncated = 1;
    for (size_t i = 0; i < count; i++) {
        size_t room = sizeof(ev->extra) - 1 - ev->extra_len;
        if (room < 2) {
            ev->extra_truncated = 1;
            break;
        }
        int n = aegis_read_remote_string(pid, ptrs[i], ev->extra + ev->extra_len, room);
        if (n < 0) {
            /* longer than the room left: keep what fits, say it was cut */
            n = (int)strnlen(ev->extra + ev->extra_len, room - 1);
            ev->extra_truncated = 1;
        }
        ev->extra_len += (size_t)n + 1;
    }
    if (ev->extra_len)
        ev->extra_len--; /* no trailing separator */
}

static void format_inet(struct event *ev, const struct sockaddr_storage *ss, int *family, uint8_t addr[16], int *port)
{
    char host[INET6_ADDRSTRLEN];
    memset(addr, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        memcpy(addr, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(ev->path, sizeof(ev->path), "%s:%d", host, *port);
    } else {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        memcpy(addr, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(ev->path, sizeof(ev->path), "[%s]:%d", host, *port);
    }
    *family = ss->ss_family;
}

/* Handles one notification; returns the errno to answer (0 = let it run). */
#ifndef __NR_fchmodat2
#define AEGIS_NR_FCHMODAT2 452 /* Linux 6.6; Debian's 6.1 headers lack it */
#else
#define AEGIS_NR_FCHMODAT2 __NR_fchmodat2
#endif

/* What /proc/PID/fd/N reads for a file with no path: a memfd or a deleted file. */
static int names_a_descriptor(const char *path)
{
    static const char deleted[] = " (deleted)";
    size_t n = strlen(path), d = sizeof(deleted) - 1;
    return strncmp(path, "/memfd:", 7) == 0 || (n >= d && strcmp(path + n - d, deleted) == 0);
}

/* The common open, a read of a file or directory the table allows, done in one
 * path walk: decided on the lexically canonical path, then opened on the
 * agent's behalf refusing every symlink (RESOLVE_NO_SYMLINKS). When that open
 * succeeds, or fails for another reason than a symlink, the walk met none: the
 * lexical path is the resolved one the general way would have decided on, and
 * the descriptor is of the file decided. Returns ANSWERED, or 0 when nothing
 * was done and the caller takes the general way: a symlink on the way, a denial
 * or a residual decision on the lexical path (the resolved one may differ),
 * /proc, writes and creations, O_PATH, openat2 resolve flags, other
 * credentials, and blocking opens of anything but a regular file or directory
 * (a FIFO waits for its other end in a thread of its own).
 *
 * No SECCOMP_IOCTL_NOTIF_ID_VALID before acting: the only action is the
 * injection, and SECCOMP_ADDFD_FLAG_SEND fails with ENOENT unless the agent is
 * still waiting in this very syscall, which is the same proof taken later
 * (after every read of its memory and /proc). A read-only open of a regular
 * file or directory done for nobody has no effect, and the record is written
 * only once the agent has its answer. */
static int open_fast(struct aegis_observer *obs, const struct seccomp_notif *req, struct event *ev, uint64_t flags,
                     uint64_t resolve)
{
    const char *path = ev->path;
    if (!obs->cfg.open_on_behalf || !obs->cfg.resolve_symlinks || resolve != 0 ||
        (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | __O_TMPFILE | O_PATH)) ||
        (strncmp(path, "/proc", 5) == 0 && (path[5] == '/' || path[5] == '\0')))
        return 0;
    struct proc_info *proc = proc_lookup(obs, (int)req->pid);
    if (proc->fsuid != obs->euid || decide_by_table(obs, ev) != AEGIS_DECISION_ALLOW)
        return 0;
    struct stat st;
    if (!(flags & O_NONBLOCK) && fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode) &&
        !S_ISDIR(st.st_mode))
        return 0;
    flags &= OPEN_FLAGS;
    int fd = open_how2(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0, RESOLVE_NO_SYMLINKS);
    int err = errno;
    if (fd < 0 && err == ELOOP)
        return 0;
    if (fd >= 0 && !(flags & O_NONBLOCK))
        fcntl(fd, F_SETFL, (int)(flags & (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME)));
    atomic_fetch_add(&obs->on_behalf, 1);
    if (inject(obs->cfg.listener_fd, obs->resp, obs->resp_size, req->id, fd, err, (uint32_t)(flags & O_CLOEXEC)) < 0) {
        atomic_fetch_add(&obs->vanished, 1);
        return ANSWERED;
    }
    record(obs, req, proc, ev, 0);
    return ANSWERED;
}

static int handle(struct aegis_observer *obs, const struct seccomp_notif *req)
{
    const int pid = (int)req->pid;
    const __u64 *a = req->data.args;
    const int nr = req->data.nr;
    struct event ev[2];
    int n_ev = 1, deny_errno = EACCES, rc = 0;
    int is_open = 0, path_op = 0;
    uint64_t open_flags = 0, open_mode = 0, open_resolve = 0;
    int open_dirfd = AT_FDCWD;
    memset(ev, 0, sizeof(ev));

    switch (nr) {
    case __NR_exit_group:
        ev[0].action = AEGIS_ACT_PROCESS_EXIT;
        ev[0].arg = (int64_t)(a[0] & 0xff);
        ev[0].decision = AEGIS_DECISION_ALLOW;
        ev[0].policy_index = AEGIS_POLICY_NONE;
        break;
    case __NR_open:
    case __NR_openat:
    case __NR_openat2:
    case __NR_creat: {
        int dirfd = nr == __NR_openat || nr == __NR_openat2 ? (int)a[0] : AT_FDCWD;
        open_dirfd = dirfd;
        uint64_t path = nr == __NR_openat || nr == __NR_openat2 ? a[1] : a[0];
        uint64_t flags = nr == __NR_open ? a[1] : nr == __NR_openat ? a[2] : O_CREAT | O_WRONLY | O_TRUNC;
        uint64_t how[3] = {0, 0, 0}; /* struct open_how: flags, mode, resolve */
        if (nr == __NR_openat2) {
            if (read_remote(pid, a[2], how, sizeof(how)) < 0)
                rc = -EFAULT;
            flags = how[0];
        }
        is_open = 1;
        open_flags = flags;
        open_mode = nr == __NR_openat2 ? how[1] : nr == __NR_open ? a[2] : nr == __NR_openat ? a[3] : a[1];
        open_resolve = how[2];
        int write = (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
        ev[0].action = write ? AEGIS_ACT_FILE_WRITE
                       : (flags & O_DIRECTORY) ? AEGIS_ACT_DIR_LIST : AEGIS_ACT_FILE_READ;
        ev[0].arg = (int64_t)flags;
        int follow = !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
        if (rc == 0)
            rc = agent_path_lexical(obs, pid, dirfd, path, ev[0].path);
        if (rc == 0 && open_fast(obs, req, &ev[0], flags, open_resolve) == ANSWERED)
            return ANSWERED;
        if (rc == 0)
            rc = agent_path_resolve(obs, pid, follow, ev[0].path);
        break;
    }
    case __NR_execve:
    case __NR_execveat: {
        int at = nr == __NR_execveat;
        ev[0].action = AEGIS_ACT_PROCESS_SPAWN;
        rc = agent_path(obs, pid, at ? (int)a[0] : AT_FDCWD, at ? a[1] : a[0], 1, ev[0].path);
        struct stat st;
        /* A PATH search tries directories that lack the program: those attempts
         * fail on their own and are not spawns. A program named by a descriptor
         * (execveat AT_EMPTY_PATH, /proc/self/fd/N: a memfd or a deleted file)
         * resolves to "/memfd:NAME (deleted)" or "... (deleted)", which cannot be
         * stat'ed and is a spawn all the same. */
        if (rc == 0 && stat(ev[0].path, &st) < 0 && errno == ENOENT && !names_a_descriptor(ev[0].path))
            return -1;
        read_argv(pid, at ? a[2] : a[1], &ev[0]);
        break;
    }
    case __NR_unlink:
    case __NR_unlinkat:
    case __NR_rmdir:
        if (nr == __NR_rmdir || (nr == __NR_unlinkat && (a[2] & AT_REMOVEDIR)))
            dirfd_forget_all(obs); /* a cached directory name may be gone */
        ev[0].action = AEGIS_ACT_FILE_DELETE;
        path_op = 1;
        rc = nr == __NR_unlinkat ? agent_path(obs, pid, (int)a[0], a[1], 0, ev[0].path)
                                 : agent_path(obs, pid, AT_FDCWD, a[0], 0, ev[0].path);
        break;
    case __NR_mkdir:
    case __NR_mkdirat:
        ev[0].action = AEGIS_ACT_DIR_CREATE;
        path_op = 1;
        rc = nr == __NR_mkdirat ? agent_path(obs, pid, (int)a[0], a[1], 0, ev[0].path)
                                : agent_path(obs, pid, AT_FDCWD, a[0], 0, ev[0].path);
        break;
    case __NR_truncate:
        ev[0].action = AEGIS_ACT_FILE_WRITE;
        path_op = 1;
        rc = agent_path(obs, pid, AT_FDCWD, a[0], 1, ev[0].path);
        break;
    case __NR_rename:
    case __NR_renameat:
    case __NR_renameat2:
    case __NR_link:
    case __NR_linkat: {
        /* The old name is removed (rename) or given a second name (link): both
         * names are decided, and either denial denies the call. */
        int two_dirs = nr == __NR_renameat || nr == __NR_renameat2 || nr == __NR_linkat;
        int is_link = nr == __NR_link || nr == __NR_linkat;
        if (!is_link)
            dirfd_forget_all(obs); /* a cached directory name may change */
        n_ev = 2;
        ev[0].action = is_link ? AEGIS_ACT_FILE_READ : AEGIS_ACT_FILE_DELETE;
        path_op = 1;
        ev[1].action = AEGIS_ACT_FILE_WRITE;
        rc = two_dirs ? agent_path(obs, pid, (int)a[0], a[1], 0, ev[0].path)
                      : agent_path(obs, pid, AT_FDCWD, a[0], 0, ev[0].path);
        if (rc == 0)
            rc = two_dirs ? agent_path(obs, pid, (int)a[2], a[3], 0, ev[1].path)
                          : agent_path(obs, pid, AT_FDCWD, a[1], 0, ev[1].path);
        break;
    }
    case __NR_chmod:
    case __NR_chown:
    case __NR_lchown:
    case __NR_utime:
    case __NR_utimes:
    case __NR_setxattr:
    case __NR_lsetxattr:
    case __NR_removexattr:
    case __NR_lremovexattr:
        /* Metadata: no Landlock right covers it; decided as a write of the file. */
        ev[0].action = AEGIS_ACT_FILE_WRITE;
        rc = agent_path(obs, pid, AT_FDCWD, a[0],
                        nr != __NR_lchown && nr != __NR_lsetxattr && nr != __NR_lremovexattr, ev[0].path);
        break;
    case __NR_fchmodat:
    case AEGIS_NR_FCHMODAT2:
    case __NR_fchownat:
    case __NR_utimensat: {
        /* utimensat(fd, NULL, ...) is futimens(fd): the descriptor's own open was decided */
        if (nr == __NR_utimensat && a[1] == 0)
            return -1;
        /* flags: none for fchmodat, a[3] for fchmodat2 and utimensat, a[4] for fchownat */
        uint64_t at_flags = nr == __NR_fchmodat ? 0 : nr == __NR_fchownat ? a[4] : a[3];
        ev[0].action = AEGIS_ACT_FILE_WRITE;
        rc = agent_path(obs, pid, (int)a[0], a[1], !(at_flags & AT_SYMLINK_NOFOLLOW), ev[0].path);
        break;
    }
    case __NR_symlink:
    case __NR_symlinkat:
        ev[0].action = AEGIS_ACT_FILE_WRITE;
        path_op = 1;
        rc = nr == __NR_symlinkat ? agent_path(obs, pid, (int)a[1], a[2], 0, ev[0].path)
                                  : agent_path(obs, pid, AT_FDCWD, a[1], 0, ev[0].path);
        break;
    case __NR_connect:
    case __NR_bind: {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        size_t len = a[2] < sizeof(ss) ? (size_t)a[2] : sizeof(ss);
        if (len < sizeof(sa_family_t) || read_remote(pid, a[1], &ss, len) < 0)
            return -1; /* the kernel rejects it by itself */
        ev[0].action = AEGIS_ACT_NET_CONNECT;
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
            int family, port;
            uint8_t addr[16];
            format_inet(&ev[0], &ss, &family, addr, &port);
            ev[0].arg = port;
            if (ioctl(obs->cfg.listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
                return -2;
            struct proc_info *proc = proc_lookup(obs, pid);
            if (decide(obs, &ev[0], proc->tgid, proc->exe) != AEGIS_DECISION_ALLOW)
                for (size_t i = 0; i < obs->cfg.n_net_rules; i++)
                    if (net_rule_matches(&obs->net_rules[i], family, addr, port)) {
                        ev[0].decision = AEGIS_DECISION_ALLOW;
                        ev[0].policy_index = AEGIS_POLICY_NETLIST;
                        break;
                    }
            int err = ev[0].decision == AEGIS_DECISION_ALLOW ? 0 : EACCES;
            record(obs, req, proc, &ev[0], err);
            if (err == 0 && obs->cfg.open_on_behalf)
                return net_on_behalf(obs, req, proc, &ss, (socklen_t)len);
            return err;
        }
        if (ss.ss_family != AF_UNIX)
            return -1;
        const struct sockaddr_un *un = (const void *)&ss;
        size_t plen = len - offsetof(struct sockaddr_un, sun_path);
        if (nr == __NR_connect && plen > 0 && un->sun_path[0] != '\0') {
            /* A pathname socket reaches whatever service listens there (docker.sock,
             * ssh-agent, D-Bus): a connection like any other, decided as NetConnect
             * of "unix:" and the socket's canonical path in the agent's view. */
            char raw[sizeof(un->sun_path) + 1], canon[PATH_BUF], base[PATH_BUF] = "";
            snprintf(raw, sizeof(raw), "%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
            if ((raw[0] != '/' && agent_dir(obs, pid, AT_FDCWD, base, sizeof(base)) < 0) ||
                aegis_canonicalize(base, raw, canon, sizeof(canon)) == 0)
                return -1; /* the kernel fails it the same way */
            if (snprintf(ev[0].path, sizeof(ev[0].path), "unix:%.*s", (int)(sizeof(ev[0].path) - 6), canon) >=
                (int)sizeof(ev[0].path))
                return -1;
            if (ioctl(obs->cfg.listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
                return -2;
            struct proc_info *proc = proc_lookup(obs, pid);
            int err = decide(obs, &ev[0], proc->tgid, proc->exe) == AEGIS_DECISION_ALLOW ? 0 : EACCES;
            record(obs, req, proc, &ev[0], err);
            return err;
        }
        /* Abstract sockets are recorded, not decided: Landlock's scope (ABI 6) keeps
         * them inside the sandbox. Binding a pathname socket creates it. */
        if (plen > 0 && un->sun_path[0] == '\0')
            snprintf(ev[0].path, sizeof(ev[0].path), "unix:@%.*s", (int)(plen - 1), un->sun_path + 1);
        else
            snprintf(ev[0].path, sizeof(ev[0].path), "unix:%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
        ev[0].decision = AEGIS_DECISION_ALLOW;
        ev[0].policy_index = AEGIS_POLICY_NONE;
        break;
    }
    default: {
        /* A syscall the filter refuses whatever the policy (io_uring, ptrace, a new
         * user namespace, a datagram socket...): it is notified only so that the
         * attempt is recorded, then refused with the filter's errno. What is
         * recorded comes from registers in the notification: nothing to race. An
         * unknown number is refused too (fail closed). */
        int refused = EPERM;
        for (size_t i = 0; i < obs->cfg.n_refusals; i++)
            if (obs->cfg.refusals[i].nr == nr)
                refused = obs->cfg.refusals[i].error;
        ev[0].action = AEGIS_ACT_SYSCALL_REFUSED;
        ev[0].decision = AEGIS_DECISION_DENY;
        ev[0].policy_index = AEGIS_POLICY_GUARD;
        ev[0].arg = (int64_t)a[0];
        record(obs, req, proc_lookup(obs, pid), &ev[0], refused);
        return refused;
    }
    }
    /* A path the kernel itself cannot use fails the call the same way, so it
     * runs unrecorded; any other reading failure (e.g. EPERM from an agent that
     * made itself non-dumpable) is denied: never allowed unseen. */
    if (rc == -EFAULT || rc == -ENAMETOOLONG || rc == -EBADF)
        return -1;
    if (ioctl(obs->cfg.listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
        return -2;
    struct proc_info *proc = proc_lookup(obs, pid);
    if (rc < 0) {
        n_ev = 1;
        snprintf(ev[0].path, sizeof(ev[0].path), "(unreadable: errno %d)", -rc);
        ev[0].decision = AEGIS_DECISION_DENY;
        ev[0].policy_index = AEGIS_POLICY_NONE;
        record(obs, req, proc, &ev[0], deny_errno);
        return deny_errno;
    }
    int err = 0;
    for (int i = 0; i < n_ev; i++)
        if (ev[i].action != AEGIS_ACT_PROCESS_EXIT && ev[i].action != AEGIS_ACT_NET_CONNECT &&
            decide(obs, &ev[i], proc->tgid, proc->exe) != AEGIS_DECISION_ALLOW)
            err = deny_errno;
    for (int i = 0; i < n_ev; i++)
        record(obs, req, proc, &ev[i], err);
    if (err == 0 && is_open && obs->cfg.open_on_behalf) {
        /* openat2's resolve flags must not send the open back to the kernel, which
         * would read the agent's path again (a race) in the agent's root. The path
         * decided is already resolved; RESOLVE_BENEATH holds when it is under the
         * dirfd, and RESOLVE_IN_ROOT (absolute paths and ".." re-rooted at the
         * dirfd, which the decision did not do) is refused. */
        if (open_resolve & RESOLVE_IN_ROOT)
            return EXDEV;
        if (open_resolve & RESOLVE_BENEATH) {
            char dir[PATH_BUF];
            if (agent_dir(obs, pid, open_dirfd, dir, sizeof(dir)) < 0 || !under(ev[0].path, dir))
                return EXDEV;
        }
        return open_on_behalf(obs, req, proc, ev[0].path, open_flags, open_mode);
    }
    if (err == 0 && path_op && obs->cfg.open_on_behalf)
        return path_op_on_behalf(obs, req, proc, ev);
    return err;
}

static void answer(struct aegis_observer *obs, struct seccomp_notif_resp *resp, uint64_t id, int err)
{
    memset(resp, 0, obs->resp_size);
    resp->id = id;
    if (err > 0) {
        resp->error = -err;
        atomic_fetch_add(&obs->denied, 1);
    } else {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    }
    if (ioctl(obs->cfg.listener_fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0)
        atomic_fetch_add(&obs->vanished, 1);
}

/* Waiting for the next notification. With SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
 * (Linux 6.6, the same series that made SECCOMP_IOCTL_NOTIF_RECV wait on the
 * filter's wait queue and return once no process holds the filter) the thread
 * blocks in RECV itself: the agent's wake-up lands on its own CPU straight into
 * the receiving thread, and each notification costs one syscall less than a
 * poll() before it. aegis_observer_stop interrupts that RECV with WAKE_SIGNAL,
 * whose handler does nothing (no SA_RESTART: the ioctl fails with EINTR). On
 * older kernels, or when the process already uses WAKE_SIGNAL for something
 * else, the thread polls the listener and an eventfd instead. */
#define WAKE_SIGNAL (SIGRTMAX - 5)

static void wake_handler(int sig)
{
    (void)sig;
}

/* 1 when WAKE_SIGNAL is (now) handled by wake_handler, 0 when someone else owns it. */
static int own_wake_signal(void)
{
    struct sigaction old, sa;
    if (sigaction(WAKE_SIGNAL, NULL, &old) < 0)
        return 0;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == wake_handler)
        return 1;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(WAKE_SIGNAL, &sa, NULL) == 0;
}

/* 1 once no process holds the filter any more (the listener hangs up). */
static int listener_hung_up(int listener)
{
    struct pollfd fd = {listener, POLLIN, 0};
    return poll(&fd, 1, 0) == 1 && !(fd.revents & POLLIN) && (fd.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Waits for a notification and receives it into obs->req: 1 when one came, 0 to
 * look again (a signal, a caller killed while it was being received), -1 when
 * the thread must end (stopped, or every process under the filter is gone). */
static int receive(struct aegis_observer *obs, struct pollfd fds[2])
{
    if (obs->blocking_recv) {
        if (atomic_load(&obs->stopping))
            return -1;
    } else {
        if (poll(fds, 2, -1) < 0)
            return errno == EINTR ? 0 : -1;
        if (fds[1].revents)
            return -1;
        if (!(fds[0].revents & POLLIN))
            return fds[0].revents & (POLLHUP | POLLERR | POLLNVAL) ? -1 : 0;
    }
    memset(obs->req, 0, obs->req_size);
    if (ioctl(obs->cfg.listener_fd, SECCOMP_IOCTL_NOTIF_RECV, obs->req) == 0)
        return 1;
    /* ENOENT: the caller died while we were woken, or (blocking) nobody is left */
    return obs->blocking_recv && errno != EINTR && listener_hung_up(obs->cfg.listener_fd) ? -1 : 0;
}

static void *observer_main(void *arg)
{
    struct aegis_observer *obs = arg;
    struct pollfd fds[2] = {{obs->cfg.listener_fd, POLLIN, 0}, {obs->stop_fd, POLLIN, 0}};
    if (obs->blocking_recv) {
        sigset_t wake;
        sigemptyset(&wake);
        sigaddset(&wake, WAKE_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    }
    for (;;) {
        int got = receive(obs, fds);
        if (got < 0)
            break;
        if (got == 0)
            continue;
        atomic_fetch_add(&obs->notifications, 1);
        int nr = obs->req->data.nr, pid = (int)obs->req->pid;
        int err = handle(obs, obs->req);
        if (err == ANSWERED) {
            continue;
        } else if (err == -2) {
            atomic_fetch_add(&obs->vanished, 1);
            continue;
        }
        answer(obs, obs->resp, obs->req->id, err > 0 ? err : 0);
        /* after an exec or exit the cached executable is stale */
        if (nr == __NR_execve || nr == __NR_execveat || nr == __NR_exit_group)
            proc_forget(obs, pid);
    }
    atomic_store(&obs->finished, 1);
    return NULL;
}

struct aegis_observer *aegis_observer_start(const struct aegis_observer_config *config, int *error)
{
    struct seccomp_notif_sizes sizes;
    struct aegis_observer *obs = calloc(1, sizeof(*obs));
    if (!obs) {
        *error = ENOMEM;
        return NULL;
    }
    obs->cfg = *config;
    obs->stop_fd = -1;
    if (syscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
        goto fail;
    /* the kernel's structs may be larger than this build's headers */
    obs->req_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif
                                                                        : sizeof(struct seccomp_notif);
    obs->resp_size = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) ? sizes.seccomp_notif_resp
                                                                                  : sizeof(struct seccomp_notif_resp);
    obs->req = calloc(1, obs->req_size);
    obs->resp = calloc(1, obs->resp_size);
    obs->protected_paths = calloc(config->n_protected + 1, sizeof(char *));
    obs->net_rules = calloc(config->n_net_rules + 1, sizeof(struct aegis_net_rule));
    if (!obs->req || !obs->resp || !obs->protected_paths || !obs->net_rules) {
        errno = ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < config->n_protected; i++)
        if (!(obs->protected_paths[i] = strdup(config->protected_paths[i]))) {
            errno = ENOMEM;
            goto fail;
        }
    if (config->n_net_rules)
        memcpy(obs->net_rules, config->net_rules, config->n_net_rules * sizeof(struct aegis_net_rule));
    obs->cfg.protected_paths = (const char *const *)obs->protected_paths;
    obs->cfg.net_rules = obs->net_rules;
    obs->euid = (unsigned)geteuid();
    for (size_t i = 0; i < DIRFD_CACHE; i++)
        obs->dirfds[i] = (struct dirfd_entry){.tgid = 0, .agent_fd = -1, .local_fd = UNPINNED};
    obs->self_pid = getpid();
    obs->kcmp_works = syscall(__NR_kcmp, obs->self_pid, obs->self_pid, KCMP_FILE, config->listener_fd,
                              config->listener_fd) == 0;
    obs->sync_wakeup = ioctl(config->listener_fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                             SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0;
    obs->blocking_recv = obs->sync_wakeup && own_wake_signal();
    if ((obs->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
        goto fail;
    int rc = pthread_create(&obs->thread, NULL, observer_main, obs);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    return obs;
fail:
    *error = errno;
    if (obs->stop_fd >= 0)
        close(obs->stop_fd);
    for (size_t i = 0; obs->protected_paths && i < config->n_protected; i++)
        free(obs->protected_paths[i]);
    free(obs->protected_paths);
    free(obs->net_rules);
    free(obs->req);
    free(obs->resp);
    free(obs);
    return NULL;
}

/* Stops the thread (if still serving) and frees everything; the listener fd
 * stays the caller's to close. */
void aegis_observer_stop(struct aegis_observer *obs)
{
    uint64_t one = 1;
    atomic_store(&obs->stopping, 1);
    (void)!write(obs->stop_fd, &one, sizeof(one));
    /* A signal sent just before the thread enters RECV is lost: sent again until it ends. */
    while (obs->blocking_recv) {
        if (!atomic_load(&obs->finished))
            pthread_kill(obs->thread, WAKE_SIGNAL);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 10 * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        if (pthread_timedjoin_np(obs->thread, NULL, &until) == 0)
            break;
    }
    if (!obs->blocking_recv)
        pthread_join(obs->thread, NULL);
    close(obs->stop_fd);
    dirfd_forget_all(obs);
    for (size_t i = 0; i < obs->cfg.n_protected; i++)
        free(obs->protected_paths[i]);
    free(obs->protected_paths);
    free(obs->net_rules);
    free(obs->req);
    free(obs->resp);
    free(obs);
}

void aegis_observer_get_stats(struct aegis_observer *obs, struct aegis_observer_stats *out)
{
    out->notifications = atomic_load(&obs->notifications);
    out->records = atomic_load(&obs->records);
    out->denied = atomic_load(&obs->denied);
    out->vanished = atomic_load(&obs->vanished);
    out->residual = atomic_load(&obs->residual);
    out->on_behalf = atomic_load(&obs->on_behalf);
    out->sync_wakeup = obs->sync_wakeup;
    out->blocking_recv = obs->blocking_recv;
    out->finished = atomic_load(&obs->finished);
}

#else
#include <errno.h>
struct aegis_observer *aegis_observer_start(const struct aegis_observer_config *config, int *error)
{ (void)config; *error = ENOSYS; return 0; }
void aegis_observer_stop(struct aegis_observer *obs) { (void)obs; }
void aegis_observer_get_stats(struct aegis_observer *obs, struct aegis_observer_stats *out) { (void)obs; (void)out; }
size_t aegis_canonicalize(const char *base, const char *path, char *out, size_t cap)
{ (void)base; (void)path; (void)out; (void)cap; return 0; }
int aegis_read_remote_string(int pid, uint64_t addr, char *out, size_t cap)
{ (void)pid; (void)addr; (void)out; (void)cap; return -ENOSYS; }
#endif
