"""Read torch.save's zip format without torch: tensors become numpy arrays, code is refused.

    obj = load_zip("resnet50.pth")     # {"conv1.weight": np.ndarray, ...} or a dict holding one

Used by torch_checkpoint.py when torch is not installed. A pickle runs code
only through the callables it names (GLOBAL / STACK_GLOBAL, resolved by
`find_class`), so the unpickler here resolves only the handful a state dict
needs (OrderedDict, torch's tensor and parameter rebuilders, the storage
types) to our own numpy versions, and refuses every other name before
anything is called. Storages are read from the archive's `data/` entries.
torch's legacy (pre-1.6, non-zip) format needs torch itself.
"""

import collections
import pickle
import sys
import zipfile

import ml_dtypes
import numpy as np

from interp_jax.errors import UserError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
  del requires_grad, hooks, metadata
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(storage[offset])  # a 0-d array, like a 0-d tensor
  # The file's sizes and strides are data: a view past the storage would read
  # memory that is not the tensor's (as_strided does not check), so refuse it.
  if (len(size) != len(stride) or min(size) < 0 or min(stride) < 0 or offset < 0
      or (0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride))
          >= len(storage))):
    raise ValueError(f"a tensor of size {size}, stride {stride} and offset {offset} lies "
                     f"outside its storage of {len(storage)} elements: a corrupt checkpoint")
  strides = tuple(s * storage.itemsize for s in stride)
  return np.lib.stride_tricks.as_strided(storage[offset:], size, strides).copy()


def _rebuild_parameter(data, requires_grad=False, hooks=None):
  del requires_grad, hooks
  return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _TensorOnlyUnpickler(pickle.Unpickler):

  def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str, byteorder: str):
    super().__init__(file)
    self._archive, self._prefix, self._path = archive, prefix, path
    self._byteorder = byteorder

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise UserError(f"{self._path} asks to call {module}.{name} while loading; refused: only "
                    "tensors and plain containers are read, never code from the file (save "
                    "just the state dict, torch.save(model.state_dict(), path), and import it)")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise UserError(f"{self._path} holds a storage reference this reader does not know")
    dtype = pid[1].dtype.newbyteorder("<" if self._byteorder == "little" else ">")
    raw = self._archive.read(f"{self._prefix}data/{pid[2]}")
    return np.frombuffer(raw, dtype).astype(pid[1].dtype)  # native order, writable copy


def load_zip(path: str):
  """The object torch.save wrote to `path` (zip format), tensors as numpy arrays."""
  if not zipfile.is_zipfile(path):
    raise UserError(f"{path} is not in torch.save's zip format; reading older (legacy) "
                    "checkpoints needs torch: pip install 'interp_jax[torch]'")
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(pickles) != 1:
      raise UserError(f"{path} is a zip file but not one torch.save wrote (no data.pkl)")
    prefix = pickles[0][:-len("data.pkl")]
    names = set(archive.namelist())
    byteorder = (archive.read(f"{prefix}byteorder").decode().strip()
                 if f"{prefix}byteorder" in names else sys.byteorder)
    with archive.open(pickles[0]) as f:
      try:
        return _TensorOnlyUnpickler(f, archive, prefix, path, byteorder).load()
      except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as e:
        if isinstance(e, UserError):
          raise
        raise UserError(f"cannot read {path} as a PyTorch checkpoint "
                        f"({type(e).__name__}: {e})") from None
