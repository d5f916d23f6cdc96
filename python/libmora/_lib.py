"""ctypes binding of libmora.so: finding the library, the C structs, and status checking.

Nothing here knows about torch. Every libmora call made by the package goes through `check()`,
which turns a negative mora_status into a `MoraError` carrying mora_status_name and mora_last_error().
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

# The libmora release this package is written against (include/mora.h, API 0.3: options structs
# begin with their size).
EXPECTED_VERSION = "0.3.0"

# mora_op ids (equal to the reference's mora_type where it has one)
OPS = {"truncate": 0, "share": 1, "group": 2, "group-tile": 3, "share-interleave": 4, "reshape": 5, "rope": 6}
OP_NAMES = {v: k for k, v in OPS.items()}
MORA_F32, MORA_F16, MORA_BF16 = 0, 1, 2
PLAN_FORWARD, PLAN_BACKWARD, PLAN_MERGE = 1, 2, 4
ARENA_PARAMS, ARENA_GRADS, ARENA_EXP_AVG, ARENA_EXP_AVG_SQ = 0, 1, 2, 3


class MoraError(RuntimeError):
    """A libmora call failed: `status` (int), `status_name` ("MORA_E_ARG"), `message` (mora_last_error())."""

    def __init__(self, call: str, status: int, status_name: str, message: str):
        self.call, self.status, self.status_name, self.message = call, status, status_name, message
        super().__init__(f"{call} failed: {status_name} ({status}): {message}")


class LibraryNotFound(OSError):
    pass


class mora_shape(ctypes.Structure):
    _fields_ = [("d_in", ctypes.c_int64), ("d_out", ctypes.c_int64), ("rhat", ctypes.c_int64), ("op", ctypes.c_int)]


class _Sized(ctypes.Structure):
    """An options struct of mora.h: its first member is its own size (struct_size), set here."""

    def __init__(self, *args, **kwargs):
        super().__init__(ctypes.sizeof(self), *args, **kwargs)


class mora_plan_options(_Sized):
    _fields_ = [("struct_size", ctypes.c_size_t), ("calls", ctypes.c_uint), ("merge_dtypes", ctypes.c_uint),
                ("external_workspace", ctypes.c_int), ("autotune", ctypes.c_int),
                ("tune_budget_seconds", ctypes.c_double)]


class mora_adapter_layer_desc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("d_in", ctypes.c_int64), ("d_out", ctypes.c_int64),
                ("lora_rank", ctypes.c_int64), ("rhat", ctypes.c_int64), ("op", ctypes.c_int),
                ("dtype", ctypes.c_int), ("w_dtype", ctypes.c_int)]


class mora_adapter_layer_info(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("shape", mora_shape), ("dtype", ctypes.c_int), ("w_dtype", ctypes.c_int),
                ("lora_rank", ctypes.c_int64), ("offset", ctypes.c_int64)]


class mora_adamw(_Sized):
    _fields_ = [("struct_size", ctypes.c_size_t), ("lr", ctypes.c_float), ("beta1", ctypes.c_float),
                ("beta2", ctypes.c_float), ("eps", ctypes.c_float), ("weight_decay", ctypes.c_float),
                ("max_grad_norm", ctypes.c_float)]


_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_ST = ctypes.c_int  # mora_status
# name: (restype, argtypes); restype _ST means "a status, checked"
_SIGNATURES = {
    "mora_version": (ctypes.c_char_p, []),
    "mora_version_number": (ctypes.c_int, []),
    "mora_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "mora_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "mora_last_error": (ctypes.c_char_p, []),
    "mora_rhat_from_rank": (_I64, [_I64, _I64, _I64]),
    "mora_shape_make": (_ST, [ctypes.POINTER(mora_shape), _I64, _I64, _I64, ctypes.c_int]),
    "mora_shape_check": (_ST, [ctypes.POINTER(mora_shape)]),
    "mora_shape_blocks": (_I64, [ctypes.POINTER(mora_shape)]),
    "mora_op_from_string": (_ST, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]),
    "mora_context_create": (_ST, [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_P)]),
    "mora_context_create_cuda": (_ST, [_P, ctypes.c_int, _P, ctypes.POINTER(_P)]),
    "mora_context_create_hip": (_ST, [ctypes.c_int, _P, ctypes.POINTER(_P)]),
    "mora_context_destroy": (None, [_P]),
    "mora_context_backend": (ctypes.c_char_p, [_P]),
    "mora_context_device_name": (ctypes.c_char_p, [_P]),
    "mora_context_set_stream": (_ST, [_P, _P]),
    "mora_synchronize": (_ST, [_P]),
    "mora_plan_create": (_ST, [_P, ctypes.POINTER(mora_shape), ctypes.c_int, _I64, ctypes.POINTER(mora_plan_options),
                              ctypes.POINTER(_P)]),
    "mora_plan_destroy": (None, [_P]),
    "mora_forward": (_ST, [_P, _P, _P, _I64, _P, _I64, _I64, ctypes.c_float]),
    "mora_backward": (_ST, [_P, _P, _P, _I64, _P, _I64, _P, _I64, _P, _I64, ctypes.c_float]),
    "mora_merge": (_ST, [_P, _P, _P, _I64, ctypes.c_int, ctypes.c_float]),
    "mora_adapter_create": (_ST, [_P, ctypes.POINTER(mora_adapter_layer_desc), ctypes.c_int, _I64, _P,
                                 ctypes.POINTER(_P)]),
    "mora_adapter_destroy": (None, [_P]),
    "mora_adapter_layer_count": (ctypes.c_int, [_P]),
    "mora_adapter_find": (_ST, [_P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]),
    "mora_adapter_layer": (_ST, [_P, ctypes.c_int, ctypes.POINTER(mora_adapter_layer_info)]),
    "mora_adapter_arena": (_ST, [_P, ctypes.c_int, ctypes.POINTER(_P), ctypes.POINTER(_I64)]),
    "mora_adapter_steps": (_I64, [_P]),
    "mora_adapter_save": (_ST, [_P, ctypes.c_char_p]),
    "mora_adapter_load": (_ST, [_P, ctypes.c_char_p]),
    "mora_adapter_step": (_ST, [_P, ctypes.POINTER(mora_adamw)]),
    "mora_adamw_defaults": (mora_adamw, []),
}

_lock = threading.Lock()
_lib = None
loaded_path = None  # where the library was loaded from


def _candidates() -> list[str]:
    """Where the library is looked for, in order, when LIBMORA_LIBRARY is not set (it alone is tried
    when it is): next to the package (pip install ./python bundles it there), then installed ones."""
    paths = []
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libmora.so", "libmora.so.0", "libmora.dylib"):
        paths.append(os.path.join(here, name))
    found = ctypes.util.find_library("mora")  # ldconfig's cache, LD_LIBRARY_PATH (gcc/ld fallbacks)
    if found:
        paths.append(found)
    paths.append("libmora.so.0")  # the dynamic loader's own search (LD_LIBRARY_PATH, rpath, ld.so.cache)
    return paths


def _bind(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def lib() -> ctypes.CDLL:
    """The loaded libmora (loaded on first use), version-checked."""
    global _lib, loaded_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        env = os.environ.get("LIBMORA_LIBRARY")
        for path in ([env] if env else _candidates()):  # a LIBMORA_LIBRARY that fails is not passed over
            try:
                candidate = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path} ({e})")
                continue
            try:
                _bind(candidate)
            except AttributeError as e:
                tried.append(f"{path} (not libmora {EXPECTED_VERSION}: {e})")
                continue
            version = candidate.mora_version().decode()
            if version.split(".")[:2] != EXPECTED_VERSION.split(".")[:2]:
                raise LibraryNotFound(
                    f"libmora at {path} is version {version}; this package (libmora-python) expects "
                    f"{EXPECTED_VERSION} (same major.minor). Point LIBMORA_LIBRARY at a matching libmora.so.")
            if version != EXPECTED_VERSION:
                import warnings
                warnings.warn(f"libmora at {path} is version {version}; this package was written against "
                              f"{EXPECTED_VERSION} (same API, a different patch release)", RuntimeWarning)
            _lib, loaded_path = candidate, path
            return _lib
        if env:
            raise LibraryNotFound(f"LIBMORA_LIBRARY={env}: {tried[0] if tried else 'not loadable'}. Point it at a "
                                  "libmora.so (build/libmora.so of a CMake build), or unset it to use the one "
                                  "pip install ./python bundled.")
        raise LibraryNotFound(
            "libmora.so was not found. Build it (cmake -S . -B build && cmake --build build) and set "
            "LIBMORA_LIBRARY=/path/to/build/libmora.so, copy it next to the libmora package, or install it "
            "(cmake --install build; ldconfig). Tried:\n  " + "\n  ".join(tried))


def version() -> str:
    return lib().mora_version().decode()


def check(call: str, status: int) -> None:
    """Raises MoraError for a negative status (reading mora_last_error on this same thread)."""
    if status != 0:
        L = lib()
        name = L.mora_status_name(status).decode()
        message = (L.mora_last_error() or b"").decode(errors="replace")
        raise MoraError(call, status, name, message)


def call(name: str, *args) -> None:
    """Calls the status-returning function `name` and checks its status."""
    check(name, getattr(lib(), name)(*args))


def shape_make(d_in: int, d_out: int, r: int, op: int) -> mora_shape:
    s = mora_shape()
    call("mora_shape_make", ctypes.byref(s), d_in, d_out, r, op)
    return s


def shape_check(d_in: int, d_out: int, rhat: int, op: int) -> mora_shape:
    s = mora_shape(d_in, d_out, rhat, op)
    call("mora_shape_check", ctypes.byref(s))
    return s


def op_id(op) -> int:
    """"rope", "ROPE", "group_tile", "6" or 6 -> the type id (names are case-insensitive; "_" may stand for "-")."""
    if isinstance(op, bool) or not isinstance(op, (int, str)):
        raise TypeError(f"op={op!r}: a MoRA operator name ({', '.join(OPS)}) or type id 0..6")
    if isinstance(op, int):
        if op not in OP_NAMES:
            raise ValueError(f"op={op}: not a MoRA type id (0..6: {', '.join(f'{v} {k}' for k, v in OPS.items())})")
        return op
    out = ctypes.c_int()
    call("mora_op_from_string", op.strip().lower().replace("_", "-").encode(), ctypes.byref(out))
    return out.value


def op_text(op: int) -> str:
    """6 -> "rope (6)": how error messages name an operator."""
    return f"{OP_NAMES.get(op, '?')} ({op})"
