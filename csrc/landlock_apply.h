/* landlock_apply.h: build a Landlock ruleset from a LandlockSpec
 * (aegis/policy/landlock.py) and enforce it. The spawner builds the ruleset fd
 * in the parent before fork with aegis_landlock_build_ruleset and calls
 * aegis_landlock_enforce in the child; aegis.policy.landlock.restrict_self uses
 * both in one process (tests, helpers). */
#ifndef AEGIS_LANDLOCK_APPLY_H
#define AEGIS_LANDLOCK_APPLY_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
int aegis_landlock_build_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
                                 const char *const *paths, const uint64_t *path_access, size_t n_paths,
                                 const uint64_t *ports, const uint64_t *port_access, size_t n_ports);
int aegis_landlock_add_path(int ruleset_fd, const char *path, uint64_t access);
int aegis_landlock_enforce(int ruleset_fd, unsigned int flags);
/* cffi:end */

#endif
