/* sbpl_emit.c: write a Seatbelt (SBPL) profile for a compiled decision table.
 *
 * `(version 1) (deny default)`, a small base every process needs (Cedar has no
 * action for forking, sysctl or metadata reads), then per action its permits as
 * `allow` rules and its forbids as `deny` rules after them (in SBPL the last
 * matching rule wins, which gives Cedar's "forbid overrides permit"). Matchers map
 * to `literal`, `subpath` and `regex` filters combined with require-all/any/not.
 * Seatbelt cannot ask cedarpy, so residual conditions are over-approximated: true
 * inside an allow, false inside a deny (flipped under negation); the profile never
 * denies what the policy allows. Called by aegis/policy/sbpl.py. */
#include "decision_table.h"
#include "sbpl_emit.h"
#include "aegis_actions.h"

#include <string.h>

struct out {
    char *buf;
    size_t cap, len;  /* len counts everything, also what did not fit */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* SBPL string literal body: backslash and double quote are the reader's escapes. */
static void put_string_char(struct out *o, unsigned char c)
{
    if (c == '\\' || c == '"')
        put(o, "\\", 1);
    put(o, (const char *)&c, 1);
}

static void put_quoted(struct out *o, const unsigned char *s, size_t n)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++)
        put_string_char(o, s[i]);
    put(o, "\"", 1);
}

/* A literal byte inside a POSIX extended regex, then string-escaped. */
static void put_regex_literal(struct out *o, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strchr(".[]()*+?{}|^$\\", s[i]) && s[i] != '\0')
            put_string_char(o, '\\');
        put_string_char(o, s[i]);
    }
}

enum { ALLOW = 1, DENY = 0 };

/* 1 / 0 when the subtree is constant once residual leaves are fixed for this polarity, else -1. */
static int constant(const struct aegis_dtable *t, uint32_t i, int pol)
{
    const struct aegis_dt_node *n = &t->nodes[i];
    int a, b;
    switch (n->op) {
    case AEGIS_DT_FALSE: return 0;
    case AEGIS_DT_TRUE: return 1;
    case AEGIS_DT_RESIDUAL:
    case AEGIS_DT_PORT:  /* Seatbelt's file and process filters cannot see a port */
        return pol == ALLOW;
    case AEGIS_DT_AND:
        a = constant(t, i + 1, pol);
        b = constant(t, t->nodes[i + 1].end, pol);
        return (a == 0 || b == 0) ? 0 : (a == 1 && b == 1) ? 1 : -1;
    case AEGIS_DT_OR:
        a = constant(t, i + 1, pol);
        b = constant(t, t->nodes[i + 1].end, pol);
        return (a == 1 || b == 1) ? 1 : (a == 0 && b == 0) ? 0 : -1;
    case AEGIS_DT_NOT:
        a = constant(t, i + 1, !pol);
        return a < 0 ? -1 : !a;
    default:
        return -1;
    }
}

static void emit_filter(struct out *o, const struct aegis_dtable *t, uint32_t i, int pol);

/* The operands of a chain of one operator (a || b || c parses as (a || b) || c),
 * separated by spaces; neutral constants are left out (constant() ruled out the
 * absorbing ones before we got here). Returns how many were (or would be) written. */
static int emit_operands(struct out *o, const struct aegis_dtable *t, uint32_t i, int op, int pol, int count_only)
{
    uint32_t sides[2] = { i + 1, t->nodes[i + 1].end };
    int written = 0;
    for (int k = 0; k < 2; k++) {
        if (constant(t, sides[k], pol) >= 0)
            continue;
        if (t->nodes[sides[k]].op == op) {
            written += emit_operands(o, t, sides[k], op, pol, count_only);
            continue;
        }
        if (!count_only) {
            puts_(o, " ");
            emit_filter(o, t, sides[k], pol);
        }
        written++;
    }
    return written;
}

/* The one non-constant operand of a chain that has exactly one. */
static uint32_t sole_operand(const struct aegis_dtable *t, uint32_t i, int op, int pol)
{
    uint32_t sides[2] = { i + 1, t->nodes[i + 1].end };
    uint32_t side = constant(t, sides[0], pol) >= 0 ? sides[1] : sides[0];
    return t->nodes[side].op == op ? sole_operand(t, side, op, pol) : side;
}

static void emit_filter(struct out *o, const struct aegis_dtable *t, uint32_t i, int pol)
{
    const struct aegis_dt_node *n = &t->nodes[i];
    const struct aegis_dt_seg *seg = &t->segs[n->first_seg];
    if (n->op == AEGIS_DT_EQ || (n->op == AEGIS_DT_LIKE && n->nseg == 1)) {
        puts_(o, "(literal ");
        put_quoted(o, seg->p, seg->len);
        puts_(o, ")");
    } else if (n->op == AEGIS_DT_LIKE && pol == ALLOW && n->nseg == 2 && seg[1].len == 0 && seg[0].len > 1 &&
               seg[0].p[0] == '/' && seg[0].p[seg[0].len - 1] == '/') {
        /* "D/<wildcard>": subpath D (which also holds D itself: wider, so only for allow) */
        puts_(o, "(subpath ");
        put_quoted(o, seg[0].p, seg[0].len - 1);
        puts_(o, ")");
    } else if (n->op == AEGIS_DT_LIKE) {
        puts_(o, "(regex \"^");
        for (uint32_t k = 0; k < n->nseg; k++) {
            if (k)
                puts_(o, ".*");
            put_regex_literal(o, seg[k].p, seg[k].len);
        }
        puts_(o, "$\")");
    } else if (n->op == AEGIS_DT_NOT) {
        puts_(o, "(require-not ");
        emit_filter(o, t, i + 1, !pol);
        puts_(o, ")");
    } else if (emit_operands(o, t, i, n->op, pol, 1) == 1) {  /* the rest is neutral: no wrapper */
        emit_filter(o, t, sole_operand(t, i, n->op, pol), pol);
    } else {  /* AND / OR: (require-all|any ...) over the flattened chain */
        puts_(o, n->op == AEGIS_DT_AND ? "(require-all" : "(require-any");
        emit_operands(o, t, i, n->op, pol, 0);
        puts_(o, ")");
    }
}

/* Per action: the Seatbelt operations it stands for, with a vnode filter where two
 * actions share an operation (reading a file vs listing a directory). */
struct action_ops {
    int action;
    const char *name;
    const char *ops[2];
    const char *vnode;
};

static const struct action_ops ACTION_OPS[] = {
    { AEGIS_ACT_FILE_READ, "FileRead", { "file-read-data", NULL }, "(require-not (vnode-type DIRECTORY))" },
    { AEGIS_ACT_DIR_LIST, "DirList", { "file-read-data", NULL }, "(vnode-type DIRECTORY)" },
    { AEGIS_ACT_FILE_WRITE, "FileWrite", { "file-write-data", "file-write-create" }, "(require-not (vnode-type DIRECTORY))" },
    { AEGIS_ACT_DIR_CREATE, "DirCreate", { "file-write-create", NULL }, "(vnode-type DIRECTORY)" },
    { AEGIS_ACT_FILE_DELETE, "FileDelete", { "file-write-unlink", NULL }, NULL },
    { AEGIS_ACT_PROCESS_SPAWN, "ProcessSpawn", { "process-exec", NULL }, NULL },
};

static const char BASE[] =
    "(version 1)\n"
    "(deny default)\n"
    "; base: what any process needs and Cedar has no action for\n"
    "(allow process-fork)\n"
    "(allow signal (target same-sandbox))\n"
    "(allow sysctl-read)\n"
    "(allow mach-lookup)\n"
    "(allow file-read-metadata)\n";

static void emit_rule(struct out *o, const struct aegis_dtable *t, const struct aegis_dt_rule *r,
                      const struct action_ops *a, const char *op)
{
    int pol = r->effect == AEGIS_DT_EFFECT_PERMIT ? ALLOW : DENY;
    int c = constant(t, r->first_node, pol);
    if (c == 0)
        return;  /* can never apply under this over-approximation */
    puts_(o, pol == ALLOW ? "(allow " : "(deny ");
    puts_(o, op);
    if (c < 0 && a->vnode) {
        puts_(o, " (require-all ");
        puts_(o, a->vnode);
        puts_(o, " ");
        emit_filter(o, t, r->first_node, pol);
        puts_(o, ")");
    } else if (c < 0) {
        puts_(o, " ");
        emit_filter(o, t, r->first_node, pol);
    } else if (a->vnode) {
        puts_(o, " ");
        puts_(o, a->vnode);
    }
    puts_(o, ")\n");
}

long aegis_sbpl_emit(const struct aegis_dtable *t, char *out, size_t cap)
{
    if (!t)
        return -1;
    struct out o = { out, cap, 0 };
    puts_(&o, BASE);
    for (size_t k = 0; k < sizeof(ACTION_OPS) / sizeof(ACTION_OPS[0]); k++) {
        const struct action_ops *a = &ACTION_OPS[k];
        uint32_t first = t->action_first[a->action], end = t->action_first[a->action + 1];
        puts_(&o, "; ");
        puts_(&o, a->name);
        puts_(&o, "\n");
        for (int pass = ALLOW; pass >= DENY; pass--)  /* allows first: the last match wins */
            for (uint32_t r = first; r < end; r++)
                if ((t->rules[r].effect == AEGIS_DT_EFFECT_PERMIT) == (pass == ALLOW))
                    for (int j = 0; j < 2 && a->ops[j]; j++)
                        emit_rule(&o, t, &t->rules[r], a, a->ops[j]);
    }
    /* NetConnect: Seatbelt's network filters cannot see the Cedar resource string,
       so any possible permit opens outbound network (the over-approximation) */
    uint32_t first = t->action_first[AEGIS_ACT_NET_CONNECT], end = t->action_first[AEGIS_ACT_NET_CONNECT + 1];
    int net = 0;
    for (uint32_t r = first; r < end; r++)
        if (t->rules[r].effect == AEGIS_DT_EFFECT_PERMIT && constant(t, t->rules[r].first_node, ALLOW) != 0)
            net = 1;
    for (uint32_t r = first; r < end; r++)
        if (t->rules[r].effect == AEGIS_DT_EFFECT_FORBID && constant(t, t->rules[r].first_node, DENY) == 1)
            net = 0;
    puts_(&o, net ? "; NetConnect\n(allow network-outbound)\n" : "; NetConnect: none permitted\n");
    if (o.len < cap)
        out[o.len] = '\0';
    return (long)o.len;
}
