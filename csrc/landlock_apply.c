/* landlock_apply.c: turn a LandlockSpec into a ruleset fd and enforce it.
 *
 * Soundness rules live here, not in every caller: a rule path that does not
 * exist (yet) is granted at its nearest existing ancestor (only ever widens),
 * and rights that Landlock refuses on non-directories are masked off for file
 * rules. Callers: aegis/policy/landlock.py (restrict_self) and the spawner. */
#define _GNU_SOURCE
#include "landlock_apply.h"

#ifdef __linux__
#include "compat_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rights valid on a file rule (the rest only make sense on directories). */
#define FILE_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
                     LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

int aegis_landlock_add_path(int ruleset_fd, const char *path, uint64_t access)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf) || path[0] != '/')
        return -EINVAL;
    memcpy(buf, path, n + 1);
    int fd;
    /* walk up to the nearest ancestor we can open: a wider grant is still sound */
    while ((fd = open(buf, O_PATH | O_CLOEXEC)) < 0) {
        char *slash = strrchr(buf, '/');
        if (slash == buf) {
            if (buf[1] == '\0')
                return -errno;
            buf[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct landlock_path_beneath_attr attr = {
        .allowed_access = S_ISDIR(st.st_mode) ? access : access & FILE_RIGHTS,
        .parent_fd = fd,
    };
    long rc = attr.allowed_access
        ? syscall(__NR_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) : 0;
    int err = errno;
    close(fd);
    return rc < 0 ? -err : 0;
}

int aegis_landlock_build_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
                                 const char *const *paths, const uint64_t *path_access, size_t n_paths,
                                 const uint64_t *ports, const uint64_t *port_access, size_t n_ports)
{
    struct aegis_landlock_ruleset_attr attr = {
        .handled_access_fs = handled_fs, .handled_access_net = handled_net, .scoped = scoped,
    };
    /* the full struct: older kernels accept it as long as the fields they lack are zero
       (LandlockSpec.for_abi zeroes them) */
    int fd = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (fd < 0)
        return -errno;
    for (size_t i = 0; i < n_paths; i++) {
        int rc = aegis_landlock_add_path(fd, paths[i], path_access[i] & handled_fs);
        if (rc < 0) {
            close(fd);
            return rc;
        }
    }
    for (size_t i = 0; i < n_ports; i++) {
        struct landlock_net_port_attr net = { .allowed_access = port_access[i] & handled_net, .port = ports[i] };
        if (syscall(__NR_landlock_add_rule, fd, LANDLOCK_RULE_NET_PORT, &net, 0) < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
    }
    return fd;
}

int aegis_landlock_enforce(int ruleset_fd, unsigned int flags)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return syscall(__NR_landlock_restrict_self, ruleset_fd, flags) < 0 ? -errno : 0;
}

#else /* !__linux__: Landlock does not exist; the Seatbelt profile is macOS's enforcement */
#include <errno.h>

int aegis_landlock_add_path(int ruleset_fd, const char *path, uint64_t access)
{
    (void)ruleset_fd; (void)path; (void)access;
    return -ENOSYS;
}

int aegis_landlock_build_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
                                 const char *const *paths, const uint64_t *path_access, size_t n_paths,
                                 const uint64_t *ports, const uint64_t *port_access, size_t n_ports)
{
    (void)handled_fs; (void)handled_net; (void)scoped; (void)paths; (void)path_access; (void)n_paths;
    (void)ports; (void)port_access; (void)n_ports;
    return -ENOSYS;
}

int aegis_landlock_enforce(int ruleset_fd, unsigned int flags)
{
    (void)ruleset_fd; (void)flags;
    return -ENOSYS;
}
#endif
