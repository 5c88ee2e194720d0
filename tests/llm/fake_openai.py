"""A fake OpenAI-compatible provider for the warden llm tests (standard library only).

POST /v1/chat/completions answers from a script keyed by the last user message: the
scripts below propose tool calls (one, or several in parallel), or answer with text.
With "stream": true the answer comes as server-sent events, text and tool-call
arguments in fragments of a few characters, and a usage chunk when
stream_options.include_usage is set. POST /v1/responses does the same in the Responses
API shape; streamed, as Responses API events (`event:` + `data:` with type and
sequence_number): each item added, text and arguments in deltas of a few characters, the
`.done` events, and response.completed with the whole response and its usage. GET
/v1/models lists two models. A message "fail-500" makes the provider answer 500; "leak"
answers text holding an API key and an email address ("leak-and-send": the same text and a
send_report tool call). Every request is recorded
as one JSON line in --record (path, headers, body), so a test can assert what reached
the provider and what did not.

Prints "listening on PORT" on stderr once ready.
"""

import argparse
import http.server
import json
import sys
import threading


def call(i, name, args):
    return {"id": f"call_{i}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}


SCRIPTS = {
    "rm": [call(1, "run_command", {"command": "rm -rf /"})],
    "echo": [call(1, "run_command", {"command": "echo hello"})],
    "both": [call(1, "run_command", {"command": "echo hello"}),
             call(2, "run_command", {"command": "rm -rf /"})],
    "broken": [{"id": "call_1", "type": "function",
                "function": {"name": "run_command", "arguments": "{not json"}}],
}


LEAK = "the key is sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234 and ops mail is ops@example.com"


def chat_answer(model, last):
    calls = SCRIPTS.get(last)
    if last == "leak":
        message = {"role": "assistant", "content": LEAK}
        finish = "stop"
    elif last == "leak-and-send":
        # A key in the text and, in the same answer, a call that a session which has
        # seen a secret may not make.
        message = {"role": "assistant", "content": LEAK,
                   "tool_calls": [call(1, "send_report", {"to": "ops@example.com"})]}
        finish = "tool_calls"
    elif last == "think-leak":
        # The key only in a field streamed clients read but the assembly does not keep.
        message = {"role": "assistant", "content": "ok", "reasoning_content": LEAK}
        finish = "stop"
    elif calls is None:
        message = {"role": "assistant", "content": f"you said: {last}"}
        finish = "stop"
    else:
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        finish = "tool_calls"
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
        "model": model, "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28},
    }


def chat_stream(answer, include_usage):
    """The answer as server-sent events, content and arguments in small fragments."""
    base = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = answer["choices"][0]
    message = choice["message"]

    def chunk(delta, finish=None):
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                      "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": ""})]
    if message.get("reasoning_content"):
        events.append(chunk({"reasoning_content": message["reasoning_content"]}))
    text = message.get("content") or ""
    for i in range(0, len(text), 5):
        events.append(chunk({"content": text[i:i + 5]}))
    for k, call in enumerate(message.get("tool_calls") or []):
        args = call["function"]["arguments"]
        events.append(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"],
                                                          "arguments": ""}}]}))
        for i in range(0, len(args), 4):
            events.append(chunk({"tool_calls": [{"index": k,
                                                 "function": {"arguments": args[i:i + 4]}}]}))
    events.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        events.append({**base, "choices": [], "usage": answer["usage"]})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def responses_answer(model, last):
    calls = SCRIPTS.get(last)
    if last == "local-rm":
        # A call the client runs that is not a function: the local shell tool.
        output = [{"type": "local_shell_call", "id": "ls_1", "call_id": "call_ls",
                   "status": "completed",
                   "action": {"type": "exec", "command": ["rm", "-rf", "/"], "env": {}}}]
    elif calls is None:
        text = LEAK if last == "leak" else f"you said: {last}"
        output = [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    else:
        output = [{"type": "function_call", "id": f"fc_{c['id']}", "call_id": c["id"],
                   "name": c["function"]["name"], "arguments": c["function"]["arguments"],
                   "status": "completed"} for c in calls]
    return {
        "id": "resp_fake", "object": "response", "created_at": 1700000000, "status": "completed",
        "model": model, "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": [],
        "usage": {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }


def responses_stream(answer):
    """The answer as Responses API events, text and arguments in small deltas."""
    events = []

    def emit(kind, **data):
        events.append((kind, {"type": kind, "sequence_number": len(events), **data}))

    head = {**answer, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=head)
    emit("response.in_progress", response=head)
    for k, item in enumerate(answer["output"]):
        at = {"item_id": item["id"], "output_index": k}
        if item["type"] == "message":
            emit("response.output_item.added", output_index=k,
                 item={**item, "status": "in_progress", "content": []})
            for c, part in enumerate(item["content"]):
                emit("response.content_part.added", **at, content_index=c,
                     part={**part, "text": ""})
                text = part["text"]
                for i in range(0, len(text), 5):
                    emit("response.output_text.delta", **at, content_index=c,
                         delta=text[i:i + 5], logprobs=[])
                emit("response.output_text.done", **at, content_index=c, text=text, logprobs=[])
                emit("response.content_part.done", **at, content_index=c, part=part)
        else:
            emit("response.output_item.added", output_index=k,
                 item={**item, "status": "in_progress", "arguments": ""})
            args = item["arguments"]
            for i in range(0, len(args), 4):
                emit("response.function_call_arguments.delta", **at, delta=args[i:i + 4])
            emit("response.function_call_arguments.done", **at, arguments=args)
        emit("response.output_item.done", output_index=k, item=item)
    emit("response.completed", response=answer)
    return "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events)


def last_user_text(body):
    if "messages" in body:
        users = [m for m in body["messages"] if m.get("role") == "user"]
        content = users[-1]["content"] if users else ""
    else:
        content = body.get("input", "")
        if isinstance(content, list):
            content = content[-1].get("content", "")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content)
    return content


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_events(self, text):
            data = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body):
            with lock, open(args.record, "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path,
                                    "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body}) + "\n")

        def do_GET(self):
            self._record(None)
            if self.path.rstrip("/") == "/v1/models":
                return self._send(200, {"object": "list", "data": [
                    {"id": "fake-large", "object": "model", "created": 1, "owned_by": "test"},
                    {"id": "fake-small", "object": "model", "created": 1, "owned_by": "test"}]})
            self._send(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            self._record(body)
            last = last_user_text(body)
            if last == "fail-500":
                return self._send(500, {"error": {"message": "the fake provider failed",
                                                  "type": "server_error"}})
            model = body.get("model", "fake-large")
            if self.path == "/v1/chat/completions":
                answer = chat_answer(model, last)
                if body.get("stream") and last == "ignore-stream":
                    # A provider that ignores "stream": true: plain JSON, an rm -rf / call.
                    return self._send(200, chat_answer(model, "rm"))
                if body.get("stream"):
                    include = (body.get("stream_options") or {}).get("include_usage", False)
                    return self._send_events(chat_stream(answer, include))
                return self._send(200, answer)
            if self.path == "/v1/responses":
                answer = responses_answer(model, last)
                if body.get("stream"):
                    return self._send_events(responses_stream(answer))
                return self._send(200, answer)
            self._send(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on {server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
