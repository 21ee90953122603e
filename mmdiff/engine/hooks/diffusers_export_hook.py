"""Hand a pretrained U-Net to the backbones at every checkpoint.

At each checkpoint mmengine saves (in ``before_save_checkpoint``, the last
hook to run there: mmengine 0.10 has no after-save hook point),
:class:`DiffusersExportHook` writes
the U-Net and VAE as a diffusers folder (``<work_dir>/diffusers`` by
default, replaced atomically), which every mmdiff backbone config loads
with ``model.backbone.pretrained=FOLDER``, and a grid of DDIM samples
(``<work_dir>/samples/iter_<N>.png``) so the user sees what the model
learned (caption-conditioned: prompted with the first captions of the
training set, listed in ``mmdiff_pretrain.json``). With mmengine's
``EMAHook`` the checkpoint's ``state_dict`` holds the EMA weights
(``EMAHook.before_save_checkpoint`` swaps them in), so the EMA U-Net is
what is exported and sampled.
"""
import os.path as osp
from typing import Optional

import cv2
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmdiff.utils.fileio import atomic_write
from mmdiff.registry import HOOKS


def _imwrite(path: str, bgr) -> None:
    ok, buf = cv2.imencode('.png', bgr)
    if not ok:
        raise OSError(f'OpenCV could not encode {path}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _first_captions(runner, num: int) -> list:
    """The captions of the first ``num`` training samples (cycled when the
    set is smaller; '' where a sample has none)."""
    dataset = runner.train_dataloader.dataset
    n = len(dataset)
    return [str(dataset.get_data_info(i % n).get('caption', ''))
            for i in range(num)]


@HOOKS.register_module()
class DiffusersExportHook(Hook):
    """Export a :class:`~mmdiff.models.DiffusionPretrainer` at each save.

    Args:
        out_dir (str, optional): The diffusers folder. Defaults to None
            (``<work_dir>/diffusers``).
        num_samples (int): DDIM samples in each grid; 0 for none.
            Defaults to 8.
        sample_steps (int): DDIM steps. Defaults to 25.
        sample_size (int, optional): Side of the samples in pixels.
            Defaults to None (the last training batch's).
        seed (int): Seed of the samples' starting noise (the same at every
            checkpoint, so grids compare). Defaults to 0.
    """

    # last at before_save_checkpoint: after EMAHook (NORMAL) has swapped the
    # EMA weights into the checkpoint's state_dict
    priority = 'LOWEST'

    def __init__(self, out_dir: Optional[str] = None, num_samples: int = 8,
                 sample_steps: int = 25, sample_size: Optional[int] = None,
                 seed: int = 0) -> None:
        self.out_dir = out_dir
        self.num_samples = num_samples
        self.sample_steps = sample_steps
        self.sample_size = sample_size
        self.seed = seed
        self._last_size = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.sample_size is None and data_batch is not None:
            inputs = data_batch.get('inputs') if isinstance(
                data_batch, dict) else None
            if inputs is not None and len(inputs):
                self._last_size = tuple(inputs[0].shape[-2:])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_main_process():
            return
        from mmdiff.models.pretrainers.export import (build_plain_unet,
                                                      export_diffusers,
                                                      image_grid)
        model = runner.model
        model = getattr(model, 'module', model)
        if not hasattr(model, 'sample') or not hasattr(model, 'scheduler'):
            raise TypeError(
                'DiffusersExportHook exports mmdiff.DiffusionPretrainer '
                f'models, not {type(model).__name__}. Fix: remove the hook '
                'from custom_hooks.')
        state = checkpoint.get('state_dict')
        ema = 'ema_state_dict' in checkpoint
        it = checkpoint.get('meta', {}).get('iter', runner.iter)
        out_dir = self.out_dir or osp.join(runner.work_dir, 'diffusers')
        meta = dict(iter=it, ema=ema)
        captions = None
        if getattr(model, 'text_encoder', None) is not None and \
                self.num_samples > 0:
            captions = _first_captions(runner, self.num_samples)
            meta['sample_captions'] = captions
        export_diffusers(model, out_dir, state, meta=meta)
        print_log(f'Exported the {"EMA " if ema else ""}U-Net + VAE of '
                  f'iteration {it} to {out_dir} (backbone: '
                  f'pretrained={out_dir}, scale_latents=True).',
                  logger='current')
        if self.num_samples <= 0:
            return
        size = (self.sample_size, self.sample_size) if self.sample_size \
            else self._last_size
        if size is None:
            return
        factor = 2**(len(model.vae.config.block_out_channels) - 1)
        latent = (max(1, size[0] // factor), max(1, size[1] // factor))
        unet = build_plain_unet(model, state)
        images = model.sample(self.num_samples, latent, self.sample_steps,
                              self.seed, unet=unet, captions=captions)
        path = osp.join(runner.work_dir, 'samples', f'iter_{it}.png')
        bgr = cv2.cvtColor(image_grid(images), cv2.COLOR_RGB2BGR)
        atomic_write(path, lambda tmp: _imwrite(tmp, bgr))
        print_log(f'DDIM samples ({self.sample_steps} steps) of iteration '
                  f'{it}: {path}', logger='current')
