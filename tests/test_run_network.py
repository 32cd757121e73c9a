"""Network enforcement: denied by default (Landlock TCP + seccomp for UDP/raw),
``allowed_network`` decided by the supervisor on the numeric address."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from aegis import paths
from aegis.config import load_config, save_config
from aegis.ledger import open_ledger
from aegis.provision import create_config

CONNECT = ("import socket, sys\n"
           "for port in sys.argv[1:]:\n"
           "    try:\n"
           "        socket.create_connection(('127.0.0.1', int(port)), timeout=5).close(); print('ok')\n"
           "    except OSError as e:\n"
           "        print(e.errno)\n"
           "try:\n"
           "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close(); print('udp ok')\n"
           "except OSError as e:\n"
           "    print('udp', e.errno)\n")


@pytest.fixture
def servers():
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


def net_events(name: str):
    events = open_ledger(load_config(name)).query(action="NetConnect")
    return [e for e in events if e.resource.startswith("127.")]


def test_network_denied_by_default(tmp_path: Path, run_aegis, servers) -> None:
    a = servers[0]
    create_config(paths.config_dir("net"), "net", "allow-read-only", tmp_path)
    proc = run_aegis("run", "--config", "net", "--", sys.executable, "-c", CONNECT, str(a), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["13", "udp 13"]  # EACCES for both
    events = net_events("net")
    assert [(e.resource, e.decision) for e in events] == [(f"127.0.0.1:{a}", "deny")]


def test_allowed_network_entry_is_the_only_way_out(tmp_path: Path, run_aegis, servers) -> None:
    a, b = servers
    config = create_config(paths.config_dir("net"), "net", "allow-read-only", tmp_path)
    config.allowed_network = [f"127.0.0.0/8:{a}"]
    save_config(config)
    proc = run_aegis("run", "--config", "net", "--", sys.executable, "-c", CONNECT, str(a), str(b),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["ok", "13", "udp 13"]  # sendto() would bypass the list
    events = net_events("net")
    assert [(e.resource, e.decision) for e in events] == [(f"127.0.0.1:{a}", "allow"),
                                                          (f"127.0.0.1:{b}", "deny")]
    assert events[0].policy_ids == ["allowed_network"]


def test_open_network_is_recorded_not_blocked(tmp_path: Path, run_aegis, servers) -> None:
    a = servers[0]
    proc = run_aegis("wrap", "--name", "net", "--", sys.executable, "-c", CONNECT, str(a), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["ok", "udp ok"]
    assert [(e.resource, e.decision) for e in net_events("net")] == [(f"127.0.0.1:{a}", "allow")]
