"""transformers' Trainer with libmora adapters (needs `transformers`; imported only from here).

    from libmora.hf import MoRATrainer
    model = libmora.apply_mora(model, target_modules=[...], r=8, op="rope")
    trainer = MoRATrainer(model=model, args=TrainingArguments(...), train_dataset=...)
    trainer.train()                                      # checkpoint-N/ hold the adapter, not the model
    trainer.train(resume_from_checkpoint=True)           # or a path: the adapter, optimizer, scheduler, RNG

A stock Trainer saves the whole model (every frozen weight) in each checkpoint, because an adapted
model is still a PreTrainedModel to it; PEFT's PeftModel is special-cased inside the Trainer, libmora's
layers are not. MoRATrainer (or MoRATrainerMixin before your own Trainer subclass, e.g. TRL's) saves
what PEFT's does instead: adapter_model.safetensors and adapter_config.json in the MoRA reference's
layout (libmora.save_adapter: the C runtime and the reference load them), plus optimizer.safetensors
(the Adam moments, for the C runtime), beside the Trainer's own optimizer.pt, scheduler.pt,
rng_state.pth and trainer_state.json; and loads the adapter back on resume and for
load_best_model_at_end. trainer.save_model(folder) writes the adapter too.

It overrides the Trainer's _save, _load_from_checkpoint and _load_best_model (transformers has no
public hook for what a checkpoint holds); tested with transformers 5.
"""
from __future__ import annotations

import os

import torch
from transformers import Trainer

from .checkpoint import CheckpointError, load_adapter, save_adapter
from .layer import mora_layers

TRAINING_ARGS_NAME = "training_args.bin"


class MoRATrainerMixin:
    """Put before a transformers Trainer class: checkpoints hold the libmora adapter, not the model."""

    def _libmora_model(self, model=None):
        model = model if model is not None else self.model
        if not mora_layers(model):
            raise ValueError(f"{type(self).__name__}: the model has no libmora MoRA layers (libmora.apply_mora "
                             "first, or use a plain Trainer)")
        return model

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self._libmora_model()
        optimizer = getattr(self, "optimizer", None)
        try:  # the Adam moments too, where there are some (the C runtime resumes from them)
            save_adapter(model, output_dir, optimizer=optimizer)
        except CheckpointError:
            save_adapter(model, output_dir)
        processing = getattr(self, "processing_class", None) or getattr(self, "tokenizer", None)
        if processing is not None:
            processing.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_adapter(self._libmora_model(model), resume_from_checkpoint)

    def _load_best_model(self) -> None:
        load_adapter(self._libmora_model(), self.state.best_model_checkpoint)


class MoRATrainer(MoRATrainerMixin, Trainer):
    """transformers.Trainer whose checkpoints hold the libmora adapter (see the module's docstring)."""
