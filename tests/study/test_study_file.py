"""The study file: typos and wrong references name the file and the key; the shipped studies read and plan."""

from __future__ import annotations

import time

import pytest
import yaml

from tis.core.errors import ConfigError
from tis.study.plan import make_plan
from tis.study.runner import load_plan, plan_text
from tis.study.spec import find_study, read_study, shipped_studies

from study_helpers import study_dict

URL = "http://127.0.0.1:9/v1"


def write(tmp_path, data) -> str:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return str(p)


def edit(**changes):
    data = study_dict(URL)
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for k in path:
            node = node[int(k)] if k.isdigit() else node[k]
        if value is None:
            node.pop(last)
        elif isinstance(value, tuple):  # rename a key: (new name,)
            node[value[0]] = node.pop(last)
        else:
            node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("changes, message", [
    ({"models": ("modles",)}, "modles: unknown key (did you mean models?)"),
    ({"models__0__profile": "R1-Onevison-7B"}, "models.0.profile:"),
    ({"models__0__name": ("nmae",)}, "models.0.nmae: unknown key (did you mean name?)"),
    ({"models__0__base": "bsae"}, "models.0.base: no model entry named 'bsae' (did you mean base?)"),
    ({"benchmarks__jailbreak__0__benchmark": "safebench-tniy"},
     "benchmarks.jailbreak.0.benchmark: no benchmark named 'safebench-tniy' (did you mean safebench-tiny?)"),
    ({"benchmarks__jailbreak__0__data": ("dta",)}, "benchmarks.jailbreak.0.dta: unknown key (did you mean data?)"),
    ({"benchmarks__jailbrek": []}, "benchmarks.jailbrek: unknown key (did you mean jailbreak?)"),
    ({"defences": ["safety_system_prompt", "thought_remider"]},
     "defences.1: no built-in defence named 'thought_remider' (did you mean thought_reminder?)"),
    ({"defaults": {"max_tokns": 10}}, "defaults.max_tokns: not a key a study cell may set (did you mean max_tokens?)"),
    ({"defaults": {"max_tokens": 0}}, "defaults.max_tokens: Input should be greater than or equal to 1"),
    ({"judges": ["refusl"]}, "judges: no judge named 'refusl' (did you mean refusal?)"),
    ({"training_sets": [{"name": "s", "shipped": "tis-sample"}],
      "training": [{"models": ["reasoner"], "sets": ["s"], "config": {"learnig_rate": 1e-4}}]},
     "training.0.config.learnig_rate: not a key a study training run may set (did you mean learning_rate?)"),
    ({"training_sets": [{"name": "s", "shipped": "tis-sample"}],
      "training": [{"models": ["reasoner"], "sets": ["t"]}]}, "training.0.sets.0: no training set named 't'"),
    ({"training_sets": [{"name": "s", "data": ["a.json"], "shipped": "tis-sample"}]},
     "training_sets.0: give exactly one of build, data, shipped"),
    ({"defences": [{"name": "mine"}]}, "defences.0: a defence needs a system_prompt or a thought_prefill"),
])
def test_a_typo_names_the_file_and_the_key(tmp_path, changes, message):
    path = write(tmp_path, edit(**changes))
    with pytest.raises(ConfigError) as err:
        read_study(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys, tis_main):
    path = write(tmp_path, edit(models=("modles",)))
    assert tis_main(["study", "run", path, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "modles: unknown key" in err and path in err
    assert tis_main(["study", "run", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = write(tmp_path, "models: [a\n")
    assert tis_main(["study", "plan", bad]) == 2
    assert "not valid YAML at line" in capsys.readouterr().err


def test_shipped_studies_read_and_plan(tmp_path):
    assert {"demo", "think-in-safety"} <= set(shipped_studies())
    for name in ("demo", "think-in-safety"):
        plan = load_plan(name, out=tmp_path / name)
        text = plan_text(plan)
        assert "training run(s)" in text
    demo = load_plan("demo", out=tmp_path / "d")
    assert [c.id for c in demo.trainings] == ["train:demo@tis-sample"]
    assert {c.label for c in demo.evals} == {"demo", "demo+safety_system_prompt", "demo@tis-sample"}
    assert "75 model calls" in plan_text(demo)
    tis = load_plan("think-in-safety", out=tmp_path / "t")
    assert len(tis.pairs) >= 3 and len(tis.trainings) >= 5
    # the prefills run only where the family thinks in <think> tags
    assert not any(c.label.endswith(("+thought_reminder", "+no_thinking")) and c.model.startswith("Qwen2.5-VL")
                   for c in tis.evals)
    assert find_study("demo").name == "demo.yaml"
    with pytest.raises(ConfigError, match="no shipped study"):
        find_study("dmeo")


def test_dry_run_calls_nothing(tmp_path, capsys, tis_main):
    assert tis_main(["study", "run", "demo", "--dry-run", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "fine-tune demo on tis-sample" in out and "1 training run(s)" in out
    assert not (tmp_path / "d").exists()


def test_planning_a_large_study_is_fast(tmp_path):
    data = study_dict(URL)
    data["models"] = [{"name": f"m{i}", "model": f"openai:m{i}", "base_url": [URL]} for i in range(20)]
    data["benchmarks"] = {"jailbreak": [{"benchmark": "safebench-tiny", "name": f"b{j}"} for j in range(12)]}
    data["defences"] = ["safety_system_prompt"]
    study = read_study(write(tmp_path, data))
    t0 = time.perf_counter()
    plan = make_plan(study, tmp_path / "study.yaml", out=tmp_path / "out")
    assert len(plan.evals) == 20 * 12 * 2
    assert time.perf_counter() - t0 < 30  # seconds on a busy machine; benchmarks/bench_study_plan.py measures it
