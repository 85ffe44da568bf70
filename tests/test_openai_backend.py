"""The OpenAI-compatible backend against a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import base64
import socket
import pytest

from tis.core.errors import ConfigError, FatalModelError, ModelError
from tis.models.base import GenerationParams
from tis.models.openai_compat import OpenAIBackend
from tis.testing.openai_server import LoopbackServer
from tis.core.types import ImagePart, Sample, TextPart


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(latency_s=0.0, hang_s=30.0) as srv:
        yield srv


def sample(text: str, *images: ImagePart, system: str | None = None, sid: str = "s") -> Sample:
    return Sample(id=sid, benchmark="custom", content=(*images, TextPart(text=text)), system=system)


async def _generate(backend: OpenAIBackend, samples: list[Sample], params: GenerationParams):
    await backend.start()
    try:
        return await backend.generate(samples, params)
    finally:
        await backend.close()


def generate(base_url, samples, params=GenerationParams(), **kwargs):
    backend = OpenAIBackend("loopback", base_url=base_url, **kwargs)
    return asyncio.run(_generate(backend, samples, params)), backend


def error_of(base_url, text, **kwargs) -> ModelError:
    with pytest.raises(ModelError) as info:
        generate(base_url, [sample(text)], **kwargs)
    return info.value


def test_plain_reply_and_identity_without_url(server):
    [[out]], backend = generate(server.base_url, [sample("plain question one")])
    assert out.text == "Reply to: plain question one"
    assert out.reasoning is None and out.finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens == 3 and out.usage.reasoning_tokens is None
    # the loopback server reports no `root`: its (normalised) URL stands for the weights it serves
    assert backend.identity == {"backend": "openai", "model": "loopback",
                                "servers": [{"url": server.base_url, "reported": {"owned_by": "tis"}}]}
    assert server.base_url in str(backend.describe())


def test_thought_in_content_tags(server):
    [[out]], _ = generate(server.base_url, [sample("tags please [[think-tags]]")])
    assert out.text.startswith("<think>The user asks: tags please.") and out.text.endswith("</think>Reply to: tags please")
    assert out.reasoning is None
    assert out.usage is not None and out.usage.reasoning_tokens and out.usage.reasoning_tokens > 0


@pytest.mark.parametrize("directive", ["reasoning-content", "reasoning-field"])
def test_thought_in_its_own_field(server, directive):
    [[out]], _ = generate(server.base_url, [sample(f"field please [[{directive}]]")])
    assert out.text == "Reply to: field please"
    assert out.reasoning is not None and out.reasoning.startswith("The user asks: field please")


def test_truncated_thought_reports_length(server):
    [[out]], _ = generate(server.base_url, [sample("long one [[truncate]]")])
    assert out.finish_reason == "length"
    assert out.text.startswith("<think>") and "</think>" not in out.text


def test_n_completions_seed_and_sampling_params_are_sent(server):
    prompt = "three of these"
    [outs], _ = generate(server.base_url, [sample(prompt, system="Be brief.")],
                         GenerationParams(n=3, seed=7, temperature=0.6, top_p=0.9, max_tokens=33))
    assert [o.text for o in outs] == [f"Reply to: {prompt} (completion {i})" for i in range(3)]
    assert all(o.usage is None for o in outs)  # the server sums usage over the n completions
    body = next(b for b in reversed(server.bodies) if b["messages"][-1]["content"][-1]["text"] == prompt)
    assert (body["n"], body["seed"], body["temperature"], body["top_p"], body["max_tokens"]) == (3, 7, 0.6, 0.9, 33)
    assert body["model"] == "loopback"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}

    generate(server.base_url, [sample("no seed here")], GenerationParams(seed=None), extra_body={"top_k": 5})
    body = next(b for b in reversed(server.bodies) if b["messages"][-1]["content"][-1]["text"] == "no seed here")
    assert "seed" not in body and body["top_k"] == 5


def test_images_go_as_data_urls_and_a_shared_image_is_encoded_once(server, tmp_path):
    from PIL import Image

    png = tmp_path / "shared.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png)
    jpeg_named_png = tmp_path / "really_a_jpeg.png"
    Image.new("RGB", (8, 8), (10, 10, 200)).save(jpeg_named_png, format="JPEG")
    shared = ImagePart(path=str(png))
    samples = [sample("first look", shared, sid="a"), sample("second look", shared, sid="b"),
               sample("third look", ImagePart(path=str(jpeg_named_png)), sid="c")]
    outs, backend = generate(server.base_url, samples)
    assert len(outs) == 3
    assert (backend.images.reads, backend.images.hits) == (2, 1)

    bodies = {b["messages"][-1]["content"][-1]["text"]: b for b in server.bodies}
    parts = bodies["first look"]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]  # the sample's order is kept
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png.read_bytes()
    assert bodies["second look"]["messages"][-1]["content"][0]["image_url"]["url"] == url
    jpeg_url = bodies["third look"]["messages"][-1]["content"][0]["image_url"]["url"]
    assert jpeg_url.startswith("data:image/jpeg;base64,")  # the bytes decide, not the file name


def test_images_with_a_known_hash_are_read_once_across_paths(server, tmp_path):
    from PIL import Image

    first, second = tmp_path / "one.png", tmp_path / "two.png"
    Image.new("RGB", (4, 4)).save(first)
    second.write_bytes(first.read_bytes())
    parts = [ImagePart(path=str(p)).with_hash() for p in (first, second)]
    _, backend = generate(server.base_url, [sample("hash a", parts[0]), sample("hash b", parts[1])])
    assert (backend.images.reads, backend.images.hits) == (1, 1)


def test_unreadable_image_is_a_clear_non_retryable_error(server, tmp_path):
    missing = tmp_path / "gone.png"
    with pytest.raises(ModelError) as info:
        generate(server.base_url, [sample("where is it", ImagePart(path=str(missing)))])
    assert not info.value.retryable and str(missing) in str(info.value)
    not_image = tmp_path / "notes.png"
    not_image.write_text("just text")
    with pytest.raises(ModelError) as info:
        generate(server.base_url, [sample("what is it", ImagePart(path=str(not_image)))])
    assert not info.value.retryable and str(not_image) in str(info.value)


@pytest.mark.parametrize("code", [429, 500])
def test_rate_limit_and_server_errors_are_retryable_and_not_retried_inside(server, code):
    prompt = f"flaky {code} [[fail-{code}:1]]"
    err = error_of(server.base_url, prompt)
    assert err.retryable and err.status == code and not isinstance(err, FatalModelError)
    assert server.requests[prompt] == 1  # the runner retries, not the backend
    [[out]], _ = generate(server.base_url, [sample(prompt)])  # the retry succeeds
    assert out.text == f"Reply to: flaky {code}"
    assert server.requests[prompt] == 2


def test_client_errors_are_not_retryable_and_carry_the_server_message(server):
    err = error_of(server.base_url, "bad one [[status:400]]")
    assert not err.retryable and err.status == 400 and "scripted error 400" in str(err)
    err = error_of(server.base_url, "unknown model [[status:404]]")
    assert not err.retryable and err.status == 404 and "'loopback'" in str(err)


def test_hang_past_the_timeout_is_a_retryable_timeout(server):
    err = error_of(server.base_url, "wait forever [[hang]]", timeout_s=0.3)
    assert err.retryable and "within 0.3s" in str(err)


@pytest.mark.parametrize("directive", ["malformed-json", "no-choices"])
def test_broken_bodies_are_retryable(server, directive):
    err = error_of(server.base_url, f"broken [[{directive}]]")
    assert err.retryable and err.status == 200


def test_invalid_utf8_is_a_clear_error(server):
    err = error_of(server.base_url, "bytes [[invalid-utf8]]")
    assert not err.retryable and str(err) == "server returned a response that is not valid UTF-8"


def test_wrong_key_is_fatal_and_never_shown(monkeypatch):
    monkeypatch.setenv("TIS_TEST_KEY", "wrong-key-123")
    with LoopbackServer(api_key="right-key-456") as srv:
        backend = OpenAIBackend("loopback", base_url=srv.base_url, api_key_env="TIS_TEST_KEY")
        with pytest.raises(FatalModelError) as info:
            asyncio.run(backend.start())
        message = str(info.value)
        assert "$TIS_TEST_KEY" in message and srv.base_url in message
        # the server echoes the key it was sent; generate must not pass that on either
        with pytest.raises(FatalModelError) as info:
            asyncio.run(_gen_only(backend, [sample("hello")]))
        assert info.value.status == 401 and "TIS_TEST_KEY" in str(info.value)
        for text in (message, str(info.value), repr(backend), str(backend.describe())):
            assert "wrong-key-123" not in text and "right-key-456" not in text

        monkeypatch.setenv("TIS_TEST_KEY", "right-key-456")
        [[out]], _ = generate(srv.base_url, [sample("hello")], api_key_env="TIS_TEST_KEY")
        assert out.text == "Reply to: hello"


async def _gen_only(backend, samples):
    try:
        return await backend.generate(samples, GenerationParams())
    finally:
        await backend.close()


def test_unset_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TIS_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="TIS_TEST_UNSET_KEY"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env="TIS_TEST_UNSET_KEY")


def test_unreachable_server_fails_at_start():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAIBackend("m", base_url=url)
    with pytest.raises(FatalModelError) as info:
        asyncio.run(backend.start())
    assert url in str(info.value) and "connection refused" in str(info.value) and "--base-url" in str(info.value)


def test_replicas_share_requests_by_least_outstanding():
    with LoopbackServer(latency_s=0.01) as a, LoopbackServer(latency_s=0.01) as b:
        backend = OpenAIBackend("loopback", base_url=[a.base_url, b.base_url])

        async def spread():
            await backend.start()
            try:
                await asyncio.gather(*(backend.generate([sample(f"spread {i}")], GenerationParams())
                                       for i in range(20)))
                # one slow request holds replica a; the next ones go to the idle replica b
                slow = asyncio.create_task(backend.generate([sample("slow [[latency:0.5]]")], GenerationParams()))
                await asyncio.sleep(0.05)
                for i in range(4):
                    await backend.generate([sample(f"after slow {i}")], GenerationParams())
                await slow
            finally:
                await backend.close()

        asyncio.run(spread())
        assert (a.requests.total, b.requests.total) == (11, 14)
        assert a.requests["slow [[latency:0.5]]"] == 1


def test_server_takes_64_concurrent_clients():
    with LoopbackServer(latency_s=0.05) as srv:
        backend = OpenAIBackend("loopback", base_url=srv.base_url)

        async def crowd():
            await backend.start()
            try:
                return await asyncio.gather(*(backend.generate([sample(f"crowd {i}")], GenerationParams())
                                              for i in range(64)))
            finally:
                await backend.close()

        results = asyncio.run(crowd())
        assert [r[0][0].text for r in results] == [f"Reply to: crowd {i}" for i in range(64)]
        assert srv.requests.total == 64
