"""The thought survives training: label masks through each architecture's template, thought-dropping
templates, multi-turn spans, the length rule and batches."""

from __future__ import annotations

import json

import pytest

from fixtures_tiny_vlm import ARCHITECTURES
from tis.core.errors import DataError
from tis.train.data import TrainRecord, load_set, part_text
from tis.train.template import IGNORE, Collator, Renderer

pytestmark = pytest.mark.slow

#: each tiny template's end-of-turn text after an assistant turn (part of the loss: the model learns to stop)
END_OF_TURN = {"llava": "</s>", "llava_next": "</s>", "qwen2_vl": "<|im_end|>\n", "qwen2_5_vl": "<|im_end|>\n",
               "qwen3_vl": "<|im_end|>\n", "mllama": "<|eot_id|>", "idefics3": "<end_of_utterance>\n"}

#: an R1-distill style template: assistant turns keep only what follows </think>
STRIPPING = (
    "{%- for message in messages -%}<|{{ message['role'] }}|>\n"
    "{%- set c = message['content'] if message['content'] is string else "
    "(message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('')) -%}"
    "{%- if message['role'] == 'user' and message['content'] is not string -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}<image>\n{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{ c.split('</think>')[-1] }}{%- else -%}{{ c }}{%- endif -%}"
    "</s>\n{%- endfor -%}{%- if add_generation_prompt -%}<|assistant|>\n{%- endif -%}"
)
#: a Qwen3-Thinking style template: strips the thought and writes an empty one in its place
EMPTY_THOUGHT = STRIPPING.replace("{{ c.split('</think>')[-1] }}", "<think>\n\n</think>\n\n{{ c.split('</think>')[-1] | trim }}")


def _renderer(path, **kw):
    from tis.train.model import load_processor, model_type_of

    config, model_type = model_type_of(path)
    return Renderer(load_processor(path, config), model_type, **kw)


@pytest.fixture(scope="module")
def tis_records(tis_dir):
    return load_set(str(tis_dir / "train_data.json")).records


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_the_decoded_label_mask_of_a_tis_record_is_its_thought_and_answer(arch, tiny_vlm_dirs, tis_records):
    r = _renderer(tiny_vlm_dirs[arch], max_length=4096)
    rec = tis_records[0]
    content = part_text(rec.messages[-1])
    enc = r.encode(rec, decode=True)
    assert enc.status == "ok" and enc.thought_in_loss and enc.answer_in_loss
    if arch == "qwen3_vl":
        # its generation prompt opens the thought: the model writes from the thought's first word on
        assert r.describe_template()["prefills_thought"]
        content = content.removeprefix("<think>\n")
    assert enc.loss_text == content + END_OF_TURN[arch]
    ids = enc.inputs["input_ids"][0].tolist()
    first = next(i for i, t in enumerate(enc.labels) if t != IGNORE)
    prompt = r.tokenizer.decode(ids[:first], skip_special_tokens=False)
    assert part_text(rec.messages[0]) in prompt and "<think>" not in prompt.replace(r.image_token, "")[:-10]
    assert all(t == IGNORE for t in enc.labels[:first]) and enc.labels[first:] == ids[first:]
    assert enc.n_image_tokens >= 1


def test_a_template_that_strips_the_thought_is_detected_and_trained_verbatim(tiny_vlm_dirs, tis_records):
    rec = tis_records[1]
    content = part_text(rec.messages[-1])
    strict = _renderer(tiny_vlm_dirs["llava"], chat_template=STRIPPING, handling="template")
    assert strict.describe_template()["behaviour"] == "drops the thought from assistant turns"
    enc = strict.encode(rec, decode=True)
    assert not enc.thought_in_loss and "</think>" not in enc.loss_text
    auto = _renderer(tiny_vlm_dirs["llava"], chat_template=STRIPPING)
    assert auto.describe_template()["handling"] == "verbatim"
    enc = auto.encode(rec, decode=True)
    assert enc.mode == "verbatim" and enc.thought_in_loss and enc.loss_text == content + "</s>"


def test_an_empty_thought_written_by_the_template_is_left_out(tiny_vlm_dirs, tis_records):
    rec = tis_records[2]
    r = _renderer(tiny_vlm_dirs["llava"], chat_template=EMPTY_THOUGHT)
    enc = r.encode(rec, decode=True)
    assert enc.mode == "verbatim" and enc.loss_text == part_text(rec.messages[-1]) + "</s>"
    assert enc.loss_text.count("<think>") == 1


def test_every_assistant_turn_of_a_conversation_is_in_the_loss_and_no_user_turn(tiny_vlm_dirs, tis_dir):
    rec = TrainRecord(id="multi", images=[next((tis_dir / "images").rglob("*.png"))], messages=[
        {"role": "system", "content": [{"type": "text", "text": "follow the policy"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<think>\nfirst thought\n</think>\nfirst answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<think>\nsecond thought\n</think>\nsecond one"}]},
    ])
    for arch in ("qwen2_5_vl", "mllama"):
        enc = _renderer(tiny_vlm_dirs[arch]).encode(rec, decode=True)
        assert enc.thought_in_loss and enc.answer_in_loss
        assert "first thought" in enc.loss_text and "second one" in enc.loss_text
        assert "question" not in enc.loss_text and "policy" not in enc.loss_text


def test_over_long_samples_are_cut_at_the_answer_end_or_dropped_and_image_tokens_never_cut(tiny_vlm_dirs,
                                                                                          tis_records):
    rec = tis_records[0]
    full = _renderer(tiny_vlm_dirs["llava_next"], max_length=4096).encode(rec)
    first = next(i for i, t in enumerate(full.labels) if t != IGNORE)
    cut = _renderer(tiny_vlm_dirs["llava_next"], max_length=first + 20).encode(rec, decode=True)
    assert cut.status == "cut" and cut.inputs["input_ids"].shape[1] == first + 20
    assert cut.n_image_tokens == full.n_image_tokens  # every image token kept
    assert cut.loss_tokens == 20 and not cut.thought_in_loss  # the check reports the thought as cut
    assert _renderer(tiny_vlm_dirs["llava_next"], max_length=first).encode(rec).status == "dropped"
    assert _renderer(tiny_vlm_dirs["llava_next"], max_length=first + 20, overlong="drop").encode(rec).status == \
        "dropped"


def test_a_batch_holds_each_records_labels_and_trains_through_the_real_model(tiny_vlm_dirs, tis_records):
    import torch
    from transformers import AutoModelForImageTextToText

    for arch in ("qwen2_5_vl", "mllama", "idefics3"):
        r = _renderer(tiny_vlm_dirs[arch], max_length=300)
        recs = tis_records[:2]
        batch = Collator(r, recs)([{"idx": 0}, {"idx": 1}])
        for j, rec in enumerate(recs):
            single = r.encode(rec)
            n = len(single.labels)
            assert batch["labels"][j, :n].tolist() == single.labels
            assert (batch["labels"][j, n:] == IGNORE).all() and (batch["attention_mask"][j, n:] == 0).all()
        assert batch["input_ids"].shape[1] <= 300
        model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dirs[arch])
        loss = model(**batch).loss
        assert torch.isfinite(loss) and loss.requires_grad


def test_an_unreadable_image_names_the_record(tmp_path, tiny_vlm_dirs):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    rows = [{"conversations": [{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "a"}],
             "images": ["broken.png"]}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    rec = load_set(str(tmp_path / "d.json")).records[0]
    with pytest.raises(DataError, match=r"d\.json\[0\]: cannot open image"):
        _renderer(tiny_vlm_dirs["llava"]).encode(rec)
