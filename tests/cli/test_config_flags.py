"""Flags, config files and docs generated from one pydantic model (tis.core.config)."""

import argparse
import re
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from tis.cli import main
from tis.cli.configdocs import DOC_PATH, HEADER, configuration_markdown
from tis.core.config import (add_config_flags, config_from_args, config_reference, field_flags,
                             load_config_file)
from tis.core.errors import ConfigError
from tis.pipeline.config import EvalConfig


class Lora(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, description="rank")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], description="modules")
    use_dora: bool = False


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field("tiny", description="the model to train")
    epochs: float = Field(2.0, gt=0, description="passes over the data")
    limit: int | None = Field(None, ge=1, description="only the first N rows")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="weights' precision")
    packing: bool = Field(True, description="pack short rows")
    tags: list[str] = Field(default_factory=list, description="run tags")
    extra: dict[str, Any] = Field(default_factory=dict, description="extra settings")
    lora: Lora = Field(default_factory=Lora)
    schedule: list[Lora] = Field(default_factory=list, description="a list of sections: file only")


def parse(argv, model=TrainConfig, config_file=None, **kw):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_flags(parser, model, **kw)
    return config_from_args(model, parser.parse_args(argv), config_file=config_file,
                            prefix=kw.get("prefix", ""))


def test_every_kind_of_field_gets_its_flag_and_defaults_stay_when_no_flag_is_given():
    cfg = parse([])
    assert cfg == TrainConfig()
    cfg = parse(["--model", "m", "--epochs", "0.5", "--limit", "3", "--precision", "bf16", "--no-packing",
                 "--tags", "a", "--tags", "b", "--extra", "k=1", "--extra", "w=x,y",
                 "--lora.r", "8", "--lora.target-modules", "o_proj", "--lora.use-dora"])
    assert cfg.model == "m" and cfg.epochs == 0.5 and cfg.limit == 3 and cfg.precision == "bf16"
    assert cfg.packing is False and cfg.tags == ["a", "b"] and cfg.extra == {"k": 1, "w": ["x", "y"]}
    assert cfg.lora == Lora(r=8, target_modules=["o_proj"], use_dora=True)
    assert "schedule" not in field_flags(TrainConfig)  # a list of sections is file-only
    assert field_flags(TrainConfig)["lora.target_modules"] == "--lora.target-modules"


def test_optional_fields_take_none_and_choices_are_checked():
    assert parse(["--limit", "3", "--limit", "none"]).limit is None
    with pytest.raises(argparse.ArgumentError, match="invalid choice"):
        parse(["--precision", "fp8"])


def test_help_shows_description_and_the_models_default_once(capsys):
    parser = argparse.ArgumentParser(prog="t")
    add_config_flags(parser, TrainConfig)
    text = " ".join(parser.format_help().split())
    assert "--epochs EPOCHS passes over the data [default: 2.0]" in text
    assert "--lora.r R rank [default: 16]" in text
    assert "pack short rows (off: --no-packing) [default: true]" in text
    assert "--schedule" not in text
    # a default changed in the model is the default shown: nothing is written twice
    class Other(TrainConfig):
        epochs: float = Field(3.5, description="passes over the data")
    parser = argparse.ArgumentParser(prog="t")
    add_config_flags(parser, Other)
    assert "[default: 3.5]" in parser.format_help()


def test_prefix_and_exclude():
    cfg = parse(["--teacher-model", "big", "--teacher-lora.r", "4"], prefix="teacher-", exclude={"epochs"})
    assert cfg.model == "big" and cfg.lora.r == 4
    with pytest.raises(SystemExit):
        parse(["--teacher-epochs", "3"], prefix="teacher-", exclude={"epochs"})


def test_file_then_flags_given_override_it(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text("epochs: 4\npacking: false\nextra: {a: 1, b: 2}\nlora: {r: 32, use_dora: true}\n"
                 "schedule: [{r: 2}]\n")
    cfg = parse(["--lora.r", "8", "--extra", "b=3"], config_file=f)
    assert cfg.epochs == 4 and cfg.packing is False           # from the file
    assert cfg.lora.r == 8 and cfg.lora.use_dora is True      # flag over file, key by key in a section
    assert cfg.extra == {"a": 1, "b": 3}                      # mappings merge
    assert cfg.schedule == [Lora(r=2)]
    assert cfg.model == "tiny"                                # default
    assert load_config_file(TrainConfig, f).lora.r == 32


@pytest.mark.parametrize("text, message", [
    ("epohcs: 3\n", "epohcs: unknown key (did you mean epochs?)"),
    ("lora: {rank: 3}\n", "lora.rank: unknown key"),
    ("target-modules: [x]\n", "target-modules: unknown key"),
    ("lora: {target-modules: [x]}\n", "lora.target-modules: keys are field names, not flags: write lora.target_modules"),
    ("epochs: many\n", "epochs: Input should be a valid number"),
    ("lora: {r: 0}\n", "lora.r: Input should be greater than or equal to 1"),
    ("- epochs\n", "must hold a mapping of key: value"),
    ("epochs: [\n", "is not valid YAML at line"),
])
def test_file_errors_name_the_file_and_the_key(tmp_path, text, message):
    f = tmp_path / "train.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config_file(TrainConfig, f)
    assert str(f) in str(exc.value) and message in str(exc.value)
    with pytest.raises(ConfigError) as exc2:  # the same through the command line path
        parse([], config_file=f)
    assert message in str(exc2.value)


def test_flag_errors_name_the_flag_that_exists(tmp_path):
    with pytest.raises(ConfigError, match=r"^--lora\.r: Input should be greater than or equal to 1"):
        parse(["--lora.r", "0"])
    with pytest.raises(ConfigError, match="--epochs: Input should be greater than 0"):
        parse(["--epochs", "0"])
    with pytest.raises(ConfigError, match="--extra takes KEY=VALUE"):
        parse(["--extra", "novalue"])
    f = tmp_path / "t.yaml"
    f.write_text("epochs: 1\n")
    with pytest.raises(ConfigError, match="does not exist"):
        parse([], config_file=tmp_path / "missing.yaml")


def test_every_eval_config_field_has_a_flag():
    assert set(field_flags(EvalConfig)) == set(EvalConfig.model_fields)


@pytest.mark.parametrize("argv, message", [
    (["--limit", "0"], "tis: error: --limit: Input should be greater than or equal to 1"),
    (["--timeout", "0"], "tis: error: --timeout-s: Input should be greater than 0"),
    (["-n", "0"], "tis: error: --n: Input should be greater than or equal to 1"),
])
def test_eval_flag_errors_name_existing_flags(capsys, argv, message):
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == message or err.startswith(message), err
    flag = re.search(r"error: (--[\w.-]+)", err).group(1)
    assert flag in field_flags(EvalConfig).values()


@pytest.mark.parametrize("text, message", [
    ("limt: 5\n", "runs.yaml: limt: unknown key (did you mean limit?)"),
    ("base-url: [http://x/v1]\n", "runs.yaml: base-url: keys are field names, not flags: write base_url"),
    ("limit: lots\n", "runs.yaml: limit: Input should be a valid integer"),
    ("timeout_s: 0\n", "runs.yaml: timeout_s: Input should be greater than 0"),
])
def test_eval_config_file_errors(capsys, tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    Path("runs.yaml").write_text(text)
    assert main(["eval", "--config", "runs.yaml", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"tis: error: {message}" or err[0].startswith(f"tis: error: {message}"), err


def test_eval_reads_its_config_file_and_flags_override(tmp_path, capsys):
    from tis.testing.openai_server import LoopbackServer

    with LoopbackServer() as srv:
        conf = tmp_path / "runs.yaml"
        conf.write_text(f"model: openai:loopback\nbase_url: [{srv.base_url}]\nlimit: 3\njudges: [refusal]\n"
                        f"progress: false\nreport: false\nout: {tmp_path / 'a'}\nname: from-file\n")
        assert main(["eval", "--config", str(conf), "--limit", "2", "--name", "from-flag"]) == 0
        assert srv.requests.total == 2                      # --limit 2 over the file's 3
    out = capsys.readouterr().out
    assert "from-flag" in out and not (tmp_path / "a" / "from-file").exists()
    assert (tmp_path / "a" / "from-flag").is_dir() and not (tmp_path / "a" / "from-flag" / "report.html").exists()


def test_docs_configuration_is_generated_from_the_models():
    assert DOC_PATH.exists(), "docs/configuration.md is missing: run python -m tis.cli.configdocs"
    assert DOC_PATH.read_text(encoding="utf-8") == configuration_markdown(), \
        "docs/configuration.md is out of date: run python -m tis.cli.configdocs"
    for key in EvalConfig.model_fields:
        assert f"| `{key}` |" in config_reference(EvalConfig)


def test_docs_example_is_a_valid_config(tmp_path):
    example = HEADER.split("```yaml\n", 1)[1].split("```", 1)[0]
    f = tmp_path / "runs.yaml"
    f.write_text(example)
    cfg = load_config_file(EvalConfig, f)
    assert cfg.concurrency == 64 and yaml.safe_load(example)["options"] == cfg.options


class Tuned(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lora: Lora = Lora(r=32, target_modules=["all"])
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP headers")


def test_a_section_given_in_part_keeps_the_rest_of_its_default(tmp_path):
    cfg = parse(["--lora.use-dora"], model=Tuned)
    assert cfg.lora == Lora(r=32, target_modules=["all"], use_dora=True)
    f = tmp_path / "t.yaml"
    f.write_text("lora: {use_dora: true}\n")
    assert load_config_file(Tuned, f).lora == Lora(r=32, target_modules=["all"], use_dora=True)
    assert parse(["--lora.r", "4"], model=Tuned, config_file=f).lora == Lora(r=4, target_modules=["all"],
                                                                             use_dora=True)


def test_a_mapping_of_text_keeps_values_as_given_and_sections_group_their_flags():
    assert parse(["--headers", "x-id=007", "--headers", "on=true"], model=Tuned).headers == {"x-id": "007", "on": "true"}
    parser = argparse.ArgumentParser(prog="t")
    add_config_flags(parser, Tuned)
    assert "lora:\n  --lora.r R" in parser.format_help()
