/* ring.c: SPSC ring of struct aegis_record (see ring.h). Used by the observer
 * thread in observe_seccomp.c (producer) and by aegis/observer/seccomp.py
 * (consumer, through cffi).
 *
 * Why lock-free: the producer answers the agent's syscalls; a lock shared with
 * a Python thread that may be descheduled or holding the GIL would stall the
 * agent. head/tail are monotonically increasing 64-bit counters; each side
 * writes only its own counter (release) and reads the other's (acquire). */
#include "ring.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

_Static_assert(sizeof(((struct aegis_record *)0)->path) == AEGIS_REC_PATH_MAX, "path size");
_Static_assert(sizeof(((struct aegis_record *)0)->exe) == AEGIS_REC_EXE_MAX, "exe size");
_Static_assert(sizeof(((struct aegis_record *)0)->extra) == AEGIS_REC_EXTRA_MAX, "extra size");

struct aegis_ring {
    _Alignas(64) _Atomic uint64_t head;   /* next slot the producer writes */
    _Alignas(64) _Atomic uint64_t tail;   /* next slot the consumer reads */
    _Alignas(64) _Atomic uint64_t dropped;
    uint32_t capacity;                   /* a power of two */
    uint32_t mask;
    size_t map_size;
    uint64_t populated;                  /* consumer's: slots [0, populated) have their pages */
    struct aegis_record slots[];
};

/* The producer writes each slot while the agent waits for its syscall's answer,
 * and a page touched for the first time there costs a fault and a page clear
 * (on an open-heavy session, several percent of the supervisor's time). The
 * consumer, between batches, populates the pages a little ahead of the producer
 * with MADV_POPULATE_WRITE, which leaves pages already written as they are (the
 * producer may be writing them). Populating the whole ring up front instead cost
 * every session, short ones too, 6-15 ms of start-up. */
#define POPULATE_AHEAD 1024u /* slots, about 1.9 MB: more than a drain interval's worth */

static void populate_ahead(struct aegis_ring *ring, uint64_t head)
{
#ifdef MADV_POPULATE_WRITE
    if (ring->populated >= ring->capacity || head + POPULATE_AHEAD / 2 < ring->populated)
        return;
    uint64_t end = head + POPULATE_AHEAD < ring->capacity ? head + POPULATE_AHEAD : ring->capacity;
    const uintptr_t page = 4096;
    uintptr_t from = (uintptr_t)&ring->slots[ring->populated] & ~(page - 1);
    uintptr_t to = (uintptr_t)&ring->slots[end];
    madvise((void *)from, to - from, MADV_POPULATE_WRITE);
    ring->populated = end;
#else
    (void)ring;
    (void)head;
#endif
}

struct aegis_ring *aegis_ring_new(uint32_t capacity)
{
    if (capacity < 2 || capacity > (1u << 24) || (capacity & (capacity - 1)) != 0)
        return NULL;
    size_t size = sizeof(struct aegis_ring) + (size_t)capacity * sizeof(struct aegis_record);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    struct aegis_ring *ring = mem; /* anonymous memory: already zero */
    ring->capacity = capacity;
    ring->mask = capacity - 1;
    ring->map_size = size;
    return ring;
}

void aegis_ring_free(struct aegis_ring *ring)
{
    if (ring)
        munmap(ring, ring->map_size);
}

/* Returns 0 when stored, -1 when the ring is full (the record is counted as dropped). */
int aegis_ring_push(struct aegis_ring *ring, const struct aegis_record *rec)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (head - tail >= ring->capacity) {
        atomic_fetch_add_explicit(&ring->dropped, 1, memory_order_relaxed);
        return -1;
    }
    memcpy(&ring->slots[head & ring->mask], rec, sizeof(*rec));
    atomic_store_explicit(&ring->head, head + 1, memory_order_release);
    return 0;
}

/* Like aegis_ring_push, but a full ring is retried every millisecond for up to
 * wait_ms (the consumer drains on a short timer) before the record is dropped. */
int aegis_ring_push_wait(struct aegis_ring *ring, const struct aegis_record *rec, int wait_ms)
{
    for (int waited = 0; waited < wait_ms; waited++) {
        if (aegis_ring_used(ring) < ring->capacity)
            return aegis_ring_push(ring, rec);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return aegis_ring_push(ring, rec);
}

size_t aegis_ring_pop(struct aegis_ring *ring, struct aegis_record *out, size_t max)
{
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    size_t n = (size_t)(head - tail);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        memcpy(&out[i], &ring->slots[(tail + i) & ring->mask], sizeof(*out));
    atomic_store_explicit(&ring->tail, tail + n, memory_order_release);
    populate_ahead(ring, head);
    return n;
}

/* The number of records dropped since the last call (consumer side). */
uint64_t aegis_ring_take_dropped(struct aegis_ring *ring)
{
    return atomic_exchange_explicit(&ring->dropped, 0, memory_order_relaxed);
}

uint32_t aegis_ring_capacity(const struct aegis_ring *ring)
{
    return ring->capacity;
}

size_t aegis_ring_used(struct aegis_ring *ring)
{
    return (size_t)(atomic_load_explicit(&ring->head, memory_order_acquire) -
                    atomic_load_explicit(&ring->tail, memory_order_acquire));
}
