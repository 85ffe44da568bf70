"""Any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp, hosted APIs) over aiohttp.

aiohttp rather than httpx: against a loopback server with 200 ms latency at concurrency 64,
httpx's async client reached about 15% of the ideal throughput and aiohttp about 95%.

The backend never retries: it classifies each failure as retryable or not and the runner
retries with backoff. Several base URLs (replicas of one model) share the load by least
outstanding requests.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL
from pydantic import Field

from tis.core.errors import ConfigError, FatalModelError, ModelError
from tis.models.base import BackendOptions, GenerationParams, ModelBackend
from tis.core.types import ImagePart, ModelOutput, Sample, Usage
from tis.models.messages import chat_messages
from tis.models.urls import normalise_url, redact_url, split_credentials

log = logging.getLogger(__name__)

_ERROR_CHARS = 300

# Magic numbers of the formats vision servers accept; anything else is asked of PIL.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def image_mime(data: bytes, path: str = "") -> str:
    """The mime type of image bytes, from their magic number or else from PIL's reading of them."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ModelError(f"image {path} is not in an image format that can be read ({exc}): "
                         "convert it to PNG or JPEG") from exc
    mime = Image.MIME.get(fmt or "")
    if not mime:
        raise ModelError(f"image {path} is {fmt}, which has no known mime type: convert it to PNG or JPEG")
    return mime


class DataURLCache:
    """Data URLs of image files, by content hash (or path, size and mtime), least recently used out.

    Benchmarks reuse images across many prompts (one FigStep typography image per question
    variant, one scene per several queries), so each file is read and encoded once.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._bytes = 0
        self.reads = 0  # files read and encoded
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def data_url(self, part: ImagePart) -> str:
        if part.sha256:
            key: tuple[str, ...] = ("sha256", part.sha256)
        else:
            try:
                st = os.stat(part.path)
            except OSError as exc:
                raise ModelError(f"cannot read image {part.path}: {exc.strerror or exc}") from exc
            key = ("path", str(Path(part.path).resolve()), str(st.st_size), str(st.st_mtime_ns))
        url = self._entries.get(key)
        if url is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return url
        try:
            data = Path(part.path).read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read image {part.path}: {exc.strerror or exc}") from exc
        self.reads += 1
        url = f"data:{image_mime(data, part.path)};base64,{base64.b64encode(data).decode('ascii')}"
        self._entries[key] = url
        self._bytes += len(url)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
        return url


def _server_message(raw: bytes) -> str:
    """The error message in an error body (OpenAI, FastAPI or plain text), on one short line."""
    text = raw.decode("utf-8", errors="replace")
    message: Any = text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            message = err["message"]
        elif isinstance(err, str):
            message = err
        elif data.get("detail"):
            message = data["detail"]
        elif data.get("message"):
            message = data["message"]
    message = " ".join(str(message).split())
    if len(message) > _ERROR_CHARS:
        message = message[: _ERROR_CHARS - 3] + "..."
    return message or "(empty body)"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        return (err.strerror or str(err)) if isinstance(err, OSError) else str(err)
    return str(exc) or type(exc).__name__


class OpenAIBackend(ModelBackend):
    """A model behind one or more OpenAI-compatible servers (replicas share the load).

    Identity: the model name is not enough (another server may serve another model under the same
    name), so the identity holds what each server reports about the model in `GET {base}/models`:
    the entry's `root` (vLLM and SGLang report the weights' path or hub id there), `parent`,
    `max_model_len` and `owned_by`. A server whose entry has a `root` is identified by those facts
    alone, so replicas of one model (same facts) are one identity and adding one does not make
    cached generations stale. A server that reports no `root` (hosted APIs), does not answer
    `/models` or does not list the model is identified by its normalised base URL as well: another
    URL is another model unless its server says what it serves. `created` is left out: vLLM sets
    it to the time of the request.

    Credentials written into a base URL (`http://user:pw@host/v1`) are sent as HTTP Basic auth and
    never shown; with `api_key_env` as well, the configuration is refused (one or the other).
    """

    batch_size = 1
    #: seconds allowed for each preflight GET {base}/models
    preflight_timeout_s: float = 10.0
    #: the facts of a /models entry that tell one served model from another
    MODEL_FACTS = ("root", "parent", "max_model_len", "owned_by")

    class Options(BackendOptions):
        model: str = Field(description="the served model's name (the part after 'openai:')")
        base_url: list[str] = Field(min_length=1, description="OpenAI-compatible base URL(s), replicas of one model")
        api_key_env: str | None = Field(None, description="environment variable holding the API key")
        timeout_s: float = Field(120, gt=0, description="per-request timeout")
        extra_body: dict[str, Any] = Field(default_factory=dict, description="fields added to every request body")
        max_connections: int = Field(256, ge=1)

    def __init__(self, model: str, *, base_url: str | list[str], api_key_env: str | None = None,
                 timeout_s: float = 120, extra_body: dict | None = None, max_connections: int = 256):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("--base-url is empty: give the server's URL, e.g. http://127.0.0.1:8000/v1")
        clean: list[str] = []
        auths: list[dict[str, str] | None] = []  # per replica: its Basic auth header, if its URL had credentials
        self._secrets: list[str] = []
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"--base-url '{redact_url(url)}' must start with http:// or https://")
            bare, creds = split_credentials(url)
            if creds is not None:
                if len(creds[1]) >= 3:  # the password (a user name is not secret, and short ones are words)
                    self._secrets.append(creds[1])
                token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode("utf-8")).decode("ascii")
                self._secrets.append(token)
                auth: dict[str, str] | None = {"Authorization": f"Basic {token}"}
            else:
                auth = None
            clean.append(bare.rstrip("/"))
            auths.append(auth)
        if api_key_env and any(auths):
            raise ConfigError("--base-url carries credentials (user:password@) and --api-key-env is set too: give "
                              "one of them (the key is sent as a Bearer token, URL credentials as HTTP Basic auth)")
        if timeout_s <= 0:
            raise ConfigError(f"the model timeout must be positive, not {timeout_s}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, not {max_connections}")
        self.model = model
        self.base_urls = clean
        self._auths = auths
        self._endpoints: list[URL] | None = None
        self._timeout: aiohttp.ClientTimeout | None = None
        #: the URLs as they may be shown: credentials replaced by ***
        self.shown_urls = [redact_url(u).rstrip("/") for u in urls]
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.extra_body = dict(extra_body or {})
        self.max_connections = max_connections
        self._api_key: str | None = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(f"the environment variable {api_key_env} (--api-key-env) is not set: "
                                  f"export {api_key_env}=<key> or drop --api-key-env")
            self._api_key = key
        self.images = DataURLCache()
        self._session: aiohttp.ClientSession | None = None
        self._outstanding = [0] * len(self.base_urls)
        self._next = 0  # round robin among equally loaded replicas
        self._servers: list[dict[str, Any]] | None = None  # what each server reports, once asked

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.shown_urls!r})"

    @property
    def identity(self) -> dict[str, Any]:
        # extra_body can change what the model writes (e.g. enable_thinking), so it is part of it
        ident: dict[str, Any] = {"backend": "openai", "model": self.model, "servers": self.server_identity()}
        if self.extra_body:
            ident["extra_body"] = self.extra_body
        return ident

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model, "base_urls": list(self.shown_urls),
                "servers": self.server_identity(), "api_key_env": self.api_key_env,
                "timeout_s": self.timeout_s, "extra_body": self.extra_body}

    # -- identity -------------------------------------------------------------------------------

    def server_identity(self) -> list[dict[str, Any]]:
        """What identifies the servers: per server, the model's reported facts or else its normalised
        URL; replicas with the same facts collapse into one entry. Asked once (a short synchronous
        GET {base}/models per server, before any generation), then kept."""
        if self._servers is None:
            seen: dict[str, dict[str, Any]] = {}
            for i, base in enumerate(self.base_urls):
                entry = self._probe(i, base)
                seen.setdefault(json.dumps(entry, sort_keys=True), entry)
            self._servers = [seen[k] for k in sorted(seen)]
        return self._servers

    def _probe(self, i: int, base: str) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self._auths[i] is not None:
            headers.update(self._auths[i])
        fallback = {"url": normalise_url(base)}
        try:
            req = urllib.request.Request(f"{base}/models", headers=headers)
            # no proxy from the environment: the same route as the requests (aiohttp ignores them too)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(req, timeout=min(self.preflight_timeout_s, self.timeout_s)) as resp:
                data = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):  # HTTP errors included: no facts, the URL stands
            return fallback
        entries = data.get("data") if isinstance(data, dict) else None
        entry = next((m for m in entries or [] if isinstance(m, dict) and m.get("id") == self.model), None)
        if entry is None:
            return fallback
        facts = {k: entry[k] for k in self.MODEL_FACTS if isinstance(entry.get(k), (str, int, float))}
        if "root" in facts:  # the weights the server loaded: replicas reporting the same are one model
            return {"reported": facts}
        return {**fallback, "reported": facts} if facts else fallback  # a vendor name alone names no model

    # -- session --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers())
        return self._session

    def _scrub(self, text: str) -> str:
        for secret in ([self._api_key] if self._api_key else []) + self._secrets:
            text = text.replace(secret, "***")
        return text

    async def start(self) -> None:
        session = self._ensure_session()
        timeout = aiohttp.ClientTimeout(total=min(self.preflight_timeout_s, self.timeout_s))
        try:
            for i, base in enumerate(self.base_urls):
                try:
                    async with session.get(f"{base}/models", timeout=timeout, headers=self._auths[i]) as resp:
                        status = resp.status
                        raw = await resp.read()
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    raise FatalModelError(f"cannot reach the model server at {base} ({self._scrub(_connect_reason(exc))}): "
                                          "start it or fix --base-url") from None
                if status in (401, 403):
                    raise FatalModelError(self._auth_message(base, status)) from None
                if status == 200:
                    self._check_listed(base, raw)
                elif status != 404:  # 404: the server has no model list; a chat call will tell
                    log.warning("the model server at %s answered %d to GET /models: %s", base, status,
                                self._scrub(_server_message(raw)))
        except BaseException:
            await self.close()
            raise

    def _check_listed(self, base: str, raw: bytes) -> None:
        # Some servers accept names they do not list (aliases, "name" for "name:latest"): warn only.
        try:
            ids = [m.get("id") for m in json.loads(raw).get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return
        if ids and self.model not in ids:
            shown = ", ".join(str(i) for i in ids[:10]) + (", ..." if len(ids) > 10 else "")
            log.warning("the model server at %s does not list model '%s' (it lists: %s)", base, self.model, shown)

    def _auth_message(self, base: str, status: int) -> str:
        if any(self._auths):
            return (f"the model server at {base} refused the user name and password in --base-url ({status}): "
                    "check them")
        if self.api_key_env:
            return (f"the model server at {base} refused the API key ({status}): check the key in "
                    f"${self.api_key_env}")
        return (f"the model server at {base} needs an API key ({status}): put it in an environment "
                "variable and pass its name with --api-key-env")

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- requests -------------------------------------------------------------------------------

    def _messages(self, sample: Sample) -> list[dict[str, Any]]:
        return chat_messages(sample, "openai", image_url=self.images.data_url)

    def payload(self, sample: Sample, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(sample),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": params.n,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if sample.prefill:
            # the assistant turn starts with the prefill and the model continues it (vLLM / SGLang)
            body["messages"].append({"role": "assistant", "content": sample.prefill})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        body.update(self.extra_body)
        return body

    def _pick(self) -> int:
        """The replica with the fewest requests in flight; ties go round robin."""
        count = len(self.base_urls)
        best = self._next % count
        for step in range(1, count):
            i = (self._next + step) % count
            if self._outstanding[i] < self._outstanding[best]:
                best = i
        self._next = best + 1
        return best

    async def generate(self, samples: list[Sample], params: GenerationParams) -> list[list[ModelOutput]]:
        return [await self._complete(sample, params) for sample in samples]

    async def _complete(self, sample: Sample, params: GenerationParams) -> list[ModelOutput]:
        outputs = await self._request(sample, params)
        if sample.prefill:  # the completion's text begins with what the turn was started with
            outputs = [o if o.text.startswith(sample.prefill) else o.model_copy(update={"text": sample.prefill + o.text})
                       for o in outputs]
        return outputs

    async def _request(self, sample: Sample, params: GenerationParams) -> list[ModelOutput]:
        data = json.dumps(self.payload(sample, params), ensure_ascii=False).encode("utf-8")
        session = self._ensure_session()
        replica = self._pick()
        base = self.base_urls[replica]
        self._outstanding[replica] += 1
        try:
            if self._endpoints is None:  # parsed once, not for every request
                self._endpoints = [URL(f"{b}/chat/completions") for b in self.base_urls]
                self._timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            async with session.post(self._endpoints[replica], data=data, headers=self._auths[replica],
                                    timeout=self._timeout) as resp:
                status = resp.status
                raw = await resp.read()
        except TimeoutError:
            raise ModelError(f"no answer from {base} within {self.timeout_s:g}s", retryable=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ModelError(f"request to {base} failed ({self._scrub(_connect_reason(exc))})",
                             retryable=True) from None
        finally:
            self._outstanding[replica] -= 1
        return self._parse(base, status, raw, params.n)

    def _parse(self, base: str, status: int, raw: bytes, n: int) -> list[ModelOutput]:
        if status in (401, 403):
            raise FatalModelError(self._auth_message(base, status), status=status)
        if status == 429 or status == 408 or 500 <= status <= 599:
            raise ModelError(f"the model server at {base} answered {status}: {self._scrub(_server_message(raw))}",
                             retryable=True, status=status)
        if status >= 400 or status < 200:
            hint = f" (is '{self.model}' the served model's name?)" if status == 404 else ""
            raise ModelError(f"the model server at {base} answered {status}{hint}: "
                             f"{self._scrub(_server_message(raw))}", retryable=False, status=status)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError("server returned a response that is not valid UTF-8", status=status) from None
        try:
            body = json.loads(text)
        except ValueError:
            raise ModelError(f"the model server at {base} returned a response that is not valid JSON",
                             retryable=True, status=status) from None
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise ModelError(f"the model server at {base} returned a response without `choices`",
                             retryable=True, status=status)
        if len(choices) < n:
            raise ModelError(f"the model server at {base} returned {len(choices)} completion(s) for n={n}; "
                             "it may not support n > 1", status=status)
        choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
        # The server reports usage summed over all n completions: only n == 1 can be attributed.
        usage = self._usage(body.get("usage")) if n == 1 else None
        outputs = []
        for choice in choices[:n]:
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            outputs.append(ModelOutput(
                text=_content_text(message.get("content")),
                reasoning=reasoning if isinstance(reasoning, str) else None,
                finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
                usage=usage,
            ))
        return outputs

    @staticmethod
    def _usage(raw: Any) -> Usage | None:
        if not isinstance(raw, dict):
            return None

        def count(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        details = raw.get("completion_tokens_details")
        reasoning = count(details.get("reasoning_tokens")) if isinstance(details, dict) else None
        return Usage(prompt_tokens=count(raw.get("prompt_tokens")),
                     completion_tokens=count(raw.get("completion_tokens")), reasoning_tokens=reasoning)
