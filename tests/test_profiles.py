"""Model profiles: the shipped table is consistent, user files extend it, bad files say what is wrong."""

from __future__ import annotations

import re

import pytest

from tis.reasoning import formats as reasoning
from tis.core.errors import ConfigError
from tis.reasoning.profiles import base_of, get_profile, load_profiles
from tis.reasoning.formats import FORMATS, split_output
from tis.core.types import ModelOutput

PROFILES = load_profiles()
REASONING = sorted(name for name, p in PROFILES.items() if p.reasoning)

# the reasoning models of the spec and the base each pairs with (None: no instruct base exists)
PAIRS = {
    "R1-Onevision-7B": "Qwen2.5-VL-7B-Instruct",
    "MM-Eureka-Qwen-7B": "Qwen2.5-VL-7B-Instruct",
    "Vision-R1-7B": "Qwen2.5-VL-7B-Instruct",
    "OpenVLThinker-7B": "Qwen2.5-VL-7B-Instruct",
    "VL-Rethinker-7B": "Qwen2.5-VL-7B-Instruct",
    "Skywork-R1V-38B": None,
    "GLM-4.1V-9B-Thinking": None,
    "Qwen3-VL-8B-Thinking": "Qwen3-VL-8B-Instruct",
    "Kimi-VL-A3B-Thinking": "Kimi-VL-A3B-Instruct",
    "Llama-3.2V-11B-cot": "Llama-3.2-11B-Vision-Instruct",
    "Mulberry-Qwen2VL-7B": "Qwen2-VL-7B-Instruct",
    "Mulberry-LLaVA-8B": "Llama3-LLaVA-NeXT-8B",
    "Mulberry-Llama-11B": "Llama-3.2-11B-Vision-Instruct",
    "QVQ-72B-Preview": "Qwen2-VL-72B-Instruct",
    "Virgo-72B": "Qwen2-VL-72B-Instruct",
    "LlamaV-o1": "Llama-3.2-11B-Vision-Instruct",
}


@pytest.fixture
def formats(monkeypatch):
    """Formats that a test's profiles file registers do not outlive the test."""
    monkeypatch.setattr(reasoning, "FORMATS", dict(FORMATS))


def test_spec_models_and_their_bases():
    for name, base in PAIRS.items():
        assert PROFILES[name].reasoning, name
        assert PROFILES[name].base == base, name


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_is_consistent(name):
    p = PROFILES[name]
    assert p.format.name in FORMATS  # the thought format exists
    assert p.hf_id and re.fullmatch(r"[\w.-]+/[\w.-]+", p.hf_id)
    assert p.architecture
    if p.base is not None:
        assert p.base in PROFILES and not PROFILES[p.base].reasoning
    if p.reasoning:
        assert p.max_tokens >= 4096
    else:
        assert p.base is None and p.example is None


@pytest.mark.parametrize("name", REASONING)
def test_example_splits_with_its_own_format(name):
    p = PROFILES[name]
    split = split_output(ModelOutput(text=p.example or "", finish_reason="stop"), p.thought_format)
    assert split.thought and split.answer
    assert split.source in ("tags", "prefilled") and not split.truncated
    # the delimiters are gone from both parts
    for part in (split.thought, split.answer):
        assert not re.search(r"</?think>|\u25c1/?think\u25b7|</?(CONCLUSION|REASONING)>|final answer is:", part, re.I)


def test_every_base_is_used_and_ids_are_unique():
    bases = {p.base for p in PROFILES.values() if p.base}
    assert {n for n, p in PROFILES.items() if not p.reasoning} == bases
    ids = [p.hf_id.lower() for p in PROFILES.values()]
    assert len(ids) == len(set(ids))


def test_qwen3_vl_thinking_sizes_are_prefilled():
    thinking = [n for n in PROFILES if n.startswith("Qwen3-VL-") and n.endswith("-Thinking")]
    assert len(thinking) >= 4
    assert all(PROFILES[n].thought_format == "r1_prefilled" for n in thinking)


def test_lookup_by_alias_repo_id_and_case():
    assert get_profile("LLaVA-CoT").name == "Llama-3.2V-11B-cot"
    assert get_profile("qwen/qwen3-vl-8b-thinking").name == "Qwen3-VL-8B-Thinking"
    assert get_profile("vision-r1-7b").name == "Vision-R1-7B"
    assert base_of("QVQ-72B-Preview").name == "Qwen2-VL-72B-Instruct"
    assert base_of("Qwen2-VL-72B-Instruct") is None
    with pytest.raises(ConfigError, match=r"unknown model profile 'Vision-R2-7B'; did you mean Vision-R1-7B"):
        get_profile("Vision-R2-7B")


def test_generation_params():
    params = get_profile("Qwen3-VL-8B-Thinking").generation_params(seed=3)
    assert (params.temperature, params.top_p, params.max_tokens, params.seed) == (1.0, 0.95, 8192, 3)


def test_user_file_extends_and_overrides(tmp_path, formats):
    path = tmp_path / "mine.toml"
    path.write_text("""
["Qwen3-VL-8B-Thinking"]
max_tokens = 16384

["My-VLM-Thinking"]
hf_id = "me/my-vlm-thinking"
family = "Qwen2.5-VL"
thought_format = "reason"
base = "Qwen2.5-VL-7B-Instruct"
example = "<reason>look</reason>answer"

["My-Other-Thinking"]
family = "Qwen2.5-VL"
thought_format = { name = "dash", kind = "plain", final_markers = ["--- answer ---"] }

[formats.reason]
kind = "tags"
open = "<reason>"
close = "</reason>"
""", encoding="utf-8")
    profiles = load_profiles([path])
    assert len(profiles) == len(PROFILES) + 2
    overridden = profiles["Qwen3-VL-8B-Thinking"]
    assert overridden.max_tokens == 16384
    assert overridden.thought_format == "r1_prefilled" and overridden.temperature == 1.0  # other fields kept
    mine = profiles["My-VLM-Thinking"]
    split = split_output(ModelOutput(text=mine.example), mine.thought_format)
    assert (split.thought, split.answer, split.source) == ("look", "answer", "tags")
    assert base_of("My-VLM-Thinking", [path]).name == "Qwen2.5-VL-7B-Instruct"
    other = profiles["My-Other-Thinking"]
    assert split_output(ModelOutput(text="hmm\n--- answer ---\nyes"), other.thought_format).answer == "yes"
    assert split_output(ModelOutput(text="hmm\n--- answer ---\nyes"), "dash").thought == "hmm"
    assert load_profiles()["Qwen3-VL-8B-Thinking"].max_tokens == 8192  # the shipped table is untouched


BAD = [
    ("not-toml", '["A"\nfamily = "x"', r"not valid TOML"),
    ("unknown-field", '["A"]\nfamily = "x"\ntempreture = 0.5', r"profile 'A': field 'tempreture': Extra inputs"),
    ("bad-value", '["A"]\nfamily = "x"\ntemperature = -1', r"profile 'A': field 'temperature'"),
    ("missing-field", '["A"]\nhf_id = "a/b"', r"profile 'A': field 'family': Field required"),
    ("unknown-base", '["A"]\nfamily = "x"\nthought_format = "r1"\nbase = "Nope"', r"profile 'A': field 'base': no profile named 'Nope'"),
    ("unknown-format", '["A"]\nfamily = "x"\nthought_format = "r9"', r"profile 'A': field 'thought_format': unknown thought format 'r9'"),
    ("not-a-table", 'A = "x"', r"'A' must be a table of profile fields"),
    ("name-mismatch", '["A"]\nname = "B"\nfamily = "x"', r"profile 'A': field 'name' must be 'A'"),
    ("bad-format-table", '[formats.f]\nkind = "tags"\nopen = "<r>"', r"thought format 'f': field '\(table\)'|thought format 'f'.*close"),
    ("builtin-format-redefined", '[formats.r1]\nkind = "tags"\nopen = "<r>"\nclose = "</r>"', r"'r1' is built in"),
    ("bad-override", '["Vision-R1-7B"]\nmax_tokens = 0', r"profile 'Vision-R1-7B': field 'max_tokens'"),
]


@pytest.mark.parametrize("content,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_names_file_and_field(tmp_path, formats, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profiles([path])
    assert str(err.value).startswith(f"{path}: ")
    assert re.search(message, str(err.value)), str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: profiles file not found"):
        load_profiles([tmp_path / "nope.toml"])


def test_bad_inline_format_names_its_field(tmp_path, formats):
    path = tmp_path / "bad.toml"
    path.write_text('["A"]\nfamily = "x"\nthought_format = { name = "q", kind = "tags", opne = "<q>" }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"profile 'A': field 'thought_format.opne': Extra inputs"):
        load_profiles([path])
