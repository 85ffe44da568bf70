"""Running a study: every cell of the plan in order (data builds, evaluations, training runs, the
fine-tuned models' evaluations, imports), then the tables and the report.

Each cell writes into the study folder (`runs/LABEL/BENCHMARK/` is an ordinary tis run); the state of
every cell (done / failed / blocked, with its settings' fingerprint, wall time and model calls) is kept
in `study-state.json`, written after each cell. Re-running runs only what is missing: cells not done,
or done with other settings. An evaluation killed half way resumes from its store. A failed cell is
recorded with its one-line error and the cells that need it are blocked; every other cell still runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tis.core.errors import ConfigError, TisError
from tis.study.plan import BuildCell, Cell, EvalCell, ImportCell, Plan, TrainCell

STATE = "study-state.json"


@dataclass
class CellResult:
    status: str  # done | failed | blocked | skipped (done before)
    wall_s: float = 0.0
    model_calls: int = 0  # requests to the model (a local backend's batch is one)
    error: str | None = None
    generated: int = 0  # completions generated (not read from the store)


@dataclass
class StudyOutcome:
    plan: Plan
    results: dict[str, CellResult] = field(default_factory=dict)
    wall_s: float = 0.0
    tables: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None

    @property
    def failed(self) -> list[str]:
        return [k for k, r in self.results.items() if r.status in ("failed", "blocked")]

    @property
    def model_calls(self) -> int:
        return sum(r.model_calls for r in self.results.values())

    @property
    def generated(self) -> int:
        return sum(r.generated for r in self.results.values())

    @property
    def ran(self) -> list[str]:
        return [k for k, r in self.results.items() if r.status == "done"]


# --- state -------------------------------------------------------------------------------------------

def read_state(out: Path) -> dict[str, dict[str, Any]]:
    path = out / STATE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a state file cut by a crash: every cell is checked again (their stores resume)
    cells = data.get("cells") if isinstance(data, dict) else None
    return cells if isinstance(cells, dict) else {}


def write_state(out: Path, cells: dict[str, dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{STATE}.tmp"
    tmp.write_text(json.dumps({"version": 1, "cells": cells}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out / STATE)


def _output_exists(cell: Cell) -> bool:
    if isinstance(cell, (EvalCell, ImportCell)):
        return (cell.run_dir / "results.jsonl").is_file() and (cell.run_dir / "manifest.json").is_file()
    if isinstance(cell, TrainCell):
        return (cell.out / "training_manifest.json").is_file()
    if isinstance(cell, BuildCell):
        return (cell.out / "export").is_dir()
    return False


def is_done(cell: Cell, state: dict[str, dict[str, Any]]) -> bool:
    entry = state.get(cell.id)
    return bool(entry and entry.get("status") == "done" and entry.get("fingerprint") == cell.fingerprint
                and _output_exists(cell))


# --- the shipped TiS sample and stand-in images --------------------------------------------------------

def shipped_set_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "tis-sample"


def render_stand_ins(records: list[dict], root: Path) -> int:
    """Draw a stand-in image at every missing image path of `records` (the released TiS data ships its
    images apart): the record's question as text on a plain ground, so nothing real is implied."""
    from PIL import Image, ImageDraw

    made = 0
    for k, rec in enumerate(records):
        question = ""
        for turn in rec.get("conversations", []):
            if turn.get("from") in ("human", "user"):
                question = str(turn.get("value", "")).replace("<image>", "").strip()
                break
        for rel in rec.get("images", []) or []:
            p = root / rel
            if p.exists():
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            img = Image.new("RGB", (112, 112), (235, 235 - 9 * (k % 7), 220 + 5 * (k % 5)))
            draw = ImageDraw.Draw(img)
            draw.text((4, 4), "stand-in", fill=(150, 0, 0))
            words, line, y = question.split(), "", 18
            for w in words:
                if len(line) + len(w) > 17:
                    draw.text((4, y), line, fill=(0, 0, 0))
                    line, y = "", y + 11
                    if y > 100:
                        break
                line = f"{line} {w}".strip()
            if y <= 100 and line:
                draw.text((4, y), line, fill=(0, 0, 0))
            img.save(p)
            made += 1
    return made


def materialise_set(src_file: Path, dest: Path) -> Path:
    """Copy a sharegpt set's JSON (and licence) into `dest` and render stand-ins for its missing images."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / src_file.name
    if not target.is_file():
        shutil.copyfile(src_file, target)
    for extra in ("LICENSE", "README.md"):
        if (src_file.parent / extra).is_file() and not (dest / extra).is_file():
            shutil.copyfile(src_file.parent / extra, dest / extra)
    records = json.loads(target.read_text(encoding="utf-8"))
    # images that exist beside the original are linked, the rest drawn
    for rec in records:
        for rel in rec.get("images", []) or []:
            orig, here = src_file.parent / rel, dest / rel
            if orig.is_file() and not here.exists():
                here.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(orig, here)
    made = render_stand_ins(records, dest)
    if made:
        (dest / "STAND-IN-IMAGES.txt").write_text(
            "The images of this set are rendered stand-ins (the record's question drawn as text), not the "
            "released images: the release ships them apart. Training on them exercises the loop; it says "
            "nothing about what the images would teach.\n", encoding="utf-8")
    return target


# --- cells -------------------------------------------------------------------------------------------

def _run_build(cell: BuildCell, plan: Plan, progress: bool) -> CellResult:
    from tis.core.config import load_config_file
    from tis.data.build import run_build
    from tis.data.config import BuildConfig

    config = cell.settings["config"]
    if "file" in config:
        cfg = load_config_file(BuildConfig, config["file"]).resolved(Path(config["file"]).parent)
    else:
        from tis.core.config import _FileSource, _validate  # the same key-naming errors as a file

        cfg = _validate(BuildConfig, config, source=_FileSource(plan.study_file)).resolved(plan.study_file.parent)
    cfg = cfg.model_copy(update={"out": cell.out, "progress": progress})
    result = run_build(cfg)
    calls = sum(int(u.get("calls", 0) or 0) for u in result.usage.values() if isinstance(u, dict))
    if not result.kept:
        return CellResult("failed", error=f"the build kept no records (see {cell.out})", model_calls=calls)
    return CellResult("done", model_calls=calls)


def _run_eval(cell: EvalCell, plan: Plan, progress: bool) -> CellResult:
    from tis.pipeline.config import make_config
    from tis.pipeline.evaluate import evaluate

    settings = {k: v for k, v in cell.settings.items() if v not in (None, [], {}) or k in ("judges",)}
    if settings.get("judges") is None:
        settings.pop("judges", None)
    cfg = make_config(**settings, out=str(cell.run_dir.parent), name=cell.run_dir.name, force=True,
                      progress=progress, report=True)
    outcome = evaluate(cfg)
    calls = int(outcome.stats.get("model_calls") or 0)
    generated = int(outcome.stats.get("generated") or 0)
    if outcome.failed:
        first = outcome.stats.get("first_error") or "see the run's summary"
        return CellResult("failed", model_calls=calls, generated=generated,
                          error=f"{outcome.failed} generation(s) failed ({first}); re-run the study to retry them")
    return CellResult("done", model_calls=calls, generated=generated)


def _run_train(cell: TrainCell, plan: Plan, progress: bool) -> CellResult:
    from tis.train.config import TrainConfig
    from tis.train.run import last_checkpoint, train

    if cell.settings.get("shipped") == "tis-sample":
        target = materialise_set(shipped_set_dir() / "train_data_sample.json", plan.out / "data" / "tis-sample")
        if (target.parent / "STAND-IN-IMAGES.txt").is_file():
            print(f"the TiS sample's images are rendered stand-ins (the question drawn as text; the release ships "
                  f"its images apart): {target.parent / 'STAND-IN-IMAGES.txt'}", file=sys.stderr, flush=True)
    elif cell.settings.get("stand_in_images"):
        for spec in cell.settings["config"]["data"]:
            path = Path(spec.split("#")[0].split("*")[0])
            if path.is_file():
                render_stand_ins(json.loads(path.read_text(encoding="utf-8")), path.parent)
    config = dict(cell.settings["config"])
    marker = cell.out / "study-cell.json"
    same = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == cell.fingerprint
    if same and (cell.out / "training_manifest.json").is_file():
        return CellResult("done")  # finished before the study's state recorded it
    if cell.out.is_dir() and not same:
        shutil.rmtree(cell.out)  # checkpoints of other settings: never resumed into this run
    cell.out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"cell": cell.id, "fingerprint": cell.fingerprint}) + "\n", encoding="utf-8")
    cfg = TrainConfig.model_validate({**config, "progress": progress,
                                      "resume": last_checkpoint(cell.out) is not None})
    result = train(cfg)
    if result.kind == "stopped":
        return CellResult("failed", error=f"training stopped at step {result.steps}; re-run the study to continue")
    return CellResult("done")


def _run_import(cell: ImportCell, plan: Plan, progress: bool) -> CellResult:
    from tis.study.importers import import_results

    if cell.run_dir.exists():
        shutil.rmtree(cell.run_dir)  # an import never finished: it is cheap to make again
    import_results(cell.settings["format"], cell.settings["file"], cell.run_dir, model=cell.label,
                   benchmark=cell.name, scoring=cell.settings["scoring"], progress=progress)
    return CellResult("done")


_RUNNERS: dict[type, Callable[[Any, Plan, bool], CellResult]] = {
    BuildCell: _run_build, EvalCell: _run_eval, TrainCell: _run_train, ImportCell: _run_import}


def describe(cell: Cell) -> str:
    if isinstance(cell, EvalCell):
        return f"evaluate {cell.label} on {cell.benchmark}"
    if isinstance(cell, TrainCell):
        return f"fine-tune {cell.model} on {cell.set}"
    if isinstance(cell, BuildCell):
        return f"build data set {cell.name}"
    if isinstance(cell, ImportCell):
        return f"import {cell.name} results of {cell.label}"
    return cell.id


def served(cell: Cell) -> bool:
    """An evaluation of a model behind an HTTP server: it may run beside other cells."""
    return isinstance(cell, EvalCell) and not cell.needs and str(cell.settings.get("model", "")).startswith("openai:")


def run_study(plan: Plan, *, progress: bool = True, only: list[str] | None = None, write: Callable[[str], None] | None = None,
              report: bool = True, jobs: int = 1) -> StudyOutcome:
    """Run every cell that is not done yet, then write the tables and the report.

    With `jobs` > 1, evaluations of served models (openai:...) run up to `jobs` at once beside the
    local cells (builds, training runs, local models), which run one at a time in plan order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    say = write or (lambda line: print(line, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    state = read_state(out)
    outcome = StudyOutcome(plan=plan)
    cells = [c for c in plan.cells if not only or any(c.id.startswith(o) or o in c.id for o in only)]
    todo = [c for c in cells if not is_done(c, state)]
    say(f"study {plan.study.name}: {len(cells)} cells, {len(cells) - len(todo)} done before, {len(todo)} to run "
        f"(folder {out})")
    lock = threading.Lock()
    number = {c.id: i for i, c in enumerate(cells, 1)}

    def run_one(cell: Cell, show_progress: bool) -> None:
        i = number[cell.id]
        with lock:
            blocked = [n for n in cell.needs if outcome.results.get(n) and outcome.results[n].status in ("failed", "blocked")
                       or (n not in outcome.results and not is_done(plan.cell(n), state))]
        if blocked:
            res = CellResult("blocked", error=f"needs {', '.join(blocked)}, which did not finish")
            say(f"[{i}/{len(cells)}] {describe(cell)}: blocked ({res.error})")
        else:
            say(f"[{i}/{len(cells)}] {describe(cell)} ...")
            started = time.perf_counter()
            try:
                res = _RUNNERS[type(cell)](cell, plan, show_progress)
            except TisError as exc:
                res = CellResult("failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one cell's bug or crash must not stop the others
                res = CellResult("failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            res.wall_s = time.perf_counter() - started
            extra = f", {res.generated} completions in {res.model_calls} model calls" if res.model_calls else ""
            say(f"[{i}/{len(cells)}] {describe(cell)}: {res.status} in {res.wall_s:.1f} s{extra}"
                + (f" — {res.error}" if res.error else ""))
        with lock:
            outcome.results[cell.id] = res
            state[cell.id] = {"status": res.status, "fingerprint": cell.fingerprint, "wall_s": round(res.wall_s, 3),
                              "model_calls": res.model_calls, "generated": res.generated, "error": res.error,
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_state(out, state)

    for cell in cells:
        if is_done(cell, state):
            outcome.results[cell.id] = CellResult("skipped", wall_s=float(state[cell.id].get("wall_s") or 0))
    pooled = [c for c in todo if jobs > 1 and served(c)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_one, c, False) for c in pooled]  # no bars: several would interleave
        for cell in todo:
            if cell not in pooled:
                run_one(cell, progress)
        for f in futures:
            f.result()
    outcome.results = {c.id: outcome.results[c.id] for c in cells if c.id in outcome.results}
    outcome.wall_s = time.perf_counter() - t0
    if report:
        from tis.study.report import write_study_outputs

        outcome.tables, outcome.report = write_study_outputs(plan, outcome)
    return outcome


# --- the dry run -----------------------------------------------------------------------------------------

def plan_text(plan: Plan, state: dict[str, dict[str, Any]] | None = None) -> str:
    """The plan as text: one line per cell with its status and cost, then the totals."""
    state = read_state(plan.out) if state is None else state
    lines = [f"study {plan.study.name} -> {plan.out}", ""]
    width = max((len(describe(c)) for c in plan.cells), default=10)
    todo_calls = unknown = 0
    trainings = builds = 0
    for c in plan.cells:
        done = is_done(c, state)
        status = "done" if done else (state.get(c.id, {}).get("status") or "to run")
        status = "to run" if status in ("done",) and not done else status
        cost = ""
        if isinstance(c, EvalCell):
            cost = f"{c.model_calls} model calls" if c.model_calls is not None else "? model calls (size known when read)"
            if not done:
                if c.model_calls is None:
                    unknown += 1
                else:
                    todo_calls += c.model_calls
        elif isinstance(c, TrainCell):
            cost = "1 training run"
            trainings += not done
        elif isinstance(c, BuildCell):
            cost = "teacher calls per its config"
            builds += not done
        needs = f" (after {', '.join(c.needs)})" if c.needs else ""
        lines.append(f"  {describe(c):<{width}}  {status:<8} {cost}{needs}")
    n_eval = sum(1 for c in plan.evals if not is_done(c, state))
    lines += ["", f"to run: {n_eval} evaluation cell(s) with {todo_calls} model calls"
              + (f" (+ {unknown} cell(s) whose size is known once read)" if unknown else "")
              + f", {trainings} training run(s), {builds} data build(s), "
              + f"{sum(1 for c in plan.imports if not is_done(c, state))} import(s)"]
    if plan.pairs:
        lines.append("collapse pairs: " + ", ".join(f"{m} vs {b}" for m, b in plan.pairs))
    return "\n".join(lines) + "\n"


def load_plan(study_file: str | Path, *, out: str | Path | None = None) -> Plan:
    from tis.study.plan import make_plan
    from tis.study.spec import find_study, read_study

    path = find_study(str(study_file))
    study = read_study(path)
    try:
        return make_plan(study, path, out=out)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
