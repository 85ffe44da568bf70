"""`--judge SPEC` parsing: registered judges, llm:..., guard:..., and the errors."""

from __future__ import annotations

import pytest

from tis.pipeline.evaluate import build_judge
from tis.core.errors import ConfigError
from tis.judges.guard import GuardJudge
from tis.judges.llm import LLMJudge
from tis.judges.refusal import RefusalJudge
from tis.judges.spec import parse_judge_spec, shown
from tis.models.hf import HFBackend
from tis.models.openai_compat import OpenAIBackend


def test_registered_judges_keep_working():
    assert isinstance(parse_judge_spec("refusal"), RefusalJudge)
    assert isinstance(build_judge("refusal"), RefusalJudge)
    with pytest.raises(ConfigError, match="unknown judge 'refusl'. Did you mean 'refusal'"):
        parse_judge_spec("refusl")
    with pytest.raises(ConfigError, match="--judge is empty"):
        parse_judge_spec("  ")


def test_openai_llm_spec_carries_every_backend_option():
    spec = ("llm:openai:org/llama3:8b@http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1"
            "?rubric=harm&id=judge-a&targets=answer,full&max_tokens=300&timeout=30&concurrency=4&max_chars=5000")
    j = build_judge(spec)
    assert isinstance(j, LLMJudge) and isinstance(j.backend, OpenAIBackend)
    assert j.backend.model == "org/llama3:8b"
    assert j.backend.base_urls == ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    assert j.backend.timeout_s == 30 and j.backend.api_key_env is None
    assert (j.id, j.targets, j.max_tokens, j.max_concurrency, j.max_chars) == \
        ("judge-a", ("answer", "full"), 300, 4, 5000)
    # identity: the model, what its servers report about it (nothing answers here: their URLs), and the rubric
    assert j.identity["model"] == {"backend": "openai", "model": "org/llama3:8b", "servers": [
        {"url": "http://127.0.0.1:8001/v1"}, {"url": "http://127.0.0.1:8002/v1"}]}


def test_default_ids_name_the_model_and_an_overriding_rubric():
    url = "http://127.0.0.1:9/v1"
    assert parse_judge_spec(f"llm:openai:gpt-4o@{url}").id == "llm-gpt-4o"
    assert parse_judge_spec(f"llm:openai:gpt-4o@{url}?rubric=siuo_effectiveness").id == \
        "llm-gpt-4o-siuo_effectiveness"
    assert parse_judge_spec(f"llm:openai:gpt-4o@{url}").targets == ("thought", "answer", "full")


def test_key_env_is_read_from_the_named_variable_only(monkeypatch):
    url = "http://127.0.0.1:9/v1"
    monkeypatch.delenv("TIS_SPEC_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_judge_spec(f"llm:openai:m@{url}?key_env=TIS_SPEC_KEY")
    assert "key_env=TIS_SPEC_KEY names an environment variable that is not set" in str(info.value)
    assert f"--judge 'llm:openai:m@{url}?key_env=TIS_SPEC_KEY'" in str(info.value)
    monkeypatch.setenv("TIS_SPEC_KEY", "sk-very-secret-value")
    j = parse_judge_spec(f"llm:openai:m@{url}?key_env=TIS_SPEC_KEY")
    assert j.backend._headers()["Authorization"] == "Bearer sk-very-secret-value"
    assert "sk-very-secret" not in str(j.identity) + str(j.backend.describe()) + repr(j.backend)
    # a key pasted into the spec is never echoed back
    for bad in (f"llm:openai:m@{url}?key=sk-very-secret-value", f"llm:openai:m@{url}?key_env=sk-very-secret-value"):
        with pytest.raises(ConfigError) as info:
            parse_judge_spec(bad)
        assert "sk-very-secret-value" not in str(info.value)
    assert shown("llm:openai:m@https://user:pw@h/v1?key=abc&rubric=harm") == \
        "llm:openai:m@https://***@h/v1?key=***&rubric=harm"


@pytest.mark.parametrize("spec, message", [
    ("llm", "an LLM judge needs a backend and a model"),
    ("llm:gpt-4o", "an LLM judge needs a backend and a model"),
    ("llm:vllm:m@http://h/v1", "an LLM judge needs a backend and a model"),
    ("llm:openai:gpt-4o", "the judge model's server is missing: write MODEL@BASE_URL"),
    ("llm:openai:gpt-4o@ftp://h/v1", "the judge model's server is missing"),
    ("llm:openai:m@http://h/v1?rubrik=harm", "unknown option 'rubrik' \\(did you mean 'rubric'\\?\\)"),
    ("llm:openai:m@http://h/v1?rubric", "option 'rubric' has no value"),
    ("llm:openai:m@http://h/v1?rubric=harn", "unknown rubric 'harn' \\(did you mean 'harm'\\?\\)"),
    ("llm:openai:m@http://h/v1?max_tokens=lots", "option max_tokens=lots is not an integer"),
    ("llm:openai:m@http://h/v1?parse_retries=-1", "option parse_retries=-1 must be at least 0"),
    ("llm:openai:m@http://h/v1?targets=answer,reply", "option targets=answer,reply: take some of"),
    ("llm:openai:m@http://h/v1?images=always", "images='always'; use auto or no"),
    ("llm:openai:m@http://h/v1?id=a b", "option id=a b: use letters"),
    ("llm:openai:m@http://h/v1?rubric=harm&rubric=refusal", "option 'rubric' is given twice"),
    ("llm:openai:m@http://h/v1?rubric=siuo_effectiveness&targets=thought", "does not judge thought"),
    ("llm:openai:m@http://h/v1?device=cuda", "unknown option 'device'"),
    ("llm:hf:/models/j?key_env=X", "unknown option 'key_env'"),
    ("llm:hf:/models/j?dtype=int4", "dtype 'int4' is not one of"),
    ("guard", "a guard judge needs a model folder"),
    ("guard:hf:/models/g?rubric=harm", "unknown option 'rubric'"),
    ("guard:hf:/models/g?batch_size=0", "option batch_size=0 must be at least 1"),
])
def test_spec_errors_name_the_spec_and_the_problem(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_judge_spec(spec)
    if spec not in ("llm",):
        assert f"--judge '{spec.split('?')[0]}" in str(info.value)


def test_local_specs_build_without_loading_anything(tmp_path):
    j = parse_judge_spec(f"llm:hf:{tmp_path}/judge-vlm?device=cpu&dtype=float32&batch_size=2&rubric=vlsbench")
    assert isinstance(j, LLMJudge) and isinstance(j.backend, HFBackend)
    assert (j.backend.device, j.backend.dtype, j.backend.batch_size) == ("cpu", "float32", 2)
    assert j.id == "llm-judge-vlm-vlsbench" and j.max_concurrency == 4
    g = parse_judge_spec(f"guard:hf:{tmp_path}/llama-guard-3-1b?device=cpu&batch_size=4&max_new_tokens=5"
                         "&targets=answer")
    assert isinstance(g, GuardJudge) and g.id == "guard-llama-guard-3-1b"
    assert (g.batch_size, g.max_new_tokens, g.targets, g.device) == (4, 5, ("answer",), "cpu")
    assert parse_judge_spec(f"guard:{tmp_path}/lg").id == "guard-lg"  # hf: may be left out
