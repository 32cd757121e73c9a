/* ring.h: the lock-free single-producer/single-consumer ring of fixed-size
 * observation records. The producer is the observer thread
 * (observe_seccomp.c); the consumer is aegis/observer/seccomp.py, which drains
 * it in batches into the ledger. A full ring never blocks the producer: the
 * record is dropped and counted, and the consumer turns the count into a Drop
 * entry. */
#ifndef AEGIS_RING_H
#define AEGIS_RING_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
#define AEGIS_REC_PATH_MAX   1024
#define AEGIS_REC_EXE_MAX    256
#define AEGIS_REC_EXTRA_MAX  512

#define AEGIS_REC_PATH_TRUNCATED   1
#define AEGIS_REC_EXTRA_TRUNCATED  2

/* One observed action. Strings are NUL-terminated; *_len excludes the NUL. */
struct aegis_record {
    uint64_t ts_ns;          /* CLOCK_REALTIME, ns */
    int32_t pid;             /* process (thread-group) id */
    int32_t tid;             /* calling thread */
    int32_t ppid;
    int32_t action;          /* AEGIS_ACT_* */
    int32_t decision;        /* AEGIS_DECISION_* */
    int32_t policy_index;    /* index into the policy ids, or AEGIS_POLICY_* below */
    int32_t syscall_nr;
    int32_t error;           /* errno answered to the agent, 0 when allowed */
    int64_t arg;             /* open flags, exit status, port... depending on action */
    uint32_t path_len;
    uint32_t extra_len;
    uint32_t truncated;      /* AEGIS_REC_*_TRUNCATED bits */
    uint32_t reserved;
    char exe[256];
    char path[1024];         /* canonical path, or "host:port" for NetConnect */
    char extra[512];         /* ProcessSpawn: argv, NUL-separated */
};

struct aegis_ring;
struct aegis_ring *aegis_ring_new(uint32_t capacity);
void aegis_ring_free(struct aegis_ring *ring);
int aegis_ring_push(struct aegis_ring *ring, const struct aegis_record *rec);
int aegis_ring_push_wait(struct aegis_ring *ring, const struct aegis_record *rec, int wait_ms);
size_t aegis_ring_pop(struct aegis_ring *ring, struct aegis_record *out, size_t max);
uint64_t aegis_ring_take_dropped(struct aegis_ring *ring);
uint32_t aegis_ring_capacity(const struct aegis_ring *ring);
size_t aegis_ring_used(struct aegis_ring *ring);
/* cffi:end */

#endif
