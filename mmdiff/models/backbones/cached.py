"""A feature cache around a frozen backbone ("frozen U-Net, train the head").

Linear probes and head sweeps on a frozen diffusion backbone recompute the
same features every epoch; :class:`CachedBackbone` computes them once per
image and serves them from memory or disk afterwards.

Keys are safe by construction: ``sha256`` of the image tensor's bytes (with
shape and dtype) and its class id, the wrapped backbone's settings as built
(:func:`module_settings`: every plain attribute of it and its submodules,
e.g. ``timestep``, ``tap_paths``, ``noise``, ``amp_dtype``, prompt tensors;
the same whether the backbone is given as a config or as a module), and the
identity of its weights (a hash of every parameter and buffer, computed once
after the weights are loaded, or a ``weights_id`` string you supply). Any
change to the image, the settings or the weights gives a new key.

On disk every entry carries the sha256 of its tensors; an entry that cannot
be read, fails its checksum, holds non-finite values or features of another
shape is logged and recomputed. Stores of several processes may share one
folder: an entry evicted by another process is a miss, not an error.
"""
import hashlib
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdiff.registry import MODELS
from mmdiff.utils.digest import tensor_digest, tensors_sha256  # noqa: F401
from mmdiff.utils.fileio import atomic_write, torch_save


def module_digest(module: nn.Module) -> str:
    """sha256 over a module's named parameters and buffers (its weights)."""
    hasher = hashlib.sha256()
    for name, tensor in list(module.state_dict().items()):
        hasher.update(name.encode())
        tensor_digest(tensor, hasher)
    return hasher.hexdigest()


def _plain(value):
    """A JSON-able, process-independent description of an attribute value:
    plain data as is, tensors by digest, config objects (diffusers'
    schedulers) by their config, anything else by its type name only."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, Tensor):
        return 'tensor:' + tensor_digest(value).hexdigest()
    if isinstance(value, np.ndarray):
        return 'array:' + tensor_digest(torch.from_numpy(value)).hexdigest()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(
            value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(
            value.items(), key=lambda kv: str(kv[0]))}
    config = getattr(value, 'config', None)
    if isinstance(config, dict):  # diffusers ConfigMixin (schedulers)
        return {'type': type(value).__qualname__, 'config': _plain(config)}
    return f'<{type(value).__module__}.{type(value).__qualname__}>'


def module_settings(module: nn.Module) -> str:
    """Every setting of ``module`` that can change its outputs, as JSON.

    The public attributes of the module and of each submodule (``timestep``,
    ``noise``, ``tap_paths``, ``amp_dtype``, ``training``, prompt tensors
    kept as attributes, a scheduler's config, ...), with each submodule's
    class and diffusers config. A module's ``repr()`` shows only its layers;
    this is what a config dict would have set, however the module was made.
    """
    out = {}
    for name, sub in module.named_modules():
        attrs = {k: _plain(v) for k, v in sorted(vars(sub).items())
                 if not k.startswith('_')}
        config = getattr(sub, 'config', None)
        if isinstance(config, dict) and 'config' not in attrs:
            attrs['config'] = _plain(config)
        attrs['class'] = f'{type(sub).__module__}.{type(sub).__qualname__}'
        out[name] = attrs
    return json.dumps(out, sort_keys=True)


class FeatureStore:
    """Byte-capped LRU store of feature tuples, in memory or on disk.

    On disk an entry is ``<key>.pt``: ``{'feats': [tensors], 'sha256':
    checksum}`` (weights-only). :meth:`get` returns None (a miss, after a
    log line naming the file) for an entry that is unreadable, fails its
    checksum or ``check``, or holds non-finite values; the caller recomputes
    it. Several stores (processes) may share ``cache_dir``: each evicts by
    the files' modification times (the LRU order), and a file another store
    removed is a miss.

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
        self.hits = self.misses = self.evictions = self.invalid = 0
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            self._scan()
            self._evict()

    def _path(self, key: str) -> str:
        return osp.join(self.cache_dir, f'{key}.pt')

    def _scan(self) -> None:
        """Index the folder's entries, oldest first (LRU order across runs
        and processes)."""
        found = []
        for name in os.listdir(self.cache_dir):
            if not name.endswith('.pt') or name.startswith('.'):
                continue
            try:
                st = os.stat(osp.join(self.cache_dir, name))
            except FileNotFoundError:  # evicted by another store meanwhile
                continue
            found.append((st.st_mtime, name[:-3], st.st_size))
        self.entries.clear()
        self.sizes.clear()
        self.total = 0
        for _, key, size in sorted(found):
            self._account(key, None, size)

    def _account(self, key: str, value, size: int) -> None:
        self.entries[key] = value
        self.sizes[key] = size
        self.total += size

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str,
            check: Optional[Callable[[Tuple[Tensor, ...]], Optional[str]]]
            = None) -> Optional[Tuple[Tensor, ...]]:
        """Features of ``key`` (and mark it recently used), or None.

        Args:
            key (str): The entry.
            check (callable, optional): ``check(feats)`` returns why the
                features cannot be right (e.g. a wrong shape), or None.
        """
        if key not in self.entries:
            self.misses += 1
            return None
        if self.cache_dir is None:
            self.entries.move_to_end(key)
            self.hits += 1
            return self.entries[key]
        path = self._path(key)
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except FileNotFoundError:  # evicted by another store
            self._forget(key)
            self.misses += 1
            return None
        except Exception as e:  # truncated, overwritten, not a torch file
            obj, problem = None, f'unreadable ({type(e).__name__}: {e})'
        else:
            problem = self._problem(obj, check)
        if problem is not None:
            print_log(f'CachedBackbone: cache entry {path} is {problem}; '
                      'recomputing it.', logger='current', level=30)
            self.invalid += 1
            self._drop(key)
            self.misses += 1
            return None
        try:
            os.utime(path)
        except FileNotFoundError:  # evicted by another store just now
            pass
        self.entries.move_to_end(key)
        self.hits += 1
        return tuple(obj['feats'])

    @staticmethod
    def _problem(obj, check=None) -> Optional[str]:
        """Why a loaded entry cannot be served, or None."""
        if not (isinstance(obj, dict) and isinstance(obj.get('feats'), list)
                and isinstance(obj.get('sha256'), str)
                and all(isinstance(f, Tensor) for f in obj['feats'])):
            return 'not a feature entry of this mmdiff version'
        feats = obj['feats']
        if tensors_sha256(feats) != obj['sha256']:
            return 'damaged (its tensors do not match their sha256)'
        if not all(torch.isfinite(f).all() for f in feats):
            return 'holding non-finite values'
        return check(tuple(feats)) if check is not None else None

    def put(self, key: str, feats: Sequence[Tensor]) -> None:
        """Store features; evict least recently used entries past the cap."""
        # clone: a slice of a batch must not keep the whole batch alive
        feats = tuple(f.detach().to('cpu', copy=True).contiguous()
                      for f in feats)
        size = sum(f.numel() * f.element_size() for f in feats)
        if size > self.max_bytes:
            return  # larger than the whole cache: never stored
        if key in self.entries:
            self._forget(key)
        if self.cache_dir is None:
            value = feats
        else:
            value = None
            entry = dict(feats=list(feats), sha256=tensors_sha256(feats))
            path = atomic_write(self._path(key),
                                lambda tmp: torch_save(entry, tmp),
                                action='storing cached features')
            try:
                size = osp.getsize(path)
            except FileNotFoundError:  # evicted by another store already
                return
        self._account(key, value, size)
        self._evict()

    def _forget(self, key: str) -> None:
        self.entries.pop(key)
        self.total -= self.sizes.pop(key)

    def _drop(self, key: str) -> None:
        self._forget(key)
        if self.cache_dir is not None:
            try:
                os.remove(self._path(key))
            except FileNotFoundError:  # removed by another store
                pass

    def _evict(self) -> None:
        if self.total > self.max_bytes and self.cache_dir is not None:
            self._scan()  # other stores sharing the folder count too
        while self.total > self.max_bytes and self.entries:
            self._drop(next(iter(self.entries)))
            self.evictions += 1

    def stats(self) -> dict:
        return dict(entries=len(self), bytes=self.total, hits=self.hits,
                    misses=self.misses, evictions=self.evictions,
                    invalid=self.invalid)


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
        # Keys come from the built module's settings (module_settings), the
        # same for a config and a module: a module's repr() omits timestep,
        # noise, taps and prompts.
        self.backbone = backbone if isinstance(backbone, nn.Module) \
            else MODELS.build(backbone)
        self._shapes: Dict[tuple, List[tuple]] = {}
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
        settings = module_settings(self.backbone)
        return hashlib.sha256(
            f'{settings}\n{self.weights_id}'.encode()).digest()

    def _feature_problem(self, image: Tensor,
                         feats: Tuple[Tensor, ...]) -> Optional[str]:
        """Why ``feats`` loaded for ``image`` cannot be the backbone's
        features (levels, channels, batch of one, dtype, and the shapes
        computed in this process for images of this shape), or None."""
        chans = getattr(self, 'out_channels', None)
        if chans is not None and len(feats) != len(chans):
            return (f'holding {len(feats)} feature levels where the backbone '
                    f'gives {len(chans)}')
        known = self._shapes.get(tuple(image.shape))
        for i, f in enumerate(feats):
            if f.dim() < 2 or f.shape[0] != 1 or not f.is_floating_point() \
                    or (chans is not None and f.shape[1] != chans[i]) or \
                    (known is not None and (tuple(f.shape), str(f.dtype))
                     != known[i]):
                return (f'holding level {i} of shape {tuple(f.shape)} and '
                        f'dtype {f.dtype}, not what the backbone gives'
                        + (f' ({known[i]})' if known else ''))
        return None

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
        found = [
            self.store.get(k, lambda f, x=x: self._feature_problem(x, f))
            for k, x in zip(keys, inputs)]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            idx = torch.tensor(missing, device=inputs.device)
            kwargs = {} if class_ids is None else dict(
                class_ids=torch.as_tensor(class_ids)[idx.cpu()])
            with torch.no_grad():
                feats = self.backbone(inputs[idx], **kwargs)
            self._shapes[tuple(inputs.shape[1:])] = [
                ((1, ) + tuple(f.shape[1:]), str(f.dtype)) for f in feats]
            for j, i in enumerate(missing):
                found[i] = tuple(f[j:j + 1] for f in feats)
                self.store.put(keys[i], found[i])
        return tuple(
            torch.cat([f[level] for f in found]).to(inputs.device)
            for level in range(len(found[0])))
