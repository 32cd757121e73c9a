"""Network routes around a policy without NetConnect: vsock, raw and packet
sockets, UDP, TCP, abstract unix sockets (Landlock scope, ABI 6) and pathname unix
sockets to services outside the sandbox. Every listener is on this machine."""

from __future__ import annotations

import socket
import uuid

import pytest
from escape_support import Scenario, results


@pytest.mark.parametrize("kind", ["vsock", "packet", "raw", "raw6"])
def test_control_socket_kind_is_available_without_aegis(scenario: Scenario, attacks, kind: str):
    proc = scenario.run_plain([attacks["bypass"], "socket", kind])
    assert proc.returncode == 0, f"{kind} sockets cannot be made here even without Aegis: {proc.stdout}"


@pytest.mark.parametrize("kind", ["vsock", "packet", "raw", "raw6"])
def test_socket_kind_is_refused(scenario: Scenario, attacks, kind: str):
    proc = scenario.run([attacks["bypass"], "socket", kind])
    outcome = results(proc.stdout)
    assert outcome and outcome[0][1] == "BLOCKED", proc.stdout + proc.stderr


class Listener:
    """A listener outside the sandbox that records whatever reaches it."""

    def __init__(self, kind: str, path: str = "") -> None:
        self.kind = kind
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        elif kind == "tcp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(8)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            self.sock.listen(8)
        self.sock.settimeout(0.5)

    def args(self, name: str) -> list[str]:
        if self.kind in ("udp", "tcp", "mptcp"):
            return ["127.0.0.1", str(self.sock.getsockname()[1])]
        return [name]

    def received(self) -> bytes:
        try:
            if self.kind == "udp":
                return self.sock.recv(4096)
            conn, _ = self.sock.accept()
            conn.settimeout(0.5)
            with conn:
                return conn.recv(4096) or b"<connected>"
        except (TimeoutError, OSError):
            return b""

    def close(self) -> None:
        self.sock.close()


def make_listener(kind: str, scenario: Scenario) -> tuple[Listener, str]:
    if kind == "abstract":
        name = f"aegis-escape-{uuid.uuid4().hex[:12]}"
        return Listener(kind, "\0" + name), name
    if kind == "unix-path":
        path = str(scenario.base / "outside.sock")
        return Listener(kind, path), path
    return Listener("tcp" if kind == "mptcp" else kind), ""


KINDS = ["udp", "tcp", "mptcp", "abstract", "unix-path"]


@pytest.mark.parametrize("kind", KINDS)
def test_control_listener_is_reached_without_aegis(scenario: Scenario, attacks, kind: str):
    listener, name = make_listener(kind, scenario)
    try:
        proc = scenario.run_plain([attacks["bypass"], kind, *listener.args(name), "hello-from-agent"])
        assert proc.returncode == 0, proc.stdout
        assert listener.received(), "the control connection did not arrive"
    finally:
        listener.close()


@pytest.mark.parametrize("kind", KINDS)
def test_listener_outside_is_not_reached(scenario: Scenario, attacks, kind: str):
    listener, name = make_listener(kind, scenario)
    target = listener.args(name)
    try:
        proc = scenario.run([attacks["bypass"], kind, *target, "hello-from-agent"])
        assert results(proc.stdout), proc.stdout + proc.stderr
        got = listener.received()
        assert got == b"", f"the {kind} listener outside the sandbox received {got!r}"
        assert "OBTAINED" not in proc.stdout, proc.stdout
    finally:
        listener.close()
    if kind in ("tcp", "mptcp"):  # UDP is refused at socket() by the filter itself: no address to record
        port = target[1]
        denied = [e.resource for e in scenario.entries(action="NetConnect", decision="deny")]
        assert any(r.endswith(f":{port}") for r in denied), (
            f"the refused {kind} connect is not in the ledger: {denied}")
