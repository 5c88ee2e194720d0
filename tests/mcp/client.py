"""An MCP client built with the Python `mcp` SDK, driving `warden mcp` for the tests.

    python client.py stdio PROGRAM ARGS...     (spawns the gateway)
    python client.py http URL

Reads a JSON list of steps on stdin, e.g. [["list_tools"], ["call_tool", "up__echo",
{"text": "hi"}], ["read_resource", "notes://public"], ["get_prompt", "up__greet",
{"name": "x"}], ["list_resources"]], and prints one JSON object per step on stdout:
{"ok": RESULT} or {"error": {"code": CODE, "message": TEXT}}. A failure to connect
prints {"connect_error": TEXT} and exits 3.
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(target, steps):
    async with Client(target) as client:
        for step in steps:
            op, rest = step[0], step[1:]
            try:
                if op == "list_tools":
                    out = dump(await client.list_tools())
                elif op == "call_tool":
                    out = dump(await client.call_tool(rest[0], rest[1] if len(rest) > 1 else {}))
                elif op == "read_resource":
                    out = dump(await client.read_resource(rest[0]))
                elif op == "list_resources":
                    out = dump(await client.list_resources())
                elif op == "get_prompt":
                    out = dump(await client.get_prompt(rest[0], rest[1] if len(rest) > 1 else {}))
                else:
                    raise SystemExit(f"unknown step {op}")
                print(json.dumps({"ok": out}), flush=True)
            except MCPError as e:
                err = getattr(e, "error", None)
                code = getattr(err, "code", None)
                message = getattr(err, "message", str(e))
                print(json.dumps({"error": {"code": code, "message": message}}), flush=True)


def main():
    steps = json.load(sys.stdin)
    if sys.argv[1] == "stdio":
        target = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ))
    else:
        target = sys.argv[2]
    try:
        asyncio.run(run(target, steps))
    except Exception as e:  # the gateway could not be reached or refused to start
        print(json.dumps({"connect_error": repr(e)}), flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
