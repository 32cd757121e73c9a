"""A path rewritten by a second agent thread after the decision must never turn a
denied open into an allowed one: allowed opens are done by the supervisor and the
descriptor injected, so the kernel never re-reads the agent's buffer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aegis import paths
from aegis.config import load_config
from aegis.provision import create_config
from aegis.sandbox.linux import run_session

FLIPPER = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static char buf[4096];
static const char *good, *bad;
static volatile int stop;
static void *flip(void *arg) {
    (void)arg;
    while (!stop) { strcpy(buf, bad); strcpy(buf, good); }
    return NULL;
}
int main(int argc, char **argv) {
    good = argv[1]; bad = argv[2];
    dev_t dev = strtoull(argv[3], 0, 10); ino_t ino = strtoull(argv[4], 0, 10);
    int rounds = atoi(argv[5]), opens = 0, hits = 0;
    int unlinking = argc > 6;
    strcpy(buf, good);
    pthread_t t; pthread_create(&t, NULL, flip, NULL);
    for (int i = 0; unlinking && i < rounds; i++) {
        close(open(good, O_CREAT | O_WRONLY, 0600));
        if (unlink(buf) == 0) opens++;
    }
    for (int i = 0; !unlinking && i < rounds; i++) {
        int fd = open(buf, O_RDONLY);
        if (fd < 0) continue;
        struct stat st; fstat(fd, &st);
        opens++;
        if (st.st_dev == dev && st.st_ino == ino) hits++;
        close(fd);
    }
    stop = 1; pthread_join(t, NULL);
    printf("%d %d\n", opens, hits);
    return 0;
}
"""


@pytest.fixture(scope="module")
def flipper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the racing agent")
    d = tmp_path_factory.mktemp("flipper")
    (d / "flip.c").write_text(FLIPPER)
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(d / "flip"), str(d / "flip.c")], check=True)
    return d / "flip"


def guarded_file(tmp_path: Path) -> Path:
    """A file only the supervisor guards: permit-all, and one forbid inside the permitted
    tree, which Landlock cannot express (the Aegis home would not do: the session's
    mount namespace hides it from the agent altogether)."""
    return tmp_path / "guarded.txt"


def race(flipper: Path, tmp_path: Path, on_behalf: bool, unlinking: bool = False) -> tuple[int, int]:
    decoy, secret = tmp_path / "decoy.txt", guarded_file(tmp_path)
    decoy.write_text("harmless\n")
    secret.write_text("guarded\n")
    config = create_config(paths.wrap_dir("racer"), "racer", "permit-all", tmp_path, force=True)
    (config.directory / "policies" / "guard.cedar").write_text(
        f'@id("guard")\nforbid (principal, action, resource) when {{ resource.path == "{secret}" }};\n')
    st = os.stat(secret)
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        saved = os.dup(1)
        os.dup2(fh.fileno(), 1)
        try:
            run_session(load_config("racer"), [str(flipper), str(decoy), str(secret), str(st.st_dev),
                                               str(st.st_ino), "3000", *(["unlink"] if unlinking else [])],
                        mode="wrap", open_on_behalf=on_behalf)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    opens, hits = map(int, out.read_text().split())
    return opens, hits


def test_rewritten_path_never_opens_the_guarded_file(flipper: Path, tmp_path: Path) -> None:
    opens, hits = race(flipper, tmp_path, on_behalf=True)
    assert opens > 0
    assert hits == 0


def test_rewritten_path_never_unlinks_the_guarded_file(flipper: Path, tmp_path: Path) -> None:
    unlinked, _ = race(flipper, tmp_path, on_behalf=True, unlinking=True)
    assert unlinked > 0
    assert guarded_file(tmp_path).exists()


@pytest.mark.slow
def test_without_opening_on_behalf_the_race_is_real(flipper: Path, tmp_path: Path) -> None:
    """The control experiment: the kernel re-reading the buffer (CONTINUE) loses the race."""
    hits = 0
    for _ in range(10):  # the window is a few microseconds: under load a round can miss it
        hits += race(flipper, tmp_path, on_behalf=False)[1]
        if hits:
            break
    assert hits > 0
    for _ in range(10):
        race(flipper, tmp_path, on_behalf=False, unlinking=True)
        if not guarded_file(tmp_path).exists():
            break
    assert not guarded_file(tmp_path).exists()


def test_processes_outside_the_sandbox_are_out_of_reach(tmp_path: Path, run_aegis) -> None:
    """The agent may read what ps reads about any process, never another process's
    memory, environment or descriptors (Aegis's included), even under permit-all."""
    script = ("cat /proc/$PPID/status > /dev/null && echo status-ok; "
              "cat /proc/1/cmdline > /dev/null && echo cmdline-ok; "
              "cat /proc/$PPID/environ > /dev/null || echo environ-denied; "
              "ls /proc/$PPID/fd > /dev/null || echo fd-denied; "
              "cat /proc/self/environ > /dev/null && echo own-ok")
    # Aegis itself: the parent of the session's init, the root command's parent (the
    # session's PID namespace numbers them 0 and 1 inside; /proc is the host's)
    script = ("sh=$(cut -d' ' -f4 /proc/self/stat); init=$(cut -d' ' -f4 /proc/$sh/stat); "
              "aegis=$(cut -d' ' -f4 /proc/$init/stat); " + script.replace("$PPID", "$aegis"))
    proc = run_aegis("wrap", "--name", "peek", "--", "sh", "-c", script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["status-ok", "cmdline-ok", "environ-denied", "fd-denied", "own-ok"]


def test_fifo_between_two_agent_processes(tmp_path: Path, run_aegis) -> None:
    """A FIFO open blocks until its other end opens; the supervisor must keep serving."""
    script = ("mkfifo p; cat p > got & echo through-the-fifo > p; wait; cat got; "
              "(echo writer-first > p &); sleep 0.3; cat p")
    proc = run_aegis("wrap", "--name", "fifo", "--", "sh", "-c", script, cwd=tmp_path, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["through-the-fifo", "writer-first"]


CONNECT_FLIPPER = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
static struct sockaddr_in addr;
static volatile int stop;
static unsigned short good, bad;
static void *flip(void *arg) {
    (void)arg;
    volatile unsigned short *port = &addr.sin_port;  /* every store really happens */
    while (!stop) {  /* each address stays for a while, so both get read */
        *port = htons(bad);
        for (volatile int i = 0; i < 2000; i++) {}
        *port = htons(good);
        for (volatile int i = 0; i < 2000; i++) {}
    }
    return NULL;
}
int main(int argc, char **argv) {
    good = atoi(argv[1]); bad = atoi(argv[2]);
    int rounds = atoi(argv[3]), ok = 0, hits = 0;
    addr.sin_family = AF_INET; addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); addr.sin_port = htons(good);
    pthread_t t; pthread_create(&t, NULL, flip, NULL);
    for (int i = 0; i < rounds; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            struct sockaddr_in peer; socklen_t len = sizeof(peer);
            getpeername(s, (struct sockaddr *)&peer, &len);
            ok++;
            if (ntohs(peer.sin_port) == bad) hits++;
        }
        close(s);
    }
    stop = 1; pthread_join(t, NULL);
    printf("%d %d\n", ok, hits);
    return 0;
}
"""

ONLY_GOOD_PORT = """
@id("basics")
permit (principal, action in [Aegis::Action::"FileRead", Aegis::Action::"DirList",
                              Aegis::Action::"ProcessSpawn", Aegis::Action::"ProcessExit"], resource);

@id("only-good-port")
permit (principal, action == Aegis::Action::"NetConnect", resource)
when { resource.path == "127.0.0.1:GOOD" };
"""


def connect_race(tmp_path: Path, on_behalf: bool) -> tuple[int, int]:
    import socket
    import threading

    binary = tmp_path / "cflip"
    if not binary.exists():
        (tmp_path / "cflip.c").write_text(CONNECT_FLIPPER)
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(binary), str(tmp_path / "cflip.c")], check=True)
    servers = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4096)
        servers.append(s)
    stop = threading.Event()

    def drain(server: socket.socket) -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                pass

    threads = [threading.Thread(target=drain, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    good, bad = (s.getsockname()[1] for s in servers)
    config = create_config(paths.config_dir("netracer"), "netracer", "default-deny", tmp_path, force=True)
    (config.directory / "policies" / "default.cedar").write_text(ONLY_GOOD_PORT.replace("GOOD", str(good)))
    out = tmp_path / "out.txt"
    try:
        with open(out, "w") as fh:
            saved = os.dup(1)
            os.dup2(fh.fileno(), 1)
            try:
                run_session(load_config("netracer"), [str(binary), str(good), str(bad), "1500"],
                            open_on_behalf=on_behalf)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for s in servers:
            s.close()
    ok, hits = map(int, out.read_text().split())
    return ok, hits


def test_rewritten_address_never_connects_where_policy_forbids(flipper: Path, tmp_path: Path) -> None:
    ok, hits = connect_race(tmp_path, on_behalf=True)
    assert ok > 0
    assert hits == 0


@pytest.mark.slow
def test_without_connecting_on_behalf_the_address_race_is_real(flipper: Path, tmp_path: Path) -> None:
    assert sum(connect_race(tmp_path, on_behalf=False)[1] for _ in range(3)) > 0
