/* sha_chain.h: SHA-256 and the ledger's hash chain (called from aegis/ledger/chain.py).
 *
 * A ledger entry's leaf hash is SHA-256(0x00 || canonical record) (RFC 6962 leaf),
 * and its chain hash is SHA-256(previous chain hash || leaf hash). One call hashes
 * a whole batch of records, so appending or verifying N entries costs one
 * Python -> C crossing, not N. */
#ifndef AEGIS_SHA_CHAIN_H
#define AEGIS_SHA_CHAIN_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
#define AEGIS_SHA256_LEN 32

/* out = SHA-256(data[0..len)). */
void aegis_sha256(const unsigned char *data, size_t len, unsigned char *out);

/* Chain n records laid end to end in `records` (record i is lens[i] bytes).
 * prev: the chain hash before the first record (32 bytes; all zero at genesis).
 * chain_out: n*32 bytes, chain hash of each record.
 * leaf_out: n*32 bytes of leaf hashes, or NULL when not wanted.
 * Returns 0, or -1 if the lengths run past records_len (nothing written then). */
int aegis_sha_chain(const unsigned char *prev, const unsigned char *records, size_t records_len,
                    const uint32_t *lens, size_t n, unsigned char *chain_out, unsigned char *leaf_out);

/* Chain the n records of `lines`, laid out as n lines separated by single '\n'
 * bytes (no newline after the last). Canonical records never hold a raw newline
 * (JSON escapes control characters and UTF-8 never uses the byte 0x0a inside a
 * character), so a batch crosses into C as one buffer with no length array.
 * prev: the chain hash before the first record (32 bytes).
 * chain_out: n*32 bytes, the chain hash of each record.
 * spans_out: n*20 decimal digits: for each record, where it starts in `lines`
 * (counting from 1, as SQL's substr does) and its length in bytes, each
 * zero-padded to ten digits (SQLite reads them back with substr and CAST while
 * inserting the batch).
 * Returns 0, or -1 (writing nothing) if `lines` does not hold exactly n lines. */
int aegis_sha_chain_lines(const unsigned char *prev, const unsigned char *lines, size_t lines_len, size_t n,
                          unsigned char *chain_out, char *spans_out);

/* Verify n stored entries in one call. Entry i is lens[i] bytes laid end to end in
 * `stored`: its hash's 32 bytes, then its canonical record, as the ledger stores it.
 * prev: the chain hash before the first entry (32 bytes).
 * Returns -1 when every entry's hash is the chain hash of its record after the entry
 * before, else the index of the first entry whose is not (-2, writing nothing, if the
 * lengths run past stored_len or an entry is shorter than 32 bytes). last_out (32
 * bytes): the chain hash of the last entry checked and found good, or prev. */
long aegis_sha_chain_check(const unsigned char *prev, const unsigned char *stored, size_t stored_len,
                           const uint32_t *lens, size_t n, unsigned char *last_out);

/* 1 when the CPU's SHA extensions are used, 0 for the portable code. */
int aegis_sha256_accelerated(void);
/* Force the portable code (1) or allow acceleration again (0); for tests and benchmarks. */
void aegis_sha256_force_portable(int on);
/* cffi:end */

#endif
