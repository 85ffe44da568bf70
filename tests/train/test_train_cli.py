"""`tis train check / merge` and the faults a user meets: one line, exit 2 (exit 1 when the check fails)."""

from __future__ import annotations

import json
import sys

import pytest

from tis.cli import main

pytestmark = pytest.mark.slow

STRIP_THOUGHT = (  # assistant turns keep only what follows </think>, as R1-distill templates do
    "{%- for message in messages -%}<|{{ message['role'] }}|>\n"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}<image>\n"
    "{%- elif message['role'] == 'assistant' -%}{{ part['text'].split('</think>')[-1] }}"
    "{%- else -%}{{ part['text'] }}{%- endif -%}{%- endfor -%}</s>\n"
    "{%- endfor -%}{%- if add_generation_prompt -%}<|assistant|>\n{%- endif -%}"
)


def test_check_prints_what_the_loss_covers_per_sample(tiny_vlm_dirs, tis_dir, capsys):
    rc = main(["train", "check", "--model", str(tiny_vlm_dirs["qwen2_vl"]), "--data", str(tis_dir / "train_data.json"),
               "--samples", "2", "--max-length", "4096"])
    out = capsys.readouterr().out
    assert rc == 0
    raw = json.loads((tis_dir / "train_data.json").read_text())
    assert out.count("-- loss covers:") == 2 and "image tokens" in out and "truncation: none" in out
    assert raw[1]["conversations"][1]["value"] + "<|im_end|>" in out
    assert "ok: the thought and the answer are inside the loss in all 2" in out


def test_check_fails_on_a_template_that_strips_the_thought_and_auto_trains_it_verbatim(tiny_vlm_dirs, tis_dir,
                                                                                      tmp_path, capsys):
    template = tmp_path / "strip.jinja"
    template.write_text(STRIP_THOUGHT)
    args = ["train", "check", "--model", str(tiny_vlm_dirs["llava"]), "--data", str(tis_dir / "train_data.json"),
            "--chat-template", str(template), "--samples", "1", "--all"]
    assert main([*args, "--thought-handling", "template"]) == 1
    out = capsys.readouterr().out
    assert "drops the thought from assistant turns" in out and "THOUGHT NOT IN LOSS" in out
    assert "FAILED: 8 of 8 sample(s)" in out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "rendered by verbatim" in out and "[verbatim]" in out and "</think>" in out


def test_a_thought_cut_by_max_length_fails_the_check(tiny_vlm_dirs, tis_dir, capsys):
    rc = main(["train", "check", "--model", str(tiny_vlm_dirs["llava"]), "--data", str(tis_dir / "train_data.json"),
               "--samples", "1", "--max-length", "200"])
    out = capsys.readouterr().out
    assert rc == 1 and "cut to 200 tokens (answer end)" in out and "the thought is cut by --max-length" in out


def test_missing_images_name_the_record_or_are_skipped_with_a_count(tiny_vlm_dirs, tmp_path, capsys):
    rows = [{"conversations": [{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "<think>t</think>a"}],
             "images": ["nowhere.png"]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "<think>t</think>a"}]}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    args = ["train", "check", "--model", str(tiny_vlm_dirs["llava"]), "--data", str(tmp_path / "d.json")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "d.json[0]: image 'nowhere.png' not found" in err and "--skip-bad" in err
    assert main([*args, "--skip-bad"]) == 0
    assert "1 bad record(s) skipped" in capsys.readouterr().out


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2)).save_pretrained(tmp_path / "llama")
    (tmp_path / "d.json").write_text("[]")
    rc = main(["train", "check", "--model", str(tmp_path / "llama"), "--data", str(tmp_path / "d.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "LlamaForCausalLM (model_type 'llama')" in err
    assert "supported: llava" in err and "qwen2_5_vl" in err and "mllama" in err


def test_usage_faults_are_one_line_errors(tiny_vlm_dirs, short_set, tmp_path, capsys):
    model = str(tiny_vlm_dirs["llava"])
    cases = [
        (["train", "--model", model, "--data", str(short_set)], "--out is required"),
        (["train", "--model", model, "--data", str(short_set), "--out", str(tmp_path / "o"), "--resume"],
         "holds no complete checkpoint"),
        (["train", "--model", model, "--out", str(tmp_path / "o")], "--data is required"),
        (["train", "merge", model, "--out", str(tmp_path / "m")], "is not a LoRA adapter folder"),
        (["train", "--model", model, "--data", str(short_set), "--out", str(tmp_path / "o"), "--deepspeed", "zero9"],
         "neither zero2, zero3"),
        (["train", "--model", model, "--data", f"{short_set}*x", "--out", str(tmp_path / "o")], "weight after"),
        (["train", "check", "--model", str(tmp_path / "nothing"), "--data", str(short_set)], "is neither a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)


def test_options_come_from_a_config_file_and_flags_override_it(tiny_vlm_dirs, short_set, tmp_path, capsys):
    import argparse

    from tis.cli import build_parser
    from tis.core.config import config_from_args
    from tis.train.config import TrainConfig

    (tmp_path / "train.yaml").write_text(f"model: {tiny_vlm_dirs['llava']}\ndata: [{short_set}]\nlora: {{r: 4}}\n"
                                         "learning_rate: 0.001\n")
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "train.yaml"), "--lora.r", "8",
                                      "--out", str(tmp_path / "o")])
    cfg = config_from_args(TrainConfig, args, config_file=args.config)
    assert isinstance(args, argparse.Namespace)
    assert cfg.lora.r == 8 and cfg.lora.alpha == 32 and cfg.lr() == 0.001 and cfg.data == [str(short_set)]
    assert TrainConfig(method="full").lr() == 1e-5 and TrainConfig().lr() == 2e-4


def test_the_shipped_deepspeed_and_accelerate_configs_parse():
    import yaml

    from tis.train.run import deepspeed_config

    for stage in (2, 3):
        cfg = json.loads(open(deepspeed_config(f"zero{stage}")).read())
        assert cfg["zero_optimization"]["stage"] == stage and cfg["bf16"]["enabled"] == "auto"
    from pathlib import Path

    configs = Path(sys.modules["tis.train.run"].__file__).parent / "configs"
    fsdp = yaml.safe_load((configs / "accelerate_fsdp.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_version"] == 2
    multi = yaml.safe_load((configs / "accelerate_multi_gpu.yaml").read_text())
    assert multi["distributed_type"] == "MULTI_GPU"


def test_asking_for_a_logger_that_is_not_installed_says_what_to_install(tiny_vlm_dirs, short_set, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    rc = main(["train", "--model", str(tiny_vlm_dirs["llava"]), "--data", str(short_set), "--out", str(tmp_path / "o"),
               "--report-to", "wandb"])
    err = capsys.readouterr().err
    assert rc == 2 and "--report-to wandb: the wandb package is not installed (pip install wandb)" in err


def test_training_refuses_a_template_that_would_leave_the_thought_out_of_the_loss(tiny_vlm_dirs, tis_dir, tmp_path,
                                                                                 capsys):
    template = tmp_path / "strip.jinja"
    template.write_text(STRIP_THOUGHT)
    rc = main(["train", "--model", str(tiny_vlm_dirs["llava"]), "--data", str(tis_dir / "train_data.json"),
               "--out", str(tmp_path / "o"), "--chat-template", str(template), "--thought-handling", "template"])
    err = capsys.readouterr().err
    assert rc == 2 and "train_data.json[0]: the thought is not inside the loss" in err and "tis train check" in err
    assert not (tmp_path / "o").exists()
