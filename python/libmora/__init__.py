"""libmora for PyTorch: MoRA layers on libmora's kernels, through ctypes (no compiled extension).

    import libmora
    model = libmora.apply_mora(model, target_modules=["q_proj", "v_proj"], r=8, op="rope")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ...train...
    libmora.save_adapter(model, "adapter")      # the C runtime's (and the MoRA reference's) files

The shared library is found through LIBMORA_LIBRARY, next to this package, or as an installed library.
"""
from ._lib import EXPECTED_VERSION, LibraryNotFound, MoraError, version
from ._ops import CUSTOM_OP, mora_apply
from .checkpoint import CheckpointError, load_adapter, save_adapter
from .layer import MoRALinear, apply_mora, mora_layers

__version__ = EXPECTED_VERSION
__all__ = ["MoRALinear", "apply_mora", "mora_layers", "save_adapter", "load_adapter", "mora_apply", "version",
           "MoraError", "LibraryNotFound", "CheckpointError", "CUSTOM_OP", "EXPECTED_VERSION"]
