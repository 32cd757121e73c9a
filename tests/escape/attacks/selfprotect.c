/* selfprotect.c: tries to read, change, move or delete Aegis's own state.
 *
 *   selfprotect TECHNIQUE TARGET PROJECT LOOT MARKER
 *
 * TARGET is a file or directory under the Aegis home (for proc-cwd: a path
 * relative to the Aegis process's cwd). Whatever is read goes to LOOT; what gets
 * written is MARKER followed by "-WRITTEN" (so it differs from the command line,
 * which the ledger records). Exit 0 if any step succeeded. */
#include "common.h"
#include <dirent.h>
#include <libgen.h>
#include <sys/stat.h>

static const char *target, *project, *loot, *marker;

static int read_into_loot(const char *technique, const char *path)
{
    /* O_NONBLOCK: a descriptor reached through /proc may be a pipe; do not hang on it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        report_errno(technique, path);
        return 0;
    }
    char buf[65536];
    ssize_t n, total = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        save_loot(loot, buf, (size_t)n);
        total += n;
    }
    close(fd);
    if (total <= 0) {
        report(technique, "BLOCKED", "opened but nothing could be read");
        return 0;
    }
    report(technique, "OBTAINED", path);
    return 1;
}

static int write_marker(const char *technique, const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        report_errno(technique, path);
        return 0;
    }
    ssize_t n = write(fd, marker, strlen(marker));
    close(fd);
    if (n <= 0) {
        report_errno(technique, "write");
        return 0;
    }
    report(technique, "OBTAINED", path);
    return 1;
}

static int step(const char *technique, int ok, const char *what)
{
    if (ok)
        report(technique, "OBTAINED", what);
    else
        report_errno(technique, what);
    return ok;
}

static char *in_project(const char *name)
{
    char *out;
    if (asprintf(&out, "%s/%s", project, name) < 0)
        exit(3);
    unlink(out);
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 6)
        die_usage("selfprotect TECHNIQUE TARGET PROJECT LOOT MARKER");
    const char *t = argv[1];
    target = argv[2];
    project = argv[3];
    loot = argv[4];
    char *written;
    if (asprintf(&written, "%s-WRITTEN\n", argv[5]) < 0)
        return 3;
    marker = written;
    int ok = 0;
    char path[4200];

    if (!strcmp(t, "read")) {
        ok = read_into_loot(t, target);
    } else if (!strcmp(t, "write")) {
        ok = write_marker(t, target);
    } else if (!strcmp(t, "truncate")) {
        ok = step(t, truncate(target, 0) == 0, "truncate");
    } else if (!strcmp(t, "create")) {
        /* A policy file of our own making: permit everything. */
        snprintf(path, sizeof path, "%s/escape.cedar", target);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ok = fd >= 0 && dprintf(fd, "// %spermit (principal, action, resource);\n", marker) > 0;
        step(t, ok, path);
        if (fd >= 0)
            close(fd);
    } else if (!strcmp(t, "chmod")) {
        ok = step(t, chmod(target, 0777) == 0, "chmod");
    } else if (!strcmp(t, "rename")) {
        snprintf(path, sizeof path, "%s.moved", target);
        ok = step(t, rename(target, path) == 0, "rename in place");
        ok |= step(t, rename(ok ? path : target, in_project("stolen")) == 0, "rename into the project");
    } else if (!strcmp(t, "delete")) {
        ok = step(t, unlink(target) == 0 || rmdir(target) == 0, "unlink/rmdir");
    } else if (!strcmp(t, "symlink")) {
        char *link = in_project("aegis-link");
        if (symlink(target, link) != 0)
            return report_errno(t, "symlink"), 1;
        ok = read_into_loot(t, link);
        ok |= write_marker(t, link);
    } else if (!strcmp(t, "dir-symlink")) {
        /* A link to the directory holding TARGET, then TARGET's name through it. */
        char *copy = strdup(target), *dir = dirname(copy), *base = basename(strdup(target));
        char *link = in_project("aegis-dir-link");
        if (symlink(dir, link) != 0)
            return report_errno(t, "symlink"), 1;
        snprintf(path, sizeof path, "%s/%s", link, base);
        ok = read_into_loot(t, path);
        ok |= write_marker(t, path);
    } else if (!strcmp(t, "hardlink")) {
        char *alias = in_project("aegis-hardlink");
        if (link(target, alias) != 0)
            return report_errno(t, "link"), 1;
        report(t, "OBTAINED", "hard link created");
        ok = 1;
        read_into_loot(t, alias);
        write_marker(t, alias);
    } else if (!strcmp(t, "proc-cwd") || !strcmp(t, "proc-root")) {
        pid_t pid = find_aegis_pid();
        if (!strcmp(t, "proc-cwd"))
            snprintf(path, sizeof path, "/proc/%d/cwd/%s", pid, target);
        else
            snprintf(path, sizeof path, "/proc/%d/root%s", pid, target);
        ok = read_into_loot(t, path);
        ok |= write_marker(t, path);
    } else if (!strcmp(t, "proc-fd")) {
        /* Every descriptor Aegis holds: its ledger, its key, its listener... */
        pid_t pid = find_aegis_pid();
        char fds[64];
        snprintf(fds, sizeof fds, "/proc/%d/fd", pid);
        DIR *d = opendir(fds);
        if (!d)
            return report_errno(t, fds), 1;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", fds, e->d_name);
                ok |= read_into_loot(t, path);
            }
        closedir(d);
    } else {
        die_usage("unknown technique");
    }
    return ok ? 0 : 1;
}
