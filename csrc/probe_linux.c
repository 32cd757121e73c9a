/* probe_linux.c: what this kernel can enforce, asked of the kernel itself.
 *
 * Return convention for every probe: >= 0 is the answer (1 yes / 0 no, or a
 * version), < 0 is -errno explaining why the answer is "no". Python
 * (aegis/sandbox/capabilities.py) turns these into setup's checklist.
 */
#define _GNU_SOURCE
#include "probe_linux.h"

#ifdef __linux__
#include "compat_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <sched.h>
#include <stddef.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

int aegis_landlock_abi_version(void)
{
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? -errno : (int)abi;
}

int aegis_probe_seccomp_filter(void)
{
    /* PR_GET_SECCOMP fails with EINVAL when the kernel lacks CONFIG_SECCOMP. */
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 ? -errno : 1;
}

int aegis_probe_seccomp_user_notif(void)
{
    unsigned int action = SECCOMP_RET_USER_NOTIF;
    return syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0 ? -errno : 1;
}

/* Runs fn in a forked child and returns its exit status as the answer; the
 * child only makes raw syscalls, so this is safe from a threaded Python. */
static int in_child(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(fn(arg) & 0xff);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (!WIFEXITED(status))
        return -ECHILD;
    int code = WEXITSTATUS(status);
    /* 0..1 are answers, 2.. carry an errno in the child's exit code */
    return code <= 1 ? code : -(code);
}

static int sync_wakeup_child(void *unused)
{
    (void)unused;
    /* A filter that notifies only getppid: installing it gives us a listener
     * on which the flag can be tried, without affecting anything else. */
    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return errno;
    long fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0)
        return errno;
    if (ioctl((int)fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
        return errno == EINVAL ? 0 : errno;
    return 1;
}

int aegis_probe_notif_sync_wakeup(void)
{
    return in_child(sync_wakeup_child, NULL);
}

struct ids {
    unsigned int uid, gid;
};

static int userns_child(void *arg)
{
    const struct ids *ids = arg;
    /* As root, drop to the given ids first so the answer is about unprivileged
     * users; a non-root caller already is one. */
    if (geteuid() == 0 &&
        (setgroups(0, NULL) < 0 || setresgid(ids->gid, ids->gid, ids->gid) < 0 ||
         setresuid(ids->uid, ids->uid, ids->uid) < 0))
        return errno;
    if (unshare(CLONE_NEWUSER) < 0)
        return errno == EPERM || errno == EACCES || errno == ENOSPC ? 0 : errno;
    return 1;
}

int aegis_probe_userns(unsigned int uid, unsigned int gid)
{
    struct ids ids = {uid, gid};
    return in_child(userns_child, &ids);
}

int aegis_probe_fanotify(void)
{
    /* Since 5.13 an unprivileged fanotify_init with FID reporting succeeds, but
     * only inode marks are allowed then; the observer needs a filesystem mark,
     * which is what needs CAP_SYS_ADMIN. So the probe places one. */
    int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, O_RDONLY);
    if (fd < 0)
        return -errno;
    int rc = fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CREATE, AT_FDCWD, "/");
    int err = errno;
    close(fd);
    return rc < 0 ? -err : 1;
}

int aegis_probe_cgroup2(const char *mountpoint)
{
    struct statfs st;
    if (statfs(mountpoint, &st) < 0)
        return -errno;
    return st.f_type == CGROUP2_SUPER_MAGIC ? 1 : 0;
}

#else /* not Linux: nothing of this exists; answer "no" with ENOSYS. */
#include <errno.h>
int aegis_landlock_abi_version(void) { return -ENOSYS; }
int aegis_probe_seccomp_filter(void) { return -ENOSYS; }
int aegis_probe_seccomp_user_notif(void) { return -ENOSYS; }
int aegis_probe_notif_sync_wakeup(void) { return -ENOSYS; }
int aegis_probe_userns(unsigned int uid, unsigned int gid) { (void)uid; (void)gid; return -ENOSYS; }
int aegis_probe_fanotify(void) { return -ENOSYS; }
int aegis_probe_cgroup2(const char *mountpoint) { (void)mountpoint; return -ENOSYS; }
#endif
