"""`aegis mcp-proxy`: real MCP servers driven by the official SDK client through the proxy,
and byte-exact pass-through checked against `cat` as the "server"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from support import aegis_command, aegis_import_root, assert_one_line_error

from aegis import paths
from aegis.config import load_config
from aegis.integrations.mcp_proxy import ToolCallFilter, parse_message, read_lines
from aegis.integrations.toolcall import ToolGate
from aegis.ledger import open_ledger
from aegis.provision import create_config

FIXTURE = str(Path(__file__).with_name("mcp_server_fixture.py"))
EXTRA_POLICY = """
@id("forbid-wipe")
forbid (principal, action == Aegis::Action::"ToolCall", resource)
when { resource.path == "mcp:fixture:wipe" };

@id("forbid-secret-echo")
forbid (principal, action == Aegis::Action::"ToolCall", resource)
when { context.input has arguments && context.input.arguments like "*secret*" };

@id("forbid-convert-time")
forbid (principal, action == Aegis::Action::"ToolCall", resource)
when { resource.path == "mcp:time:convert_time" };
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    created = create_config(paths.config_dir("mcp"), "mcp", "workspace-write", tmp_path)
    (created.directory / "policies" / "mcp.cedar").write_text(EXTRA_POLICY)
    return "mcp"


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    return tmp_path / "server-calls.log"


def proxy_argv(config: str, server: str, *server_argv: str) -> list[str]:
    return [*aegis_command(), "mcp-proxy", "--config", config, "--server", server, "--", *server_argv]


def client_env(server_log: Path) -> dict[str, str]:
    env = {"PYTHONPATH": aegis_import_root(), "AEGIS_HOME": os.environ["AEGIS_HOME"],
           "AEGIS_TEST_MCP_LOG": str(server_log), "PATH": os.environ["PATH"]}
    if "AEGIS_NATIVE_LIB" in os.environ:  # a private native build, when the tests run with one
        env["AEGIS_NATIVE_LIB"] = os.environ["AEGIS_NATIVE_LIB"]
    return env


def entries(config: str, **filters) -> list:
    with open_ledger(load_config(config)) as ledger:
        return list(ledger.query(**filters))


def run_sdk_client(argv: list[str], env: dict[str, str], script) -> object:
    async def main():
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await script(session)

    return anyio.run(main)


def test_sdk_client_through_proxy_to_sdk_server(config, server_log):
    progress: list[float] = []

    async def script(session: ClientSession):
        listed = [t.name for t in (await session.list_tools()).tools]

        async def on_progress(value, total, message):
            progress.append(value)

        return (listed, await session.call_tool("echo", {"text": "hi"}),
                await session.call_tool("echo", {"text": "my secret"}),
                await session.call_tool("wipe", {"path": "/"}),
                await session.call_tool("count", {"n": 3}, progress_callback=on_progress))

    listed, echo, secret, wipe, count = run_sdk_client(
        proxy_argv(config, "fixture", sys.executable, FIXTURE), client_env(server_log), script)
    # wipe is hidden: the policy forbids it whatever the arguments
    assert listed == ["echo", "count", "write_file"]
    assert not echo.is_error and echo.content[0].text == "hi"
    assert secret.is_error
    assert secret.content[0].text == ("Aegis config 'mcp' denied: ToolCall mcp:fixture:echo deny "
                                      "(policy forbid-secret-echo)")
    assert wipe.is_error and "forbid-wipe" in wipe.content[0].text
    assert not count.is_error and count.content[0].text == "counted 3"
    assert progress == [1.0, 2.0, 3.0]  # notifications/progress passed through
    assert server_log.read_text().splitlines() == ["echo hi", "count 3"]  # denied calls never arrived

    calls = [(e.resource, e.decision, e.reason.split(":")[0]) for e in entries(config, action="ToolCall")]
    allowed, denied = "Aegis config 'mcp' allowed", "Aegis config 'mcp' denied"
    assert calls == [
        ("mcp:fixture:echo", "allow", allowed), ("mcp:fixture:echo", "info", "tool result"),
        ("mcp:fixture:echo", "deny", denied), ("mcp:fixture:wipe", "deny", denied),
        ("mcp:fixture:count", "allow", allowed), ("mcp:fixture:count", "info", "tool result")]
    with open_ledger(load_config(config)) as ledger:
        [session] = ledger.sessions()
    assert (session.observer, session.state, session.exit_code) == ("mcp-proxy", "finished", 0)
    assert session.counts == {"allow": 2, "deny": 2}
    assert all(e.session_id == session.id for e in entries(config, action="ToolCall"))


def test_sandboxed_server_is_kernel_enforced_too(config, server_log, tmp_path):
    allowed, outside = tmp_path / "ok.txt", Path("/var/lib") / f"aegis-mcp-sandbox-{tmp_path.name}.txt"

    async def script(session: ClientSession):
        return (await session.call_tool("write_file", {"path": str(allowed), "text": "x"}),
                await session.call_tool("write_file", {"path": str(outside), "text": "x"}))

    argv = [*aegis_command(), "mcp-proxy", "--config", config, "--server", "fixture", "--sandbox", "--",
            sys.executable, FIXTURE]
    try:
        inside, denied = run_sdk_client(argv, client_env(server_log), script)
        assert not outside.exists()  # the policy allowed the tool call; the kernel denied the write
    finally:
        outside.unlink(missing_ok=True)
    assert not inside.is_error and allowed.read_text() == "x"
    assert denied.is_error  # the server's open() failed with EACCES
    with open_ledger(load_config(config)) as ledger:
        proxy, server = sorted(ledger.sessions(), key=lambda s: s.observer == "mcp-proxy", reverse=True)
        assert proxy.details == {"mcp_server": "fixture", "sandbox": True}
        assert server.command == [sys.executable, FIXTURE] and server.state == "finished"
        kernel = list(ledger.query(session=server.id, decision="deny", action="FileWrite"))
    assert str(outside) in [e.resource for e in kernel]


def test_real_mcp_server_time_through_proxy(config, server_log):
    time_server = str(Path(sys.executable).with_name("mcp-server-time"))

    async def script(session: ClientSession):
        return ([t.name for t in (await session.list_tools()).tools],
                await session.call_tool("get_current_time", {"timezone": "UTC"}),
                await session.call_tool("convert_time", {"source_timezone": "UTC", "time": "12:00",
                                                         "target_timezone": "Europe/Paris"}))

    argv = proxy_argv(config, "time", time_server)
    listed, now, convert = run_sdk_client(argv, client_env(server_log), script)
    assert listed == ["get_current_time"]
    assert not now.is_error and json.loads(now.content[0].text)["timezone"] == "UTC"
    assert convert.is_error and "forbid-convert-time" in convert.content[0].text


def raw_proxy(config: str, lines: list[str], *server_argv: str) -> subprocess.CompletedProcess[bytes]:
    data = "".join(line + "\n" for line in lines).encode()
    return subprocess.run(proxy_argv(config, "fixture", *server_argv), input=data, capture_output=True,
                          timeout=60)


def test_everything_else_passes_through_byte_for_byte(config):
    untouched = [
        '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}',
        '{"jsonrpc": "2.0",   "method": "notifications/cancelled", "params": {"requestId": 7, "reason": "é"}}'
        '  ',
        '{"jsonrpc":"2.0","id":"x1","method":"resources/read","params":{"uri":"file:///etc/passwd"}}',
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}',
    ]
    proc = raw_proxy(config, untouched, "cat")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == untouched


def test_denied_malformed_and_ambiguous_client_lines_never_reach_the_server(config):
    lines = [
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"secret"}}}',
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":"text"}}',
        '{"jsonrpc":"2.0","id":3,"method":"tools/list","method":"tools/call"}',
        '{"jsonrpc":"2.0","id":4,',
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"path":"a\\u0000"}}}',
        '[{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"ok"}}},'
        ' {"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"wipe","arguments":{}}}]',
    ]
    proc = raw_proxy(config, lines, "cat")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    by_id = {m["id"]: m for m in out if isinstance(m, dict)}
    assert by_id[1]["result"]["isError"] is True
    assert "forbid-secret-echo" in by_id[1]["result"]["content"][0]["text"]
    assert by_id[2]["error"]["code"] == -32602
    assert [m["error"]["code"] for m in out if isinstance(m, dict) and m["id"] is None] == [-32700, -32700]
    assert by_id[5]["result"]["isError"] is True and "NUL" in by_id[5]["result"]["content"][0]["text"]
    batches = [m for m in out if isinstance(m, list)]
    # cat echoes what was forwarded (only id 6); the proxy answers id 7 itself, as a batch
    assert sorted((b[0]["id"], "method" in b[0]) for b in batches) == [(6, True), (7, False)]
    assert len(out) == 7
    denied = [e.resource for e in entries(config, action="ToolCall", decision="deny")]
    assert denied == ["mcp:fixture:echo", "mcp:fixture:echo", "mcp:fixture:echo", "mcp:fixture:wipe"]


def test_tools_list_results_are_filtered(config):
    tools = [{"name": "echo", "inputSchema": {"type": "object"}}, {"name": "wipe", "inputSchema": {}}]
    lines = ['{"jsonrpc":"2.0","id":20,"method":"tools/list"}',
             json.dumps({"jsonrpc": "2.0", "id": 20, "result": {"tools": tools, "nextCursor": "c"}})]
    proc = raw_proxy(config, lines, "cat")  # cat plays the server: it answers with what it was sent
    request, response = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert request["method"] == "tools/list"
    assert response["result"] == {"tools": tools[:1], "nextCursor": "c"}
    [note] = entries(config, action="ObserverNote")
    assert note.details["hidden"] == ["wipe"]


def test_exit_code_of_the_server_is_the_proxy_exit_code(config):
    assert raw_proxy(config, [], "sh", "-c", "exit 3").returncode == 3
    assert raw_proxy(config, [], "sh", "-c", "kill -TERM $$").returncode == 128 + 15


def test_unknown_server_command_is_a_one_line_error(run_aegis, config):
    proc = run_aegis("mcp-proxy", "--config", config, "--", "/nonexistent/server")
    assert_one_line_error(proc)
    assert "cannot start MCP server" in proc.stderr


def test_bad_server_name_is_rejected(run_aegis, config):
    assert_one_line_error(run_aegis("mcp-proxy", "--config", config, "--server", "a:b", "--", "cat"))


def test_filter_library_decisions(config, tmp_path):
    gate = ToolGate.for_config(config)
    flt = ToolCallFilter(gate, "fixture", str(tmp_path))
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}\n'
    step = flt.from_client(call)
    assert step.to_server == call and step.to_client is None and step.events[0].decision == "allow"
    result = b'{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}\n'
    back = flt.from_server(result)
    assert back.to_client == result and back.events[0].details["is_error"] is True
    assert flt.from_server(result).events == []  # answered once: not tracked any more
    assert parse_message(b'{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="duplicate key"):
        parse_message(b'{"a": 1, "a": 2}')


def test_unwritable_ledger_means_the_server_never_starts(run_aegis, config, tmp_path):
    ledger_path = load_config(config).ledger_path
    ledger_path.unlink(missing_ok=True)
    ledger_path.mkdir()
    marker = tmp_path / "server-started"
    proc = run_aegis("mcp-proxy", "--config", config, "--", "sh", "-c", f"touch {marker}; cat", input="")
    assert_one_line_error(proc)
    assert not marker.exists()


def test_server_exiting_first_ends_the_proxy_cleanly(config):
    """The client still holds its end open: the proxy must not hang or abort on its reader thread."""
    proc = subprocess.Popen(proxy_argv(config, "fixture", "sh", "-c", "exit 4"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.wait(timeout=60) == 4
        assert b"Fatal Python error" not in proc.stderr.read()
    finally:
        proc.stdin.close()


def test_read_lines_joins_lines_across_reads(tmp_path):
    data = tmp_path / "stream"
    data.write_bytes(b'{"a":\n1}\n' + b"x" * 200000 + b"\nlast")
    fd = os.open(data, os.O_RDONLY)
    try:
        lines = list(read_lines(fd, chunk=7))
    finally:
        os.close(fd)
    assert lines == [b'{"a":\n', b"1}\n", b"x" * 200000 + b"\n", b"last"]
