"""Studies: one declarative file for the whole loop (evaluate reasoning models and their bases, build
data, fine-tune, evaluate again, compare with inference-time defences) and one command, resumable
cell by cell (`tis study run FILE`). Light at import: the heavy work loads inside the runners."""
