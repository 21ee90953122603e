"""Make the demos' pretrained tiny VAE before the model's weights are read.

mmengine's ``Runner.train`` calls ``before_run`` hooks before
``init_weights``, so the backbone's ``vae_weights`` folder exists by the
time it is loaded. Only the main process trains; the others wait at a
barrier, so a first distributed run does not race on the folder. Testing
and validation runs (``Runner.test``/``val``) skip it: their checkpoint
holds the VAE.
"""
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mmdiff.registry import HOOKS


@HOOKS.register_module()
class DemoVAEHook(Hook):
    """Train and save the demos' VAE on first use (see
    :func:`mmdiff.datasets.demo_vae.ensure_demo_vae`).

    Args:
        out_dir (str): Folder the backbone's ``vae_weights`` points at.
        vae_cfg (dict): ``AutoencoderKL`` config of the backbone's VAE.
        steps (int): Training steps. Defaults to 200.
        batch_size (int): Scenes per step. Defaults to 4.
        size (int): Scene size. Defaults to 128.
        lr (float): Learning rate. Defaults to 1e-3.
        seed (int): Seed. Defaults to 1000.
        depth_fraction (float): Share of each batch that is a rendered
            depth map (the generative-depth demo's VAE). Defaults to 0.
    """

    priority = 'VERY_HIGH'

    def __init__(self, out_dir: str, vae_cfg: dict, steps: int = 200,
                 batch_size: int = 4, size: int = 128, lr: float = 1e-3,
                 seed: int = 1000, depth_fraction: float = 0.) -> None:
        self.out_dir = out_dir
        self.kwargs = dict(vae_cfg=vae_cfg, steps=steps,
                           batch_size=batch_size, size=size, lr=lr,
                           seed=seed, depth_fraction=depth_fraction)

    def before_run(self, runner) -> None:
        from mmdiff.datasets.demo_vae import ensure_demo_vae
        # Runner.train builds its loop before this call; test/val do not
        if runner is not None and not isinstance(
                getattr(runner, '_train_loop', None), BaseLoop):
            return
        if is_main_process():
            ensure_demo_vae(self.out_dir, **self.kwargs)
        barrier()
