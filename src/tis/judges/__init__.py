"""Judges, registered by name and imported only when used."""

from __future__ import annotations

from tis.core.registry import PluginRegistry

JUDGES = PluginRegistry("judge", "tis.judges")  # plugins: the `tis.judges` entry-point group
JUDGES.register("refusal", "tis.judges.refusal:RefusalJudge",
                "refused / complied from reader's cues (logistic regression fitted on XSTest completions, "
                "CC BY 4.0) and names the cue that fired; answers only (thoughts: not_applicable)")
JUDGES.register("refusal-phrases", "tis.judges.refusal:PhraseRefusalJudge",
                "transparent baseline: whole-word, case-insensitive refusal phrases; refused / complied; "
                "answers only")
JUDGES.register("offline", "tis.judges.offline:OfflineJudge",
                "offline harm classifier (MiniLM embeddings + reader's cues) trained on JAILJUDGE-mini (MIT) and "
                "Safe-RLHF-mini (CC BY-NC 4.0: NON-COMMERCIAL use only), XSTest's harmless completions "
                "(CC BY 4.0) as an anchor; thoughts judged step by step; "
                "unsafe / safe with P(unsafe); optional argument: a weights file")
JUDGES.register("reference", "tis.judges.reference:ReferenceJudge",
                "capability: correct / incorrect against the item's reference answer (exact, multiple choice, "
                "yes/no)")
JUDGES.register("llm", "tis.judges.spec:llm_judge",
                "an LLM judge on any backend with per-benchmark rubric files: "
                "llm:openai:MODEL@BASE_URL[?key_env=VAR&rubric=NAME] or llm:hf:FOLDER (see docs/judges.md)")
JUDGES.register("guard", "tis.judges.spec:guard_judge",
                "a local Llama-Guard-style classifier (transformers): guard:hf:FOLDER; safe / unsafe + category")
