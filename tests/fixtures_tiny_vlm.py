"""A tiny random-weight LLaVA (CLIP vision + Llama text) that builds offline in a few seconds.

Used as a pytest plugin (`tiny_llava_dir`, session scope) and, through `build_tiny_llava`, by
benchmark scripts. The weights are random, so its text is noise; what it exercises is the real
loading, chat-template, batching and decoding code of the local backend.
"""

from __future__ import annotations

from pathlib import Path

import pytest

IMAGE_SIZE = 28
PATCH_SIZE = 14
#: image tokens per image: (28 / 14)^2 patches; the "default" strategy drops the CLS token
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|{{ message['role'] }}|>\n"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<image>\n"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}\n"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "</s>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>\n{%- endif -%}"
)

_WORDS = (
    "the a an is are was be can how what why who where when to of in on for with from by at and or "
    "not no yes this that these those it its image picture photo shows show see look text question "
    "answer think thought reason step first then so because safe unsafe harm harmful help helpful "
    "please explain describe list steps make build bomb weapon drug hack steal kill hurt person people "
    "child animal car house street sign red blue green white black cat dog tree sky water food cook "
    "recipe chemistry chemical fire gun knife money bank password account email phone computer code "
    "program virus malware attack defend protect law legal illegal police crime policy refuse sorry "
    "cannot will would should could might must i you he she we they me my your our their user model "
    "assistant system one two three four five ten hundred time day night year good bad right wrong "
    "true false maybe sure okay well also only very more most less some any every each other such "
    "like about into over under after before between through during without within against above"
).split()


def _corpus() -> list[str]:
    words = _WORDS
    # a few hundred short lines: enough for a byte-level BPE with merges over common words
    return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) for i in range(300)]


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<pad>", "<s>", "</s>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    # some reasoning models mark their thought delimiters special (GLM-4.1V); decoding must keep them
    fast.add_tokens([THINK_OPEN, THINK_CLOSE], special_tokens=True)
    fast.add_tokens(["<|user|>", "<|assistant|>", "<|system|>"])
    return fast


def build_tiny_llava(path: str | Path, *, seed: int = 0) -> Path:
    """Write a random-weight LlavaForConditionalGeneration with processor and chat template to `path`."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32,
    )
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config, image_token_id=image_token_id,
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path)

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")
