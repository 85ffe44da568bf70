"""The in-process vLLM engine (`vllm.LLM`): batched multimodal generation on GPUs.

vLLM is an optional extra (`pip install 'tis[vllm]'`) that lives in its own environment: its
releases pin a transformers older than the one the `hf` backend uses. It is imported in
`start()` only. Where vLLM runs as a server instead, use the `openai` backend
(docs/serving.md has the `vllm serve` command lines).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tis.core.errors import ConfigError, ModelError
from tis.models.base import BackendOptions, GenerationParams, ModelBackend
from tis.core.types import ModelOutput, Sample, Usage
from tis.models.local import LocalModel, check_dtype, locate, looks_like_path
from tis.models.messages import chat_messages

log = logging.getLogger(__name__)



def vllm_missing_reason() -> str | None:
    """Why the engine cannot run here (no vLLM, no CUDA GPU), or None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return ("the vllm backend needs vLLM, which is not installed: pip install 'tis[vllm]' in an environment "
                "of its own (vLLM pins transformers < 5.20), or serve the model with `vllm serve` and use "
                "--model openai:NAME --base-url URL")
    import torch

    if not torch.cuda.is_available():
        return ("the vllm backend needs a CUDA GPU and none is visible here: run it on a GPU machine, or use "
                "--model hf:PATH on this one")
    return None


class VLLMEngineBackend(ModelBackend):
    """A vision-language model run by vLLM inside this process.

    `limit_mm_per_prompt` is the most images one prompt may carry (vLLM reserves memory for
    them); multi-image benchmarks such as MIS need it above 1.
    """

    #: one engine call at a time: vLLM batches internally, and `LLM` is not thread-safe
    max_concurrency = 1

    class Options(BackendOptions):
        model: str = Field(description="a model folder or hub id (the part after 'vllm:')")
        revision: str | None = Field(None, description="hub revision: branch, tag or commit (default main)")
        tensor_parallel_size: int = Field(1, ge=1)
        max_model_len: int | None = Field(None, ge=1)
        limit_mm_per_prompt: int = Field(4, ge=1, description="most images in one prompt")
        gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        batch_size: int = Field(64, ge=1)
        trust_remote_code: bool = False

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        limit_mm_per_prompt: int = 4,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "auto",
        batch_size: int = 64,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ):
        check_dtype(dtype, "vllm backend")
        for name, value in (("tensor_parallel_size", tensor_parallel_size), ("batch_size", batch_size),
                            ("limit_mm_per_prompt", limit_mm_per_prompt)):
            if value < 1:
                raise ConfigError(f"vllm backend: {name} must be at least 1, not {value}.")
        if max_model_len is not None and max_model_len < 1:
            raise ConfigError(f"vllm backend: max_model_len must be at least 1, not {max_model_len}.")
        if not 0 < gpu_memory_utilization <= 1:
            raise ConfigError("vllm backend: gpu_memory_utilization is a fraction of the GPU's memory in (0, 1], "
                              f"not {gpu_memory_utilization}.")
        self.model_name = model
        self.revision = revision
        local = Path(model).expanduser()
        self._folder = local.resolve() if local.exists() or looks_like_path(model) else None
        self._loc: LocalModel | None = None
        self.tensor_parallel_size = tensor_parallel_size
        self.max_model_len = max_model_len
        self.limit_mm_per_prompt = limit_mm_per_prompt
        self.gpu_memory_utilization = gpu_memory_utilization
        self.dtype = dtype
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self._llm: Any = None
        self._images: Any = None
        self._warned_budget = False

    # -- identity ---------------------------------------------------------------------------

    def located(self) -> LocalModel:
        """The model's files (folder or hub snapshot); a PEFT adapter folder is refused: vLLM serves
        adapters only as LoRA requests, so merge it into its base model first."""
        if self._loc is None:
            try:
                loc = locate(self.model_name, revision=self.revision, who="vllm model")
            except ConfigError:
                reason = vllm_missing_reason()
                if reason:  # the engine cannot run here at all: say that first
                    raise ConfigError(reason) from None
                raise
            if loc.is_adapter:
                raise ConfigError(f"vllm backend: '{loc.shown()}' is a PEFT adapter folder; merge it into its base "
                                  "model (a merged folder loads as any model) or run it with --model hf:ADAPTER_DIR")
            self._loc = loc
        return self._loc

    @property
    def identity(self) -> dict[str, Any]:
        # the same weights identity as the hf backend computes, under another backend name:
        # different engines give different numerics, so their cached generations are kept apart
        return {"backend": "vllm", **self.located().identity()}

    def describe(self) -> dict[str, Any]:
        return {**self.identity, **self.located().describe(), "tensor_parallel_size": self.tensor_parallel_size,
                "max_model_len": self.max_model_len, "limit_mm_per_prompt": self.limit_mm_per_prompt,
                "gpu_memory_utilization": self.gpu_memory_utilization, "dtype": self.dtype,
                "batch_size": self.batch_size}

    def _model_ref(self) -> str:
        return str(self._folder) if self._folder is not None else self.model_name

    # -- engine -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._llm is None:
            reason = vllm_missing_reason()
            if reason:
                raise ConfigError(reason)
            self.located()  # a missing folder, an adapter, an unresolvable hub id: a clear error first
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        from vllm import LLM

        from tis.models.openai_compat import DataURLCache

        loc = self.located()
        kwargs: dict[str, Any] = {
            "model": loc.source(),
            "tensor_parallel_size": self.tensor_parallel_size,
            "limit_mm_per_prompt": {"image": self.limit_mm_per_prompt},
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": self.dtype,
            "trust_remote_code": self.trust_remote_code,
        }
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        if loc.hub_id is not None and loc.folder is None:
            kwargs["revision"] = loc.commit  # the commit the identity names, not whatever main is later
        try:
            self._llm = LLM(**kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"vLLM cannot load model '{self._model_ref()}': {' '.join(str(exc).split())}") from exc
        self._images = DataURLCache()

    async def close(self) -> None:
        if self._llm is None:
            return
        self._llm = None
        gc.collect()
        import torch

        torch.cuda.empty_cache()

    # -- generation -------------------------------------------------------------------------

    def _check_images(self, samples: list[Sample]) -> None:
        for sample in samples:
            count = len(sample.images)
            if count > self.limit_mm_per_prompt:
                raise ConfigError(
                    f"sample {sample.id} has {count} images, more than limit_mm_per_prompt={self.limit_mm_per_prompt}: "
                    f"raise the vllm backend's limit_mm_per_prompt to at least {count}."
                )

    def messages(self, sample: Sample) -> list[dict[str, Any]]:
        """OpenAI-style chat messages, images as data URLs (vLLM applies the model's chat template)."""
        if self._images is None:
            from tis.models.openai_compat import DataURLCache

            self._images = DataURLCache()
        return chat_messages(sample, "openai", image_url=self._images.data_url)

    async def generate(self, samples: list[Sample], params: GenerationParams) -> list[list[ModelOutput]]:
        if not samples:
            return []
        self._check_images(samples)
        if self._llm is None:
            await self.start()
        return await asyncio.to_thread(self._generate_sync, samples, params)

    def _generate_sync(self, samples: list[Sample], params: GenerationParams) -> list[list[ModelOutput]]:
        from vllm import SamplingParams

        if params.max_thought_tokens is not None and not self._warned_budget:
            self._warned_budget = True
            log.warning("the vllm engine bounds a thought by max_tokens only; max_thought_tokens=%d is not enforced "
                        "(an unclosed thought is still marked truncated)", params.max_thought_tokens)
        sampling = params.temperature > 0
        # greedy decoding gives n identical completions: decode once and repeat it
        n_run = params.n if sampling else 1
        sp = SamplingParams(n=n_run, temperature=params.temperature, top_p=params.top_p if sampling else 1.0,
                            max_tokens=params.max_tokens, seed=params.seed)
        conversations = [self.messages(s) for s in samples]
        chat_kwargs: dict[str, Any] = {}
        prefilled = [bool(s.prefill) for s in samples]
        if any(prefilled) and not all(prefilled):  # one chat call continues all its turns or none
            merged: dict[int, list[ModelOutput]] = {}
            for flag in (True, False):
                group = [i for i, f in enumerate(prefilled) if f is flag]
                merged.update(zip(group, self._generate_sync([samples[i] for i in group], params)))
            return [merged[i] for i in range(len(samples))]
        if all(prefilled):  # the assistant turn starts with the prefill and the model continues it
            for conv, s in zip(conversations, samples):
                conv.append({"role": "assistant", "content": s.prefill})
            chat_kwargs = {"add_generation_prompt": False, "continue_final_message": True}
        try:
            results = self._llm.chat(conversations, sp, use_tqdm=False, **chat_kwargs)
        except ValueError as exc:  # vLLM reports a prompt over max_model_len or a bad image this way
            raise ModelError(f"vLLM refused the batch: {' '.join(str(exc).split())}", retryable=False) from exc
        outputs: list[list[ModelOutput]] = []
        for result in results:
            prompt_tokens = len(result.prompt_token_ids or [])
            outs = [
                ModelOutput(text=c.text, finish_reason=c.finish_reason,
                            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(c.token_ids)))
                for c in result.outputs
            ]
            if chat_kwargs:
                prefill = samples[len(outputs)].prefill or ""
                outs = [o.model_copy(update={"text": prefill + o.text}) for o in outs]
            outputs.append(outs if sampling else outs * params.n)
        return outputs
