"""Judges, registered by name and imported only when used."""

from __future__ import annotations

from tis.registry import Registry

JUDGES = Registry("judge")
JUDGES.register("refusal", "tis.judges.refusal:RefusalJudge",
                "baseline: whole-word, case-insensitive refusal phrases; refused / complied")
JUDGES.register("offline", "tis.judges.offline:OfflineJudge",
                "offline classifier on MiniLM embeddings trained from human labels (JAILJUDGE); "
                "unsafe / safe with P(unsafe); optional argument: a weights file")
