"""Import throughput: an inspect_ai log of N samples (10,000 by default) turned into a tis run.

    .venv/bin/python benchmarks/bench_import.py [--samples 10000] [--images 50] [--judge] [--log PATH]

Writes, with inspect_ai's own types and writer, a log whose samples each hold a prompt, one of
`--images` distinct PNG images (as inspect_ai logs them: data URIs, stored once as attachments),
and an output: half with the thought in a reasoning part, half with `<think>` tags in the text.
Then runs `tis import inspect` in-process and prints the time of each phase (reading the log,
turning samples into completions and splitting them, the store and results files) and the
samples per second end to end. `--judge` also times `tis judge RUN --judge refusal` on the run.
`--log PATH` keeps the log there (and reuses it when it exists: writing it takes minutes).
The same completions as a JSONL of `{id, prompt, images, output}` are imported too
(`tis import jsonl`), which shows tis's own share without inspect_ai's reader.
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import tempfile
import time
from pathlib import Path


def png(seed: int, size: int = 64) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    image = Image.frombytes("RGB", (size, size), bytes(rng.getrandbits(8) for _ in range(size * size * 3)))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def build_log(path: Path, n: int, n_images: int) -> None:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSample, EvalSpec, write_eval_log
    from inspect_ai.model import (ChatCompletionChoice, ChatMessageAssistant, ChatMessageUser, ContentImage,
                                  ContentReasoning, ContentText, ModelOutput, ModelUsage)

    uris = [f"data:image/png;base64,{base64.b64encode(png(i)).decode()}" for i in range(n_images)]
    samples = []
    for i in range(n):
        prompt = f"Request {i}: explain what the picture shows and how to do what it depicts, step by step."
        thought = f"The user asks about item {i}. " + "I should weigh whether this is harmful. " * 8
        answer = "I can't help with that." if i % 3 == 0 else f"Sure. Step 1 for item {i}: gather the materials."
        if i % 2 == 0:
            content = [ContentReasoning(reasoning=thought), ContentText(text=answer)]
        else:
            content = f"<think>{thought}</think>\n{answer}"
        user = ChatMessageUser(content=[ContentText(text=prompt), ContentImage(image=uris[i % n_images])])
        assistant = ChatMessageAssistant(content=content, model="openai/vlm")
        samples.append(EvalSample(
            id=i, epoch=1, input=[user], target="", messages=[user, assistant], metadata={"category": f"c{i % 7}"},
            output=ModelOutput(model="openai/vlm", choices=[ChatCompletionChoice(message=assistant, stop_reason="stop")],
                               usage=ModelUsage(input_tokens=40, output_tokens=90, total_tokens=130))))
    log = EvalLog(eval=EvalSpec(created="2026-12-05T10:00:00+00:00", task="bench", model="openai/vlm",
                                dataset=EvalDataset(name="bench", samples=n, sample_ids=list(range(n))),
                                config=EvalConfig()), samples=samples, status="success")
    write_eval_log(log, str(path))


def jsonl_import(tmp: Path, completions) -> None:
    """The same completions as a JSONL file with the images on disk, imported with `tis import jsonl`."""
    import json

    from tis.interop.jsonl import read_jsonl
    from tis.interop.runs import write_imported_run

    src = tmp / "outputs.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for c in completions:
            f.write(json.dumps({"id": c.sample.id, "prompt": c.sample.text, "images": [im.path for im in c.sample.images],
                                "output": c.text, "reasoning": c.reasoning, "category": c.sample.category}) + "\n")
    t0 = time.perf_counter()
    outcome = write_imported_run(tmp / "runs" / "jsonl", read_jsonl(src, benchmark="bench", group="jailbreak"),
                                 model="vlm", benchmark="bench", group="jailbreak",
                                 source={"kind": "jsonl", "file": str(src)})
    dt = time.perf_counter() - t0
    print(f"tis import jsonl of the same completions: {dt:.2f}s = {outcome.completions / dt:,.0f} samples/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--judge", action="store_true", help="also time `tis judge RUN --judge refusal`")
    ap.add_argument("--log", type=Path, help="keep the generated log here; reuse it if it exists")
    args = ap.parse_args()

    from tis.interop import inspect_log as il
    from tis.interop.runs import write_imported_run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log_path = args.log or tmp / "bench.eval"
        t0 = time.perf_counter()
        if not log_path.exists():
            build_log(log_path, args.samples, args.images)
            print(f"log: {args.samples} samples, {args.images} images, {log_path.stat().st_size / 1e6:.1f} MB, "
                  f"written in {time.perf_counter() - t0:.1f}s")
        else:
            print(f"log: {log_path} ({log_path.stat().st_size / 1e6:.1f} MB), reused")

        run_dir = tmp / "runs" / "bench"
        t0 = time.perf_counter()
        log = il.read_log(log_path)
        t1 = time.perf_counter()
        completions = list(il.log_completions(log, log_path, run_dir, benchmark="bench", group="jailbreak"))
        t2 = time.perf_counter()
        outcome = write_imported_run(run_dir, completions, model=log.eval.model, benchmark="bench",
                                     group="jailbreak", source=il.log_source(log, log_path))
        t3 = time.perf_counter()
        total = t3 - t0
        print(f"read log (inspect_ai read_eval_log): {t1 - t0:6.2f}s")
        print(f"samples -> completions:              {t2 - t1:6.2f}s")
        print(f"split + store + results files:       {t3 - t2:6.2f}s")
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"import: {outcome.completions} completions ({outcome.with_thought} with a thought, "
              f"{outcome.split_sources}) in {total:.2f}s = {outcome.completions / total:,.0f} samples/s; "
              f"peak resident memory so far {peak:,.0f} MiB")
        jsonl_import(tmp, completions)
        if args.judge:
            from tis.pipeline.evaluate import rejudge

            t0 = time.perf_counter()
            rejudge(run_dir, ["refusal"], progress=False)
            dt = time.perf_counter() - t0
            print(f"tis judge --judge refusal: {dt:.2f}s = {outcome.completions / dt:,.0f} completions/s "
                  "(thought and answer, HTML report included)")


if __name__ == "__main__":
    main()
