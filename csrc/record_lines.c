/* record_lines.c: observation records to canonical ledger records (see
 * record_lines.h). The bytes must equal, field for field, what
 * aegis/ledger/canonical.py makes of the Event the Python converters build:
 *
 *   [ts_ns,kind,session_id,principal,action,resource,pid,ppid,executable,
 *    source,decision,policy_ids,errors,reason,details]
 *
 * compact JSON, UTF-8 as is, details' keys sorted. Strings are written the way
 * Python's json module writes them with ensure_ascii=False; bytes that are not
 * UTF-8 come out as the text \xNN (what canonical.encode_record makes of a name
 * decoded with surrogateescape). */
#include "record_lines.h"

#include "aegis_actions.h"
#include "observe_seccomp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct aegis_lines *aegis_lines_new(void)
{
    return calloc(1, sizeof(struct aegis_lines));
}

void aegis_lines_free(struct aegis_lines *lines)
{
    if (!lines)
        return;
    free(lines->buf);
    free(lines->notable);
    free(lines->notable_origin);
    free(lines);
}

/* ---- writing into out->buf; the caller reserved room for the whole record ---- */

static void put(struct aegis_lines *out, const char *s, size_t n)
{
    memcpy(out->buf + out->len, s, n);
    out->len += n;
}

static void put_str(struct aegis_lines *out, const char *s)
{
    put(out, s, strlen(s));
}

static void put_int(struct aegis_lines *out, int64_t v)
{
    out->len += (size_t)sprintf(out->buf + out->len, "%" PRId64, v);
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when there is none. This
 * is exactly where Python's decoder reports an error, byte by byte. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* A JSON string of the n bytes at s: at most 6 bytes out per byte in, plus 2. */
static void put_json_bytes(struct aegis_lines *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    char *p = out->buf + out->len;
    *p++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *p++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_sequence(u + i, n - i);
            if (len) {
                memcpy(p, u + i, len);
                p += len;
                i += len;
            } else { /* the text \xNN, its backslash escaped for JSON */
                memcpy(p, "\\\\x", 3);
                p[3] = hex[c >> 4];
                p[4] = hex[c & 15];
                p += 5;
                i++;
            }
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        default:
            memcpy(p, "u00", 3);
            p[3] = hex[c >> 4];
            p[4] = hex[c & 15];
            p += 5;
        }
        i++;
    }
    *p++ = '"';
    out->len = (size_t)(p - out->buf);
}

/* ---- room ---- */

static size_t max_len(const char *const *s, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] && strlen(s[i]) > m)
            m = strlen(s[i]);
    return m;
}

static size_t sum_len(const char *const *s, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += s[i] ? strlen(s[i]) + 1 : 0;
    return m;
}

/* The most any record can take besides its own strings: every string of the
 * context it might use, its numbers, keys and punctuation. */
static size_t fixed_room(const struct aegis_lines_ctx *ctx)
{
    return strlen(ctx->kind) + strlen(ctx->session_id) + strlen(ctx->principal) + strlen(ctx->guard_reason) +
           strlen(ctx->refusal_policies) + strlen(ctx->refusal_reason) + max_len(ctx->actions, ctx->n_actions) +
           max_len(ctx->syscalls, ctx->n_syscalls) + max_len(ctx->policy_ids, ctx->n_policies) +
           sum_len(ctx->mask_names, ctx->n_masks) + 512;
}

static int reserve(struct aegis_lines *out, size_t room)
{
    if (out->cap - out->len >= room)
        return 0;
    size_t cap = out->cap ? out->cap : 1 << 16;
    while (cap - out->len < room)
        cap *= 2;
    char *buf = realloc(out->buf, cap);
    if (!buf)
        return -ENOMEM;
    out->buf = buf;
    out->cap = cap;
    return 0;
}

static int keep_notable(struct aegis_lines *out, const struct aegis_record *rec, int origin)
{
    if (out->n_notable == out->notable_cap) {
        size_t cap = out->notable_cap ? out->notable_cap * 2 : 64;
        struct aegis_record *recs = realloc(out->notable, cap * sizeof(*recs));
        if (!recs)
            return -ENOMEM;
        out->notable = recs;
        int32_t *origins = realloc(out->notable_origin, cap * sizeof(*origins));
        if (!origins)
            return -ENOMEM;
        out->notable_origin = origins;
        out->notable_cap = cap;
    }
    out->notable[out->n_notable] = *rec;
    out->notable_origin[out->n_notable++] = origin;
    return 0;
}

/* ---- one record ---- */

static const char *policy_ids_of(const struct aegis_lines_ctx *ctx, int32_t index)
{
    for (size_t i = 0; i < ctx->n_policies; i++)
        if (ctx->policy_index[i] == index)
            return ctx->policy_ids[i];
    return "[]";
}

static void put_source_syscall(struct aegis_lines *out, const struct aegis_lines_ctx *ctx, int32_t nr)
{
    if (nr >= 0 && (size_t)nr < ctx->n_syscalls && ctx->syscalls[nr]) {
        put_str(out, ctx->syscalls[nr]);
    } else {
        put(out, "\"", 1);
        put_int(out, nr);
        put(out, "\"", 1);
    }
}

/* argv as a JSON list: the NUL-separated arguments of extra. */
static void put_argv(struct aegis_lines *out, const struct aegis_record *rec)
{
    put(out, "[", 1);
    if (rec->extra_len) {
        size_t len = rec->extra_len < sizeof(rec->extra) ? rec->extra_len : sizeof(rec->extra) - 1;
        const char *arg = rec->extra, *end = rec->extra + len;
        for (;;) {
            const char *nul = memchr(arg, '\0', (size_t)(end - arg));
            const char *stop = nul ? nul : end;
            put_json_bytes(out, arg, (size_t)(stop - arg));
            if (!nul)
                break;
            put(out, ",", 1);
            arg = nul + 1;
        }
    }
    put(out, "]", 1);
}

/* Writes the record; returns 1 when it is a denial, 0 when not. */
static int put_record(struct aegis_lines *out, const struct aegis_lines_ctx *ctx, const struct aegis_record *rec,
                      int origin)
{
    int fanotify = origin == AEGIS_ORIGIN_FANOTIFY;
    int exit_record = !fanotify && rec->action == AEGIS_ACT_PROCESS_EXIT;
    int refusal = !fanotify && rec->action == AEGIS_ACT_SYSCALL_REFUSED;
    int denied = refusal || (!fanotify && !exit_record && rec->decision != AEGIS_DECISION_ALLOW);
    size_t exe_len = strnlen(rec->exe, sizeof(rec->exe));
    size_t path_len = rec->path_len < sizeof(rec->path) ? rec->path_len : sizeof(rec->path) - 1;

    put(out, "[", 1);
    put_int(out, rec->ts_ns ? (int64_t)rec->ts_ns : (int64_t)ctx->now_ns);
    put(out, ",", 1);
    put_str(out, ctx->kind);
    put(out, ",", 1);
    put_str(out, ctx->session_id);
    put(out, ",", 1);
    put_str(out, ctx->principal);
    put(out, ",", 1);
    put_str(out, ctx->actions[rec->action]);
    put(out, ",", 1);
    /* resource: the path; the executable for an exit; the syscall for a refusal */
    if (exit_record)
        put_json_bytes(out, rec->exe, exe_len);
    else if (refusal)
        put_source_syscall(out, ctx, rec->syscall_nr);
    else
        put_json_bytes(out, rec->path, path_len);
    put(out, ",", 1);
    put_int(out, rec->pid);
    put(out, ",", 1);
    put_int(out, rec->ppid);
    put(out, ",", 1);
    put_json_bytes(out, rec->exe, exe_len);
    put(out, ",", 1);
    if (fanotify)
        put_str(out, "\"fanotify\"");
    else if (exit_record)
        put_str(out, "\"exit_group\"");
    else
        put_source_syscall(out, ctx, rec->syscall_nr);
    put(out, ",", 1);
    put_str(out, exit_record ? "\"info\"" : denied ? "\"deny\"" : "\"allow\"");
    put(out, ",", 1);
    if (fanotify || exit_record)
        put_str(out, "[]");
    else if (refusal)
        put_str(out, ctx->refusal_policies);
    else
        put_str(out, policy_ids_of(ctx, rec->policy_index));
    put(out, ",[],", 4); /* errors: only the Python path has residual errors to record */
    if (refusal)
        put_str(out, ctx->refusal_reason);
    else if (!fanotify && !exit_record && rec->policy_index == ctx->guard_index)
        put_str(out, ctx->guard_reason);
    else
        put(out, "\"\"", 2);

    /* details, keys in sorted order: arg0 argv argv_truncated errno exit_code
     * fanotify flags path_truncated port */
    put(out, ",{", 2);
    const char *sep = "";
#define KEY(name) (put_str(out, sep), put_str(out, "\"" name "\":"), sep = ",")
    int path_truncated = (rec->truncated & AEGIS_REC_PATH_TRUNCATED) != 0;
    if (refusal) {
        KEY("arg0");
        put_int(out, rec->arg);
        KEY("errno");
        put_int(out, rec->error);
    } else {
        int spawn = rec->action == AEGIS_ACT_PROCESS_SPAWN;
        if (spawn) {
            KEY("argv");
            put_argv(out, rec);
            if (rec->truncated & AEGIS_REC_EXTRA_TRUNCATED) {
                KEY("argv_truncated");
                put_str(out, "true");
            }
        }
        if (!fanotify && !exit_record && rec->error) {
            KEY("errno");
            put_int(out, rec->error);
        }
        if (exit_record) {
            KEY("exit_code");
            put_int(out, rec->arg);
        }
        if (fanotify) {
            KEY("fanotify");
            put(out, "[", 1);
            const char *comma = "";
            for (size_t i = 0; i < ctx->n_masks; i++)
                if ((uint64_t)rec->arg & ctx->mask_bits[i]) {
                    put_str(out, comma);
                    put_str(out, ctx->mask_names[i]);
                    comma = ",";
                }
            put(out, "]", 1);
        }
        if (!fanotify && !exit_record && !spawn && rec->action != AEGIS_ACT_NET_CONNECT && rec->arg) {
            KEY("flags");
            put_int(out, rec->arg);
        }
        if (path_truncated) {
            KEY("path_truncated");
            put_str(out, "true");
        }
        if (!fanotify && rec->action == AEGIS_ACT_NET_CONNECT) {
            KEY("port");
            put_int(out, rec->arg);
        }
    }
#undef KEY
    put(out, "}]", 2);
    return denied;
}

static int mutating(int32_t action)
{
    return action == AEGIS_ACT_FILE_WRITE || action == AEGIS_ACT_FILE_DELETE || action == AEGIS_ACT_DIR_CREATE;
}

int aegis_lines_encode(struct aegis_lines *out, const struct aegis_lines_ctx *ctx, const struct aegis_record *a,
                       size_t na, int origin_a, const struct aegis_record *b, size_t nb, int origin_b)
{
    out->len = 0;
    out->count = 0;
    out->n_notable = 0;
    size_t fixed = fixed_room(ctx);
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        /* the older record first; from `a` on a tie */
        int take_a = j >= nb || (i < na && a[i].ts_ns <= b[j].ts_ns);
        const struct aegis_record *rec = take_a ? &a[i++] : &b[j++];
        int origin = take_a ? origin_a : origin_b;
        if (rec->action < 0 || (size_t)rec->action >= ctx->n_actions || !ctx->actions[rec->action]) {
            out->len = 0;
            out->count = 0;
            out->n_notable = 0;
            return -EINVAL;
        }
        if (rec->action == AEGIS_ACT_PROCESS_EXIT && ctx->skip_exit_of && rec->pid == ctx->skip_exit_of)
            continue;
        /* every string of the record at 6 bytes a byte (a control character's
         * \u00XX), the executable twice (an exit's resource), plus the context */
        size_t room = 6 * (sizeof(rec->path) + 2 * sizeof(rec->exe) + sizeof(rec->extra) + 2) + fixed;
        if (reserve(out, room) < 0)
            return -ENOMEM;
        if (out->count)
            put(out, "\n", 1);
        int denied = put_record(out, ctx, rec, origin);
        out->count++;
        if ((denied || mutating(rec->action)) && keep_notable(out, rec, origin) < 0)
            return -ENOMEM;
    }
    return 0;
}
