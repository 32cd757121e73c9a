/* paths.c: path tricks that try to reach a forbidden file through an allowed name.
 *
 *   paths TECHNIQUE SECRET_FILE HOME PROJECT SECRET LOOT
 *
 * SECRET_FILE is HOME/.ssh/id_rsa (forbidden); PROJECT is writable by policy.
 * Each technique prints RESULT lines; exit 0 if the secret was obtained. */
#include "common.h"
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>

static const char *secret_file, *home, *project, *secret, *loot;

static char *join(const char *a, const char *b)
{
    char *out;
    if (asprintf(&out, "%s/%s", a, b) < 0)
        exit(3);
    return out;
}

static int t_direct(const char *t) { return try_read_secret(t, AT_FDCWD, secret_file, secret, loot); }

static int t_dotdot(const char *t)
{
    /* PROJECT/../<...>/HOME/.ssh/id_rsa: climb to / from the project, then down again. */
    char path[8192] = "";
    strcat(path, project);
    for (const char *p = project; *p; p++)
        if (*p == '/')
            strcat(path, "/..");
    strcat(path, secret_file);
    return try_read_secret(t, AT_FDCWD, path, secret, loot);
}

static int t_slashes(const char *t)
{
    char *path;
    if (asprintf(&path, "%s//.ssh/./id_rsa", home) < 0)
        return 0;
    return try_read_secret(t, AT_FDCWD, path, secret, loot);
}

static int t_symlink(const char *t)
{
    char *link = join(project, "innocent.txt");
    unlink(link);
    if (symlink(secret_file, link) != 0) {
        report_errno(t, "symlink");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, link, secret, loot);
}

static int t_dir_symlink(const char *t)
{
    char *link = join(project, "homelink");
    unlink(link);
    if (symlink(home, link) != 0) {
        report_errno(t, "symlink");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, join(link, ".ssh/id_rsa"), secret, loot);
}

static int t_relative_symlink_chain(const char *t)
{
    /* a -> b -> <relative climb to the secret>: resolution must follow every hop. */
    char *a = join(project, "hop-a"), *b = join(project, "hop-b"), rel[8192] = "";
    for (const char *p = project; *p; p++)
        if (*p == '/')
            strcat(rel, "../");
    strcat(rel, secret_file + 1);
    unlink(a);
    unlink(b);
    if (symlink(rel, b) != 0 || symlink("hop-b", a) != 0) {
        report_errno(t, "symlink");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, a, secret, loot);
}

static int t_hardlink(const char *t)
{
    char *alias = join(project, "hardlinked.txt");
    unlink(alias);
    if (link(secret_file, alias) != 0) {
        report_errno(t, "link");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, alias, secret, loot);
}

static int t_rename_file(const char *t)
{
    char *dest = join(project, "moved_id_rsa");
    if (rename(secret_file, dest) != 0) {
        report_errno(t, "rename");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, dest, secret, loot);
}

static int t_rename_dir(const char *t)
{
    char *from = join(home, ".ssh"), *to = join(home, "ssh-moved");
    if (rename(from, to) != 0) {
        report_errno(t, "rename");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, join(to, "id_rsa"), secret, loot);
}

static int t_proc_self_root(const char *t)
{
    char *path;
    if (asprintf(&path, "/proc/self/root%s", secret_file) < 0)
        return 0;
    int got = try_read_secret(t, AT_FDCWD, path, secret, loot);
    if (asprintf(&path, "/proc/thread-self/root%s", secret_file) < 0)
        return got;
    return try_read_secret(t, AT_FDCWD, path, secret, loot) || got;
}

static int t_proc_self_cwd(const char *t)
{
    if (chdir(home) != 0) {
        report_errno(t, "chdir");
        return 0;
    }
    int got = try_read_secret(t, AT_FDCWD, "/proc/self/cwd/.ssh/id_rsa", secret, loot);
    return try_read_secret(t, AT_FDCWD, ".ssh/id_rsa", secret, loot) || got;
}

static int t_chdir_into(const char *t)
{
    char *dir = join(home, ".ssh");
    if (chdir(dir) != 0) {
        report_errno(t, "chdir");
        return 0;
    }
    return try_read_secret(t, AT_FDCWD, "id_rsa", secret, loot);
}

static int t_proc_fd_dir(const char *t)
{
    /* Plain O_RDONLY here; O_PATH descriptors are the "opath-dir" technique. */
    int dfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        report_errno(t, "open home");
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d/.ssh/id_rsa", dfd);
    return try_read_secret(t, AT_FDCWD, path, secret, loot);
}

static int t_opath_dir(const char *t)
{
    int dfd = open(home, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        report_errno(t, "open home O_PATH");
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d/.ssh/id_rsa", dfd);
    int got = try_read_secret(t, AT_FDCWD, path, secret, loot);
    return try_read_secret(t, dfd, ".ssh/id_rsa", secret, loot) || got;
}

static int t_opath_reopen(const char *t)
{
    int pfd = open(secret_file, O_PATH | O_CLOEXEC);
    if (pfd < 0) {
        report_errno(t, "open O_PATH");
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", pfd);
    int got = try_read_secret(t, AT_FDCWD, path, secret, loot);
    /* and through the empty path of openat with the O_PATH fd as dirfd is not allowed for
     * reading; /proc/thread-self/fd is the other spelling */
    snprintf(path, sizeof path, "/proc/thread-self/fd/%d", pfd);
    return try_read_secret(t, AT_FDCWD, path, secret, loot) || got;
}

static int t_openat_dirfd(const char *t)
{
    int dfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        report_errno(t, "open home");
        return 0;
    }
    int got = try_read_secret(t, dfd, ".ssh/id_rsa", secret, loot);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC};
    int fd = (int)syscall(SYS_openat2, dfd, ".ssh/id_rsa", &how, sizeof how);
    if (fd < 0) {
        report_errno("openat2", ".ssh/id_rsa");
        return got;
    }
    got |= check_fd_for_secret(fd, "openat2", secret, loot);
    close(fd);
    return got;
}

static int t_open_by_handle(const char *t)
{
    /* Root-only (CAP_DAC_READ_SEARCH): a file handle names the inode, not the path. */
    struct {
        struct file_handle fh;
        unsigned char bytes[MAX_HANDLE_SZ];
    } h;
    h.fh.handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(AT_FDCWD, secret_file, &h.fh, &mount_id, 0) != 0) {
        report_errno(t, "name_to_handle_at");
        return 0;
    }
    int mfd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = open_by_handle_at(mfd, &h.fh, O_RDONLY);
    if (fd < 0) {
        report_errno(t, "open_by_handle_at");
        return 0;
    }
    int got = check_fd_for_secret(fd, t, secret, loot);
    close(fd);
    return got;
}

static int t_chroot_openat2(const char *t)
{
    /* Root only (CAP_SYS_CHROOT): make ~/.ssh the agent's "/", then name the secret
     * "/id_rsa", a path that means nothing forbidden in the supervisor's own root.
     * openat2 with a resolve flag, so an implementation that leaves such opens to
     * the kernel is tested too. */
    char *dir = join(home, ".ssh");
    if (chroot(dir) != 0) {
        report_errno(t, "chroot");
        return 0;
    }
    int got = try_read_secret(t, AT_FDCWD, "/id_rsa", secret, loot);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/id_rsa", &how, sizeof how);
    if (fd < 0) {
        report_errno(t, "openat2 /id_rsa");
        return got;
    }
    got |= check_fd_for_secret(fd, t, secret, loot);
    close(fd);
    return got;
}

static int t_fd_across_exec(const char *t, const char *self)
{
    /* The parent image opens HOME (allowed) without O_CLOEXEC; the new image uses the inherited dirfd. */
    int dfd = open(home, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
        report_errno(t, "open home");
        return 0;
    }
    char num[16];
    snprintf(num, sizeof num, "%d", dfd);
    execl(self, self, "--inherited-dirfd", num, secret, loot, (char *)NULL);
    report_errno(t, "exec");
    return 0;
}

static int t_cwd_across_exec(const char *t, const char *self)
{
    if (chdir(home) != 0) {
        report_errno(t, "chdir");
        return 0;
    }
    execl(self, self, "--relative", ".ssh/id_rsa", secret, loot, (char *)NULL);
    report_errno(t, "exec");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--inherited-dirfd"))
        return try_read_secret("fd-across-exec", atoi(argv[2]), ".ssh/id_rsa", argv[3], argv[4]) ? 0 : 1;
    if (argc == 5 && !strcmp(argv[1], "--relative"))
        return try_read_secret("cwd-across-exec", AT_FDCWD, argv[2], argv[3], argv[4]) ? 0 : 1;
    if (argc != 7)
        die_usage("paths TECHNIQUE SECRET_FILE HOME PROJECT SECRET LOOT");
    const char *t = argv[1];
    secret_file = argv[2];
    home = argv[3];
    project = argv[4];
    secret = argv[5];
    loot = argv[6];
    static const struct {
        const char *name;
        int (*fn)(const char *);
    } techniques[] = {
        {"direct", t_direct},           {"dotdot", t_dotdot},
        {"slashes", t_slashes},         {"symlink", t_symlink},
        {"dir-symlink", t_dir_symlink}, {"symlink-chain", t_relative_symlink_chain},
        {"hardlink", t_hardlink},       {"rename-file", t_rename_file},
        {"rename-dir", t_rename_dir},   {"proc-self-root", t_proc_self_root},
        {"proc-self-cwd", t_proc_self_cwd}, {"chdir-into", t_chdir_into},
        {"proc-fd-dir", t_proc_fd_dir}, {"opath-dir", t_opath_dir},
        {"opath-reopen", t_opath_reopen},
        {"openat-dirfd", t_openat_dirfd}, {"open-by-handle", t_open_by_handle},
        {"chroot-openat2", t_chroot_openat2},
    };
    for (size_t i = 0; i < sizeof techniques / sizeof techniques[0]; i++)
        if (!strcmp(t, techniques[i].name))
            return techniques[i].fn(t) ? 0 : 1;
    if (!strcmp(t, "fd-across-exec"))
        return t_fd_across_exec(t, "/proc/self/exe");
    if (!strcmp(t, "cwd-across-exec"))
        return t_cwd_across_exec(t, "/proc/self/exe");
    die_usage("unknown technique");
    return 2;
}
