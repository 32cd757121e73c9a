/* sbpl_emit.h: macOS Seatbelt profile text from a loaded decision table, so macOS
 * enforces the same compiled policy. Called by aegis/policy/sbpl.py; plain text,
 * built and tested on every platform. */
#ifndef AEGIS_SBPL_EMIT_H
#define AEGIS_SBPL_EMIT_H

#include <stddef.h>

#include "decision_table.h"

/* cffi:begin */
long aegis_sbpl_emit(const struct aegis_dtable *t, char *out, size_t cap);
/* cffi:end */

#endif
