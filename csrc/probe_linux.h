/* probe_linux.h: capability probes for `aegis setup` and `aegis status`
 * (called from aegis/sandbox/capabilities.py). Each probe makes the real
 * syscall; probes that would change the calling process run in a forked child. */
#ifndef AEGIS_PROBE_LINUX_H
#define AEGIS_PROBE_LINUX_H

/* cffi:begin */
int aegis_landlock_abi_version(void);
int aegis_probe_seccomp_filter(void);
int aegis_probe_seccomp_user_notif(void);
int aegis_probe_notif_sync_wakeup(void);
int aegis_probe_userns(unsigned int uid, unsigned int gid);
int aegis_probe_fanotify(void);
int aegis_probe_cgroup2(const char *mountpoint);
/* cffi:end */

#endif
