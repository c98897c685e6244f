"""Drives the official Python MCP client (`mcp` 2.x) for tests/gateway_peers.rs.

Usage: MCP_TOKEN=... python mcp_client.py URL MODE STEP...
  MODE   `legacy` (2025-11-25: initialize, then a session) or `2026-07-28` (stateless, no
         handshake; the SDK sends MCP-Protocol-Version, Mcp-Method, Mcp-Name and `_meta`)
  STEP   `list`                      tools/list
         `call:NAME:JSON_ARGUMENTS`   tools/call

The token (if MCP_TOKEN is set) goes on every request as `Authorization: Bearer ...` through an
`httpx2.AsyncClient`, the only way this SDK takes headers. Prints one JSON object to stdout:
  {"ok": true, "protocol_version": ..., "steps": [...]}   every step's result or error
  {"ok": false, "error": "...", "steps": [...]}           the connection itself failed
and exits 0 either way (the test asserts on the JSON); other output goes to stderr.
"""

import asyncio
import json
import os
import sys
import traceback

import httpx2
from mcp import Client, ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client


def describe(exc: BaseException) -> str:
    """One line for an exception, looking inside exception groups (anyio task groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {exc}"
    return f"{type(exc).__name__}: {exc}"


async def run_steps(session, steps, out):
    for step in steps:
        if step == "list":
            try:
                result = await session.list_tools()
                out.append(
                    {
                        "step": "list",
                        "tools": [{"name": t.name, "description": t.description} for t in result.tools],
                    }
                )
            except MCPError as e:
                out.append({"step": "list", "error": {"code": e.error.code, "message": e.error.message}})
        elif step.startswith("call:"):
            _, name, arguments = step.split(":", 2)
            try:
                result = await session.call_tool(name, json.loads(arguments))
                text = "\n".join(getattr(c, "text", "") for c in result.content)
                out.append({"step": "call", "tool": name, "is_error": bool(result.is_error), "text": text})
            except MCPError as e:
                out.append(
                    {"step": "call", "tool": name, "error": {"code": e.error.code, "message": e.error.message}}
                )
        else:
            raise SystemExit(f"unknown step {step!r}")


async def main() -> dict:
    url, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
    headers = {}
    token = os.environ.get("MCP_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out: list = []
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0)) as http:
        if mode == "legacy":
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    version = init.protocol_version
                    await run_steps(session, steps, out)
        else:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode, cache=None) as client:
                version = client.protocol_version
                await run_steps(client.session, steps, out)
    return {"ok": True, "protocol_version": version, "steps": out}


if __name__ == "__main__":
    steps: list = []
    try:
        result = asyncio.run(main())
    except BaseException as e:  # noqa: BLE001 - reported to the test as data
        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "error": describe(e)}
    print(json.dumps(result))
    sys.stdout.flush()
