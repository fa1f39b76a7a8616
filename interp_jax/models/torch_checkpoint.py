"""Read a `torch.save` checkpoint as data: {name: numpy array}, never running its code.

    state = read_state_dict("resnet50.pth")      # {"conv1.weight": array, ...}

A pickle can call any function while it loads (`__reduce__`), so a checkpoint
from elsewhere is read with torch's tensor-only unpickler
(`torch.load(..., weights_only=True)`): tensors, numbers, strings and plain
containers load, anything else is refused with a `UserError` (a ValueError)
saying so. Both of torch's formats (zip, and the legacy one of torch < 1.6)
are read; without torch installed, torch_unpickle.py reads the zip format
the same way. The state dict may be the file itself or sit under `state_dict`,
`model` or `model_state_dict`; a `module.` prefix (DataParallel,
DistributedDataParallel) is dropped.
"""

import os
import pickle
import re
import warnings

import ml_dtypes
import numpy as np

from interp_jax.errors import UserError
from interp_jax.models import torch_unpickle

NESTED_KEYS = ("state_dict", "model", "model_state_dict")


def _torch():
  """torch, or None when it is not installed (then torch_unpickle reads the zip format)."""
  try:
    import torch
  except ImportError:
    return None
  return torch


def _refusal(path: str, error: BaseException) -> UserError:
  """The sentence for a file torch's tensor-only unpickler would not read."""
  text = str(error)
  wanted = (re.search(r"GLOBAL ([\w.]+)", text)
            or re.search(r"Unsupported class ([\w.]+)", text))
  if wanted:
    return UserError(f"{path} asks to call {wanted.group(1)} while loading; refused: only "
                     "tensors and plain containers are read, never code from the file (save "
                     "just the state dict, torch.save(model.state_dict(), path), and import it)")
  detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
  detail = detail.group(1).strip() if detail else "not tensors and plain containers"
  return UserError(f"{path} is not a checkpoint torch's tensor-only reader accepts "
                   f"({detail[:120]}); refused rather than unpickled, which could run code "
                   "from the file")


def _load(path: str):
  if not os.path.isfile(path):
    raise UserError(f"no checkpoint file {path!r}; pass the file torch.save wrote")
  torch = _torch()
  if torch is None:
    return torch_unpickle.load_zip(path)
  try:
    with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
      warnings.simplefilter("ignore")
      return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    if "weights only" in str(e).lower() or "weights_only" in str(e):
      raise _refusal(path, e) from None
    raise UserError(f"cannot read {path} as a PyTorch checkpoint: {e}") from None
  except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise UserError(f"cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: "
                    f"{first}); pass a file written by torch.save") from None


def _is_tensor(value) -> bool:
  return isinstance(value, np.ndarray) or (
      type(value).__name__ in ("Tensor", "Parameter") and hasattr(value, "numpy"))


def _find_state_dict(obj, path: str) -> dict:
  """The dict of tensors in obj: obj itself or one of NESTED_KEYS (recursively)."""
  if not isinstance(obj, dict):
    raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict; save "
                    "model.state_dict()")
  tensors = {k: v for k, v in obj.items() if _is_tensor(v)}
  if tensors and len(tensors) == len(obj):
    return obj
  for key in NESTED_KEYS:
    if isinstance(obj.get(key), dict):
      return _find_state_dict(obj[key], path)
  if tensors:  # a state dict beside bookkeeping (an epoch number...): the tensors are it
    return tensors
  raise UserError(f"{path} holds no tensors at the top or under any of {list(NESTED_KEYS)} "
                  f"(its keys: {sorted(map(str, obj))[:8]})")


def _to_numpy(tensor) -> np.ndarray:
  if isinstance(tensor, np.ndarray):  # read without torch
    return tensor.astype(np.float32) if tensor.dtype.kind == "f" or tensor.dtype == (
        ml_dtypes.bfloat16) else tensor
  tensor = tensor.detach().cpu()
  if tensor.is_floating_point():
    tensor = tensor.float()  # bfloat16 / float16 have no (or a lossy) numpy path
  return tensor.numpy()


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """{parameter name: array} of the checkpoint at `path`, names without `module.`."""
  state = _find_state_dict(_load(path), path)
  out = {}
  for name, tensor in state.items():
    name = str(name)
    name = name[len("module."):] if name.startswith("module.") else name
    out[name] = _to_numpy(tensor)
  return out
