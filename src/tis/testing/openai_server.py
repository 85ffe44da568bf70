"""A real OpenAI-compatible chat server on 127.0.0.1, for tests and benchmark scripts.

    with LoopbackServer(latency_s=0.0, api_key=None) as srv:
        srv.base_url            # "http://127.0.0.1:PORT/v1"
        srv.requests.total      # chat requests received
        srv.requests["prompt"]  # chat requests whose last user text was "prompt"
        srv.bodies[-1]          # the last request bodies (parsed JSON), newest last

    python -m tis.testing.openai_server --port 8000 --latency 0.2 [--api-key KEY]

`slots` (--slots) caps how many requests are served at once, like a model server's batch: the rest
queue, so replicas can be shown to add throughput.

Endpoints: POST /v1/chat/completions and GET /v1/models. With `api_key` set, both answer 401
unless the request carries `Authorization: Bearer <api_key>`; with `basic_auth=(user, password)`,
unless it carries those as HTTP Basic auth. The server honours `n`.

`model_info` adds fields to the model list's entries, as vLLM reports them, e.g.
`{"root": "/models/qwen-7b", "max_model_len": 32768}` (`--root` on the command line);
`models_endpoint=False` makes GET /v1/models answer 404, like servers without a model list.

By default the reply is deterministic and derived from the prompt: "Reply to: <prompt>" (with
" (completion i)" appended when n > 1). Directives in the last user text script the behaviour,
so one server serves every test case. They may be combined; each is `[[name]]` or `[[name:arg]]`:

    [[think-tags]]          thought in <think>...</think> at the start of the content
    [[reasoning-content]]   thought in message.reasoning_content (vLLM, DeepSeek style)
    [[reasoning-field]]     thought in message.reasoning
    [[refuse]]              the answer is a refusal ("I'm sorry, but I can't help with that.")
    [[truncate]]            content "<think>..." never closed, finish_reason "length"
    [[fail-429:K]]          the first K requests with this prompt get 429, later ones succeed
    [[fail-500:K]]          the same with 500
    [[status:CODE]]         always answer CODE with an OpenAI-style error body
    [[hang]]                never answer (until `hang_s` passes or the server closes)
    [[latency:S]]           wait S seconds instead of the server's latency
    [[malformed-json]]      200 with a body that is not JSON
    [[no-choices]]          200 with JSON that lacks `choices`
    [[invalid-utf8]]        200 with a body that is not valid UTF-8

Requests are counted per prompt by the raw last user text, directives included.

`responder` scripts replies in Python (e.g. a judge's verdicts): a callable that takes the request
body (parsed JSON) and returns the reply's content (str), an HTTP status to answer with an error
body (int), or None for the default behaviour above. Error directives in the prompt apply first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

DIRECTIVE = re.compile(r"\[\[([a-z0-9-]+)(?::([^\]]*))?\]\]")
REFUSAL = "I'm sorry, but I can't help with that."
Responder = Callable[[dict[str, Any]], "str | int | None"]
_BACKLOG = 1024  # well above the concurrency of any test or benchmark, so no connect is refused


class RequestLog:
    """Thread-safe counts of chat requests (the server runs in its own thread)."""

    def __init__(self, keep_bodies: int = 64):
        self._lock = threading.Lock()
        self._per_prompt: Counter[str] = Counter()
        self._total = 0
        self._bodies: deque[dict[str, Any]] = deque(maxlen=keep_bodies)
        self.model_list_requests = 0

    def add(self, prompt: str, body: dict[str, Any]) -> int:
        """Count a request; return how many earlier requests had the same prompt."""
        with self._lock:
            seen = self._per_prompt[prompt]
            self._per_prompt[prompt] += 1
            self._total += 1
            self._bodies.append(body)
            return seen

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def __getitem__(self, prompt: str) -> int:
        with self._lock:
            return self._per_prompt[prompt]

    def per_prompt(self) -> dict[str, int]:
        with self._lock:
            return dict(self._per_prompt)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies)

    def reset(self) -> None:
        with self._lock:
            self._per_prompt.clear()
            self._total = 0
            self._bodies.clear()
            self.model_list_requests = 0


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return ""
    return ""


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)


def _words(text: str) -> int:
    return len(text.split())


class _App:
    def __init__(self, latency_s: float, api_key: str | None, hang_s: float, model_ids: tuple[str, ...],
                 log: RequestLog, slots: int | None = None, responder: Responder | None = None, *,
                 model_info: dict[str, Any] | None = None, basic_auth: tuple[str, str] | None = None,
                 models_endpoint: bool = True):
        self.model_info = dict(model_info or {})
        self.basic_auth = basic_auth
        self.models_endpoint = models_endpoint
        self.latency_s = latency_s
        self.responder = responder
        self.slots = slots
        self._slots: asyncio.Semaphore | None = None
        self.api_key = api_key
        self.hang_s = hang_s
        self.model_ids = model_ids
        self.log = log
        self.closing: asyncio.Event | None = None

    def build(self) -> web.Application:
        self.closing = asyncio.Event()
        self._slots = asyncio.Semaphore(self.slots) if self.slots else None
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        return app

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self.basic_auth is not None:
            import base64

            expected = "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
            if request.headers.get("Authorization", "") != expected:
                return _error(401, "user name or password not accepted", "authentication_error")
        if self.api_key is None:
            return None
        given = request.headers.get("Authorization", "")
        if given == f"Bearer {self.api_key}":
            return None
        # Like some hosted APIs, echo what was sent: clients must not pass it on to their users.
        shown = given.removeprefix("Bearer ")
        return _error(401, f"Incorrect API key provided: {shown}", "authentication_error")

    async def models(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        self.log.model_list_requests += 1
        if not self.models_endpoint:
            return _error(404, "Not Found")
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "tis", **self.model_info} for m in self.model_ids]})

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        assert self.closing is not None
        try:
            await asyncio.wait_for(self.closing.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        try:
            body = json.loads(await request.read())
            messages = body["messages"]
            assert isinstance(messages, list)
        except (ValueError, KeyError, AssertionError, TypeError):
            return _error(400, "the request body must be JSON with a `messages` list")
        prompt = last_user_text(messages)
        seen = self.log.add(prompt, body)
        directives: dict[str, str] = {name: arg or "" for name, arg in DIRECTIVE.findall(prompt)}
        clean = " ".join(DIRECTIVE.sub(" ", prompt).split())

        latency = float(directives["latency"]) if "latency" in directives else self.latency_s
        if "hang" in directives:
            await self._wait(self.hang_s)
            return _error(504, "hung request released")
        if self._slots is None:
            await self._wait(latency)
        else:
            async with self._slots:
                await self._wait(latency)

        for code in (429, 500):
            if f"fail-{code}" in directives and seen < int(directives[f"fail-{code}"] or 1):
                return _error(code, "rate limit reached, slow down" if code == 429 else "internal server error",
                              "rate_limit_error" if code == 429 else "server_error")
        if "status" in directives:
            code = int(directives["status"])
            return _error(code, f"scripted error {code} for this prompt; the request was refused on purpose")
        if "malformed-json" in directives:
            return web.Response(body=b'{"id": "chatcmpl-broken", "choices": [', content_type="application/json")
        if "no-choices" in directives:
            return web.json_response({"id": "chatcmpl-empty", "object": "chat.completion"})
        if "invalid-utf8" in directives:
            return web.Response(body=b'{"choices": [{"message": {"content": "\xff\xfe\xc3("}}]}',
                                content_type="application/json")

        n = int(body.get("n") or 1)
        scripted = self.responder(body) if self.responder is not None else None
        if isinstance(scripted, int):
            return _error(scripted, f"scripted error {scripted} for this request")
        if scripted is not None:
            return web.json_response({
                "id": f"chatcmpl-{self.log.total}", "object": "chat.completion", "created": 0,
                "model": body.get("model", ""),
                "choices": [{"index": i, "message": {"role": "assistant", "content": scripted}, "finish_reason": "stop"}
                            for i in range(n)],
                "usage": {"prompt_tokens": _words(prompt), "completion_tokens": n * _words(scripted),
                          "total_tokens": _words(prompt) + n * _words(scripted)},
            })
        choices = [self._choice(i, n, clean, directives) for i in range(n)]
        thought_words = sum(_words(c["_thought"]) for c in choices)
        completion_words = sum(_words(c["_thought"]) + _words(c["message"]["content"] or "") for c in choices)
        for c in choices:
            del c["_thought"]
        usage: dict[str, Any] = {"prompt_tokens": _words(prompt), "completion_tokens": completion_words,
                                 "total_tokens": _words(prompt) + completion_words}
        if thought_words:
            usage["completion_tokens_details"] = {"reasoning_tokens": thought_words}
        return web.json_response({
            "id": f"chatcmpl-{self.log.total}", "object": "chat.completion", "created": 0,
            "model": body.get("model", ""), "choices": choices, "usage": usage,
        })

    @staticmethod
    def _choice(index: int, n: int, clean: str, directives: dict[str, str]) -> dict[str, Any]:
        suffix = f" (completion {index})" if n > 1 else ""
        answer = (REFUSAL if "refuse" in directives else f"Reply to: {clean}") + suffix
        thought = f"The user asks: {clean}. I will think it through.{suffix}"
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        finish = "stop"
        if "truncate" in directives:
            message["content"], finish = f"<think>{thought} Then again, perhaps", "length"
        elif "think-tags" in directives:
            message["content"] = f"<think>{thought}</think>{answer}"
        elif "reasoning-content" in directives:
            message["reasoning_content"] = thought
        elif "reasoning-field" in directives:
            message["reasoning"] = thought
        else:
            thought = ""
        return {"index": index, "message": message, "finish_reason": finish, "_thought": thought}


class LoopbackServer:
    """The server in a background thread with its own event loop, on an ephemeral port by default."""

    def __init__(self, latency_s: float = 0.0, api_key: str | None = None, *, port: int = 0,
                 hang_s: float = 600.0, model_ids: tuple[str, ...] = ("loopback",), slots: int | None = None,
                 responder: Responder | None = None, model_info: dict[str, Any] | None = None,
                 basic_auth: tuple[str, str] | None = None, models_endpoint: bool = True):
        self.requests = RequestLog()
        self._app = _App(latency_s, api_key, hang_s, tuple(model_ids), self.requests, slots, responder,
                         model_info=model_info, basic_auth=basic_auth, models_endpoint=models_endpoint)
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self.requests.bodies()

    @property
    def responder(self) -> Responder | None:
        return self._app.responder

    @responder.setter
    def responder(self, fn: Responder | None) -> None:
        """Replace the scripted replies (a running server picks the new one up at its next request)."""
        self._app.responder = fn

    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self._serve, name="tis-loopback-openai", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._startup_error is not None:
            raise RuntimeError(f"the loopback server did not start: {self._startup_error}")
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.close()

    async def _open(self) -> None:
        self._runner = await serve(self._app, "127.0.0.1", self._port)
        self._port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        assert self._app.closing is not None and self._runner is not None
        self._app.closing.set()  # releases hanging requests
        await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve(app: _App, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app.build(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=_BACKLOG)
    await site.start()
    return runner


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (for a server started in another process)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, timeout: float = 20.0) -> None:
    """Wait for a server started in another process to accept connections on 127.0.0.1:port."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the loopback server on port {port} did not start within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tis.testing.openai_server",
                                 description="A loopback OpenAI-compatible chat server with scripted replies.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each reply")
    ap.add_argument("--api-key", default=None, help="require this Bearer token")
    ap.add_argument("--slots", type=int, default=None, help="serve at most this many requests at once")
    ap.add_argument("--root", default=None, help="the model's `root` in GET /v1/models (as vLLM reports it)")
    args = ap.parse_args(argv)

    async def run() -> None:
        app = _App(args.latency, args.api_key, 600.0, ("loopback",), RequestLog(), args.slots,
                   model_info={"root": args.root} if args.root else None)
        runner = await serve(app, args.host, args.port)
        host, port = runner.addresses[0][:2]
        print(f"serving an OpenAI-compatible API at http://{host}:{port}/v1", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            assert app.closing is not None
            app.closing.set()
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
