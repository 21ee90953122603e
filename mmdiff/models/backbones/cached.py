"""A feature cache around a frozen backbone ("frozen U-Net, train the head").

Linear probes and head sweeps on a frozen diffusion backbone recompute the
same features every epoch; :class:`CachedBackbone` computes them once per
image and serves them from memory or disk afterwards.

Keys are safe by construction: ``sha256`` of the image tensor's bytes (with
shape and dtype) and its class id, the wrapped backbone's config, and the
identity of its weights (a hash of every parameter and buffer, computed once
after the weights are loaded, or a ``weights_id`` string you supply). Any
change to the image, the config or the weights gives a new key.
"""
import hashlib
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdiff.registry import MODELS
from mmdiff.utils.fileio import atomic_write


def tensor_digest(tensor: Tensor, hasher=None):
    """Feed a tensor's dtype, shape and raw bytes into a sha256 hasher."""
    hasher = hasher or hashlib.sha256()
    tensor = tensor.detach().cpu().contiguous()
    hasher.update(f'{tensor.dtype}{tuple(tensor.shape)}'.encode())
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        tensor = tensor.view(torch.int16)
    hasher.update(memoryview(tensor.numpy()).cast('B'))
    return hasher


def module_digest(module: nn.Module) -> str:
    """sha256 over a module's named parameters and buffers (its weights)."""
    hasher = hashlib.sha256()
    for name, tensor in list(module.state_dict().items()):
        hasher.update(name.encode())
        tensor_digest(tensor, hasher)
    return hasher.hexdigest()


class FeatureStore:
    """Byte-capped LRU store of feature tuples, in memory or on disk.

    Args:
        max_size_mb (float): Cap on the stored features, in MB (1e6 bytes).
        cache_dir (str, optional): Folder for ``<key>.pt`` files (kept across
            runs; least recently used files are deleted past the cap). None
            keeps the features in memory. Defaults to None.
    """

    def __init__(self, max_size_mb: float,
                 cache_dir: Optional[str] = None) -> None:
        if max_size_mb <= 0:
            raise ValueError(f'max_size_mb must be > 0, got {max_size_mb}.')
        self.max_bytes = int(max_size_mb * 1e6)
        self.cache_dir = cache_dir
        self.entries: 'OrderedDict[str, object]' = OrderedDict()
        self.sizes: Dict[str, int] = {}
        self.total = 0
        self.hits = self.misses = self.evictions = 0
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            files = [f for f in os.listdir(cache_dir) if f.endswith('.pt')]
            files.sort(key=lambda f: osp.getmtime(osp.join(cache_dir, f)))
            for name in files:  # oldest first: LRU order across runs
                self._account(name[:-3], None,
                              osp.getsize(osp.join(cache_dir, name)))
            self._evict()

    def _path(self, key: str) -> str:
        return osp.join(self.cache_dir, f'{key}.pt')

    def _account(self, key: str, value, size: int) -> None:
        self.entries[key] = value
        self.sizes[key] = size
        self.total += size

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> Optional[Tuple[Tensor, ...]]:
        """Features of ``key`` (and mark it recently used), or None."""
        if key not in self.entries:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        if self.cache_dir is None:
            return self.entries[key]
        path = self._path(key)
        os.utime(path)
        return tuple(torch.load(path, map_location='cpu', weights_only=True))

    def put(self, key: str, feats: Sequence[Tensor]) -> None:
        """Store features; evict least recently used entries past the cap."""
        # clone: a slice of a batch must not keep the whole batch alive
        feats = tuple(f.detach().to('cpu', copy=True).contiguous()
                      for f in feats)
        size = sum(f.numel() * f.element_size() for f in feats)
        if size > self.max_bytes:
            return  # larger than the whole cache: never stored
        if key in self.entries:
            self._drop(key)
        if self.cache_dir is None:
            value = feats
        else:
            value = None
            atomic_write(self._path(key),
                         lambda tmp: torch.save(list(feats), tmp))
            size = osp.getsize(self._path(key))
        self._account(key, value, size)
        self._evict()

    def _drop(self, key: str) -> None:
        self.entries.pop(key)
        self.total -= self.sizes.pop(key)
        if self.cache_dir is not None and osp.exists(self._path(key)):
            os.remove(self._path(key))

    def _evict(self) -> None:
        while self.total > self.max_bytes and self.entries:
            self._drop(next(iter(self.entries)))
            self.evictions += 1

    def stats(self) -> dict:
        return dict(entries=len(self), bytes=self.total, hits=self.hits,
                    misses=self.misses, evictions=self.evictions)


@MODELS.register_module()
class CachedBackbone(BaseModule):
    """Serve a frozen backbone's features from a cache.

    Every parameter of the wrapped backbone must be frozen (it is checked at
    build time and at every forward): cached features are only valid for
    fixed weights. Stochastic settings (``noise='random'``,
    ``latent_mode='sample'``) are refused for the same reason. Use it with
    deterministic data pipelines (no random augmentation), e.g. linear probes
    or head sweeps; a new augmentation is a new image, hence a miss.

    Args:
        backbone (dict | nn.Module): The wrapped backbone or its config, e.g.
            ``dict(type='mmdiff.VPD', freeze_unet=True, ...)``.
        max_size_mb (float): Cache size cap in MB. Defaults to 4096.
        cache_dir (str, optional): On-disk cache folder (persists across
            runs); None caches in memory. Defaults to None.
        freeze (bool): Freeze every parameter of the backbone here instead
            of requiring its config to do so. Defaults to False.
        weights_id (str, optional): Identity of the weights used in keys
            (e.g. a checkpoint's sha256). Defaults to None: a sha256 of all
            parameters and buffers, computed once at the first forward.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 max_size_mb: float = 4096,
                 cache_dir: Optional[str] = None,
                 freeze: bool = False,
                 weights_id: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if isinstance(backbone, nn.Module):
            self.config_id = f'{type(backbone).__module__}.' \
                f'{type(backbone).__qualname__}:{backbone!r}'
            self.backbone = backbone
        else:
            self.config_id = json.dumps(backbone, sort_keys=True, default=str)
            self.backbone = MODELS.build(backbone)
        for attr, bad in (('noise', 'random'), ('latent_mode', 'sample')):
            if getattr(self.backbone, attr, None) == bad:
                raise ValueError(
                    f'CachedBackbone needs deterministic features, but the '
                    f'backbone has {attr}={bad!r}; use the default.')
        if freeze:
            self.backbone.requires_grad_(False)
        self._check_frozen()
        self.weights_id = weights_id
        self.store = FeatureStore(max_size_mb, cache_dir)
        for attr in ('out_channels', 'feature_info'):
            if hasattr(self.backbone, attr):
                setattr(self, attr, getattr(self.backbone, attr))
        self.backbone.eval()

    def _check_frozen(self) -> None:
        trainable = [n for n, p in self.backbone.named_parameters()
                     if p.requires_grad]
        if trainable:
            raise ValueError(
                f'CachedBackbone needs a frozen backbone, but {len(trainable)}'
                f' parameters are trainable (e.g. {trainable[:3]}). Freeze '
                'them in the backbone config (VPD: freeze_unet=True, '
                'text_adapter=False or class embeddings as a buffer) or pass '
                'freeze=True.')

    def train(self, mode: bool = True) -> 'CachedBackbone':
        """Training mode for the wrapper; the backbone stays in eval."""
        super().train(mode)
        self.backbone.eval()
        return self

    def _key_prefix(self) -> bytes:
        if self.weights_id is None:
            self.weights_id = module_digest(self.backbone)
        return hashlib.sha256(
            f'{self.config_id}\n{self.weights_id}'.encode()).digest()

    def keys(self, inputs: Tensor,
             class_ids: Optional[Tensor] = None) -> List[str]:
        """Cache key of every image in the batch."""
        prefix = self._key_prefix()
        keys = []
        for i in range(inputs.shape[0]):
            hasher = hashlib.sha256(prefix)
            tensor_digest(inputs[i], hasher)
            if class_ids is not None:
                hasher.update(f'class={int(class_ids[i])}'.encode())
            keys.append(hasher.hexdigest())
        return keys

    def forward(self, inputs: Tensor,
                class_ids: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Features of ``inputs``: cached ones loaded, the rest computed."""
        self._check_frozen()
        keys = self.keys(inputs, class_ids)
        found = [self.store.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            idx = torch.tensor(missing, device=inputs.device)
            kwargs = {} if class_ids is None else dict(
                class_ids=torch.as_tensor(class_ids)[idx.cpu()])
            with torch.no_grad():
                feats = self.backbone(inputs[idx], **kwargs)
            for j, i in enumerate(missing):
                found[i] = tuple(f[j:j + 1] for f in feats)
                self.store.put(keys[i], found[i])
        return tuple(
            torch.cat([f[level] for f in found]).to(inputs.device)
            for level in range(len(found[0])))
