"""Runs in and out of the tools users already run: inspect_ai logs (out and in), Hugging Face
`datasets` folders (out), and completions of any harness as JSONL (in).

The heavy packages (inspect_ai, datasets) load only inside the functions that use them; each is an
optional extra (`tis[inspect]`, `tis[hf-datasets]`).
"""
