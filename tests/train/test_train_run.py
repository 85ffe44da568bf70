"""Training runs on tiny random-weight models (CPU, a few steps): loss, outputs, resume, merge, eval."""

from __future__ import annotations

import json
import shutil

import pytest

from fixtures_tiny_vlm import ARCHITECTURES
from tis.core.errors import ConfigError
from tis.train.config import TrainConfig
from tis.train.run import MANIFEST, METRICS, last_checkpoint, train

pytestmark = pytest.mark.slow


def _cfg(model, data, out, **kw) -> TrainConfig:
    base = dict(model=str(model), data=[str(data)], out=str(out), max_length=256, logging_steps=1, save_steps=100,
                batch_size=2, progress=False, warmup_ratio=0.0, scheduler="constant", lora={"r": 8, "dropout": 0.0})
    return TrainConfig(**{**base, **kw})


def _losses(out):
    return [row["loss"] for row in map(json.loads, (out / METRICS).read_text().splitlines()) if "loss" in row]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_lora_loss_goes_down_on_a_memorisable_batch(arch, tiny_vlm_dirs, short_set, tmp_path):
    out = tmp_path / "out"
    result = train(_cfg(tiny_vlm_dirs[arch], short_set, out, max_steps=6, learning_rate=3e-3,
                        lora={"r": 8, "alpha": 64, "dropout": 0.0}), log=lambda m: None)
    losses = _losses(out)
    assert result.kind == "adapter" and result.steps == 6 and len(losses) == 6
    # a random model starts near ln(vocabulary); six steps on the same two samples take it well below
    assert losses[-1] < losses[0] - 0.2 and max(losses[3:]) < min(losses[:2]), losses
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_vlm_dirs[arch].resolve())
    # adapters on the language model's linear layers only: none in the vision tower or projector
    targets = adapter["target_modules"]
    assert "language_model" in targets or "text_model" in targets
    assert not any(part in targets for part in ("vision_tower", "vision_model", "visual", "projector", "connector"))


def test_full_fine_tuning_freezes_the_vision_tower_and_reports_an_eval_loss(tiny_vlm_dirs, tis_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    base = tiny_vlm_dirs["qwen2_5_vl"]
    out = tmp_path / "full"
    result = train(_cfg(base, tis_dir / "train_data.json", out, method="full", max_steps=3, learning_rate=1e-3,
                        eval_fraction=0.25, max_length=2048), log=lambda m: None)
    assert result.kind == "full" and result.eval_loss is not None
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    vision = [k for k in before if ".visual." in f".{k}" and "merger" not in k]
    language = [k for k in before if "visual" not in k and k.endswith("q_proj.weight")]
    assert vision and language
    assert all(torch.equal(before[k], after[k]) for k in vision)
    assert any(not torch.equal(before[k], after[k]) for k in language)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["data"]["eval_samples"] == 2 and manifest["data"]["train_samples"] == 6
    assert manifest["losses"]["eval_loss"] == pytest.approx(result.eval_loss)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_after_an_interrupted_run_continues_from_the_last_complete_checkpoint(method, tiny_vlm_dirs, short_set,
                                                                                   tmp_path):
    from tis.train.callbacks import StopAfter

    model = tiny_vlm_dirs["llava"]
    common = dict(method=method, max_steps=6, save_steps=2, learning_rate=1e-3 if method == "full" else 1e-2,
                  save_total_limit=None)
    straight = tmp_path / "straight"
    train(_cfg(model, short_set, straight, **common), log=lambda m: None)

    out = tmp_path / "killed"
    stopped = train(_cfg(model, short_set, out, **common), extra_callbacks=[StopAfter(3)], log=lambda m: None)
    assert stopped.kind == "stopped" and stopped.steps == 3
    assert last_checkpoint(out).name == "checkpoint-2" and not (out / MANIFEST).exists()
    # a save killed half-way leaves a folder without trainer_state.json: never resumed from
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-4")
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    with pytest.raises(ConfigError, match="--resume"):
        train(_cfg(model, short_set, out, **common), log=lambda m: None)
    resumed = train(_cfg(model, short_set, out, resume=True, **common), log=lambda m: None)
    assert resumed.steps == 6
    steps = [row["step"] for row in map(json.loads, (out / METRICS).read_text().splitlines()) if "loss" in row]
    assert steps == [1, 2, 3, 3, 4, 5, 6]  # step 3 was lost with the kill and done again
    # the resumed run ends where the uninterrupted one did
    assert _losses(out)[-1] == pytest.approx(_losses(straight)[-1], rel=1e-4)


def test_a_lora_and_a_merged_output_load_in_tis_evaluate_as_new_models(tiny_vlm_dirs, short_set, tmp_path):
    import tis
    from tis.cli import main

    base = tiny_vlm_dirs["llava"]
    out = tmp_path / "lora"
    rc = main(["train", "--model", str(base), "--data", str(short_set), "--out", str(out), "--max-steps", "2",
               "--max-length", "256", "--no-progress", "--lr", "1e-2", "--train-projector"])
    assert rc == 0
    # the projector trains in full beside the adapter; the vision tower stays frozen
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == ["model.multi_modal_projector"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "adapter" and manifest["steps"] == 2
    assert manifest["base_model"]["path"] == str(base.resolve()) and len(manifest["base_model"]["fingerprint"]) == 64
    assert manifest["data"]["sets"][0]["sha256"] and manifest["data"]["sets"][0]["records"] == 2
    assert manifest["config"]["lora"]["r"] == 16 and manifest["versions"]["trl"] == "1.16.0"
    assert manifest["losses"]["final_train_loss"] is not None
    assert manifest["template"]["handling"] == "template"

    merged = tmp_path / "merged"
    assert main(["train", "merge", str(out), "--out", str(merged)]) == 0
    assert json.loads((merged / MANIFEST).read_text())["kind"] == "merged"
    assert not (merged / "adapter_config.json").exists() and (merged / "model.safetensors").is_file()

    common = dict(benchmark="safebench-tiny", judges=["refusal"], limit=1, max_tokens=4, out=str(tmp_path / "runs"),
                  progress=False, report=False)
    runs = {name: tis.evaluate(model=f"hf:{path}", **common) for name, path in
            (("base", base), ("lora", out), ("merged", merged))}
    assert all(r.stats["generated"] == 1 for r in runs.values())
    assert len({r.run_dir for r in runs.values()}) == 3  # three models, three runs
    fingerprints = {json.loads((r.run_dir / "manifest.json").read_text())["model"]["fingerprint"]
                    for r in runs.values()}
    assert len(fingerprints) == 3


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tiny_vlm_dirs, short_set, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = ["--model", str(tiny_vlm_dirs["llava"]), "--data", str(short_set), "--out", str(out), "--method", "full",
            "--save-steps", "2", "--logging-steps", "1", "--max-length", "256", "--lr", "1e-3", "--no-progress",
            "--scheduler", "constant", "--warmup-ratio", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "tis.cli", "train", *argv, "--max-steps", "500"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while last_checkpoint(out) is None:
            assert proc.poll() is None, "the training process ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    kept = int(last_checkpoint(out).name.split("-")[1])
    assert not (out / MANIFEST).exists()
    from tis.cli import main

    assert main(["train", *argv, "--max-steps", str(kept + 2), "--resume"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["steps"] == kept + 2
    steps = [row["step"] for row in map(json.loads, (out / METRICS).read_text().splitlines()) if "loss" in row]
    assert steps[-2:] == [kept + 1, kept + 2]  # the resumed run took up after the checkpoint
