/* observe_fanotify.h: the asynchronous fanotify observer (started by
 * aegis/observer/fanotify.py when Aegis runs with CAP_SYS_ADMIN). Filesystem
 * marks with FAN_REPORT_DFID_NAME report every open, write, create, delete and
 * rename on the marked filesystems; a reader thread keeps the events of the
 * session's cgroup, resolves their paths from the directory file handles and
 * writes the same ring records as the seccomp observer (observe_seccomp.c).
 * It observes only: enforcement stays with Landlock and the seccomp supervisor. */
#ifndef AEGIS_OBSERVE_FANOTIFY_H
#define AEGIS_OBSERVE_FANOTIFY_H

#include <stdint.h>

#include "ring.h"

/* cffi:begin */
/* FAN_OPEN|FAN_MODIFY|FAN_CLOSE_WRITE|FAN_OPEN_EXEC|FAN_CREATE|FAN_DELETE|
 * FAN_MOVED_FROM|FAN_MOVED_TO|FAN_ONDIR. Not FAN_ACCESS: a read is recorded at its
 * open, so the event every read() would queue is only folded away; asking for it
 * cost grep -r over 13,000 files 15% more CPU under observation. */
#define AEGIS_FAN_DEFAULT_MASK 0x400013EA

struct aegis_fan_stats {
    uint64_t events;         /* events read from the kernel (all processes) */
    uint64_t records;        /* records written into the ring */
    uint64_t outside;        /* events of processes outside the session cgroup */
    uint64_t unattributed;   /* the process was gone before its cgroup could be read */
    uint64_t unresolved;     /* directory handles that no longer resolve (deleted) */
    uint64_t folded;         /* ACCESS/MODIFY/CLOSE_WRITE events folded into an earlier record */
    uint64_t overflows;      /* FAN_Q_OVERFLOW events (the kernel queue lost events) */
    uint64_t by_lineage;     /* events of exited processes attributed by their fork lineage */
    uint64_t forks;          /* fork events read from the proc connector */
    uint64_t connector_lost; /* proc connector overflows (some forks unknown) */
    int lineage;             /* the proc connector is in use */
    uint32_t tracked;        /* aegis_fan_track_pid calls the reader has applied */
    int finished;            /* the reader drained the queue after a stop request */
};

struct aegis_fan;
/* cgroup: the session cgroup as /proc/PID/cgroup shows it ("/aegis/<session>").
 * Returns NULL with *error = -errno when fanotify_init fails. */
struct aegis_fan *aegis_fan_new(struct aegis_ring *ring, const char *cgroup, uint64_t mask, int *error);
/* Mark the filesystem holding `path`. 0, or -errno (EXDEV, EOPNOTSUPP, ENODEV: no FID support). */
int aegis_fan_mark(struct aegis_fan *fan, const char *path);
int aegis_fan_start(struct aegis_fan *fan);
/* Call after moving a process into the session cgroup: cached "outside" answers
 * for its pid are forgotten. */
void aegis_fan_membership_changed(struct aegis_fan *fan);
/* The session's root process: it and everything it forks are the session, even
 * after they exit (events are read late). 0, or -ENOSPC after 64 calls. The
 * reader applies it asynchronously: `tracked` in the stats counts applied calls. */
int aegis_fan_track_pid(struct aegis_fan *fan, int pid);
/* Ask the reader to drain what is queued and stop; poll `finished` in the stats. */
void aegis_fan_request_stop(struct aegis_fan *fan);
void aegis_fan_get_stats(struct aegis_fan *fan, struct aegis_fan_stats *out);
/* Joins the reader (request a stop first) and closes every descriptor. */
void aegis_fan_free(struct aegis_fan *fan);
/* 1 if process `pid` is in `cgroup` or below it, 0 if not, -errno if unreadable. */
int aegis_pid_in_cgroup(int pid, const char *cgroup);
/* cffi:end */

#endif
