/* flood.c: resource abuse.
 *
 *   flood opens N PATH              open+close PATH N times as fast as possible
 *   flood forkbomb WIDTH DEPTH MARKER  a bounded fork tree (WIDTH^1 + ... + WIDTH^DEPTH
 *                                   processes); every leaf execs /bin/true, every 50th
 *                                   leaf instead daemonises (setsid) and sleeps 60 s
 *                                   with MARKER in its command line.
 * Prints "DONE ..." with counts. */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

static int true_ok, fork_failed, daemons;

/* index numbers the nodes of one level left to right, so "every 50th leaf" is deterministic. */
static void tree(int width, int depth, long index)
{
    pid_t kids[64];
    int n = 0;
    for (int i = 0; i < width && i < 64; i++) {
        long child_index = index * width + i;
        int daemonise = depth == 1 && child_index % 50 == 49;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            fork_failed++;
            continue;
        }
        if (pid == 0) {
            if (depth > 1) {
                true_ok = fork_failed = daemons = 0;
                tree(width, depth - 1, child_index);
                /* Report this subtree's counts through the exit status is too small: print. */
                printf("SUB true_ok=%d fork_failed=%d daemons=%d\n", true_ok, fork_failed, daemons);
                fflush(stdout);
                _exit(0);
            }
            if (daemonise) {
                /* Double fork: the daemon is nobody's child in the tree and outlives it. */
                if (fork() != 0)
                    _exit(3);
                setsid();
                signal(SIGHUP, SIG_IGN);
                printf("SUB true_ok=0 fork_failed=0 daemons=1\n");
                fflush(stdout);
                int null = open("/dev/null", O_RDWR);
                for (int fd = 0; fd < 3; fd++)
                    dup2(null, fd);
                sleep(60);
                _exit(0);
            }
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        kids[n++] = pid;
    }
    for (int i = 0; i < n; i++) {
        int status;
        if (waitpid(kids[i], &status, 0) == kids[i] && depth == 1 && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0)
            true_ok++;
    }
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "opens")) {
        long n = atol(argv[2]), ok = 0;
        for (long i = 0; i < n; i++) {
            int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ok++;
                close(fd);
            }
        }
        printf("DONE opens=%ld ok=%ld\n", n, ok);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "forkbomb")) {
        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        tree(atoi(argv[2]), atoi(argv[3]), 0);
        printf("DONE true_ok=%d fork_failed=%d daemons=%d\n", true_ok, fork_failed, daemons);
        return 0;
    }
    die_usage("flood opens N PATH | flood forkbomb WIDTH DEPTH MARKER");
    return 2;
}
