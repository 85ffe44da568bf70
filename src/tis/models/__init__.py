"""Model backends, registered by name and imported only when used."""

from __future__ import annotations

from tis.core.registry import Registry

MODELS = Registry("model backend")
MODELS.register("openai", "tis.models.openai_compat:OpenAIBackend",
                "any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted APIs)")
MODELS.register("hf", "tis.models.hf:HFBackend",
                "a local transformers vision-language model (folder or hub id)")
MODELS.register("vllm", "tis.models.vllm_engine:VLLMEngineBackend",
                "the in-process vLLM engine on GPUs (a folder or hub id; needs the tis[vllm] extra)")
MODELS.register("demo", "tis.models.demo:DemoBackend",
                "offline demo: Gemma-3-270M inside an untrained LLaVA vision tower. It cannot see "
                "images; it exists to exercise the pipeline, not to measure safety")
