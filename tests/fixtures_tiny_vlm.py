"""Tiny random-weight vision-language models that build offline in a few seconds.

One builder per architecture the model profiles use (LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, Mllama, Idefics3; `ARCHITECTURES`), each writing a real model folder: config, weights,
tokenizer (a byte-level BPE trained in milliseconds), image processor and chat template. Used as a
pytest plugin (`tiny_llava_dir`, `tiny_vlm_dirs`, session scope) and by benchmark scripts. The
weights are random, so their text is noise; what they exercise is the real loading, chat-template,
batching and decoding code of the local backend.
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


def build_tiny_tokenizer(*, image_token: str = "<image>", special_tokens: tuple[str, ...] = (),
                         eos: str = "</s>", chat_tokens: tuple[str, ...] = ("<|user|>", "<|assistant|>", "<|system|>"),
                         extra_special: dict[str, str] | None = None):
    """A byte-level BPE over a small English vocabulary, trained in a few milliseconds.

    `special_tokens` are an architecture's own markers (vision start/end, chat headers);
    `extra_special` names some of them for the processor (e.g. {"image_token": "<|image|>"}).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys(["<pad>", "<s>", "</s>", image_token, eos, *special_tokens]))
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token=eos, pad_token="<pad>",
        extra_special_tokens={"image_token": image_token, **(extra_special or {})},
    )
    # some reasoning models mark their thought delimiters special (GLM-4.1V); decoding must keep them
    fast.add_tokens([THINK_OPEN, THINK_CLOSE], special_tokens=True)
    fast.add_tokens(list(chat_tokens))
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


# ---------------------------------------------------------------------------------------------
# The other architectures of the model profiles. Each builder writes a real model folder
# (config, random weights, tokenizer, image processor, chat template) in the layout its
# published checkpoints use, small enough that all of them build in a few seconds.

#: ChatML as the Qwen-VL templates write it; `{think}` is "<think>" and a newline for a Thinking model
#: (newlines are written as Jinja string escapes, since `{%-` would strip a literal one)
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n{think}' }}{%- endif -%}"
)
QWEN_TOKENS = ("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|endoftext|>")

#: Llama 3 headers, with the image marker where the image stands (Mllama)
LLAMA3_TEMPLATE = (
    "<|begin_of_text|>"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<|image|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|eot_id|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
)

#: Idefics3's "User:<image>text<end_of_utterance>\nAssistant:" turns
IDEFICS3_TEMPLATE = (
    "<|begin_of_text|>"
    "{%- for message in messages -%}"
    "{{ message['role'] | capitalize }}:"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<image>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_utterance>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}"
)


def _save_model(model_cls, config, tokenizer, path: Path, seed: int, open_gates: tuple[str, ...] = ()) -> None:
    """`open_gates`: names of zero-initialised gate parameters to set to 1, so the part they gate
    (Mllama's cross-attention to the image) changes the output of an untrained model."""
    import torch
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(open_gates) and open_gates:
                param.fill_(1.0)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path)


def _save_parts(path: Path, tokenizer, image_processor, chat_template: str) -> None:
    """Tokenizer, image processor and chat template as separate files, as the Qwen-VL repos ship them
    (their processor also has a video part, which is not written here)."""
    tokenizer.save_pretrained(path)
    image_processor.save_pretrained(path)
    (path / "chat_template.jinja").write_text(chat_template, encoding="utf-8")


def _qwen_text(tokenizer, **extra):
    head_dim = 16
    # the three M-RoPE sections (time, height, width) share head_dim / 2 rotary frequencies
    return dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, head_dim=head_dim, **extra,
    )


def _qwen_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))


def _qwen_tokenizer():
    return build_tiny_tokenizer(image_token="<|image_pad|>", special_tokens=QWEN_TOKENS, eos="<|im_end|>",
                                chat_tokens=("user", "assistant", "system"))


def build_tiny_qwen2_vl(path: str | Path, *, seed: int = 0) -> Path:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    path = Path(path)
    tokenizer = _qwen_tokenizer()
    config = Qwen2VLConfig(
        text_config=_qwen_text(tokenizer),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        **_qwen_ids(tokenizer),
    )
    _save_model(Qwen2VLForConditionalGeneration, config, tokenizer, path, seed)
    # 28x28 to 56x56 pixels: one to four merged image tokens per image
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)
    _save_parts(path, tokenizer, image_processor, CHATML_TEMPLATE.replace("{think}", ""))
    return path


def build_tiny_qwen2_5_vl(path: str | Path, *, seed: int = 0) -> Path:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    path = Path(path)
    tokenizer = _qwen_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text(tokenizer),
        # one windowed and one full-attention block, as the real tower alternates them
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        **_qwen_ids(tokenizer),
    )
    _save_model(Qwen2_5_VLForConditionalGeneration, config, tokenizer, path, seed)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)
    _save_parts(path, tokenizer, image_processor, CHATML_TEMPLATE.replace("{think}", ""))
    return path


def build_tiny_qwen3_vl(path: str | Path, *, seed: int = 0) -> Path:
    """A Qwen3-VL "Thinking" model: its template opens the thought (`<think>`) after the prompt."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    path = Path(path)
    tokenizer = _qwen_tokenizer()
    text = _qwen_text(tokenizer)
    text["rope_parameters"] = {**text["rope_parameters"], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                           num_position_embeddings=16, deepstack_visual_indexes=[0]),
        **_qwen_ids(tokenizer),
    )
    _save_model(Qwen3VLForConditionalGeneration, config, tokenizer, path, seed)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=64 * 64, patch_size=16,
                                               merge_size=2, temporal_patch_size=2)
    _save_parts(path, tokenizer, image_processor, CHATML_TEMPLATE.replace("{think}", THINK_OPEN + "\\n"))
    return path


def build_tiny_llava_next(path: str | Path, *, seed: int = 0) -> Path:
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    # any-resolution tiling over a 28-pixel base: a wide image gets a 28x56 grid
    pinpoints = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE]]
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    _save_model(LlavaNextForConditionalGeneration, config, tokenizer, path, seed)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=pinpoints,
    )
    LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    ).save_pretrained(path)
    return path


def build_tiny_mllama(path: str | Path, *, seed: int = 0) -> Path:
    """Llama-3.2-Vision's layout (LLaVA-CoT, Mulberry-11B): images reach the text through cross-attention."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil, MllamaProcessor

    path = Path(path)
    tokenizer = build_tiny_tokenizer(
        image_token="<|image|>", eos="<|eot_id|>",
        special_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|python_tag|>"),
        chat_tokens=("user", "assistant", "system"),
    )
    tokenizer.bos_token = "<|begin_of_text|>"
    config = MllamaConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_global_layers=1,
                           attention_heads=2, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, max_num_tiles=2,
                           intermediate_layers_indices=[0], vision_output_dim=64,
                           supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]]),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[1],
                         max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
    )
    _save_model(MllamaForConditionalGeneration, config, tokenizer, path, seed,
                open_gates=("cross_attn_attn_gate", "cross_attn_mlp_gate"))
    image_processor = MllamaImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, max_image_tiles=2)
    MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                    chat_template=LLAMA3_TEMPLATE).save_pretrained(path)
    return path


def build_tiny_idefics3(path: str | Path, *, seed: int = 0) -> Path:
    """Idefics3 (the SmolVLM layout): images split into tiles plus a global view, pixel-shuffled."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        LlamaConfig,
    )

    path = Path(path)
    rows_cols = tuple(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))
    tokenizer = build_tiny_tokenizer(
        eos="<end_of_utterance>", chat_tokens=("User:", "Assistant:", "System:"),
        special_tokens=("<|begin_of_text|>", "<fake_token_around_image>", "<global-img>", *rows_cols),
    )
    tokenizer.bos_token = "<|begin_of_text|>"
    tile, scale = 2 * PATCH_SIZE, 2
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=tile, patch_size=PATCH_SIZE),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    _save_model(Idefics3ForConditionalGeneration, config, tokenizer, path, seed)
    # images up to two tiles a side; (28 / 14)^2 patches per tile, pixel-shuffled by 2: one token a tile
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile})
    Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                      image_seq_len=(tile // PATCH_SIZE) ** 2 // scale ** 2,
                      chat_template=IDEFICS3_TEMPLATE).save_pretrained(path)
    return path


#: fixture name -> builder, one folder per architecture of the model profiles
ARCHITECTURES = {
    "llava": build_tiny_llava,
    "llava_next": build_tiny_llava_next,
    "qwen2_vl": build_tiny_qwen2_vl,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
    "qwen3_vl": build_tiny_qwen3_vl,
    "mllama": build_tiny_mllama,
    "idefics3": build_tiny_idefics3,
}


@pytest.fixture(scope="session")
def tiny_vlm_dirs(tmp_path_factory, tiny_llava_dir) -> dict[str, Path]:
    """Every architecture's tiny model folder, built once per test session."""
    root = tmp_path_factory.mktemp("tiny-vlms")
    dirs = {"llava": tiny_llava_dir}
    for name, build in ARCHITECTURES.items():
        if name not in dirs:
            dirs[name] = build(root / name)
    return dirs
