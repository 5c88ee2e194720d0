#!/usr/bin/env python3
"""Drives a program through a real pseudo-terminal for the end-to-end tests.

usage: drive.py STEPS_JSON -- PROGRAM ARGS...

STEPS_JSON is a list of steps, run in order:
  ["expect", TEXT]   wait (up to 20 s) until the output since the last match contains TEXT
  ["send", TEXT]     type TEXT (use "\\r" for Enter, "\\x03" for Ctrl-C, "\\x04" for Ctrl-D)
Then the program's exit is awaited (up to 20 s). Prints one JSON object on stdout:
{"ok": bool, "error": str, "status": int|null, "output": str}. Only the standard library.
"""
import json
import os
import pty
import select
import sys
import time

TIMEOUT = 20.0


def main():
    steps = json.loads(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    output = b""
    seen = 0
    result = {"ok": True, "error": "", "status": None}

    def read_some(deadline):
        nonlocal output
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            output += data
            # Line editors ask where the cursor is (ESC [ 6 n); answer as a terminal would.
            for _ in range(data.count(b"\x1b[6n")):
                os.write(fd, b"\x1b[1;1R")
        return True

    for kind, text in steps:
        if kind == "send":
            os.write(fd, text.encode())
        elif kind == "expect":
            want = text.encode()
            deadline = time.monotonic() + TIMEOUT
            while want not in output[seen:]:
                if not read_some(deadline) and time.monotonic() >= deadline:
                    result.update(ok=False, error=f"timed out waiting for {text!r}")
                    break
            if not result["ok"]:
                break
            seen = output.index(want, seen) + len(want)
    deadline = time.monotonic() + TIMEOUT
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            if result["ok"]:
                result.update(ok=False, error="the program did not exit")
            break
        read_some(time.monotonic() + 0.2)
    while read_some(time.monotonic() + 0.1):
        pass
    result["status"] = status
    result["output"] = output.decode(errors="replace")
    print(json.dumps(result))


main()
