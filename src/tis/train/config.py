"""TrainConfig: every setting of `tis train`. The command line, a YAML file and the Python API fill it.

Flags come from the fields (`tis.core.config.add_config_flags`): `--learning-rate 1e-4`,
`--lora.r 32`, `--data tis.json --data general.jsonl*0.5`. Light module: no torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tis.core.config import cli


class LoraSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: float = Field(32.0, gt=0, description="LoRA alpha (the update is scaled by alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] = Field(
        default_factory=list,
        description="names of linear layers to adapt, e.g. q_proj; repeatable (unset: every linear layer of the "
                    "language model, none of the vision tower)", json_schema_extra={"cli": {"metavar": "NAME"}})


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # model
    model: str = Field("", description="base model: a local folder (or a hub id already in the cache), or demo",
                       json_schema_extra=cli("model", "PATH"))
    chat_template: str | None = Field(None, description="a .jinja file to use instead of the model's chat template "
                                      "(unset: the model's)", json_schema_extra=cli("model", "FILE"))
    thought_open: str = Field("<think>", description="the tag that opens the thought",
                              json_schema_extra=cli("model", "TAG"))
    thought_close: str = Field("</think>", description="the tag that closes the thought",
                               json_schema_extra=cli("model", "TAG"))
    thought_handling: Literal["auto", "template", "verbatim"] = Field(
        "auto", description="how assistant turns are rendered: template (through the chat template; fails where it "
        "drops the thought), verbatim (the assistant text exactly as in the data, between the template's own "
        "turn markers), auto (template where it keeps the thought, else verbatim)",
        json_schema_extra=cli("model"))
    trust_remote_code: bool = Field(False, description="allow model code from the model folder",
                                    json_schema_extra=cli("model"))
    # data
    data: list[str] = Field(default_factory=list, description="a training set: FILE_OR_FOLDER[#NAME][*WEIGHT]; "
                            "repeat to mix sets (WEIGHT: 0.5 takes half the set, 2 repeats it twice; NAME: an entry "
                            "of the folder's dataset_info.json)", json_schema_extra=cli("data", "SPEC"))
    eval_data: list[str] = Field(default_factory=list, description="a held-out set for the eval loss (same spec); "
                                 "repeatable", json_schema_extra=cli("data", "SPEC"))
    eval_fraction: float = Field(0.0, ge=0, lt=1, description="share of the training records held out for the eval "
                                 "loss when no --eval-data is given", json_schema_extra=cli("data", "F"))
    max_length: int = Field(4096, ge=16, description="most tokens per sample (image tokens included)",
                            json_schema_extra=cli("data", "N"))
    overlong: Literal["cut", "drop"] = Field(
        "cut", description="a sample over max_length: cut (its answer end is cut; image tokens never are: a sample "
        "whose images or first answer token lie past max_length is dropped) or drop; both counted",
        json_schema_extra=cli("data"))
    skip_bad: bool = Field(False, description="skip records with missing images or a wrong <image> count (counted) "
                           "instead of stopping", json_schema_extra=cli("data"))
    # method
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapters or full fine-tuning",
                                            json_schema_extra=cli("method"))
    lora: LoraSection = Field(default_factory=LoraSection, description="LoRA settings")
    train_vision: bool = Field(False, description="train the vision tower (LoRA: adapters on its linear layers too)",
                               json_schema_extra=cli("method"))
    train_projector: bool = Field(False, description="train the vision-language projector (LoRA: saved in full "
                                  "beside the adapter)", json_schema_extra=cli("method"))
    # optimisation
    learning_rate: float | None = Field(None, gt=0, description="peak learning rate (unset: 2e-4 for LoRA, 1e-5 "
                                        "full)", json_schema_extra=cli("optimisation", "LR", "--lr"))
    epochs: float = Field(3.0, gt=0, description="passes over the training set",
                          json_schema_extra=cli("optimisation", "N"))
    max_steps: int | None = Field(None, ge=1, description="stop after N optimiser steps (overrides epochs)",
                                  json_schema_extra=cli("optimisation", "N"))
    batch_size: int = Field(1, ge=1, description="samples per device per step",
                            json_schema_extra=cli("optimisation", "N"))
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps (effective batch = batch_size x "
                            "grad_accum x devices)", json_schema_extra=cli("optimisation", "N"))
    warmup_ratio: float = Field(0.03, ge=0, le=1, description="share of the steps spent warming up the learning rate",
                                json_schema_extra=cli("optimisation", "F"))
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="learning-rate schedule", json_schema_extra=cli("optimisation"))
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay", json_schema_extra=cli("optimisation"))
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm", json_schema_extra=cli("optimisation"))
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 on a GPU that has it, else fp32", json_schema_extra=cli("optimisation"))
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass (less "
                                         "memory, about 30% more time)", json_schema_extra=cli("optimisation"))
    seed: int = Field(42, description="seed for data order, held-out split and initialisation",
                      json_schema_extra=cli("optimisation"))
    # output
    out: str = Field("", description="output folder: adapter or model, processor, training_manifest.json, "
                     "metrics.jsonl, checkpoint-N/", json_schema_extra=cli("output", "DIR", "-o"))
    save_steps: int = Field(500, ge=1, description="write a checkpoint every N steps",
                            json_schema_extra=cli("output", "N"))
    save_total_limit: int | None = Field(2, ge=1, description="checkpoints kept (none: all)",
                                         json_schema_extra=cli("output", "N"))
    eval_steps: int | None = Field(None, ge=1, description="eval loss every N steps (unset: at the end of each "
                                   "epoch, when there is a held-out set)", json_schema_extra=cli("output", "N"))
    logging_steps: int = Field(10, ge=1, description="log loss, learning rate and tokens/s every N steps",
                               json_schema_extra=cli("output", "N"))
    resume: bool = Field(False, description="continue from the last complete checkpoint in --out",
                         json_schema_extra=cli("output"))
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list, description="also log to tensorboard / wandb (must be installed); repeatable",
        json_schema_extra=cli("output"))
    progress: bool = Field(True, description="draw a progress bar", json_schema_extra=cli("output"))
    # scale
    deepspeed: str | None = Field(None, description="zero2 | zero3 | a DeepSpeed JSON file (launch with "
                                  "accelerate launch)", json_schema_extra=cli("scale", "CONFIG"))
    device: str = Field("auto", description="auto | cpu | cuda (single process; accelerate launch places "
                        "processes itself)", json_schema_extra=cli("scale"))
    dataloader_workers: int = Field(0, ge=0, description="data loader worker processes",
                                    json_schema_extra=cli("scale", "N"))

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.thought_open and not self.thought_close:
            raise ValueError("thought_close must be set when thought_open is")
        return self

    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 1e-5
