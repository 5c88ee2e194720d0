"""The official `openai` Python SDK as the agent in the warden llm tests.

usage: openai_client.py BASE_URL SESSION KIND PROMPT
KIND: chat | chat-stream | responses | responses-stream | models. Prints one JSON object:
what the SDK parsed (content, tool calls, finish reason, usage), or the API error it raised
(status, type, message). responses-stream reads the events twice over in one call, as
agents do: the text and argument deltas as they arrive (`from_deltas`) and the SDK's
assembled final response (`output`, `text`, `usage`); the two must agree.
"""

import json
import sys

import openai

TOOLS = [{"type": "function", "function": {
    "name": "run_command", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                   "required": ["command"]}}}]


def main():
    base, session, kind, prompt = sys.argv[1:5]
    client = openai.OpenAI(base_url=base, api_key="sk-client-key-0000",
                           default_headers={"x-warden-session": session}, max_retries=0)
    try:
        if kind == "models":
            out = {"models": [m.id for m in client.models.list()]}
        elif kind == "chat":
            r = client.chat.completions.create(
                model="fake-large", tools=TOOLS,
                messages=[{"role": "user", "content": prompt}])
            c = r.choices[0]
            out = {"content": c.message.content, "finish_reason": c.finish_reason,
                   "tool_calls": [{"id": t.id, "name": t.function.name,
                                   "arguments": t.function.arguments}
                                  for t in (c.message.tool_calls or [])],
                   "usage": [r.usage.prompt_tokens, r.usage.completion_tokens]}
        elif kind == "chat-stream":
            stream = client.chat.completions.create(
                model="fake-large", tools=TOOLS, stream=True,
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": prompt}])
            content, calls, finish, usage = None, {}, None, None
            for chunk in stream:
                if chunk.usage:
                    usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
                for c in chunk.choices:
                    if c.delta.content is not None:
                        content = (content or "") + c.delta.content
                    for t in c.delta.tool_calls or []:
                        slot = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
                        if t.id:
                            slot["id"] = t.id
                        if t.function and t.function.name:
                            slot["name"] += t.function.name
                        if t.function and t.function.arguments:
                            slot["arguments"] += t.function.arguments
                    if c.finish_reason:
                        finish = c.finish_reason
            out = {"content": content or None, "finish_reason": finish,
                   "tool_calls": [calls[k] for k in sorted(calls)], "usage": usage}
        elif kind == "responses-stream":
            with client.responses.stream(
                    model="fake-large", input=prompt,
                    tools=[{"type": "function", "name": "run_command",
                            "parameters": TOOLS[0]["function"]["parameters"]}]) as stream:
                text, args, types = "", {}, []
                for event in stream:
                    types.append(event.type)
                    if event.type == "response.output_text.delta":
                        text += event.delta
                    elif event.type == "response.function_call_arguments.delta":
                        args[event.output_index] = args.get(event.output_index, "") + event.delta
                r = stream.get_final_response()
            out = {"output": [{"type": i.type,
                               "name": getattr(i, "name", None),
                               "arguments": getattr(i, "arguments", None)} for i in r.output],
                   "text": r.output_text,
                   "usage": [r.usage.input_tokens, r.usage.output_tokens] if r.usage else None,
                   "from_deltas": {"text": text, "arguments": [args[k] for k in sorted(args)]},
                   "events": types}
        else:
            r = client.responses.create(
                model="fake-large", input=prompt,
                tools=[{"type": "function", "name": "run_command",
                        "parameters": TOOLS[0]["function"]["parameters"]}])
            out = {"output": [{"type": i.type,
                               "name": getattr(i, "name", None),
                               "arguments": getattr(i, "arguments", None)} for i in r.output],
                   "text": r.output_text}
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        body = body.get("error", body) if isinstance(body.get("error"), dict) else body
        out = {"error": {"status": e.status_code, "type": body.get("type"),
                         "code": body.get("code"), "message": body.get("message", str(e))}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
