/* common.h: helpers shared by the escape-suite attack programs (tests/escape/attacks/).
 *
 * Every attack reports on stdout with one line per attempt:
 *   RESULT <technique> OBTAINED|BLOCKED|DONE <detail>
 * and, when it really got something, also copies it into a loot file so the
 * test can check the real outcome on disk rather than trust the attacker. */
#ifndef ESCAPE_COMMON_H
#define ESCAPE_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void report(const char *technique, const char *outcome, const char *detail)
{
    printf("RESULT %s %s %s\n", technique, outcome, detail ? detail : "");
    fflush(stdout);
}

static inline void report_errno(const char *technique, const char *what)
{
    char detail[256];
    snprintf(detail, sizeof detail, "%s: %s", what, strerror(errno));
    report(technique, "BLOCKED", detail);
}

/* Append what was obtained to the loot file (O_APPEND so racing threads do not clobber). */
static inline void save_loot(const char *loot, const char *data, size_t len)
{
    int fd = open(loot, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, data, len) < 0) { /* nothing more to do: the report line still says it */ }
    close(fd);
}

/* Read fd to a buffer; if it holds `secret`, save it as loot and report OBTAINED. Returns 1 if obtained. */
static inline int check_fd_for_secret(int fd, const char *technique, const char *secret, const char *loot)
{
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        report_errno(technique, "read");
        return 0;
    }
    buf[n] = 0;
    if (strstr(buf, secret)) {
        save_loot(loot, buf, (size_t)n);
        report(technique, "OBTAINED", secret);
        return 1;
    }
    report(technique, "BLOCKED", "opened but the content was not the secret");
    return 0;
}

/* open(path) and check for the secret; the common tail of most path tricks. */
static inline int try_read_secret(const char *technique, int dirfd, const char *path, const char *secret,
                                  const char *loot)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        report_errno(technique, path);
        return 0;
    }
    int got = check_fd_for_secret(fd, technique, secret, loot);
    close(fd);
    return got;
}

static inline void die_usage(const char *usage)
{
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
}

/* The pid of the Aegis process above us: walk up the parent chain to the first
 * process whose command line mentions "aegis" (what an attacker would do), else the parent. */
static inline pid_t find_aegis_pid(void)
{
    pid_t pid = getppid();
    for (int depth = 0; depth < 8 && pid > 1; depth++) {
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) {
                for (ssize_t i = 0; i < n; i++)
                    if (buf[i] == 0)
                        buf[i] = ' ';
                buf[n] = 0;
                if (strstr(buf, "aegis"))
                    return pid;
            }
        }
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            break;
        buf[n] = 0;
        char *close_paren = strrchr(buf, ')');
        int ppid = 0;
        if (!close_paren || sscanf(close_paren + 2, "%*c %d", &ppid) != 1)
            break;
        pid = ppid;
    }
    return getppid();
}

#endif
