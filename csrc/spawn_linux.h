/* spawn_linux.h: starting the agent under Landlock + seccomp (called from
 * aegis/sandbox/linux.py). Everything the child needs (the Landlock ruleset fd,
 * the BPF program) is built here in the parent before fork; after fork the
 * child makes only raw syscalls, which is what makes this safe from a threaded
 * Python (no preexec_fn). */
#ifndef AEGIS_SPAWN_LINUX_H
#define AEGIS_SPAWN_LINUX_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
struct aegis_bpf;

/* Deny syscall `nr` with `error` when argument `arg_index` has any bit of `mask`. */
struct aegis_flag_deny {
    int nr;
    int arg_index;
    uint32_t mask;
    int error;
};

struct aegis_bpf *aegis_bpf_build(const int *notify, size_t n_notify, const int *deny, const int *deny_errno,
                                  size_t n_deny, const struct aegis_flag_deny *deny_flags, size_t n_deny_flags,
                                  int deny_inet_datagram);
size_t aegis_bpf_length(const struct aegis_bpf *bpf);
void aegis_bpf_free(struct aegis_bpf *bpf);

/* What the session init puts the agent in (see spawn_linux.c). */
#define AEGIS_CONTAIN_NONE 0         /* the init is only a subreaper */
#define AEGIS_CONTAIN_PIDNS 1        /* new PID and mount namespaces (needs CAP_SYS_ADMIN) */
#define AEGIS_CONTAIN_USERNS_PIDNS 2 /* the same, owned by a new user namespace (own ids mapped) */

int aegis_spawn(const char *file, char *const *argv, char *const *envp, const char *cwd, int ruleset_fd,
                int cgroup_fd, const struct aegis_bpf *bpf, int containment, const char *const *hidden,
                size_t n_hidden, int *listener_fd, int *control_fd, int *lifeline_fd, int *in_cgroup);
int aegis_spawn_release(int control_fd);
/* cffi:end */

#endif
