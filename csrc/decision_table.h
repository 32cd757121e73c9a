/* decision_table.h: the compiled Cedar decision table. Decides (action, canonical
 * path) without Python for the supervisor (observer thread) and for
 * aegis/policy/compiler.py (CompiledPolicy.decide). The blob format is written by
 * aegis.policy.compiler.encode_table; sbpl_emit.c walks the same loaded table. */
#ifndef AEGIS_DECISION_TABLE_H
#define AEGIS_DECISION_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
struct aegis_dtable;
struct aegis_dtable *aegis_dtable_load(const unsigned char *blob, size_t len);
void aegis_dtable_free(struct aegis_dtable *t);
int aegis_dtable_decide(const struct aegis_dtable *t, int action, const char *path, size_t path_len,
                        int *policy_index);
/* cffi:end */

/* Node opcodes of the blob (mirrors OP_* in aegis/policy/compiler.py). */
enum aegis_dt_op {
    AEGIS_DT_FALSE = 0, AEGIS_DT_TRUE, AEGIS_DT_RESIDUAL, AEGIS_DT_EQ, AEGIS_DT_LIKE,
    AEGIS_DT_AND, AEGIS_DT_OR, AEGIS_DT_NOT, AEGIS_DT_PORT
};

#define AEGIS_DT_EFFECT_PERMIT 1
#define AEGIS_DT_EFFECT_FORBID 2
#define AEGIS_DT_MAX_ACTION 9

struct aegis_dt_seg { const unsigned char *p; uint32_t len; };

struct aegis_dt_node {
    uint8_t op;
    uint32_t end;        /* index just past this node's subtree (the right child of AND/OR starts at
                            nodes[i + 1].end) */
    uint32_t first_seg;  /* EQ: one segment; LIKE: nseg segments */
    uint32_t nseg;       /* PORT: the port */
};

struct aegis_dt_rule {
    uint8_t action;
    uint8_t effect;
    int32_t policy_index;
    uint32_t first_node;
};

/* Read-only view for other C emitters (sbpl_emit.c). */
struct aegis_dtable {
    unsigned char *blob;            /* owned copy: segments point into it */
    struct aegis_dt_seg *segs;
    struct aegis_dt_node *nodes;
    struct aegis_dt_rule *rules;
    uint32_t n_rules, n_nodes, n_segs, n_policies;
    uint32_t action_first[AEGIS_DT_MAX_ACTION + 2];  /* rules of action a: [action_first[a], action_first[a+1]) */
};

#endif
