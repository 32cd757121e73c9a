/* aegis_actions.h: the action and decision codes shared by every C module and
 * by Python (aegis/actions.py mirrors these numbers and a test checks they agree).
 * Numbers are part of the ring-record and decision-table formats: never renumber. */
#ifndef AEGIS_ACTIONS_H
#define AEGIS_ACTIONS_H

/* cffi:begin */
#define AEGIS_ACT_FILE_READ      1
#define AEGIS_ACT_FILE_WRITE     2
#define AEGIS_ACT_FILE_DELETE    3
#define AEGIS_ACT_DIR_CREATE     4
#define AEGIS_ACT_DIR_LIST       5
#define AEGIS_ACT_NET_CONNECT    6
#define AEGIS_ACT_TOOL_CALL      7
#define AEGIS_ACT_PROCESS_SPAWN  8
#define AEGIS_ACT_PROCESS_EXIT   9
/* Not a Cedar action: a record of a syscall the filter refuses whatever the
 * policy (observe_seccomp.c; the ledger's SyscallDenied). */
#define AEGIS_ACT_SYSCALL_REFUSED 10

#define AEGIS_DECISION_ALLOW     1
#define AEGIS_DECISION_DENY      2
#define AEGIS_DECISION_RESIDUAL  3
/* cffi:end */

#endif
