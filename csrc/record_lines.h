/* record_lines.h: observation records (ring.h) to the ledger's canonical records
 * (aegis/ledger/canonical.py), in C. Called from aegis/observer/lines.py.
 *
 * Why in C: a session that opens 13,000 files makes 13,000 records, and turning
 * each into a Python Event and then into JSON cost about 8 us a record on the
 * consumer's CPU, the CPU the agent's own work needs on a two-core machine. The
 * Python converters (SupervisorRecords and FanotifyRecords in aegis/observer/,
 * then canonical.encode_lines) stay the reference: tests/test_record_lines.py
 * checks that both produce the same bytes for the same records. */
#ifndef AEGIS_RECORD_LINES_H
#define AEGIS_RECORD_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/* cffi:begin */
/* Which observer made a record: they word the same fields differently. */
#define AEGIS_ORIGIN_SECCOMP  1
#define AEGIS_ORIGIN_FANOTIFY 2

/* What every record of a session shares. Strings marked JSON are already encoded
 * as JSON values by Python (quotes and brackets included), so C never decides
 * how a name is escaped. */
struct aegis_lines_ctx {
    const char *kind;                 /* JSON string: the entry kind ("event") */
    const char *session_id;           /* JSON string */
    const char *principal;            /* JSON string */
    uint64_t now_ns;                  /* the time of a record that has none */
    int32_t skip_exit_of;             /* a ProcessExit of this pid is left out (0: none) */
    const char *const *actions;       /* JSON string per action code; NULL: unknown code */
    size_t n_actions;
    const char *const *syscalls;      /* JSON string per syscall number; NULL: the number */
    size_t n_syscalls;
    const int32_t *policy_index;      /* policy_index[i] is worded policy_ids[i] */
    const char *const *policy_ids;    /* JSON array of policy ids */
    size_t n_policies;
    int32_t guard_index;              /* the policy index of the guard, whose reason is: */
    const char *guard_reason;         /* JSON string */
    const char *refusal_policies;     /* JSON array: the policy of a SyscallDenied record */
    const char *refusal_reason;       /* JSON string */
    const uint32_t *mask_bits;        /* fanotify mask bit i is named mask_names[i] */
    const char *const *mask_names;    /* JSON strings */
    size_t n_masks;
};

/* The output of aegis_lines_encode, reused from call to call. */
struct aegis_lines {
    char *buf;                        /* records, one per line, no newline after the last */
    size_t len, cap;
    uint32_t count;                   /* records in buf */
    struct aegis_record *notable;     /* copies of the denied and mutating (FileWrite,
                                       * FileDelete, DirCreate) records, for the session */
    int32_t *notable_origin;
    size_t n_notable, notable_cap;
};

struct aegis_lines *aegis_lines_new(void);
void aegis_lines_free(struct aegis_lines *lines);

/* Encodes na records of origin_a and nb of origin_b (nb may be 0), merged by
 * time, into `out` (emptied first). 0, or -ENOMEM, or -EINVAL for a record
 * whose action code has no name in ctx (out is then empty). */
int aegis_lines_encode(struct aegis_lines *out, const struct aegis_lines_ctx *ctx, const struct aegis_record *a,
                       size_t na, int origin_a, const struct aegis_record *b, size_t nb, int origin_b);
/* cffi:end */

#endif
