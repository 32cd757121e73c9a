"""A policy-enforcing proxy between an MCP client and a stdio MCP server.

The transport is newline-delimited JSON-RPC 2.0 on stdin/stdout. Two threads
copy lines, one per direction, with the same back-pressure a direct connection
has. Only two methods are looked at:

- ``tools/call``: decided as ``ToolCall`` on ``mcp:<server>:<tool>`` with the
  call's arguments as ``context.input`` (paths, url and command canonicalised as
  for every tool call). A denied call never reaches the server; the client gets
  a result with ``isError: true`` saying which policy denied it. Every decision
  and every (size-capped) result is recorded in the config's ledger.
- ``tools/list``: tools that a call with no arguments could not run are taken
  out of the result, so the model is not offered them (calls are still decided
  one by one; this only hides what is sure to be denied).

Every other line goes through byte for byte, both ways: notifications,
progress, cancellation, server-to-client requests. A client line that is not
strict JSON (including duplicate keys, which two parsers may read differently)
is answered with a parse error and not forwarded, so the server never
interprets what the proxy could not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aegis.errors import AegisError
from aegis.integrations import aegis_command
from aegis.integrations.toolcall import ToolGate, Verdict, cap_text, tool_input_context
from aegis.ledger import Event, Ledger, open_ledger

SOURCE = "mcp"
PARSE_ERROR = -32700
INVALID_PARAMS = -32602


class DuplicateKeyError(ValueError):
    pass


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_message(line: bytes) -> Any:
    """Parse one JSON-RPC line strictly (valid UTF-8 JSON, no duplicate keys); raises ValueError."""
    return json.loads(line.decode("utf-8"), object_pairs_hook=_strict_object)


def encode(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_response(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def denied_result(request_id: Any, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id,
            "result": {"content": [{"type": "text", "text": message}], "isError": True}}


def validate_server_name(name: str) -> str:
    if not name or any(ch == ":" or ch.isspace() or not ch.isprintable() for ch in name):
        raise AegisError(f"invalid MCP server name {name!r}: it must be non-empty, without ':', spaces or "
                         "control characters (it becomes part of the resource mcp:<server>:<tool>)")
    return name


@dataclass
class Forward:
    """What one line from the client turns into."""

    to_server: bytes | None = None
    to_client: bytes | None = None
    events: list[Event] = field(default_factory=list)


class ToolCallFilter:
    """The decisions of the proxy, separate from its plumbing (one per proxied server)."""

    def __init__(self, gate: ToolGate, server: str, cwd: str, session: str = "") -> None:
        self.gate = gate
        self.server = validate_server_name(server)
        self.cwd = cwd
        self.session = session
        self._lock = threading.Lock()
        self._pending_calls: dict[str, str] = {}  # request id (as JSON) -> resource
        self._pending_lists: set[str] = set()
        self.counts = {"allow": 0, "deny": 0}  # tools/call decisions, for the session record

    def resource(self, tool: str) -> str:
        return f"mcp:{self.server}:{tool}"

    def _event(self, **fields: Any) -> Event:
        if fields.get("action") == "ToolCall" and fields.get("decision") in self.counts:
            with self._lock:
                self.counts[fields["decision"]] += 1
        return Event(session_id=self.session, principal=self.gate.config.name, source=SOURCE, **fields)

    def decide_call(self, tool: str, arguments: dict[str, Any]) -> Verdict:
        context_input = tool_input_context(arguments, self.cwd)
        return self.gate.decide(self.resource(tool), context_input, session=self.session)

    def from_client(self, line: bytes) -> Forward:
        if not line.strip():
            return Forward()
        try:
            message = parse_message(line)
        except ValueError as exc:
            reply = error_response(None, PARSE_ERROR, f"Aegis MCP proxy: not strict JSON ({exc})")
            return Forward(to_client=encode(reply))
        if isinstance(message, list):
            return self._from_client_batch(message, line)
        out = Forward()
        forwarded, reply = self._client_message(message, out.events)
        if forwarded is not None:
            out.to_server = line if forwarded is message else encode(forwarded)
        out.to_client = encode(reply) if reply is not None else None
        return out

    def _from_client_batch(self, batch: list[Any], line: bytes) -> Forward:
        out = Forward()
        forwarded, replies = [], []
        for message in batch:
            kept, reply = self._client_message(message, out.events)
            if kept is not None:
                forwarded.append(kept)
            if reply is not None:
                replies.append(reply)
        if forwarded:
            unchanged = len(forwarded) == len(batch) and all(map(lambda a, b: a is b, forwarded, batch))
            out.to_server = line if unchanged else encode(forwarded)
        out.to_client = encode(replies) if replies else None
        return out

    def _client_message(self, message: Any, events: list[Event]) -> tuple[Any, dict[str, Any] | None]:
        """(what to forward or None, what to answer the client or None) for one message."""
        if not isinstance(message, dict):
            return message, None
        method, request_id = message.get("method"), message.get("id")
        if method == "tools/list" and "id" in message:
            with self._lock:
                self._pending_lists.add(json.dumps(request_id))
            return message, None
        if method != "tools/call":
            return message, None
        params = message.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        arguments = params.get("arguments", {}) if isinstance(params, dict) else None
        if not isinstance(tool, str) or not tool or not isinstance(arguments, dict):
            events.append(self._event(action="ToolCall", resource=self.resource(str(tool)), decision="deny",
                                      reason="malformed tools/call params",
                                      details={"params": cap_text(params)}))
            reply = error_response(request_id, INVALID_PARAMS, "Aegis MCP proxy: tools/call needs "
                                   "params.name (string) and params.arguments (object)")
            return None, reply if "id" in message else None
        resource = self.resource(tool)
        details = {"id": request_id, "arguments": cap_text(arguments)}
        try:
            verdict = self.decide_call(tool, arguments)
        except AegisError as exc:  # e.g. a path argument with a NUL byte: fail closed
            reason = f"Aegis config {self.gate.config.name!r} denied: {exc}"
            events.append(self._event(action="ToolCall", resource=resource, decision="deny", reason=reason,
                                      errors=[str(exc)], details=details))
            return None, denied_result(request_id, reason) if "id" in message else None
        reason = verdict.reason(self.gate.config.name)
        check = verdict.checks[0]
        events.append(self._event(action="ToolCall", resource=resource, decision=verdict.decision,
                                  reason=reason, policy_ids=list(check.decision.policy_ids),
                                  errors=list(check.decision.errors), details=details))
        if not verdict.allowed:
            return None, denied_result(request_id, reason) if "id" in message else None
        if "id" in message:
            with self._lock:
                self._pending_calls[json.dumps(request_id)] = resource
        return message, None

    def from_server(self, line: bytes) -> Forward:
        """A server line: results of tracked calls are recorded, tools/list results filtered."""
        out = Forward(to_server=None, to_client=line)
        try:
            message = parse_message(line)
        except ValueError:
            return out  # not ours to judge: the client sees exactly what the server sent
        messages = message if isinstance(message, list) else [message]
        changed = False
        for item in messages:
            if not isinstance(item, dict) or "method" in item or "id" not in item:
                continue
            key = json.dumps(item["id"])
            with self._lock:
                resource = self._pending_calls.pop(key, None)
                is_list = key in self._pending_lists
                self._pending_lists.discard(key)
            if resource is not None:
                result = item.get("result", item.get("error"))
                is_error = "error" in item or (isinstance(result, dict) and result.get("isError") is True)
                out.events.append(self._event(action="ToolCall", resource=resource, decision="info",
                                              reason="tool error" if is_error else "tool result",
                                              details={"id": item["id"], "is_error": is_error,
                                                       "result": cap_text(result)}))
            elif is_list and self._filter_tool_list(item, out.events):
                changed = True
        if changed:
            out.to_client = encode(message)
        return out

    def _filter_tool_list(self, response: dict[str, Any], events: list[Event]) -> bool:
        result = response.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return False
        kept, hidden = [], []
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if isinstance(name, str) and name and self.decide_call(name, {}).allowed:
                kept.append(tool)
            else:
                hidden.append(str(name))
        if not hidden:
            return False
        result["tools"] = kept
        events.append(self._event(action="ObserverNote", resource=f"mcp:{self.server}", decision="info",
                                  reason=f"tools/list: hid {len(hidden)} tool(s) the policy denies",
                                  details={"hidden": hidden}))
        return True


class McpProxy:
    """Runs a stdio MCP server and relays its traffic through a ``ToolCallFilter``."""

    def __init__(self, gate: ToolGate, server: str, server_argv: list[str], cwd: str | None = None,
                 sandbox: bool = False) -> None:
        if not server_argv:
            raise AegisError("no MCP server command given "
                             "(usage: aegis mcp-proxy --config NAME -- SERVER_CMD ARGS)")
        self.gate = gate
        self.server_argv = server_argv
        self.sandbox = sandbox
        self.cwd = cwd or os.getcwd()
        self.filter = ToolCallFilter(gate, server, self.cwd)
        self._client_lock = threading.Lock()
        self._failure: BaseException | None = None

    def run(self, client_in: int, client_out: BinaryIO) -> int:
        """Relay until the server's stdout closes; returns its exit code (128+N if signal N killed it)."""
        ledger = open_ledger(self.gate.config)
        try:
            policy_hash = ledger.record_policy_snapshot(dict(self.gate.sources))
            self.filter.session = ledger.begin_session(
                command=self.server_argv, cwd=self.cwd, policy_hash=policy_hash, observer="mcp-proxy",
                config=self.gate.config.name,
                details={"mcp_server": self.filter.server, "sandbox": self.sandbox})
            try:
                proc = subprocess.Popen(self.launch_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        cwd=self.cwd)
            except OSError as exc:
                ledger.end_session(self.filter.session, exit_code=None, signal=None, state="interrupted")
                raise AegisError(f"cannot start MCP server {self.server_argv[0]!r}: {exc.strerror}") from None
            upstream = threading.Thread(target=self._guarded, daemon=True,
                                        args=(proc, self._client_to_server, client_in, client_out))
            upstream.start()
            self._guarded(proc, self._server_to_client, client_out, ledger)
            code = proc.wait()
            state = "interrupted" if self._failure else "finished"
            ledger.end_session(self.filter.session, exit_code=code if code >= 0 else None,
                               signal=-code if code < 0 else None, state=state,
                               counts=dict(self.filter.counts))
        finally:
            ledger.close()
        if self._failure is not None:
            raise AegisError(f"MCP proxy stopped, server terminated: {self._failure}")
        return code if code >= 0 else 128 - code

    def launch_argv(self) -> list[str]:
        """The server command; with ``sandbox``, run by `aegis run` under the same config, so its own file,
        process and network actions are enforced by the kernel and recorded in a session of their own."""
        if not self.sandbox:
            return self.server_argv
        return [*aegis_command(), "run", "--config", self.gate.config.name, "--", *self.server_argv]

    def _guarded(self, proc: subprocess.Popen, pump: Callable[..., None], *args: Any) -> None:
        try:
            pump(proc, *args)
        except BaseException as exc:  # noqa: BLE001 - any failure stops the server: never relay unchecked
            self._failure = self._failure or exc
            proc.kill()

    def _send_client(self, client_out: BinaryIO, data: bytes) -> None:
        with self._client_lock:
            client_out.write(data)
            client_out.flush()

    def _client_to_server(self, proc: subprocess.Popen, client_in: int, client_out: BinaryIO) -> None:
        ledger = open_ledger(self.gate.config)
        try:
            for line in read_lines(client_in):
                step = self.filter.from_client(line)
                if step.events:
                    ledger.append(step.events)  # recorded before the server acts on it
                if step.to_client is not None:
                    self._send_client(client_out, step.to_client)
                if step.to_server is not None:
                    proc.stdin.write(step.to_server)
                    proc.stdin.flush()
        except BrokenPipeError:
            pass  # the server exited; the other direction sees its stdout close
        finally:
            ledger.close()
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass

    def _server_to_client(self, proc: subprocess.Popen, client_out: BinaryIO, ledger: Ledger) -> None:
        for line in iter(proc.stdout.readline, b""):
            step = self.filter.from_server(line)
            if step.events:
                ledger.append(step.events)
            self._send_client(client_out, step.to_client)


def read_lines(fd: int, chunk: int = 65536) -> Iterator[bytes]:
    """Lines (with their newline; the last may lack one) read from ``fd`` until end of file.

    Reads the descriptor directly rather than through ``sys.stdin.buffer``: the thread
    reading the client may still be blocked in a read when the server exits, and a
    buffered reader's lock held at interpreter shutdown aborts the process.
    """
    partial: list[bytes] = []  # pieces of a line not yet ended (a long line spans many reads)
    while data := os.read(fd, chunk):
        *ended, rest = data.split(b"\n")
        for piece in ended:
            yield b"".join([*partial, piece, b"\n"])
            partial = []
        if rest:
            partial.append(rest)
    if partial:
        yield b"".join(partial)


def default_server_name(server_argv: list[str]) -> str:
    """The server's name in resources when ``--server`` is not given: its command's file name."""
    return Path(server_argv[0]).name if server_argv else ""


def run_proxy(config_name: str, server_argv: list[str], server: str | None = None,
              sandbox: bool = False) -> int:
    """Proxy stdin/stdout to ``server_argv`` under config ``config_name``; returns the server's exit code."""
    gate = ToolGate.for_config(config_name)
    proxy = McpProxy(gate, server or default_server_name(server_argv), server_argv, sandbox=sandbox)
    return proxy.run(sys.stdin.fileno(), sys.stdout.buffer)
