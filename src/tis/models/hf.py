"""A local transformers vision-language model: `AutoModelForImageTextToText` + `AutoProcessor`.

torch and transformers are imported inside the methods, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tis.core.errors import ConfigError, ModelError
from tis.models.base import BackendOptions, GenerationParams, ModelBackend
from tis.core.types import ImagePart, ModelOutput, Sample, Usage
from tis.models.local import LocalModel, check_dtype, load_local_model, locate, looks_like_path, one_line
from tis.models.messages import chat_messages

log = logging.getLogger(__name__)

#: model types whose processors take each sample's images as a list of its own (the others take
#: one flat list and find each image's place from the image markers in the text)
_IMAGES_PER_SAMPLE = frozenset({"mllama", "idefics2", "idefics3", "smolvlm"})
#: model types where a text-only prompt batched beside image prompts is computed differently than
#: alone (Mllama: its rows attend, unmasked, to the batch's padding images); such batches are split
_TEXT_ONLY_APART = frozenset({"mllama"})


class HFBackend(ModelBackend):
    """A vision-language model run locally with transformers, batched with left padding.

    `model` is a folder saved with save_pretrained, a PEFT adapter folder (its base from the
    adapter's config or `base`), or a hub id (at `revision`). Its identity is the content of its
    weights (see `tis.models.local`).
    """

    max_concurrency = 1

    class Options(BackendOptions):
        model: str = Field(description="a model folder, a PEFT adapter folder or a hub id (the part after 'hf:')")
        base: str | None = Field(None, description="the base model of a PEFT adapter folder "
                                                   "(default: the adapter's base_model_name_or_path)")
        revision: str | None = Field(None, description="hub revision: branch, tag or commit (default main)")
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        batch_size: int = Field(4, ge=1)
        device_map: str | None = None
        trust_remote_code: bool = False

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 4,
        device_map: str | None = None,
        trust_remote_code: bool = False,
        thought_open: str = "<think>",
        thought_close: str = "</think>",
        base: str | None = None,
        revision: str | None = None,
    ):
        check_dtype(dtype, "hf backend")
        if batch_size < 1:
            raise ConfigError(f"hf backend: batch_size must be at least 1, not {batch_size}.")
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.device_map = device_map
        self.trust_remote_code = trust_remote_code
        self.base = base
        self.revision = revision
        # the thought format's delimiters, for the thought budget (`max_thought_tokens`)
        self.thought_open = thought_open
        self.thought_close = thought_close
        self._folder: Path | None = None  # set for local folders
        local = Path(model).expanduser()
        if local.exists() or looks_like_path(model):
            self._folder = local.resolve()
        self._loc: LocalModel | None = None  # found on first need (identity or loading)
        self._model: Any = None
        self._processor: Any = None
        self._model_type: str | None = None

    # -- identity ---------------------------------------------------------------------------

    def located(self) -> LocalModel:
        """The model's files: folder, adapter + base, or hub snapshot (ConfigError if none)."""
        if self._loc is None:
            self._loc = locate(self.model_name, revision=self.revision, base=self.base, who="model")
        return self._loc

    @property
    def identity(self) -> dict[str, Any]:
        ident = {"backend": "hf", **self.located().identity()}
        # a thought budget closes the thought with these tags, so other tags give other outputs
        if (self.thought_open, self.thought_close) != ("<think>", "</think>"):
            ident["thought_tags"] = [self.thought_open, self.thought_close]
        return ident

    def describe(self) -> dict[str, Any]:
        return {**self.identity, **self.located().describe(), "device": self.device, "dtype": self.dtype,
                "batch_size": self.batch_size}

    def _model_ref(self) -> str:
        return str(self._folder) if self._folder is not None else self.model_name

    # -- loading ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._model is None:
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        loc = self.located()
        weights = loc.base if loc.base is not None else loc
        try:
            config = AutoConfig.from_pretrained(weights.source(), trust_remote_code=self.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the config of model '{weights.shown()}': {one_line(exc)}") from exc
        model_type = getattr(config, "model_type", None)
        remote = self.trust_remote_code and "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
        if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not remote:
            archs = ", ".join(getattr(config, "architectures", None) or []) or "unknown"
            raise ConfigError(
                f"model '{weights.shown()}' is {archs} (model_type '{model_type}'), which "
                "AutoModelForImageTextToText does not support: the hf backend runs vision-language models. "
                f"Supported model types: {', '.join(sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES))}."
            )
        try:
            processor = _load_processor(AutoProcessor, loc.processor_source(), config, self.trust_remote_code)
        except OSError as exc:
            raise ConfigError(f"cannot load the processor of model '{loc.shown()}': {one_line(exc)}") from exc
        except ImportError as exc:  # a package the model's processor needs (num2words, ...)
            raise ConfigError(f"model '{loc.shown()}' needs a package that is not installed: "
                              f"{one_line(exc)}") from exc
        model = load_local_model(loc, AutoModelForImageTextToText, device=self.device, dtype=self.dtype,
                                 device_map=self.device_map, trust_remote_code=self.trust_remote_code)

        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None or not getattr(processor, "chat_template", None):
            raise ConfigError(
                f"model '{loc.shown()}' has no processor with a chat template; the hf backend needs one "
                "to build prompts (save it with processor.save_pretrained, or add chat_template.jinja)."
            )
        tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

        self._processor = processor
        self._model = model
        self._model_type = model_type
        self._eos_ids = _eos_ids(model, tokenizer)
        self._skip_ids = self._special_ids(tokenizer, processor)

    def _special_ids(self, tokenizer: Any, processor: Any) -> set[int]:
        # only true special tokens are dropped; added tokens such as <think> stay in the text
        ids = set(self._eos_ids)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "cls_token_id",
                     "sep_token_id", "mask_token_id"):
            value = getattr(tokenizer, name, None)
            if isinstance(value, int):
                ids.add(value)
        for name in ("image_token_id", "video_token_id"):
            value = getattr(processor, name, None)
            if isinstance(value, int):
                ids.add(value)
        return ids

    async def close(self) -> None:
        on_cuda = self._model is not None and str(getattr(self._model, "device", "")).startswith("cuda")
        self._model = None
        self._processor = None
        gc.collect()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    # -- generation -------------------------------------------------------------------------

    async def generate(self, samples: list[Sample], params: GenerationParams) -> list[list[ModelOutput]]:
        if not samples:
            return []
        if self._model is None:
            await self.start()
        return await asyncio.to_thread(self._generate_sync, samples, params)

    def _generate_sync(self, samples: list[Sample], params: GenerationParams) -> list[list[ModelOutput]]:
        import torch

        if params.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, not {params.max_tokens}.")
        if self._model_type in _TEXT_ONLY_APART:
            with_images = [i for i, s in enumerate(samples) if s.images]
            if 0 < len(with_images) < len(samples):
                text_only = [i for i, s in enumerate(samples) if not s.images]
                merged: dict[int, list[ModelOutput]] = {}
                for group in (with_images, text_only):
                    merged.update(zip(group, self._generate_sync([samples[i] for i in group], params)))
                return [merged[i] for i in range(len(samples))]
        processor, model = self._processor, self._model
        inputs, texts = self.encode(samples)

        sampling = params.temperature > 0
        # greedy decoding gives n identical completions: decode once and repeat it
        n_run = params.n if sampling else 1
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sampling,
            "num_return_sequences": n_run,
            "pad_token_id": processor.tokenizer.pad_token_id,
        }
        if sampling:
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p)
        budget = None
        if params.max_thought_tokens is not None and params.max_thought_tokens < params.max_tokens:
            budget = self._thought_budget(params.max_thought_tokens, texts, n_run, inputs["input_ids"].shape[1],
                                         [s.prefill or "" for s in samples])
            gen_kwargs["logits_processor"] = [budget]
        if params.seed is not None:
            torch.manual_seed(params.seed)
        try:
            with torch.inference_mode():
                sequences = model.generate(**inputs, **gen_kwargs)
        except torch.OutOfMemoryError as exc:
            raise ModelError(
                f"out of memory generating a batch of {len(samples)} on {model.device}; lower the batch size "
                "or max_tokens.", retryable=False,
            ) from exc

        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = sequences[:, prompt_len:].tolist()
        results: list[list[ModelOutput]] = []
        for i in range(len(samples)):
            outputs = [
                self._output(new_tokens[i * n_run + j], int(prompt_tokens[i]), params.max_tokens,
                             budget_hit=budget is not None and i * n_run + j in budget.hit)
                for j in range(n_run)
            ]
            prefill = samples[i].prefill
            if prefill:  # the completion's text begins with what the turn was started with
                outputs = [o.model_copy(update={"text": prefill + o.text}) for o in outputs]
            results.append(outputs if sampling else outputs * params.n)
        return results

    def encode(self, samples: list[Sample]) -> tuple[dict[str, Any], list[str]]:
        """A batch's model inputs (on the model's device, left-padded) and the prompts they render."""
        processor, model = self._processor, self._model
        # a prefill continues the assistant turn the generation prompt opens
        texts = [self._with_prefill(processor.apply_chat_template(sample_messages(s), add_generation_prompt=True,
                                                                   tokenize=False), s.prefill) for s in samples]
        per_sample = [[open_image(part) for part in s.images] for s in samples]
        images: list[Any] | None
        if self._model_type in _IMAGES_PER_SAMPLE:
            images = per_sample if any(per_sample) else None
        else:
            images = [img for imgs in per_sample for img in imgs] or None
        bos = processor.tokenizer.bos_token
        # a template that writes the BOS itself must not get a second one from the tokenizer
        has_bos = bool(bos) and all(t.startswith(bos) for t in texts)
        inputs = processor(text=texts, images=images, padding=True, return_tensors="pt",
                           add_special_tokens=not has_bos)
        inputs = {
            k: (v.to(model.device, dtype=model.dtype) if v.is_floating_point() else v.to(model.device))
            for k, v in inputs.items() if hasattr(v, "to")
        }
        return inputs, texts

    def _with_prefill(self, text: str, prefill: str | None) -> str:
        """The prompt continued by the prefill; a template that opened the thought itself (Qwen3-VL
        Thinking) does not get the prefill's opening tag a second time."""
        if not prefill:
            return text
        opened = self.thought_open.strip()
        if opened and text.rstrip().endswith(opened) and prefill.lstrip().startswith(opened):
            return text + prefill.lstrip()[len(opened):].lstrip("\n")
        return text + prefill

    def _thought_budget(self, max_thought_tokens: int, texts: list[str], n_run: int, prompt_len: int,
                       prefills: list[str] | None = None) -> Any:
        if not self.thought_close.strip():
            raise ConfigError("max_thought_tokens needs the thought format's closing tag (thought_close); "
                              "this format has none")
        tokenizer = self._processor.tokenizer
        close_ids = tokenizer.encode(self.thought_close, add_special_tokens=False)
        if not close_ids:
            raise ConfigError(f"the closing tag '{self.thought_close}' encodes to no tokens with this model's tokenizer")
        opened = self.thought_open.strip()
        # a template that ends with the opening tag (Qwen3-VL Thinking) starts the thought itself
        # so does a prefill that opens the thought without closing it
        close = self.thought_close.strip()
        prefilled = [bool(opened) and (t.rstrip().endswith(opened) or (opened in p and close not in p.rsplit(opened, 1)[1]))
                     for t, p in zip(texts, prefills or [""] * len(texts)) for _ in range(n_run)]
        return ThoughtBudget(max_thought_tokens, close_ids, prompt_len, prefilled=prefilled,
                             thought_open=opened, thought_close=self.thought_close.strip(),
                             decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=False),
                             eos_ids=self._eos_ids)

    def _output(self, tokens: list[int], prompt_tokens: int, max_tokens: int, *,
                budget_hit: bool = False) -> ModelOutput:
        end = next((k for k, t in enumerate(tokens) if t in self._eos_ids), None)
        if end is None:
            kept = tokens
            finish = "length" if len(tokens) >= max_tokens else "stop"
            completion_tokens = len(tokens)
        else:
            kept = tokens[:end]
            finish = "stop"
            completion_tokens = end + 1  # the end token counts, as servers count it
        if budget_hit:
            # the thought was cut at its budget (and closed for it): the split marks it truncated
            finish = "thought_budget"
        text = self._processor.tokenizer.decode(
            [t for t in kept if t not in self._skip_ids], skip_special_tokens=False
        )
        return ModelOutput(
            text=text, finish_reason=finish,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        )


class ThoughtBudget:
    """A logits processor that closes a thought once it has run `budget` generated tokens.

    At the budget step it looks at each row once: if a thought is open (the prompt opened it, or
    the output starts with the opening tag) and not yet closed, the closing tag's tokens are forced
    one per step and the row is recorded in `hit`; the model then writes its answer.
    """

    def __init__(self, budget: int, close_ids: list[int], prompt_len: int, *, prefilled: list[bool],
                 thought_open: str, thought_close: str, decode: Any, eos_ids: set[int]):
        if budget < 1:
            raise ConfigError(f"max_thought_tokens must be at least 1, not {budget}.")
        self.budget = budget
        self.close_ids = close_ids
        self.prompt_len = prompt_len
        self.prefilled = prefilled
        self.thought_open = thought_open
        self.thought_close = thought_close
        self.decode = decode
        self.eos_ids = eos_ids
        self.hit: set[int] = set()
        self._forcing: dict[int, int] = {}  # row -> index of the next closing-tag token to force

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated = input_ids.shape[1] - self.prompt_len
        if generated == self.budget:
            for row in range(input_ids.shape[0]):
                if self._thought_open(input_ids[row, self.prompt_len:].tolist(), row):
                    self.hit.add(row)
                    self._forcing[row] = 0
        for row, k in list(self._forcing.items()):
            token = self.close_ids[k]
            scores[row, :] = float("-inf")
            scores[row, token] = 0.0
            if k + 1 < len(self.close_ids):
                self._forcing[row] = k + 1
            else:
                del self._forcing[row]
        return scores

    def _thought_open(self, tokens: list[int], row: int) -> bool:
        if any(t in self.eos_ids for t in tokens):
            return False  # finished before the budget
        text = self.decode(tokens)
        started = self.prefilled[row] or (bool(self.thought_open) and text.lstrip().startswith(self.thought_open))
        return started and self.thought_close not in text


def _load_processor(auto_processor: Any, source: str, config: Any, trust_remote_code: bool) -> Any:
    """The model's processor; without torchvision, the same processor less its video part.

    Some processors (Qwen-VL, SmolVLM) load a video processor that needs torchvision even when
    only images are passed; images alone do not need it.
    """
    try:
        return auto_processor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ImportError:
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
        from transformers.utils import is_torchvision_available

        cls = PROCESSOR_MAPPING[type(config)] if type(config) in PROCESSOR_MAPPING else None
        if is_torchvision_available() or cls is None or "video_processor" not in cls.get_attributes():
            raise
        log.info("torchvision is not installed: loading %s without its video processor", cls.__name__)
        return _image_only(cls).from_pretrained(source)


def _image_only(cls: Any) -> Any:
    class ImageOnly(cls):
        # the sub-processors are read from __init__'s parameters: leaving video_processor out of
        # them is what keeps it from being loaded
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            kwargs.pop("video_processor", None)
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             chat_template=chat_template, **kwargs)

    ImageOnly.__name__ = ImageOnly.__qualname__ = cls.__name__
    return ImageOnly


def sample_messages(sample: Sample) -> list[dict[str, Any]]:
    """Chat messages for a processor's chat template, content parts kept in their order."""
    return chat_messages(sample, "processor")


def open_image(part: ImagePart) -> Any:
    from PIL import Image

    try:
        with Image.open(part.path) as img:
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ModelError(f"cannot open image '{part.path}': {one_line(exc)}", retryable=False) from exc


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
