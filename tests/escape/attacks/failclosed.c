/* failclosed.c: an agent that keeps writing, to see whether anything still
 * happens after Aegis is killed.
 *
 *   failclosed LOG PIDFILE
 *
 * The main process re-opens LOG for every line (each open is an intercepted
 * operation); a daemonised grandchild holds LOG open and writes through the held
 * descriptor (no intercepted operation at all). Both ignore SIGTERM/SIGHUP/SIGINT.
 * Every line carries CLOCK_REALTIME in ns, so the test can see when it was written.
 * PIDFILE gets the pids the test can see: /proc/self as Aegis's /proc shows it,
 * not getpid(), which counts inside the session's PID namespace. */
#include "common.h"
#include <signal.h>
#include <time.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void record_pid(const char *pidfile)
{
    int fd = open(pidfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    char self[32];
    ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
    if (fd >= 0 && n > 0) {
        self[n] = '\0';
        dprintf(fd, "%s\n", self);
    }
    if (fd >= 0)
        close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        die_usage("failclosed LOG PIDFILE");
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    record_pid(argv[2]);
    struct timespec tick = {0, 10 * 1000 * 1000};
    if (fork() == 0) {
        setsid();
        if (fork() != 0)
            _exit(0);
        record_pid(argv[2]);
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        for (;;) {
            dprintf(fd, "D %lld\n", now_ns());
            nanosleep(&tick, NULL);
        }
    }
    for (;;) {
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dprintf(fd, "M %lld\n", now_ns());
            close(fd);
        }
        nanosleep(&tick, NULL);
    }
}
