/* decision_table.c: load and evaluate the compiled Cedar decision table.
 *
 * The table is the rule IR of aegis/policy/compiler.py: per action, rules in
 * policy order, each a matcher tree over the canonical path (exact, Cedar `like`,
 * and/or/not, constants, and RESIDUAL leaves for conditions only cedarpy can
 * decide). Evaluation is three-valued with Cedar's left-to-right short circuit;
 * the combination rule (forbid wins, first deciding policy, RESIDUAL when a
 * residual policy could change the answer) is documented in compiler.py.
 * Called by the supervisor in C and by CompiledPolicy.decide via cffi.
 * Read-only after load, so concurrent decide calls need no locking. */
#define _GNU_SOURCE
#include "decision_table.h"
#include "aegis_actions.h"

#include <stdlib.h>
#include <string.h>

#define DT_MAX_DEPTH 256  /* cedarpy caps expression nesting at 100; deeper blobs are malformed */

enum { V_FALSE = 0, V_TRUE = 1, V_RESIDUAL = 2 };

struct reader {
    const unsigned char *p, *end;
};

static int read_u32(struct reader *r, uint32_t *out)
{
    if (r->end - r->p < 4)
        return -1;
    *out = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 0;
}

/* Grow *arr so it holds at least `need` elements of `size` bytes. */
static int reserve(void **arr, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint32_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *grown = realloc(*arr, (size_t)n * size);
    if (!grown)
        return -1;
    *arr = grown;
    *cap = n;
    return 0;
}

struct loader {
    struct aegis_dtable *t;
    struct reader r;
    uint32_t node_cap, seg_cap;
};

static int read_seg(struct loader *l)
{
    uint32_t len;
    if (read_u32(&l->r, &len) || (size_t)(l->r.end - l->r.p) < len)
        return -1;
    if (reserve((void **)&l->t->segs, &l->seg_cap, l->t->n_segs + 1, sizeof(struct aegis_dt_seg)))
        return -1;
    l->t->segs[l->t->n_segs++] = (struct aegis_dt_seg){ l->r.p, len };
    l->r.p += len;
    return 0;
}

static int read_node(struct loader *l, int depth)
{
    struct aegis_dtable *t = l->t;
    if (depth > DT_MAX_DEPTH || l->r.p >= l->r.end)
        return -1;
    if (reserve((void **)&t->nodes, &l->node_cap, t->n_nodes + 1, sizeof(struct aegis_dt_node)))
        return -1;
    uint32_t self = t->n_nodes++;
    uint8_t op = *l->r.p++;
    struct aegis_dt_node node = { .op = op, .first_seg = t->n_segs, .nseg = 0 };
    switch (op) {
    case AEGIS_DT_FALSE: case AEGIS_DT_TRUE: case AEGIS_DT_RESIDUAL:
        break;
    case AEGIS_DT_EQ:
        node.nseg = 1;
        if (read_seg(l))
            return -1;
        break;
    case AEGIS_DT_LIKE:
        if (read_u32(&l->r, &node.nseg) || node.nseg == 0)
            return -1;
        for (uint32_t i = 0; i < node.nseg; i++)
            if (read_seg(l))
                return -1;
        break;
    case AEGIS_DT_PORT:
        if (read_u32(&l->r, &node.nseg) || node.nseg > 65535)
            return -1;
        break;
    case AEGIS_DT_AND: case AEGIS_DT_OR:
        if (read_node(l, depth + 1) || read_node(l, depth + 1))
            return -1;
        break;
    case AEGIS_DT_NOT:
        if (read_node(l, depth + 1))
            return -1;
        break;
    default:
        return -1;
    }
    node.end = t->n_nodes;
    t->nodes[self] = node;  /* after the children: reserve() may have moved the array */
    return 0;
}

struct aegis_dtable *aegis_dtable_load(const unsigned char *blob, size_t len)
{
    if (!blob || len < 16 || memcmp(blob, "AGDT", 4) != 0 || len > UINT32_MAX)
        return NULL;
    struct aegis_dtable *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    struct loader l = { .t = t };
    uint32_t version, n_rules, rule_cap = 0;
    t->blob = malloc(len);
    if (!t->blob)
        goto bad;
    memcpy(t->blob, blob, len);  /* own the bytes: segments point into them */
    l.r = (struct reader){ t->blob + 4, t->blob + len };
    if (read_u32(&l.r, &version) || version != 1 || read_u32(&l.r, &t->n_policies) || read_u32(&l.r, &n_rules))
        goto bad;
    uint8_t last_action = 0;
    for (uint32_t i = 0; i < n_rules; i++) {
        if (l.r.end - l.r.p < 12)
            goto bad;
        struct aegis_dt_rule rule = { .action = l.r.p[0], .effect = l.r.p[1] };
        l.r.p += 4;
        uint32_t index, n_nodes;
        if (read_u32(&l.r, &index) || read_u32(&l.r, &n_nodes))
            goto bad;
        rule.policy_index = (int32_t)index;
        /* grouped by action so decide() scans one contiguous run in policy order */
        if (rule.action < 1 || rule.action > AEGIS_DT_MAX_ACTION || rule.action < last_action ||
            (rule.effect != AEGIS_DT_EFFECT_PERMIT && rule.effect != AEGIS_DT_EFFECT_FORBID) ||
            rule.policy_index < 0 || (uint32_t)rule.policy_index >= t->n_policies)
            goto bad;
        last_action = rule.action;
        rule.first_node = t->n_nodes;
        if (read_node(&l, 0) || t->n_nodes - rule.first_node != n_nodes)
            goto bad;
        if (reserve((void **)&t->rules, &rule_cap, t->n_rules + 1, sizeof(rule)))
            goto bad;
        t->rules[t->n_rules++] = rule;
    }
    if (l.r.p != l.r.end)
        goto bad;
    uint32_t r = 0;
    for (int a = 0; a <= AEGIS_DT_MAX_ACTION + 1; a++) {
        while (r < t->n_rules && t->rules[r].action < a)
            r++;
        t->action_first[a] = r;
    }
    return t;
bad:
    aegis_dtable_free(t);
    return NULL;
}

void aegis_dtable_free(struct aegis_dtable *t)
{
    if (!t)
        return;
    free(t->blob);
    free(t->segs);
    free(t->nodes);
    free(t->rules);
    free(t);
}

/* Cedar `like` on bytes: segments separated by wildcards. UTF-8 is
 * self-synchronising, so byte matching equals Cedar's per-character matching.
 * With `*` as the only wildcard, placing each middle segment at its leftmost
 * occurrence never loses a match, so this is linear in practice. */
static int like_match(const struct aegis_dt_seg *seg, uint32_t nseg, const unsigned char *s, size_t n)
{
    const struct aegis_dt_seg *first = &seg[0], *last = &seg[nseg - 1];
    if (nseg == 1)
        return n == first->len && memcmp(s, first->p, n) == 0;
    if (n < (size_t)first->len + last->len || memcmp(s, first->p, first->len) != 0 ||
        memcmp(s + n - last->len, last->p, last->len) != 0)
        return 0;
    const unsigned char *pos = s + first->len, *end = s + n - last->len;
    for (uint32_t i = 1; i + 1 < nseg; i++) {
        if (seg[i].len == 0)
            continue;
        const unsigned char *hit = memmem(pos, (size_t)(end - pos), seg[i].p, seg[i].len);
        if (!hit)
            return 0;
        pos = hit + seg[i].len;
    }
    return 1;
}

/* The port of a NetConnect "host:port" resource, as PolicyEngine.build_request reads
 * it; -1 where only cedarpy can say (no host, not ASCII decimal, out of range). */
static long resource_port(const unsigned char *s, size_t n)
{
    size_t colon = n;
    while (colon > 0 && s[colon - 1] != ':')
        colon--;
    if (colon == 0 || colon == n)  /* no ':' or an empty port */
        return -1;
    size_t h = 0;
    while (h < colon - 1 && (s[h] == '[' || s[h] == ']'))
        h++;
    if (h == colon - 1)  /* the host is empty once its brackets are stripped */
        return -1;
    long port = 0;
    for (size_t i = colon; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
        if (port > 65535)
            return -1;
    }
    return port;
}

static int eval(const struct aegis_dtable *t, uint32_t i, const unsigned char *s, size_t n)
{
    const struct aegis_dt_node *node = &t->nodes[i];
    int left;
    switch (node->op) {
    case AEGIS_DT_FALSE:
        return V_FALSE;
    case AEGIS_DT_TRUE:
        return V_TRUE;
    case AEGIS_DT_EQ:
        return like_match(&t->segs[node->first_seg], 1, s, n);
    case AEGIS_DT_LIKE:
        return like_match(&t->segs[node->first_seg], node->nseg, s, n);
    case AEGIS_DT_PORT:
        left = (int)resource_port(s, n);
        return left < 0 ? V_RESIDUAL : left == (int)node->nseg;
    case AEGIS_DT_AND:  /* false && _ = false; residual && _ stays residual (it may be an error) */
        left = eval(t, i + 1, s, n);
        return left == V_TRUE ? eval(t, t->nodes[i + 1].end, s, n) : left;
    case AEGIS_DT_OR:
        left = eval(t, i + 1, s, n);
        return left == V_FALSE ? eval(t, t->nodes[i + 1].end, s, n) : left;
    case AEGIS_DT_NOT:
        left = eval(t, i + 1, s, n);
        return left == V_RESIDUAL ? V_RESIDUAL : !left;
    default:
        return V_RESIDUAL;
    }
}

int aegis_dtable_decide(const struct aegis_dtable *t, int action, const char *path, size_t path_len,
                        int *policy_index)
{
    int unused;
    if (!policy_index)
        policy_index = &unused;
    *policy_index = -1;
    if (!t || action < 1 || action > AEGIS_DT_MAX_ACTION)
        return AEGIS_DECISION_DENY;  /* unknown action: fail closed */
    const unsigned char *s = (const unsigned char *)path;
    int first_permit = -1, residual = 0, residual_forbid = 0;
    for (uint32_t r = t->action_first[action]; r < t->action_first[action + 1]; r++) {
        const struct aegis_dt_rule *rule = &t->rules[r];
        int v = eval(t, rule->first_node, s, path_len);
        int forbid = rule->effect == AEGIS_DT_EFFECT_FORBID;
        if (v == V_RESIDUAL) {
            residual = 1;
            residual_forbid |= forbid;
        } else if (v == V_TRUE && forbid) {
            /* the first satisfied forbid decides, unless an earlier residual forbid might */
            if (residual_forbid)
                return AEGIS_DECISION_RESIDUAL;
            *policy_index = rule->policy_index;
            return AEGIS_DECISION_DENY;
        } else if (v == V_TRUE && first_permit < 0) {
            first_permit = rule->policy_index;
        }
    }
    if (residual)
        return AEGIS_DECISION_RESIDUAL;
    *policy_index = first_permit;
    return first_permit >= 0 ? AEGIS_DECISION_ALLOW : AEGIS_DECISION_DENY;
}
