"""An upstream MCP server built with the Python `mcp` SDK (MCPServer), for the gateway
tests. Every tool call, resource read and prompt get it receives is appended as one
JSON line to the file named by $RECORD_FILE, so a test can prove that a refused call
never arrived.

    python upstream.py stdio
    python upstream.py http PORT
"""

import json
import os
import sys

from mcp.server.mcpserver import MCPServer

RECORD = os.environ.get("RECORD_FILE", "/dev/null")
server = MCPServer("warden-test-upstream")


def record(kind, name, args):
    with open(RECORD, "a", encoding="utf-8") as f:
        f.write(json.dumps({"kind": kind, "name": name, "args": args}) + "\n")


@server.tool()
def echo(text: str) -> str:
    """Returns its text."""
    record("tool", "echo", {"text": text})
    return text


@server.tool()
def delete_everything(confirm: bool = False) -> str:
    """Deletes everything (never allowed by the test policy)."""
    record("tool", "delete_everything", {"confirm": confirm})
    return "deleted"


@server.tool()
def read_file(path: str) -> str:
    """Reads a file."""
    record("tool", "read_file", {"path": path})
    with open(path, encoding="utf-8") as f:
        return f.read()


@server.tool()
def pay(amount: int) -> str:
    """Pays (needs approval under the test policy)."""
    record("tool", "pay", {"amount": amount})
    return f"paid {amount}"


@server.tool()
def leak() -> str:
    """Returns a (made-up) cloud key and an email address."""
    record("tool", "leak", {})
    return "aws_access_key_id=AKIAIOSFODNN7EXAMPLE owner=alice@example.com"


@server.tool()
def fail(why: str) -> str:
    """Always fails (a tool error, isError)."""
    record("tool", "fail", {"why": why})
    raise ValueError(f"failed on purpose: {why}")


@server.resource("notes://public", mime_type="text/plain")
def public_note() -> str:
    record("resource", "notes://public", {})
    return "public note"


@server.resource("notes://private", mime_type="text/plain")
def private_note() -> str:
    record("resource", "notes://private", {})
    return "private note"


@server.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    record("prompt", "greet", {"name": name})
    return f"Say hello to {name}."


@server.prompt()
def forbidden(name: str) -> str:
    """A prompt the test policy refuses."""
    record("prompt", "forbidden", {"name": name})
    return f"never {name}"


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
