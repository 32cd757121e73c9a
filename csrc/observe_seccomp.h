/* observe_seccomp.h: the supervisor thread serving the agent's seccomp
 * user-notification listener (started by aegis/observer/seccomp.py). For each
 * notified syscall it reads the path or address from the agent, canonicalises
 * it, classifies the action, decides it (Aegis-home guard, then the compiled
 * decision table, then the residual callback into Python), answers the kernel
 * and writes a record into the ring. */
#ifndef AEGIS_OBSERVE_SECCOMP_H
#define AEGIS_OBSERVE_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/* cffi:begin */
#define AEGIS_POLICY_NONE      -1   /* no policy decided (default deny, or not decided) */
#define AEGIS_POLICY_GUARD     -2   /* Aegis's own state: denied before any policy */
#define AEGIS_POLICY_NETLIST   -3   /* allowed by the config's allowed_network */

/* Same signature as aegis_dtable_decide (csrc/decision_table.h). */
typedef int (*aegis_decide_fn)(const void *table, int action, const char *path, size_t path_len,
                               int *policy_index);
/* Slow path into Python (cedarpy) for what the table cannot decide. */
typedef int (*aegis_residual_fn)(int action, const char *path, int pid, const char *exe, int *policy_index);

struct aegis_net_rule {
    int family;              /* AF_INET or AF_INET6 */
    int prefix_len;
    int port;                /* 0 = any port */
    uint8_t addr[16];
};

/* A syscall the filter refuses whatever the policy, and the errno it fails with
 * (aegis/policy/seccomp.py SeccompSpec.refusals). */
struct aegis_refusal {
    int nr;
    int error;
};

struct aegis_observer_config {
    int listener_fd;
    struct aegis_ring *ring;
    const void *table;
    aegis_decide_fn decide;
    aegis_residual_fn residual;
    const char *const *protected_paths;
    size_t n_protected;
    const struct aegis_net_rule *net_rules;
    size_t n_net_rules;
    int resolve_symlinks;
    int open_on_behalf;      /* allowed opens are done by the supervisor and the fd injected (race-free) */
    int ring_wait_ms;        /* how long a full ring may delay the agent before the record is dropped */
    const struct aegis_refusal *refusals; /* handed here by the filter only to be recorded, then refused */
    size_t n_refusals;
};

struct aegis_observer_stats {
    uint64_t notifications;
    uint64_t records;
    uint64_t denied;
    uint64_t vanished;       /* the process died before it could be answered */
    uint64_t residual;
    uint64_t on_behalf;      /* opens done by the supervisor and injected */
    int sync_wakeup;         /* SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP is in effect */
    int blocking_recv;       /* the thread waits in SECCOMP_IOCTL_NOTIF_RECV, not in poll() */
    int finished;            /* no process holds the filter any more */
};

struct aegis_observer;
struct aegis_observer *aegis_observer_start(const struct aegis_observer_config *config, int *error);
void aegis_observer_stop(struct aegis_observer *obs);
void aegis_observer_get_stats(struct aegis_observer *obs, struct aegis_observer_stats *out);
size_t aegis_canonicalize(const char *base, const char *path, char *out, size_t cap);
int aegis_read_remote_string(int pid, uint64_t addr, char *out, size_t cap);
/* cffi:end */

#endif
