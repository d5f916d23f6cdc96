"""libmora for PyTorch: MoRA layers on libmora's kernels, through ctypes (no compiled extension).

    import libmora
    model = libmora.apply_mora(model, target_modules=["q_proj", "v_proj"], r=8, op="rope")
    libmora.print_trainable_parameters(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ...train...
    libmora.save_adapter(model, "adapter")      # the C runtime's (and the MoRA reference's) files
    model = libmora.merge_and_unload(model)      # a plain model again, ΔW in its weights

libmora.from_pretrained(model, "adapter") adapts a model as a saved folder says and loads it (PEFT's
PeftModel.from_pretrained); libmora.hf has a transformers Trainer that checkpoints the adapter only.
The shared library is found through LIBMORA_LIBRARY, next to this package (pip install ./python bundles
one), or as an installed library.
"""
from ._lib import EXPECTED_VERSION, LibraryNotFound, MoraError, version
from ._ops import CUSTOM_OP, mora_apply
from .checkpoint import CheckpointError, adapter_config, from_pretrained, load_adapter, save_adapter
from .layer import (MoRALinear, apply_mora, merge_and_unload, mora_layers, print_trainable_parameters,
                    trainable_parameters, unload)

__version__ = EXPECTED_VERSION
__all__ = ["MoRALinear", "apply_mora", "mora_layers", "merge_and_unload", "unload", "trainable_parameters",
           "print_trainable_parameters", "save_adapter", "load_adapter", "from_pretrained", "adapter_config",
           "mora_apply", "version", "MoraError", "LibraryNotFound", "CheckpointError", "CUSTOM_OP",
           "EXPECTED_VERSION"]
