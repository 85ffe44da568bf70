"""Fine-tuning (`tis train`): SFT with LoRA or in full on safety-thought data, the thought kept in the loss.

Built on TRL's `SFTTrainer`, PEFT and accelerate. Modules: `config` (TrainConfig), `data` (sets in,
mixing, held-out split), `template` (chat-template rendering, label masks, length rule, collator),
`model` (supported architectures, parts, LoRA targets), `check` (`tis train check`), `run` (the
training run and its manifest), `merge` (adapter into the base). Heavy imports stay inside functions.
"""
