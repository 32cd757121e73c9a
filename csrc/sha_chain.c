/* sha_chain.c: SHA-256 (FIPS 180-4) and the ledger hash chain, for
 * aegis/ledger/chain.py. Our own implementation (no OpenSSL) so the native
 * module has no crypto dependency; a portable C compression function, plus the
 * x86 SHA extensions when the CPU has them (picked at run time), because
 * `audit verify` must hash a million entries in well under two seconds. */
#include "sha_chain.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AEGIS_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

typedef void (*compress_fn)(uint32_t state[8], const unsigned char *blocks, size_t nblocks);

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void compress_portable(uint32_t state[8], const unsigned char *blocks, size_t nblocks)
{
    uint32_t w[64];
    for (; nblocks > 0; nblocks--, blocks += 64) {
        for (int t = 0; t < 16; t++)
            w[t] = load_be32(blocks + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }
}

#ifdef AEGIS_HAVE_SHANI
/* The SHA-NI instructions work on the state as (ABEF, CDGH) and do two rounds per
 * sha256rnds2; the message schedule is sha256msg1/msg2 over four 4-word groups. */
__attribute__((target("sha,sse4.1,ssse3")))
static void compress_shani(uint32_t state[8], const unsigned char *blocks, size_t nblocks)
{
    const __m128i byteswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                 /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);           /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);   /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);        /* CDGH */

    for (; nblocks > 0; nblocks--, blocks += 64) {
        __m128i abef = state0, cdgh = state1, w[4];
        /* Fully unrolled so the four message-schedule groups stay in registers
         * (indexed w[i & 3] in a loop they live in memory: about 2x slower). */
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            if (i < 4) {
                w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 16 * i)), byteswap);
            } else {
                /* w[i&3] holds W[t-16..t-13]; combine with the three newer groups. */
                __m128i m = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
                m = _mm_add_epi32(m, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
                w[i & 3] = _mm_sha256msg2_epu32(m, w[(i + 3) & 3]);
            }
            __m128i msg = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&K[4 * i]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);              /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);           /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);        /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);           /* ABEF */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static int cpu_has_sha(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int sse41_ssse3 = (c & bit_SSE4_1) && (c & bit_SSSE3);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return sse41_ssse3 && (b & (1u << 29)) != 0;
}
#endif

static int force_portable;

static compress_fn pick_compress(void)
{
#ifdef AEGIS_HAVE_SHANI
    /* cpuid is cheap but not free; the answer never changes, so ask once. */
    static int has_sha = -1;
    if (has_sha < 0)
        has_sha = cpu_has_sha();
    if (has_sha && !force_portable)
        return compress_shani;
#endif
    return compress_portable;
}

int aegis_sha256_accelerated(void) { return pick_compress() != compress_portable; }

void aegis_sha256_force_portable(int on) { force_portable = on != 0; }

/* SHA-256 of the concatenation head || body; head is at most 64 bytes (the leaf
 * prefix byte, or prev || leaf), so hashing never copies the body. */
static void sha256_pair(compress_fn compress, const unsigned char *head, size_t head_len,
                        const unsigned char *body, size_t body_len, unsigned char *out)
{
    uint32_t st[8];
    unsigned char block[128];
    size_t total = head_len + body_len, used = head_len;
    memcpy(st, H0, sizeof st);
    if (head_len)
        memcpy(block, head, head_len);

    size_t fill = 64 - used < body_len ? 64 - used : body_len;
    if (fill)
        memcpy(block + used, body, fill);
    used += fill;
    body += fill;
    body_len -= fill;
    if (used == 64 && body_len > 0) {
        compress(st, block, 1);
        size_t whole = body_len / 64;
        compress(st, body, whole);
        body += whole * 64;
        body_len -= whole * 64;
        if (body_len)
            memcpy(block, body, body_len);
        used = body_len;
    }
    /* Padding: 0x80, zeros, 64-bit big-endian bit length; one or two blocks. */
    block[used++] = 0x80;
    size_t padded = used <= 56 ? 64 : 128;
    memset(block + used, 0, padded - used);
    uint64_t bits = (uint64_t)total * 8;
    for (int i = 0; i < 8; i++)
        block[padded - 1 - i] = (unsigned char)(bits >> (8 * i));
    compress(st, block, padded / 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(st[i] >> 24);
        out[4 * i + 1] = (unsigned char)(st[i] >> 16);
        out[4 * i + 2] = (unsigned char)(st[i] >> 8);
        out[4 * i + 3] = (unsigned char)st[i];
    }
}

void aegis_sha256(const unsigned char *data, size_t len, unsigned char *out)
{
    sha256_pair(pick_compress(), NULL, 0, data, len, out);
}

int aegis_sha_chain(const unsigned char *prev, const unsigned char *records, size_t records_len,
                    const uint32_t *lens, size_t n, unsigned char *chain_out, unsigned char *leaf_out)
{
    /* Check every length first so a bad call writes nothing and reads nothing out of bounds. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += lens[i];
        if (total > records_len)
            return -1;
    }
    compress_fn compress = pick_compress();
    static const unsigned char leaf_prefix[1] = {0x00};
    unsigned char link[64];
    memcpy(link, prev, 32);
    for (size_t i = 0; i < n; i++) {
        sha256_pair(compress, leaf_prefix, 1, records, lens[i], link + 32);
        records += lens[i];
        if (leaf_out)
            memcpy(leaf_out + 32 * i, link + 32, 32);
        sha256_pair(compress, link, 64, NULL, 0, chain_out + 32 * i);
        memcpy(link, chain_out + 32 * i, 32);
    }
    return 0;
}

/* Ten zero-padded decimal digits of value; every value written fits, lines_len
 * being checked below 10^10 - 1. */
static void to_decimal10(size_t value, char *out)
{
    for (int i = 9; i >= 0; i--, value /= 10)
        out[i] = (char)('0' + value % 10);
}

int aegis_sha_chain_lines(const unsigned char *prev, const unsigned char *lines, size_t lines_len, size_t n,
                          unsigned char *chain_out, char *spans_out)
{
    /* Count the lines first so a bad call writes nothing. n records need n-1 newlines;
     * zero records need an empty buffer. */
    if (lines_len >= 9999999999ULL || (n == 0 && lines_len != 0))
        return -1;
    size_t newlines = 0;
    for (size_t at = 0; at < lines_len; at++) {
        const unsigned char *p = memchr(lines + at, '\n', lines_len - at);
        if (p == NULL)
            break;
        newlines++;
        at = (size_t)(p - lines);
    }
    if (n > 0 && newlines != n - 1)
        return -1;

    compress_fn compress = pick_compress();
    static const unsigned char leaf_prefix[1] = {0x00};
    unsigned char link[64];
    memcpy(link, prev, 32);
    size_t at = 0; /* where record i starts */
    for (size_t i = 0; i < n; i++) {
        const unsigned char *stop = at < lines_len ? memchr(lines + at, '\n', lines_len - at) : NULL;
        size_t len = stop ? (size_t)(stop - (lines + at)) : lines_len - at;
        sha256_pair(compress, leaf_prefix, 1, lines + at, len, link + 32);
        sha256_pair(compress, link, 64, NULL, 0, link); /* safe in place: the head is copied first */
        memcpy(chain_out + 32 * i, link, 32);
        to_decimal10(at + 1, spans_out + 20 * i);
        to_decimal10(len, spans_out + 20 * i + 10);
        at += len + 1;
    }
    return 0;
}

/* Each entry is its hash's 32 bytes, then its record; the hash must be the chain
 * hash of the record after the entry before (prev for the first). */
long aegis_sha_chain_check(const unsigned char *prev, const unsigned char *stored, size_t stored_len,
                           const uint32_t *lens, size_t n, unsigned char *last_out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += lens[i];
        if (lens[i] < 32 || total > stored_len)
            return -2;
    }
    compress_fn compress = pick_compress();
    static const unsigned char leaf_prefix[1] = {0x00};
    unsigned char link[64], chained[32];
    memcpy(link, prev, 32);
    size_t i;
    for (i = 0; i < n; i++) {
        sha256_pair(compress, leaf_prefix, 1, stored + 32, lens[i] - 32, link + 32);
        sha256_pair(compress, link, 64, NULL, 0, chained);
        if (memcmp(stored, chained, 32) != 0)
            break;
        memcpy(link, chained, 32);
        stored += lens[i];
    }
    memcpy(last_out, link, 32);
    return i == n ? -1 : (long)i;
}
