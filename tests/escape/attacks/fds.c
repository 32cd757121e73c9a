/* fds.c: lists the descriptors this process was given ("FD n -> target"), then
 * does the same from a child it starts with execve, so descriptors inherited
 * across fork+exec inside the sandbox are seen too. */
#include "common.h"
#include <dirent.h>
#include <sys/wait.h>

static void list_fds(const char *who)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        report_errno("fds", "/proc/self/fd");
        return;
    }
    struct dirent *e;
    char path[300], target[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = 0;
        printf("FD %s %s -> %s\n", who, e->d_name, target);
    }
    closedir(d);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (argv[1] && !strcmp(argv[1], "--child")) {
        list_fds("child");
        return 0;
    }
    list_fds("agent");
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "--child", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return 0;
}
