"""Model backends, registered by name and imported only when used.

Other packages add backends through the entry-point group `tis.models`
(`name = "package.module:Class"`); a backend class declares its constructor options as a pydantic
model (`Options`, see `tis.models.base.BackendOptions`), and `build_model` validates them before
the backend is built, so a plugin backend receives its own options and a wrong one is an error
naming the option and the backend.
"""

from __future__ import annotations

from typing import Any

from tis.core.registry import PluginRegistry

ENTRY_POINT_GROUP = "tis.models"

MODELS = PluginRegistry("model backend", ENTRY_POINT_GROUP)
MODELS.register("openai", "tis.models.openai_compat:OpenAIBackend",
                "any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted APIs)")
MODELS.register("hf", "tis.models.hf:HFBackend",
                "a local transformers vision-language model (folder, PEFT adapter folder or hub id)")
MODELS.register("vllm", "tis.models.vllm_engine:VLLMEngineBackend",
                "the in-process vLLM engine on GPUs (a folder or hub id; needs the tis[vllm] extra)")
MODELS.register("demo", "tis.models.demo:DemoBackend",
                "offline demo: Gemma-3-270M inside an untrained LLaVA vision tower. It cannot see "
                "images; it exists to exercise the pipeline, not to measure safety")


def options_model(kind: str) -> Any:
    """The pydantic model of backend `kind`'s constructor options."""
    from tis.models.base import ModelArgOptions

    return getattr(MODELS.load(kind), "Options", None) or ModelArgOptions


def settings_options(kind: str, settings: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The options that general settings (`name -> (value, default)`, e.g. a run's --timeout-s or a
    teacher's `timeout_s`) give backend `kind`: a setting its `Options` take is passed when set; one
    they do not take is passed, so that `build_model` refuses it by name, only when it was changed
    from its default."""
    fields = options_model(kind).model_fields
    options: dict[str, Any] = {}
    for key, (value, default) in settings.items():
        if (key in fields and value not in (None, [], {})) or (key not in fields and value != default):
            options[key] = value
    return options


def build_model(kind: str, options: dict[str, Any], *, flags: dict[str, str] | None = None) -> Any:
    """The backend `kind` built from `options` (its `model` option is what follows the colon in
    --model KIND:MODEL), validated by the backend's `Options`. `flags` maps an option to the
    flag or setting it came from, for the error message. Bad options raise ConfigError."""
    from pydantic import ValidationError

    from tis.core.errors import ConfigError
    cls = MODELS.load(kind)
    opts_cls = options_model(kind)
    fields = opts_cls.model_fields
    flags = flags or {}

    def named(key: str) -> str:
        flag = flags.get(key)
        return f"option '{key}' ({flag})" if flag else f"option '{key}'"

    if "model" in options and "model" not in fields:
        raise ConfigError(f"--model {kind} takes no argument after the colon (got '{kind}:{options['model']}')")
    try:
        validated = opts_cls.model_validate(options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "extra_forbidden":
                known = ", ".join(k for k in fields if k != "model") or "none"
                problems.append(f"{named(key)} does not apply to it (its options: {known})")
            elif err["type"] == "missing" and key == "model":
                what = fields["model"].description or "a model"
                problems.append(f"--model {kind}:... needs {what}")
            elif err["type"] == "missing":
                problems.append(f"needs {flags[key]}" if key in flags else f"needs option '{key}'")
            else:
                problems.append(f"{named(key)}: {err['msg']}")
        raise ConfigError(f"model backend '{kind}': " + "; ".join(problems)) from None
    return cls.from_options(validated) if hasattr(cls, "from_options") else cls(**validated.model_dump(exclude_unset=True))
