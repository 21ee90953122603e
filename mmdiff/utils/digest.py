"""sha256 of tensors (dtype, shape and bytes): cache keys and checksums."""
import hashlib

import torch
from torch import Tensor


def tensor_digest(tensor: Tensor, hasher=None):
    """Feed a tensor's dtype, shape and raw bytes into a sha256 hasher."""
    hasher = hasher or hashlib.sha256()
    tensor = tensor.detach().cpu().contiguous()
    hasher.update(f'{tensor.dtype}{tuple(tensor.shape)}'.encode())
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        tensor = tensor.view(torch.int16)
    hasher.update(memoryview(tensor.numpy()).cast('B'))
    return hasher


def tensors_sha256(tensors) -> str:
    """Hex sha256 of a sequence of tensors (their order, dtypes, shapes and
    bytes): the checksum stored beside cached tensors."""
    hasher = hashlib.sha256()
    for tensor in tensors:
        tensor_digest(tensor, hasher)
    return hasher.hexdigest()
