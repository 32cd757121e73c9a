/* observe_fanotify.c: the fanotify observer (see observe_fanotify.h); driven
 * by aegis/observer/fanotify.py.
 *
 * Why this shape:
 * - Filesystem marks see every process on the filesystem, so the reader keeps
 *   only events of processes in the session cgroup. Children inherit the cgroup
 *   at fork and an unprivileged agent cannot leave it, so membership is the
 *   process tree without a racy pid list. Membership is cached per pid for one
 *   second: pid numbers cycle through pid_max before reuse, which takes far
 *   longer than that.
 * - Events are read after the fact, so a short-lived process (`cat`, `ls`) is
 *   often reaped before its events are read and /proc/PID/cgroup is gone. The
 *   process tree is therefore also followed through the proc connector (netlink
 *   fork events, sent synchronously at fork): a pid forked by a session process
 *   is a session process, dead or alive. A fork by an outside parent takes the
 *   pid number back out of the session (pid reuse). The connector socket is
 *   drained after each read of the fanotify queue, which is the order the
 *   kernel produced them in (a fork precedes the child's file events).
 * - FAN_REPORT_DFID_NAME reports (directory handle, name); directory paths are
 *   resolved with open_by_handle_at on a descriptor of the marked filesystem and
 *   cached per handle. Any directory rename on the filesystem (from any process)
 *   invalidates the cache, because it may change cached paths.
 * - Records match observe_seccomp.c: one FileRead/DirList per open, one
 *   ProcessSpawn per exec, one FileWrite per write session (the first MODIFY, or
 *   the CLOSE_WRITE of an open that wrote nothing), FileDelete/FileWrite for the
 *   two sides of a rename. fanotify reports only operations that succeeded, so
 *   every record is an allowed action.
 * - The kernel queue is unlimited (FAN_UNLIMITED_QUEUE) and the reader waits for
 *   room in the ring instead of dropping: the agent never waits on this reader. */
#ifdef __linux__
#define _GNU_SOURCE
#include "observe_fanotify.h"

#include "aegis_actions.h"
#include "observe_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_FS 32
#define PID_SLOTS 4096
#define HELD_SPAWNS 64
#define DIR_SLOTS 2048
#define WRITE_SLOTS 4096
#define HANDLE_MAX 128
#define PID_TTL_NS 1000000000ULL
#define SPAWN_HOLD_NS 200000000ULL
#define MAX_TRACKED 64           /* pids handed over by aegis_fan_track_pid */
#define PID_LIMIT (1 << 22)      /* the kernel's PID_MAX_LIMIT */

struct fs_entry {
    __kernel_fsid_t fsid;
    int mount_fd;
};

struct pid_entry {
    int32_t pid;
    int8_t in_session;       /* 1 in, 0 out */
    int8_t exe_stale;        /* an exec started since exe was read */
    int8_t in_exec;          /* an exec open was seen and the new program has not opened anything yet */
    uint32_t epoch;          /* membership epoch when checked */
    int32_t ppid;
    uint64_t checked_ns;     /* 0 = empty */
    char exe[AEGIS_REC_EXE_MAX];
};

/* A ProcessSpawn waits for its exec to finish: the argv is only in
 * /proc/PID/cmdline once the new program runs (see flush_spawn). */
struct held_spawn {
    int32_t pid;
    uint64_t since_ns;       /* 0 = free */
    struct aegis_record rec;
};

struct dir_entry {
    uint64_t generation;     /* 0 = empty */
    uint64_t fsid;
    uint32_t handle_len;
    unsigned char handle[HANDLE_MAX];
    char path[AEGIS_REC_PATH_MAX];
};

struct aegis_fan {
    int fd;
    int stop_fd;
    int self_pid;
    uint64_t mask;
    struct aegis_ring *ring;
    char cgroup[512];
    struct fs_entry fs[MAX_FS];
    int n_fs;
    pthread_t thread;
    int started;
    atomic_int stop_requested;
    atomic_int finished;
    atomic_int abandoned;        /* the consumer is gone: a full ring drops instead of waiting */
    atomic_uint membership_epoch;
    int proc_fd;                 /* proc connector socket, -1 when unavailable */
    uint8_t *lineage;            /* bit per pid: forked from the session tree */
    _Atomic int32_t tracked[MAX_TRACKED];
    atomic_uint n_tracked;
    unsigned n_tracked_applied;
    atomic_uint tracked_applied;   /* n_tracked_applied, for aegis_fan_get_stats */
    uint64_t dir_generation;
    int held_spawns;
    struct held_spawn held[HELD_SPAWNS];
    _Atomic uint64_t st_events, st_records, st_outside, st_unattributed, st_unresolved, st_folded,
        st_overflows, st_by_lineage, st_forks, st_connector_lost;
    struct pid_entry pids[PID_SLOTS];
    struct dir_entry dirs[DIR_SLOTS];
    uint64_t writes[WRITE_SLOTS]; /* write-session keys: a FileWrite was recorded */
    _Alignas(struct fanotify_event_metadata) char buf[64 * 1024];
};

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* FNV-1a: small, good enough to spread handles and pids over cache slots. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static ssize_t read_small_file(const char *file, char *buf, size_t cap)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    return n;
}

/* The cgroup v2 line of /proc/PID/cgroup is "0::<path>". */
int aegis_pid_in_cgroup(int pid, const char *cgroup)
{
    char file[64], buf[4096];
    snprintf(file, sizeof(file), "/proc/%d/cgroup", pid);
    ssize_t n = read_small_file(file, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    size_t want = strlen(cgroup);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        const char *path = line + 3;
        /* below the session cgroup counts too, but "/aegis/s1" must not match "/aegis/s10" */
        return strncmp(path, cgroup, want) == 0 && (path[want] == '\n' || path[want] == '/' ||
                                                    path[want] == '\0');
    }
    return 0;
}

/* Reads exe and ppid of a process; returns 0 (keeping the exe p had) when the exe is gone. */
static int read_process_facts(struct pid_entry *p)
{
    char file[64], buf[512], exe[AEGIS_REC_EXE_MAX];
    snprintf(file, sizeof(file), "/proc/%d/exe", p->pid);
    ssize_t n = readlink(file, exe, sizeof(exe) - 1);
    if (n > 0) {
        memcpy(p->exe, exe, (size_t)n);
        p->exe[n] = '\0';
        p->exe_stale = 0;
    }
    /* stat stays readable for a zombie, whose exe link is already gone */
    snprintf(file, sizeof(file), "/proc/%d/stat", p->pid);
    if (read_small_file(file, buf, sizeof(buf)) > 0) {
        /* "pid (comm) state ppid ...": comm may hold spaces and ')' so search from the end */
        char *close_paren = strrchr(buf, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2] && close_paren[3] == ' ')
            p->ppid = atoi(close_paren + 4);
    }
    return n > 0;
}

static int lineage_has(const struct aegis_fan *fan, int pid)
{
    return pid > 0 && pid < PID_LIMIT && (fan->lineage[pid >> 3] >> (pid & 7)) & 1;
}

static void lineage_set(struct aegis_fan *fan, int pid, int in)
{
    if (pid <= 0 || pid >= PID_LIMIT)
        return;
    if (in)
        fan->lineage[pid >> 3] |= (uint8_t)(1u << (pid & 7));
    else
        fan->lineage[pid >> 3] &= (uint8_t) ~(1u << (pid & 7));
}

static void push_record(struct aegis_fan *fan, struct aegis_record *rec);
static void read_cmdline(int pid, struct aegis_record *rec);

static struct held_spawn *held_for(struct aegis_fan *fan, int pid)
{
    for (int i = 0; i < HELD_SPAWNS && fan->held_spawns > 0; i++)
        if (fan->held[i].since_ns && fan->held[i].pid == pid)
            return &fan->held[i];
    return NULL;
}

static void emit_held(struct aegis_fan *fan, struct held_spawn *h)
{
    read_cmdline(h->pid, &h->rec);
    push_record(fan, &h->rec);
    h->since_ns = 0;
    fan->held_spawns--;
}

/* Emit pid's held ProcessSpawn (if any) with the argv the new program runs with. */
static void flush_spawn(struct aegis_fan *fan, int pid)
{
    struct held_spawn *h = held_for(fan, pid);
    if (h)
        emit_held(fan, h);
}

/* Flush held spawns older than min_age_ns (0: all). */
static void flush_held_spawns(struct aegis_fan *fan, uint64_t min_age_ns)
{
    uint64_t now = now_ns(CLOCK_MONOTONIC_COARSE);
    for (int i = 0; i < HELD_SPAWNS && fan->held_spawns > 0; i++)
        if (fan->held[i].since_ns && now - fan->held[i].since_ns >= min_age_ns)
            emit_held(fan, &fan->held[i]);
}

static void hold_spawn(struct aegis_fan *fan, const struct aegis_record *rec)
{
    flush_spawn(fan, rec->pid);
    struct held_spawn *slot = NULL;
    for (int i = 0; i < HELD_SPAWNS; i++) {
        struct held_spawn *h = &fan->held[i];
        if (!h->since_ns) {
            slot = h;
            break;
        }
        if (!slot || h->since_ns < slot->since_ns)
            slot = h;
    }
    if (slot->since_ns)
        emit_held(fan, slot); /* all slots busy: the oldest exec is surely over */
    slot->pid = rec->pid;
    memcpy(&slot->rec, rec, sizeof(*rec));
    slot->since_ns = now_ns(CLOCK_MONOTONIC_COARSE);
    fan->held_spawns++;
}

/* The session entry for pid, NULL when outside (or gone before we could tell). */
static struct pid_entry *session_process(struct aegis_fan *fan, int pid)
{
    struct pid_entry *p = &fan->pids[(uint32_t)pid % PID_SLOTS];
    uint64_t now = now_ns(CLOCK_MONOTONIC_COARSE);
    unsigned epoch = atomic_load_explicit(&fan->membership_epoch, memory_order_acquire);
    if (p->checked_ns == 0 || p->pid != pid || now - p->checked_ns > PID_TTL_NS || p->epoch != epoch) {
        int in = aegis_pid_in_cgroup(pid, fan->cgroup);
        if (in < 0) {
            /* Gone already: its fork lineage still says whether it was ours. */
            if (!lineage_has(fan, pid)) {
                atomic_fetch_add_explicit(&fan->st_unattributed, 1, memory_order_relaxed);
                return NULL;
            }
            atomic_fetch_add_explicit(&fan->st_by_lineage, 1, memory_order_relaxed);
            if (p->pid != pid || p->checked_ns == 0) {
                memset(p, 0, sizeof(*p));
                p->pid = pid;
            }
            p->in_session = 1;
            p->checked_ns = now;
            p->epoch = epoch;
            return p;
        }
        lineage_set(fan, pid, in);
        int was_same = p->checked_ns != 0 && p->pid == pid && p->in_session == in;
        p->pid = pid;
        p->in_session = (int8_t)in;
        p->checked_ns = now;
        p->epoch = epoch;
        if (in && !was_same)
            read_process_facts(p);
    }
    if (!p->in_session) {
        atomic_fetch_add_explicit(&fan->st_outside, 1, memory_order_relaxed);
        return NULL;
    }
    return p;
}

static int mount_fd_for(struct aegis_fan *fan, const __kernel_fsid_t *fsid)
{
    for (int i = 0; i < fan->n_fs; i++)
        if (memcmp(&fan->fs[i].fsid, fsid, sizeof(*fsid)) == 0)
            return fan->fs[i].mount_fd;
    return -1;
}

/* Directory path for (fsid, handle) into out; length, or -1 when it no longer resolves. */
static ssize_t resolve_dir(struct aegis_fan *fan, const __kernel_fsid_t *fsid, struct file_handle *fh,
                           char *out)
{
    size_t hlen = sizeof(*fh) + fh->handle_bytes;
    if (hlen > HANDLE_MAX)
        return -1;
    uint64_t fsid_key;
    memcpy(&fsid_key, fsid, sizeof(fsid_key));
    struct dir_entry *d = &fan->dirs[fnv(fnv(0xcbf29ce484222325ULL, fsid, sizeof(*fsid)), fh, hlen) % DIR_SLOTS];
    if (d->generation == fan->dir_generation && d->fsid == fsid_key && d->handle_len == hlen &&
        memcmp(d->handle, fh, hlen) == 0) {
        size_t n = strlen(d->path);
        memcpy(out, d->path, n + 1);
        return (ssize_t)n;
    }
    int mount_fd = mount_fd_for(fan, fsid);
    if (mount_fd < 0)
        return -1;
    int fd = open_by_handle_at(mount_fd, fh, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, AEGIS_REC_PATH_MAX - 1);
    close(fd);
    if (n <= 0 || n >= AEGIS_REC_PATH_MAX - 1)
        return -1;
    out[n] = '\0';
    d->generation = fan->dir_generation;
    d->fsid = fsid_key;
    d->handle_len = (uint32_t)hlen;
    memcpy(d->handle, fh, hlen);
    memcpy(d->path, out, (size_t)n + 1);
    return n;
}

static void push_record(struct aegis_fan *fan, struct aegis_record *rec)
{
    /* Single producer: room seen here cannot disappear before the push. Once the
     * consumer is gone, a full ring counts the record as dropped. */
    while (aegis_ring_used(fan->ring) >= aegis_ring_capacity(fan->ring) && !atomic_load(&fan->abandoned)) {
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    aegis_ring_push(fan->ring, rec);
    atomic_fetch_add_explicit(&fan->st_records, 1, memory_order_relaxed);
}

/* Returns 1 when a FileWrite for this (pid, file) was already recorded (and
 * marks it recorded otherwise); close_write ends the write session. */
static int write_already_recorded(struct aegis_fan *fan, int pid, const char *path, int close_write)
{
    uint64_t key = fnv(fnv(0xcbf29ce484222325ULL, &pid, sizeof(pid)), path, strlen(path)) | 1;
    uint64_t *slot = &fan->writes[key % WRITE_SLOTS];
    int seen = *slot == key;
    *slot = close_write ? 0 : key;
    return seen;
}

static void read_cmdline(int pid, struct aegis_record *rec)
{
    char file[64];
    snprintf(file, sizeof(file), "/proc/%d/cmdline", pid);
    ssize_t n = read_small_file(file, rec->extra, sizeof(rec->extra));
    if (n <= 0) {
        rec->extra[0] = '\0';
        return;
    }
    if (n == (ssize_t)sizeof(rec->extra) - 1)
        rec->truncated |= AEGIS_REC_EXTRA_TRUNCATED;
    if (rec->extra[n - 1] == '\0')
        n--; /* no trailing separator, as in the seccomp records */
    rec->extra_len = (uint32_t)n;
}

/* meta: a copy of the event's header; raw: the event in the read buffer (with
 * its info records). Events are only 4-byte aligned in the buffer, so the
 * header, which holds a u64, is copied out rather than read in place. */
static void handle_event(struct aegis_fan *fan, const struct fanotify_event_metadata *meta, const char *raw)
{
    atomic_fetch_add_explicit(&fan->st_events, 1, memory_order_relaxed);
    uint64_t mask = meta->mask;
    if (mask & FAN_Q_OVERFLOW) {
        atomic_fetch_add_explicit(&fan->st_overflows, 1, memory_order_relaxed);
        return;
    }
    /* A directory rename anywhere can change cached directory paths (a deleted
     * directory's cached path stays right for the events from before the delete). */
    if ((mask & FAN_ONDIR) && (mask & (FAN_MOVED_FROM | FAN_MOVED_TO)))
        fan->dir_generation++;
    if (meta->pid == fan->self_pid) {
        atomic_fetch_add_explicit(&fan->st_outside, 1, memory_order_relaxed);
        return;
    }

    const struct fanotify_event_info_fid *fid = NULL;
    for (size_t off = meta->metadata_len; off + sizeof(struct fanotify_event_info_header) <= meta->event_len;) {
        const struct fanotify_event_info_header *hdr = (const void *)(raw + off);
        if (hdr->len == 0)
            break;
        if (hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME || hdr->info_type == FAN_EVENT_INFO_TYPE_DFID ||
            hdr->info_type == FAN_EVENT_INFO_TYPE_FID)
            fid = (const void *)hdr;
        off += hdr->len;
    }
    if (!fid)
        return;
    struct pid_entry *proc = session_process(fan, meta->pid);
    if (!proc)
        return;

    /* The exec's own reads of the program and loader come as ACCESS events; an
     * open or a directory change is the new program at work, so the exec is over
     * and /proc/PID now shows the new executable and argv. */
    int exec_open = (mask & FAN_OPEN_EXEC) && !proc->in_exec;
    if (mask & FAN_OPEN_EXEC) {
        proc->in_exec = 1;
        proc->exe_stale = 1;
    } else if (mask & (FAN_OPEN | FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO)) {
        proc->in_exec = 0;
        if (proc->exe_stale && !read_process_facts(proc)) {
            /* already gone: the program it exec'd is the best name we have */
            const struct held_spawn *h = held_for(fan, meta->pid);
            size_t n = h ? strnlen(h->rec.path, sizeof(proc->exe) - 1) : 0;
            memcpy(proc->exe, h ? h->rec.path : "", n);
            proc->exe[n] = '\0';
            proc->exe_stale = 0;
        }
        flush_spawn(fan, meta->pid);
    }

    struct file_handle *fh = (struct file_handle *)fid->handle;
    const char *name = fid->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME
                           ? (const char *)fh->f_handle + fh->handle_bytes : ".";
    struct aegis_record rec;
    memset(&rec, 0, offsetof(struct aegis_record, exe));
    rec.ts_ns = now_ns(CLOCK_REALTIME);
    rec.pid = rec.tid = meta->pid;
    rec.ppid = proc->ppid;
    rec.decision = AEGIS_DECISION_ALLOW;
    rec.policy_index = AEGIS_POLICY_NONE;
    rec.syscall_nr = -1;
    rec.arg = (int64_t)mask;
    size_t exe_len = strlen(proc->exe);
    memcpy(rec.exe, proc->exe, exe_len + 1);
    rec.extra[0] = '\0';

    ssize_t n = resolve_dir(fan, &fid->fsid, fh, rec.path);
    if (n < 0) {
        atomic_fetch_add_explicit(&fan->st_unresolved, 1, memory_order_relaxed);
        n = snprintf(rec.path, sizeof(rec.path), "<deleted directory>");
    }
    if (strcmp(name, ".") != 0) {
        int w = snprintf(rec.path + n, sizeof(rec.path) - (size_t)n, "%s%s", n == 1 ? "" : "/", name);
        if (w < 0 || (size_t)w >= sizeof(rec.path) - (size_t)n) {
            rec.truncated |= AEGIS_REC_PATH_TRUNCATED;
            n = (ssize_t)sizeof(rec.path) - 1;
        } else {
            n += w;
        }
    }
    rec.path_len = (uint32_t)n;
    int ondir = (mask & FAN_ONDIR) != 0;

    /* One execve opens the program, then maybe a script interpreter and the ELF
     * loader, all with FAN_OPEN_EXEC and nothing else in between: the first is the
     * spawn, the rest are reads, as a syscall observer sees them. */
    if (exec_open) {
        rec.action = AEGIS_ACT_PROCESS_SPAWN;
        hold_spawn(fan, &rec);
    }
    /* Events on one (directory, name) merge in the queue, so a created file
     * usually arrives as CREATE|OPEN|MODIFY|CLOSE_WRITE: that is one FileWrite,
     * as the creating open is for a syscall observer. */
    int created_file = (mask & FAN_CREATE) && !ondir;
    if (mask & FAN_CREATE) {
        rec.action = ondir ? AEGIS_ACT_DIR_CREATE : AEGIS_ACT_FILE_WRITE;
        if (created_file)
            write_already_recorded(fan, meta->pid, rec.path, 0);
        push_record(fan, &rec);
    }
    if ((mask & (FAN_OPEN | FAN_OPEN_EXEC)) && !exec_open && !created_file) {
        rec.action = ondir ? AEGIS_ACT_DIR_LIST : AEGIS_ACT_FILE_READ;
        push_record(fan, &rec);
    }
    if (mask & (FAN_MODIFY | FAN_CLOSE_WRITE)) {
        int close_write = (mask & FAN_CLOSE_WRITE) != 0;
        if (created_file || write_already_recorded(fan, meta->pid, rec.path, close_write)) {
            if (created_file && close_write)
                write_already_recorded(fan, meta->pid, rec.path, 1);
            atomic_fetch_add_explicit(&fan->st_folded, 1, memory_order_relaxed);
        } else {
            rec.action = AEGIS_ACT_FILE_WRITE;
            push_record(fan, &rec);
        }
    }
    if ((mask & FAN_ACCESS) && !(mask & (FAN_OPEN | FAN_OPEN_EXEC)))
        atomic_fetch_add_explicit(&fan->st_folded, 1, memory_order_relaxed); /* reads are recorded at open */
    if (mask & FAN_MOVED_TO) {
        rec.action = AEGIS_ACT_FILE_WRITE;
        push_record(fan, &rec);
    }
    if (mask & (FAN_MOVED_FROM | FAN_DELETE)) {
        rec.action = AEGIS_ACT_FILE_DELETE;
        push_record(fan, &rec);
    }
}

/* A fork seen on the proc connector: children of session processes join the
 * lineage (and get their facts from the parent until they exec); a pid number
 * forked by anyone else is no longer ours. */
static void handle_fork(struct aegis_fan *fan, int parent, int child)
{
    if (child <= 0 || child >= PID_LIMIT)
        return;
    atomic_fetch_add_explicit(&fan->st_forks, 1, memory_order_relaxed);
    int ours = lineage_has(fan, parent);
    lineage_set(fan, child, ours);
    flush_spawn(fan, child); /* a new process with this number: the old one is gone */
    struct pid_entry *c = &fan->pids[(uint32_t)child % PID_SLOTS];
    if (!ours) {
        if (c->pid == child)
            memset(c, 0, sizeof(*c)); /* the next event of this pid asks /proc */
        return;
    }
    memset(c, 0, sizeof(*c));
    const struct pid_entry *p = &fan->pids[(uint32_t)parent % PID_SLOTS];
    c->pid = child;
    c->in_session = 1;
    c->ppid = parent;
    c->epoch = atomic_load_explicit(&fan->membership_epoch, memory_order_acquire);
    c->checked_ns = now_ns(CLOCK_MONOTONIC_COARSE);
    if (p->pid == parent && p->checked_ns)
        memcpy(c->exe, p->exe, sizeof(c->exe));
}

static void drain_connector(struct aegis_fan *fan)
{
    if (fan->proc_fd < 0)
        return;
    char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        ssize_t len = recv(fan->proc_fd, buf, sizeof(buf), 0);
        if (len < 0 && errno == EINTR)
            continue;
        if (len < 0 && errno == ENOBUFS) {
            /* The socket overflowed: some forks are unknown; /proc still answers for live ones. */
            atomic_fetch_add_explicit(&fan->st_connector_lost, 1, memory_order_relaxed);
            continue;
        }
        if (len <= 0)
            return;
        for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)len); nh = NLMSG_NEXT(nh, len)) {
            const struct cn_msg *cn = NLMSG_DATA(nh);
            if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*cn) + sizeof(struct proc_event)) ||
                cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
                continue;
            struct proc_event ev;
            memcpy(&ev, cn->data, sizeof(ev));
            /* a new thread is not a new process */
            if (ev.what == PROC_EVENT_FORK && ev.event_data.fork.child_pid == ev.event_data.fork.child_tgid)
                handle_fork(fan, ev.event_data.fork.parent_tgid, ev.event_data.fork.child_tgid);
        }
    }
}

/* Pids handed over by aegis_fan_track_pid: applied after a connector drain, so
 * the (earlier) fork of the pid by Aegis cannot take it back out. */
static void apply_tracked(struct aegis_fan *fan)
{
    unsigned n = atomic_load_explicit(&fan->n_tracked, memory_order_acquire);
    if (n == fan->n_tracked_applied)
        return;
    drain_connector(fan);
    for (; fan->n_tracked_applied < n && fan->n_tracked_applied < MAX_TRACKED; fan->n_tracked_applied++) {
        int pid = atomic_load(&fan->tracked[fan->n_tracked_applied]);
        lineage_set(fan, pid, 1);
        /* Read its facts now, while it waits to be released: it may be gone by
         * the time its first event is read. */
        struct pid_entry *p = &fan->pids[(uint32_t)pid % PID_SLOTS];
        memset(p, 0, sizeof(*p));
        p->pid = pid;
        p->in_session = 1;
        p->epoch = atomic_load_explicit(&fan->membership_epoch, memory_order_acquire);
        p->checked_ns = now_ns(CLOCK_MONOTONIC_COARSE);
        read_process_facts(p);
    }
    atomic_store_explicit(&fan->tracked_applied, fan->n_tracked_applied, memory_order_release);
}

static int open_connector(void)
{
    int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0)
        return -1;
    int size = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
    struct {
        struct nlmsghdr nh;
        struct cn_msg cn;
        enum proc_cn_mcast_op op;
    } __attribute__((packed)) msg;
    memset(&msg, 0, sizeof(msg));
    msg.nh.nlmsg_len = sizeof(msg);
    msg.nh.nlmsg_type = NLMSG_DONE;
    msg.cn.id.idx = CN_IDX_PROC;
    msg.cn.id.val = CN_VAL_PROC;
    msg.cn.len = sizeof(enum proc_cn_mcast_op);
    msg.op = PROC_CN_MCAST_LISTEN;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || send(fd, &msg, sizeof(msg), 0) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

#define GATHER_NS 1000000

static void *reader_main(void *arg)
{
    struct aegis_fan *fan = arg;
    char *buf = fan->buf;
    struct pollfd fds[3] = {{.fd = fan->fd, .events = POLLIN}, {.fd = fan->stop_fd, .events = POLLIN},
                            {.fd = fan->proc_fd, .events = POLLIN}};
    for (;;) {
        ssize_t len = read(fan->fd, buf, sizeof(fan->buf));
        if (len > 0) {
            /* Every fork behind these events is on the connector by now. */
            drain_connector(fan);
            apply_tracked(fan);
            struct fanotify_event_metadata meta;
            for (size_t off = 0; off + sizeof(meta) <= (size_t)len; off += meta.event_len) {
                memcpy(&meta, buf + off, sizeof(meta));
                if (meta.event_len < sizeof(meta) || off + meta.event_len > (size_t)len)
                    break;
                handle_event(fan, &meta, buf + off);
            }
            /* A short read emptied the queue. Letting the next events gather for a
             * moment means the agent's CPU wakes this thread once per batch, not
             * once per event: on a VM a wake-up of a halted CPU costs the agent more
             * than the event itself. */
            if ((size_t)len < sizeof(fan->buf) / 2 && !atomic_load(&fan->stop_requested))
                nanosleep(&(struct timespec){0, GATHER_NS}, NULL);
            continue;
        }
        if (len < 0 && errno == EINTR)
            continue;
        if (len < 0 && errno != EAGAIN)
            break;
        /* Queue empty. A stop is requested after the agent exited, when all of its
         * events are already queued, so an empty queue then means nothing is lost. */
        if (atomic_load(&fan->stop_requested)) {
            flush_held_spawns(fan, 0);
            break;
        }
        /* A program that makes no file access after its exec (static, or killed) still
         * gets its spawn recorded once the exec has surely finished. */
        flush_held_spawns(fan, SPAWN_HOLD_NS);
        poll(fds, fan->proc_fd >= 0 ? 3 : 2, fan->held_spawns > 0 ? 25 : -1);
        uint64_t wakeups;
        if (fds[1].revents & POLLIN && read(fan->stop_fd, &wakeups, sizeof(wakeups)) < 0) {
            /* EAGAIN: another wake-up consumed it; the flags say what to do */
        }
        drain_connector(fan); /* keep the socket from overflowing while files are quiet */
        apply_tracked(fan);
    }
    atomic_store(&fan->finished, 1);
    return NULL;
}

struct aegis_fan *aegis_fan_new(struct aegis_ring *ring, const char *cgroup, uint64_t mask, int *error)
{
    *error = 0;
    if (!ring || !cgroup || strlen(cgroup) >= sizeof(((struct aegis_fan *)0)->cgroup)) {
        *error = -EINVAL;
        return NULL;
    }
    struct aegis_fan *fan = calloc(1, sizeof(*fan));
    if (!fan) {
        *error = -ENOMEM;
        return NULL;
    }
    fan->fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_UNLIMITED_QUEUE | FAN_CLOEXEC |
                                FAN_NONBLOCK, O_RDONLY | O_LARGEFILE);
    if (fan->fd < 0) {
        *error = -errno;
        free(fan);
        return NULL;
    }
    fan->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fan->stop_fd < 0) {
        *error = -errno;
        close(fan->fd);
        free(fan);
        return NULL;
    }
    fan->lineage = calloc(PID_LIMIT / 8, 1);
    if (!fan->lineage) {
        *error = -ENOMEM;
        close(fan->stop_fd);
        close(fan->fd);
        free(fan);
        return NULL;
    }
    fan->proc_fd = open_connector();
    fan->ring = ring;
    fan->mask = mask;
    fan->self_pid = getpid();
    fan->dir_generation = 1;
    strcpy(fan->cgroup, cgroup);
    return fan;
}

int aegis_fan_mark(struct aegis_fan *fan, const char *path)
{
    struct statfs st;
    if (statfs(path, &st) < 0)
        return -errno;
    __kernel_fsid_t fsid;
    memcpy(&fsid, &st.f_fsid, sizeof(fsid));
    if (mount_fd_for(fan, &fsid) >= 0)
        return 0; /* one mark per filesystem is enough */
    if (fan->n_fs == MAX_FS)
        return -ENOSPC;
    int mount_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mount_fd < 0)
        return -errno;
    if (fanotify_mark(fan->fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, fan->mask, AT_FDCWD, path) < 0) {
        int err = errno;
        close(mount_fd);
        return -err;
    }
    fan->fs[fan->n_fs].fsid = fsid;
    fan->fs[fan->n_fs].mount_fd = mount_fd;
    fan->n_fs++;
    return 0;
}

int aegis_fan_start(struct aegis_fan *fan)
{
    if (fan->started)
        return -EALREADY;
    int rc = pthread_create(&fan->thread, NULL, reader_main, fan);
    if (rc != 0)
        return -rc;
    fan->started = 1;
    return 0;
}

void aegis_fan_request_stop(struct aegis_fan *fan)
{
    atomic_store(&fan->stop_requested, 1);
    uint64_t one = 1;
    if (write(fan->stop_fd, &one, sizeof(one)) < 0) {
        /* The eventfd counter cannot overflow with one write per stop; nothing to do. */
    }
}

int aegis_fan_track_pid(struct aegis_fan *fan, int pid)
{
    unsigned slot = atomic_load(&fan->n_tracked);
    if (slot >= MAX_TRACKED)
        return -ENOSPC;
    atomic_store(&fan->tracked[slot], pid);
    atomic_store_explicit(&fan->n_tracked, slot + 1, memory_order_release);
    uint64_t one = 1;
    if (write(fan->stop_fd, &one, sizeof(one)) < 0)
        return -errno; /* cannot wake the reader: it still applies the pid before its next batch */
    return 0;
}

void aegis_fan_membership_changed(struct aegis_fan *fan)
{
    atomic_fetch_add_explicit(&fan->membership_epoch, 1, memory_order_release);
}

void aegis_fan_get_stats(struct aegis_fan *fan, struct aegis_fan_stats *out)
{
    out->events = atomic_load(&fan->st_events);
    out->records = atomic_load(&fan->st_records);
    out->outside = atomic_load(&fan->st_outside);
    out->unattributed = atomic_load(&fan->st_unattributed);
    out->unresolved = atomic_load(&fan->st_unresolved);
    out->folded = atomic_load(&fan->st_folded);
    out->overflows = atomic_load(&fan->st_overflows);
    out->by_lineage = atomic_load(&fan->st_by_lineage);
    out->forks = atomic_load(&fan->st_forks);
    out->connector_lost = atomic_load(&fan->st_connector_lost);
    out->lineage = fan->proc_fd >= 0;
    out->tracked = atomic_load_explicit(&fan->tracked_applied, memory_order_acquire);
    out->finished = fan->started ? atomic_load(&fan->finished) : 1;
}

static void *close_fd(void *fd)
{
    close((int)(intptr_t)fd);
    return NULL;
}

/* Closing a fanotify group waits for its marks to be torn down after an SRCU
 * grace period: 10-25 ms here, for nothing the caller needs. A detached thread
 * closes it while the session ends its ledger. */
static void close_in_background(int fd)
{
    pthread_t thread;
    pthread_attr_t attr;
    int started = pthread_attr_init(&attr) == 0 && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                  pthread_create(&thread, &attr, close_fd, (void *)(intptr_t)fd) == 0;
    pthread_attr_destroy(&attr);
    if (!started)
        close(fd);
}

void aegis_fan_free(struct aegis_fan *fan)
{
    if (!fan)
        return;
    if (fan->started) {
        atomic_store(&fan->abandoned, 1);
        aegis_fan_request_stop(fan);
        pthread_join(fan->thread, NULL);
    }
    for (int i = 0; i < fan->n_fs; i++)
        close(fan->fs[i].mount_fd);
    close_in_background(fan->fd);
    close(fan->stop_fd);
    if (fan->proc_fd >= 0)
        close(fan->proc_fd);
    free(fan->lineage);
    free(fan);
}

#else /* not Linux: fanotify does not exist */
#include "observe_fanotify.h"
#include <errno.h>
#include <stddef.h>
struct aegis_fan *aegis_fan_new(struct aegis_ring *ring, const char *cgroup, uint64_t mask, int *error)
{
    (void)ring; (void)cgroup; (void)mask;
    *error = -ENOSYS;
    return NULL;
}
int aegis_fan_mark(struct aegis_fan *fan, const char *path) { (void)fan; (void)path; return -ENOSYS; }
int aegis_fan_start(struct aegis_fan *fan) { (void)fan; return -ENOSYS; }
void aegis_fan_request_stop(struct aegis_fan *fan) { (void)fan; }
void aegis_fan_membership_changed(struct aegis_fan *fan) { (void)fan; }
int aegis_fan_track_pid(struct aegis_fan *fan, int pid) { (void)fan; (void)pid; return -ENOSYS; }
void aegis_fan_get_stats(struct aegis_fan *fan, struct aegis_fan_stats *out) { (void)fan; (void)out; }
void aegis_fan_free(struct aegis_fan *fan) { (void)fan; }
int aegis_pid_in_cgroup(int pid, const char *cgroup) { (void)pid; (void)cgroup; return -ENOSYS; }
#endif
