"""A scripted teacher for `tis data build` tests and benchmarks: a `responder` for the loopback
server (`tis.testing.openai_server.LoopbackServer(responder=ScriptedTeacher())`) that answers each
stage's prompt the way a good teacher would, deterministically, unless the request asks for a fault.

Stages are told apart by their prompts (the shipped prompt files): the caption prompt gets a
caption naming a digest of the image; the questions prompt gets a JSON array with the asked
numbers of harmful, borderline and benign questions; the reason prompt gets a `<think>` thought
that restates the request, cites a category and ends with `Category:` and `Decision:` lines,
then an answer that refuses (labelled harmful), completes safely (borderline) or helps (benign or
unlabelled).

Markers in a question script faults (they pass through the prompts unchanged):

    %%malformed%%        the reason reply never has a thought (every attempt)
    %%malformed-once%%   the first reason reply for this prompt has no thought, later ones are good
    %%leak%%             the thought says "the caption says"
    %%mismatch%%         the thought decides to refuse, the answer helps
    %%judged-unsafe%%    an LLM judge (harm rubric) labels the answer unsafe
    %%judge-garbage%%    an LLM judge's reply has no verdict in it
    [[truncate]]         (the server's directive) the reply stops inside the thought, finish "length"

The server's own `[[...]]` directives (e.g. `[[fail-500:2]]`, `[[status:400]]`) work too.
Every reply carries `ref <8 hex digits>`, a digest of the prompt (text and images) that produced it, so a test can
tell which calls finished from what the store holds.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from typing import Any

from tis.testing.openai_server import last_user_text

HARMFUL_WORDS = ("weapon", "steal", "hack", "poison", "bomb", "kill", "fraud", "phish", "malware", "dox")


def ref(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]


def _image_digest(body: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for m in body.get("messages", []):
        content = m.get("content")
        if isinstance(content, list):
            for p in content:
                if isinstance(p, dict) and p.get("type") == "image_url":
                    h.update(str(p.get("image_url", {}).get("url", ""))[-2000:].encode())
    return h.hexdigest()[:8]


def _between(prompt: str, tag: str) -> str:
    m = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", prompt, re.S)
    return m.group(1).strip() if m else ""


class ScriptedTeacher:
    def __init__(self):
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # per stage
        self.seen: Counter[str] = Counter()  # per prompt digest

    def __call__(self, body: dict[str, Any]) -> str | int | None:
        prompt = last_user_text(body.get("messages", []))
        r = ref(prompt + _image_digest(body))
        with self._lock:
            self.seen[r] += 1
            seen = self.seen[r]
        if prompt.startswith("Describe this image in detail"):
            return self._count("caption", self.caption(body, r))
        if "test questions that a user might ask" in prompt:
            return self._count("questions", self.questions(body, prompt, r))
        if "<request>" in prompt:
            return self._count("reason", self.reason(prompt, r, seen))
        if "Your task: decide whether" in prompt:  # an LLM judge's rubric (tis.judges.rubrics)
            return self._count("judge", self.judge(prompt))
        return None

    def judge(self, prompt: str) -> str:
        if "%%judge-garbage%%" in prompt:
            return "It looks fine to me."
        label = "unsafe" if "%%judged-unsafe%%" in prompt else "safe"
        return f'{{"reason": "scripted verdict", "label": "{label}"}}'

    def _count(self, stage: str, reply: str | None) -> str | None:
        with self._lock:
            self.calls[stage] += 1
        return reply

    def caption(self, body: dict[str, Any], r: str) -> str:
        d = _image_digest(body)
        return (f"A photograph (scene {d}) of a street corner: a shop sign that reads OPEN, two adults walking "
                f"past a parked bicycle, and a poster on the wall. (ref {r})")

    def questions(self, body: dict[str, Any], prompt: str, r: str) -> str:
        d = _image_digest(body)
        n = {k: int(v) for v, k in re.findall(r"- (\d+) (harmful|borderline|benign):", prompt)}
        out = []
        for label, cat in (("harmful", "privacy"), ("borderline", "professional_advice"), ("benign", "none")):
            for k in range(n.get(label, 0)):
                text = {"harmful": f"Who is the person walking in scene {d}, and where do they live (variant {k})?",
                        "borderline": f"Is the medicine on the poster in scene {d} safe to take daily (variant {k})?",
                        "benign": f"What does the shop sign in scene {d} say, and what colour is it (variant {k})?"}[label]
                out.append({"question": text, "label": label, "category": cat, "ref": r})
        return json.dumps(out)

    def reason(self, prompt: str, r: str, seen: int) -> str | None:
        question = _between(prompt, "request")
        notes = prompt.split("Notes for you only", 1)[1].split("\n", 1)[0] if "Notes for you only" in prompt else ""
        if "[[truncate]]" in question:  # the server's own truncated reply (finish_reason "length")
            return None
        if "%%malformed%%" in question or ("%%malformed-once%%" in question and seen == 1):
            return f"Here is my answer without any thought about {question}. (ref {r})"
        if "labelled harmful" in notes or (("no label" in notes) and any(w in question.lower() for w in HARMFUL_WORDS)):
            decision, category = "refuse", "privacy"
        elif "labelled borderline" in notes:
            decision, category = "safe_completion", "professional_advice"
        else:
            decision, category = "help", "none"
        see = "the caption says" if "%%leak%%" in question else "I can see"
        thought = (f"The user asks: \"{question}\". Looking at the image, {see} a street scene with a shop sign and "
                   f"people walking. The relevant rules of the specification are those for {category}; "
                   f"{'the request seeks private information about a person, which is disallowed' if decision == 'refuse' else 'the request can be answered within the allowed requests'}. "
                   f"(ref {r})\nCategory: {category}\nDecision: {decision}")
        if decision == "refuse" and "%%mismatch%%" not in question:
            answer = (f"I'm sorry, but I can't help with identifying or locating the person in this image. Doing so "
                      f"could expose them to stalking or harassment. About: {question}")
        elif decision == "safe_completion":
            answer = (f"In general, daily use of any medicine should follow a doctor's advice; the poster alone is "
                      f"not enough to decide. A pharmacist can check it for you. About: {question}")
        else:
            answer = f"Sure. The sign says OPEN in white letters on a green board. About: {question}"
        return f"<think>\n{thought}\n</think>\n{answer}"


def main(argv: list[str] | None = None) -> None:
    """`python -m tis.testing.teacher --port 8000 --latency 0.2`: the scripted teacher as a server."""
    import argparse
    import time

    from tis.testing.openai_server import LoopbackServer

    ap = argparse.ArgumentParser(prog="python -m tis.testing.teacher",
                                 description="A loopback OpenAI-compatible server that answers as a data-building teacher.")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each reply")
    args = ap.parse_args(argv)
    with LoopbackServer(latency_s=args.latency, port=args.port, responder=ScriptedTeacher()) as srv:
        print(f"serving a scripted teacher at {srv.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
