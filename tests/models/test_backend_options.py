"""Backends are built from options their own pydantic model validates; plugins come through the
`tis.models` / `tis.judges` entry-point groups and receive their options."""

from __future__ import annotations

import pytest

from tis.core.errors import ConfigError
from tis.pipeline.config import make_config
from tis.pipeline.evaluate import build_backend

PLUGIN = '''
from pydantic import Field

from tis.core.types import ModelOutput
from tis.judges.refusal import RefusalJudge
from tis.models.base import BackendOptions, ModelBackend


class EchoBackend(ModelBackend):
    class Options(BackendOptions):
        model: str = Field(description="a greeting name")
        loudness: int = Field(1, ge=1, le=3)
        device: str = "auto"

    def __init__(self, *, model, loudness=1, device="auto"):
        self.model, self.loudness, self.device = model, loudness, device

    @property
    def identity(self):
        return {"backend": "echo", "model": self.model, "loudness": self.loudness}

    async def generate(self, samples, params):
        return [[ModelOutput(text=s.text + "!" * self.loudness)] for s in samples]


class BareBackend(ModelBackend):  # declares no Options: takes the model argument alone
    def __init__(self, model=None):
        self.model = model

    @property
    def identity(self):
        return {"backend": "bare", "model": self.model}

    async def generate(self, samples, params):
        return [[ModelOutput(text="")] for _ in samples]


class ShoutJudge(RefusalJudge):
    pass
'''


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """A real installed distribution (dist-info with entry points) on sys.path."""
    (tmp_path / "tis_echo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "tis_echo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tis-echo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tis.models]\necho = tis_echo_plugin:EchoBackend\nbare = tis_echo_plugin:BareBackend\n"
        "hf = tis_echo_plugin:EchoBackend\n\n[tis.judges]\nshout = tis_echo_plugin:ShoutJudge\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from tis.judges import JUDGES
    from tis.models import MODELS

    for registry in (MODELS, JUDGES):  # discover again, and forget the plugin afterwards
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_entry_points_loaded", False)
    return MODELS, JUDGES


def test_a_plugin_backend_receives_its_options(plugin):
    models, judges = plugin
    assert {"echo", "bare", "hf"} <= set(models.names())
    assert "tis_echo_plugin" not in models.entry("hf").target  # a plugin cannot replace a built-in
    backend = build_backend(make_config(model="echo:hello", device="cpu", model_options={"loudness": 3}))
    assert type(backend).__name__ == "EchoBackend"
    assert (backend.model, backend.loudness, backend.device) == ("hello", 3, "cpu")
    with pytest.raises(ConfigError, match=r"backend 'echo'.*'loudness' \(--model-set loudness=\.\.\.\)"):
        build_backend(make_config(model="echo:hello", model_options={"loudness": 9}))
    with pytest.raises(ConfigError, match=r"backend 'echo'.*'base_url' \(--base-url\) does not apply"):
        build_backend(make_config(model="echo:hello", base_url=["http://127.0.0.1:1/v1"]))
    bare = build_backend(make_config(model="bare:thing"))
    assert bare.model == "thing"
    from tis.judges.spec import parse_judge_spec

    assert "shout" in judges.names() and type(parse_judge_spec("shout")).__name__ == "ShoutJudge"


@pytest.mark.parametrize("settings, message", [
    (dict(model="openai:m"), r"backend 'openai': needs --base-url"),
    (dict(model="openai", base_url=["http://127.0.0.1:1/v1"]), r"openai:\.\.\. needs the served model's name"),
    (dict(model="hf"), r"hf:\.\.\. needs a model folder"),
    (dict(model="demo:x"), r"--model demo takes no argument"),
    (dict(model="hf:/tmp/m", api_key_env="HOME"), r"backend 'hf'.*'api_key_env' \(--api-key-env\) does not apply"),
    (dict(model="hf:/tmp/m", dtype="float8"), r"backend 'hf'.*'dtype' \(--dtype\)"),
    (dict(model="vllm:/tmp/m", device="cuda:1"), r"backend 'vllm'.*'device' \(--device\) does not apply"),
    (dict(model="demo", model_options={"batch_size": 0}), r"backend 'demo'.*'batch_size'.*greater than or equal to 1"),
    (dict(model="hf:/tmp/m", model_options={"colour": "red"}), r"backend 'hf'.*'colour'.*its options: base, revision"),
])
def test_bad_backend_options_name_the_option_and_the_backend(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_backend(make_config(**settings))


def test_settings_reach_the_builtin_backends(tmp_path):
    backend = build_backend(make_config(model="openai:m", base_url=["http://127.0.0.1:1/v1"], timeout_s=7,
                                        model_options={"extra_body": {"enable_thinking": True}}))
    assert (backend.timeout_s, backend.extra_body) == (7.0, {"enable_thinking": True})
    hf = build_backend(make_config(model=f"hf:{tmp_path}", device="cpu", batch_size=3,
                                   model_options={"revision": "main", "device_map": "auto"}))
    assert (hf.device, hf.batch_size, hf.revision, hf.device_map) == ("cpu", 3, "main", "auto")
    demo = build_backend(make_config(model="demo", batch_size=2))
    assert demo.batch_size == 2
