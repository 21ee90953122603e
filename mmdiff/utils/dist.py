"""torch.distributed on CPU-only machines for mmengine's Runner.

mmengine 0.10.7 assumes a GPU per process when launched by torchrun
(``--launcher pytorch``): ``init_dist`` calls ``torch.cuda.set_device`` (an
AttributeError on CPU-only torch builds) and ``Runner.wrap_model`` passes
``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel`` (refused for CPU
modules). Both are avoided without patching anything:

* the process group is initialised here, with the config's
  ``env_cfg.dist_cfg`` (backend ``'gloo'``); the Runner sees it initialised
  and skips ``init_dist``;
* ``model_wrapper_cfg`` gets ``device_ids=None``, which DDP wants on CPU.

On machines with CUDA nothing is changed.
"""
import os
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare ``cfg`` (and the process group) for CPU distributed runs.

    Call it before ``Runner.from_cfg(cfg)`` in an entry point.

    Args:
        cfg (Config): A config whose ``launcher`` is already set.

    Returns:
        bool: True if a CPU process group was set up.

    Raises:
        ValueError: If the config asks for the NCCL backend without CUDA.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        raise ValueError(
            f"env_cfg.dist_cfg.backend={backend!r} needs GPUs, and this "
            'machine has none. Fix: train on CPU with the gloo backend, '
            'e.g. --cfg-options env_cfg.dist_cfg.backend=gloo.')
    if not torch_dist.is_initialized():
        timeout = dist_cfg.pop('timeout', None)
        kwargs = dict(timeout=timedelta(seconds=timeout)) if timeout else {}
        torch_dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True
