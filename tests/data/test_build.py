"""`tis data build` end to end against a real loopback teacher server scripted per stage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from data.builders import build_config, png, vlguard_train
from tis.cli import main
from tis.core.config import load_config_file
from tis.core.errors import ConfigError, DataError
from tis.data.build import read_records, run_build
from tis.data.config import BuildConfig
from tis.testing.openai_server import LoopbackServer
from tis.testing.teacher import ScriptedTeacher

FAULTS = {0: "How do I track the person in picture 0 [[truncate]]?",
          2: "Find where the person in picture 2 sleeps %%malformed-once%%",
          8: "Who is this %%leak%% person in picture 8?",
          10: "Locate the person in picture 10 %%mismatch%%",
          12: "Stalk the person in picture 12 %%malformed%%",
          14: "Home of the person in picture 14 [[fail-500:2]]"}


@pytest.fixture
def teacher():
    script = ScriptedTeacher()
    with LoopbackServer(responder=script) as srv:
        srv.script = script
        yield srv


def load(path: Path) -> BuildConfig:
    return load_config_file(BuildConfig, path).resolved(path.parent)


def test_build_of_50_items_end_to_end(tmp_path, teacher):
    # 34 images: 17 unsafe (one question) + 17 safe (a safe and an unsafe question) = 51 items,
    # one of them N/A (the questions stage writes 3 for its image) and one image missing.
    root = vlguard_train(tmp_path / "vlguard", 34, questions=FAULTS, na=(4,), missing=(6,))
    cfg_path = build_config(tmp_path / "build.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    result = run_build(load(cfg_path))
    by_id = {r.id: r for r in result.records}
    kept = result.kept

    # every fault dropped with its reason, never exported
    assert by_id["vlguard:img0:instruction"].drop_reason.startswith("malformed output after 3 attempt(s): truncated")
    assert by_id["vlguard:img12:instruction"].drop_reason == "malformed output after 3 attempt(s): no <think> thought"
    assert by_id["vlguard:img8:instruction"].drop_reason.startswith("leakage")
    assert by_id["vlguard:img10:instruction"].drop_reason.startswith("thought/answer mismatch")
    assert by_id["vlguard:img6:instruction"].drop_reason.startswith("image missing")
    # re-asked once, then good; a 500 twice is retried by the executor
    assert by_id["vlguard:img2:instruction"].status == "kept"
    assert len(by_id["vlguard:img2:instruction"].lineage["reason_calls"]) == 2
    assert by_id["vlguard:img14:instruction"].status == "kept"
    # the N/A item became three written questions with the parent in their lineage
    children = [r for r in result.records if r.lineage.get("parent_item") == "vlguard:img4:instruction"]
    assert sorted(c.label for c in children) == ["benign", "borderline", "unsafe"]
    assert all(c.status == "kept" for c in children)
    assert len(kept) == 51 - 1 - 5 + 3

    # lineage: the specification's hash and the teacher calls, on every kept record
    spec_sha = result.card["spec"]["sha256"]
    for r in kept:
        assert r.lineage["spec"]["sha256"] == spec_sha and len(spec_sha) == 64
        assert r.lineage["caption_key"] and r.lineage["reason_key"]
        assert r.decision in ("refuse", "safe_completion", "help")
        assert (r.label == "unsafe") <= (r.decision != "help")

    # manifest: calls, tokens and cost per stage; drops by reason
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reason = manifest["stages"]["reason"]
    assert reason["malformed"] == 1 + 3 + 3 and reason["prompt_tokens"] > 0 and reason["cost"] > 0
    assert manifest["drops"]["filter: leakage"] == 1
    assert "price_input_per_million" in json.dumps(manifest["config"])
    assert manifest["counts"]["kept"] == len(kept)

    # the export: sharegpt + dataset_info + images beside it, read back
    export = tmp_path / "out" / "export"
    data = json.loads((export / "tis_safety.json").read_text())
    assert len(data) == len(kept)
    for rec in data:
        human, gpt = rec["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"].count("<image>") == len(rec["images"]) == 1
        assert gpt["value"].startswith("<think>\n") and gpt["value"].count("</think>") == 1
        assert all((export / p).is_file() and not Path(p).is_absolute() for p in rec["images"])
    info = json.loads((export / "dataset_info.json").read_text())
    assert info["tis_safety"]["formatting"] == "sharegpt"
    assert info["tis_safety"]["columns"] == {"messages": "conversations", "images": "images"}
    assert info["tis_safety"]["tags"]["assistant_tag"] == "gpt"
    card = json.loads((export / "card.json").read_text())
    assert card["by_source"] == {"vlguard": len(kept)} and "licence" in card["sources"][0]
    assert "Drop" in (export / "README.md").read_text()
    # `tis data check` finds nothing that would train wrongly in what the build exported
    assert main(["data", "check", str(export / "tis_safety.json")]) == 0


def test_parquet_export_reads_back_as_messages_and_images(tmp_path, teacher):
    pq = pytest.importorskip("pyarrow.parquet")
    root = vlguard_train(tmp_path / "vlguard", 6)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    result = run_build(load(cfg_path))
    table = pq.read_table(tmp_path / "out" / "export" / "hf" / "data" / "train-00000-of-00001.parquet")
    rows = table.to_pylist()
    assert len(rows) == len(result.kept) == 9
    meta = json.loads(table.schema.metadata[b"huggingface"])
    assert meta["info"]["features"]["images"]["feature"]["_type"] == "Image"
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert [p["type"] for p in user["content"]] == ["image", "text"]
        assert assistant["content"][0]["text"].startswith("<think>\n")
        assert len(row["images"]) == 1 and row["images"][0]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    # the trainer's loader reads both exports back: the LLaMA-Factory folder and the messages parquet
    from tis.train.data import load_set

    export = tmp_path / "out" / "export"
    for spec in (str(export), f"{export}#tis_safety", str(export / "hf" / "data" / "train-00000-of-00001.parquet")):
        loaded = load_set(spec)
        assert len(loaded.records) == 9, spec
        rec = loaded.records[0]
        assert [m["role"] for m in rec.messages] == ["user", "assistant"]
        assert rec.assistant_texts()[0].startswith("<think>\n")
        assert [im.size for im in rec.open_images()] == [(24, 24)]
    # the check reads the parquet file too
    assert main(["data", "check", str(tmp_path / "out" / "export" / "hf" / "data" / "train-00000-of-00001.parquet")]) == 0
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "out/export/hf/data/*.parquet"), split="train")
    assert ds[0]["images"][0].size == (24, 24) and ds[0]["messages"][1]["role"] == "assistant"


def test_rebuild_reuses_every_call_and_a_new_spec_changes_lineage(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 4)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    first = run_build(load(cfg_path))
    calls = teacher.requests.total
    again = run_build(load(cfg_path))
    assert teacher.requests.total == calls  # nothing sent again
    assert [r.model_dump() for r in again.kept] == [r.model_dump() for r in first.kept]
    # the user's own specification: its hash in every record, the reason calls made anew
    from tis.data.spec import default_spec_path

    spec = yaml.safe_load(default_spec_path().read_text())
    spec["name"] = "my-policy"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["spec"] = "spec.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    third = run_build(load(cfg_path))
    assert {r.lineage["spec"]["name"] for r in third.kept} == {"my-policy"}
    assert third.card["spec"]["sha256"] != first.card["spec"]["sha256"]
    assert teacher.script.calls["caption"] == 4  # captions do not depend on the specification
    assert teacher.script.calls["reason"] == 2 * len(first.kept)


def test_balance_quotas_per_category_decision_source(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 10)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}],
                            balance={"quotas": {"privacy/refuse/*": 3, "none/help/vlguard": 2}})
    result = run_build(load(cfg_path))
    cells = {}
    for r in result.kept:
        cells[(r.category, r.decision)] = cells.get((r.category, r.decision), 0) + 1
    assert cells == {("privacy", "refuse"): 3, (None, "help"): 2}
    assert sum(1 for r in result.records if r.drop_stage == "balance") == 15 - 5


def test_text_only_reason_teacher_needs_captions(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 2)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}], caption={"enabled": False})
    with pytest.raises(ConfigError, match="caption"):
        run_build(load(cfg_path))


def test_bad_config_and_wrong_root_are_one_line_errors(tmp_path, teacher, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: x\nsources: []\nreason: {concurrncy: 3}\n")
    assert main(["data", "build", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err and "concurrncy" in err
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(tmp_path / "nowhere")}])
    assert main(["data", "build", str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "sources[0] (vlguard)" in err and "nowhere" in err and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(tmp_path / "empty")}])
    with pytest.raises(DataError, match="train.json"):
        run_build(load(cfg_path))


def _kill_when(proc: subprocess.Popen, cond, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"the build ended before it was killed: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("the build never reached the kill point")


def test_sigkill_mid_build_resumes_without_repeating_a_finished_call(tmp_path):
    script = ScriptedTeacher()
    with LoopbackServer(latency_s=0.05, responder=script) as srv:
        root = vlguard_train(tmp_path / "vlguard", 16)
        cfg_path = build_config(tmp_path / "b.yaml", base_url=srv.base_url, out=tmp_path / "out",
                                sources=[{"name": "vlguard", "root": str(root)}], reason={"concurrency": 4})
        cmd = [sys.executable, "-m", "tis.cli", "data", "build", str(cfg_path)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _kill_when(proc, lambda: script.calls["reason"] >= 8)
        time.sleep(0.2)  # replies in flight reach the responder
        before = dict(script.seen)
        # what the killed build had finished: the calls whose replies are in the store
        from tis.pipeline.store import RunStore

        with RunStore(tmp_path / "out") as store:
            finished = {m for g in store.generations().values() if g.generation.status == "ok"
                        for m in re.findall(r"ref ([0-9a-f]{8})", g.generation.raw)}
        assert finished and not (tmp_path / "out" / "export").exists()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for ref in finished:
            assert script.seen[ref] == before[ref], f"finished call {ref} was made again"
        # only the calls in flight at the kill (reason concurrency 4) were made twice
        repeated = {ref for ref, n in script.seen.items() if n > 1}
        assert not repeated & finished and len(repeated) <= 4, (repeated, finished)
        assert len(json.loads((tmp_path / "out" / "export" / "tis_safety.json").read_text())) == 24


def test_full_disk_while_exporting_leaves_the_previous_export(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 4)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    run_build(load(cfg_path))
    export = tmp_path / "out" / "export"
    before = {p.relative_to(export): p.read_bytes() for p in export.rglob("*") if p.is_file()}
    # a large image, and a file-size limit (RLIMIT_FSIZE) so copying it fails as on a full disk
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "bad_ads" / "big.png")
    assert (root / "bad_ads" / "big.png").stat().st_size > 3_500_000
    records = json.loads((root / "train.json").read_text())
    records.append({"id": "big", "image": "bad_ads/big.png", "safe": False, "harmful_category": "privacy",
                    "harmful_subcategory": "", "instr-resp": [{"instruction": "Where does this person live?",
                                                               "response": ""}]})
    (root / "train.json").write_text(json.dumps(records))
    code = (f"import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000)); "
            f"from tis.cli import main; sys.exit(main(['data', 'build', {str(cfg_path)!r}]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "previous export" in done.stderr and "Traceback" not in done.stderr
    after = {p.relative_to(export): p.read_bytes() for p in export.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".export")]


def test_no_secret_reaches_the_manifest_records_or_export(tmp_path, teacher, monkeypatch):
    root = vlguard_train(tmp_path / "vlguard", 2)
    monkeypatch.setenv("TEACHER_KEY", "sk-secret-123")
    url = teacher.base_url.replace("http://", "http://user:pw-secret-456@")
    cfg_path = build_config(tmp_path / "b.yaml", base_url=url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["reason"]["teacher"] = {**cfg["reason"]["teacher"], "api_key_env": "TEACHER_KEY",
                                "base_url": [teacher.base_url]}  # a key for one teacher, URL credentials for others
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_build(load(cfg_path))
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md"):
            text = path.read_text()
            assert "sk-secret-123" not in text and "pw-secret-456" not in text, path


def test_show_prints_a_record_with_its_lineage_and_teacher_calls(tmp_path, teacher, capsys):
    root = vlguard_train(tmp_path / "vlguard", 2)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    assert main(["data", "build", str(cfg_path)]) == 0
    capsys.readouterr()
    assert main(["data", "show", str(tmp_path / "out"), "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "kept" and shown["lineage"]["spec"]["sha256"]
    stages = {c["stage"] for c in shown["teacher_calls"].values()}
    assert stages == {"caption", "reason"}
    reason = next(c for c in shown["teacher_calls"].values() if c["stage"] == "reason")
    assert "<think>" in reason["raw"] and reason["parents"]
    assert main(["data", "show", str(tmp_path / "out"), "no-such-record"]) == 2
    assert read_records(tmp_path / "out")[0].id == shown["id"] or True


def test_llm_judge_filters_and_an_unparsed_verdict_never_passes(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 6, questions={0: "Where does the person in 0 live %%judged-unsafe%%?",
                                                             2: "Where does the person in 2 live %%judge-garbage%%?"})
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}],
                            filter={"judges": [f"llm:openai:judge@{teacher.base_url}?rubric=harm&backoff=0"]})
    result = run_build(load(cfg_path))
    by_id = {r.id: r for r in result.records}
    assert by_id["vlguard:img0:instruction"].drop_reason == "judge llm-judge-harm: the answer is unsafe"
    assert by_id["vlguard:img2:instruction"].drop_reason.startswith("judge llm-judge-harm: unparsed")
    assert len(result.kept) == 9 - 2
    assert all(r.lineage["verdicts"]["llm-judge-harm"]["label"] == "safe" for r in result.kept)
    calls = teacher.script.calls["judge"]
    run_build(load(cfg_path))  # judgements are stored: none is made again (the unparsed one neither)
    assert teacher.script.calls["judge"] == calls


def test_a_released_set_is_refiltered_without_a_teacher(tmp_path):
    png(tmp_path / "images" / "a.png", 1)
    good = "<think>\nThe user asks for a home address of the person shown; that is private, so I decline.\n</think>\nI'm sorry, I can't help with that."
    records = [{"conversations": [{"from": "human", "value": "<image>Where does she live?"},
                                  {"from": "gpt", "value": v}], "images": ["images/a.png"]}
               for v in (good, good.replace("The user asks", "The image describes a woman; the user asks"),
                         "**<think>**\n" + good[8:], good.replace("</think>\n", "</think>\n---\n"),
                         good.replace("Where", "Where"), good + " <image>")]
    records[4]["conversations"][0]["value"] = "<image>Where does she work?"
    (tmp_path / "train_data.json").write_text(json.dumps(records))
    cfg = {"out": str(tmp_path / "out"), "progress": False, "sources": [{"name": "sharegpt", "root": str(tmp_path)}],
           "caption": {"enabled": False}, "reason": {"enabled": False}, "filter": {"dedup": "exact"}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
    result = run_build(load(tmp_path / "b.yaml"))
    reasons = {r.source_id: r.drop_reason for r in result.records}
    assert reasons["0"] is None and reasons["4"] is None
    assert reasons["1"].startswith("leakage") and "text before <think>" in reasons["2"] and "'---'" in reasons["3"]
    assert "literal <image> token" in reasons["5"]
    exported = json.loads((tmp_path / "out" / "export" / "tis_safety.json").read_text())
    assert exported[0]["conversations"][1]["value"] == good
    assert all(r.lineage["thought_from"] == "source" for r in result.kept)


def test_a_call_that_keeps_failing_is_not_exported_and_the_build_exits_1(tmp_path, teacher, capsys):
    root = vlguard_train(tmp_path / "vlguard", 4, questions={2: "Refused by the server [[status:400]]"})
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    assert main(["data", "build", str(cfg_path)]) == 1
    assert "re-run the same command" in capsys.readouterr().err
    rec = next(r for r in read_records(tmp_path / "out") if r.id == "vlguard:img2:instruction")
    assert rec.status == "dropped" and rec.drop_reason.startswith("teacher call failed") and "400" in rec.drop_reason
    exported = json.loads((tmp_path / "out" / "export" / "tis_safety.json").read_text())
    assert len(exported) == 5 and not any("[[status:400]]" in json.dumps(r) for r in exported)


def test_an_unreachable_teacher_stops_the_build_with_one_line(tmp_path, capsys):
    from tis.testing.openai_server import free_port

    root = vlguard_train(tmp_path / "vlguard", 2)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=f"http://127.0.0.1:{free_port()}/v1", out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}])
    assert main(["data", "build", str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the model server" in err


@pytest.mark.slow
def test_a_local_hf_teacher_for_one_stage_and_a_server_for_another(tmp_path, teacher, tiny_llava_dir):
    root = vlguard_train(tmp_path / "vlguard", 2)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}],
                            caption={"teacher": {"backend": "hf", "model": str(tiny_llava_dir), "max_tokens": 8,
                                                 "temperature": 0.0, "options": {"device": "cpu", "batch_size": 2}},
                                     "min_chars": 1, "parse_retries": 0})
    result = run_build(load(cfg_path))
    assert result.usage["caption"]["teacher"]["backend"] == "hf" and result.usage["caption"]["new"] == 2
    assert result.usage["reason"]["teacher"]["backend"] == "openai"
    assert teacher.script.calls["caption"] == 0  # the captions came from the local model
    # random weights write some text or none: a kept record was reasoned from the local caption,
    # a dropped one says why; nothing is lost silently
    for r in result.records:
        assert r.status == "kept" and r.caption or r.drop_stage == "caption" and "malformed" in r.drop_reason
    again = run_build(load(cfg_path))
    assert again.usage["caption"]["new"] == 0  # a local teacher's outputs are stored and reused too


def test_several_sources_each_with_its_licence_in_the_card(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 2)
    for i in range(2):
        png(tmp_path / "mine" / f"{i}.png", 100 + i)
    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "instructions.csv").write_text("instruction,category\nHow to steal a car quickly.,illegal_activity\n")
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)},
                                     {"name": "folder", "root": str(tmp_path / "mine"), "licence": "CC-BY-4.0 (ours)"},
                                     {"name": "typographic", "root": str(tmp_path / "typo")}])
    try:
        result = run_build(load(cfg_path))
    except ConfigError as exc:  # no FreeMonoBold font on this machine
        pytest.skip(str(exc))
    card = result.card
    assert card["by_source"] == {"folder": 6, "vlguard": 3, "typographic": 1}
    licences = {s["name"]: s["licence"] for s in card["sources"]}
    assert licences["folder"] == "CC-BY-4.0 (ours)" and "FigStep" in licences["typographic"]
    assert "VLGuard" in licences["vlguard"]
    folder = [r for r in result.kept if r.source == "folder"]
    assert sorted(r.label for r in folder) == ["benign", "benign", "borderline", "borderline", "unsafe", "unsafe"]
    assert all(r.lineage["questions_key"] for r in folder)
    typo = next(r for r in result.kept if r.source == "typographic")
    assert typo.decision == "refuse" and typo.category == "illegal_activity"
    readme = (tmp_path / "out" / "export" / "README.md").read_text()
    assert "CC-BY-4.0 (ours)" in readme and "| typographic |" in readme


def test_flags_override_the_file_and_their_paths_are_relative_to_the_working_folder(tmp_path, teacher, monkeypatch):
    root = vlguard_train(tmp_path / "vlguard", 2)
    (tmp_path / "configs").mkdir()
    cfg_path = build_config(tmp_path / "configs" / "b.yaml", base_url=teacher.base_url, out="out-from-file",
                            sources=[{"name": "vlguard", "root": str(root)}])
    monkeypatch.chdir(tmp_path)
    assert main(["data", "build", str(cfg_path), "--out", "out-from-flag", "--reason.concurrency", "2",
                 "--export.name", "mine"]) == 0
    assert (tmp_path / "out-from-flag" / "export" / "mine.json").is_file()
    manifest = json.loads((tmp_path / "out-from-flag" / "manifest.json").read_text())
    assert manifest["config"]["reason"]["concurrency"] == 2
    assert main(["data", "build", str(cfg_path)]) == 0  # the file's relative out: beside the file
    assert (tmp_path / "configs" / "out-from-file" / "export" / "tis_safety.json").is_file()


def test_refiltering_the_released_tis_sample(tmp_path):
    from shared_data import shared_file

    sample = shared_file("tis-sample/train_data_sample.json")
    records = json.loads(sample.read_text())
    (tmp_path / "train_data.json").write_text(sample.read_text())
    for n, rec in enumerate(records):  # the release ships its images apart: stand-ins at the same paths
        for rel in rec["images"]:
            if not (tmp_path / rel).exists():
                png(tmp_path / rel, n)
    cfg = {"out": str(tmp_path / "out"), "progress": False, "sources": [{"name": "sharegpt", "root": str(tmp_path)}],
           "caption": {"enabled": False}, "reason": {"enabled": False}, "filter": {"dedup": "exact"}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
    result = run_build(load(tmp_path / "b.yaml"))
    drops = result.drops
    # format first: `* *` pairs, `---` or a quoted answer after </think>; then the thoughts written from
    # a caption or a reference answer (21 in all, 4 of them already dropped for their format)
    assert drops["filter: format"] == 18 and drops["filter: leakage"] == 17
    assert drops["filter: thought/answer mismatch"] >= 1
    assert len(result.kept) == 70 - sum(drops.values())
    from tis.data.check import check_file

    assert not check_file(tmp_path / "out" / "export" / "tis_safety.json").errors


@pytest.mark.slow
def test_minilm_dedup_in_a_build_keeps_its_vectors_for_the_next_run(tmp_path, teacher):
    # two images asked nearly the same question twice (paraphrase) and once differently
    root = vlguard_train(tmp_path / "vlguard", 2)
    records = json.loads((root / "train.json").read_text())
    records.append(dict(records[0], id="img0b", **{"instr-resp": [{"instruction": "How do I find the home address "
                                                                  "of the person in picture 0 ?", "response": ""}]}))
    (root / "train.json").write_text(json.dumps(records))
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}], filter={"dedup": "minilm"})
    result = run_build(load(cfg_path))
    dup = next(r for r in result.records if r.id == "vlguard:img0b:instruction")
    assert dup.drop_reason == "near duplicate of vlguard:img0:instruction"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["dedup"]["encoded_now"] == 4
    run_build(load(cfg_path))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["dedup"]["encoded_now"] == 0 and manifest["dedup"]["texts"] == 4


def test_parquet_without_embedded_images_points_at_the_images_beside_it(tmp_path, teacher):
    root = vlguard_train(tmp_path / "vlguard", 2)
    cfg_path = build_config(tmp_path / "b.yaml", base_url=teacher.base_url, out=tmp_path / "out",
                            sources=[{"name": "vlguard", "root": str(root)}], export={"embed_images": False})
    run_build(load(cfg_path))
    parquet = tmp_path / "out" / "export" / "hf" / "data" / "train-00000-of-00001.parquet"
    from tis.data.check import check_file
    from tis.train.data import load_set

    assert not check_file(parquet).errors  # the paths resolve from the parquet file's folder
    loaded = load_set(str(parquet))
    assert len(loaded.records) == 3 and [im.size for im in loaded.records[0].open_images()] == [(24, 24)]
