"""``--tta`` and ``--amp`` of ``tools/test.py`` / ``tools/train.py``, as the
host libraries' own tools do them, plus what a CPU needs.

- ``--tta``: a config's ``tta_model`` and ``tta_pipeline`` wrap the model and
  replace the test pipeline (mmseg and mmdet ``tools/test.py``). For mmdet
  configs without them, mmdet's ``tools/test.py`` falls back to
  ``DetTTAModel`` (NMS at IoU 0.5, 100 boxes) over the image and its
  horizontal flip; so does this. mmseg's tool has no fallback: its configs
  carry both (mmseg's dataset bases define ``tta_pipeline``, its runtime
  ``SegTTAModel``; depth configs use ``mmdiff.DepthTTAModel``).
- ``--amp``: mmengine's ``AmpOptimWrapper`` needs a GPU; on CPU the mmdiff
  backbones run their U-Net/VAE under ``torch.autocast`` to bfloat16
  (``amp_dtype``), the CPU form of mixed precision, with fp32 weights and
  optimizer.
"""
import copy
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict

from mmdiff.models.backbones import DiffusionBackbone, DiTBackbone
from mmdiff.models.pretrainers import DiffusionPretrainer
from mmdiff.registry import MODELS

# mmdet tools/test.py's defaults when a config has no tta_model/tta_pipeline
_DET_TTA_MODEL = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
_DET_TTA_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                      'scale_factor', 'flip', 'flip_direction')


def _innermost_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    while 'dataset' in dataset_cfg:  # RepeatDataset / ClassBalanced ...
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _has_mask_head(model_cfg) -> bool:
    if isinstance(model_cfg, dict):
        return model_cfg.get('mask_head') is not None or any(
            _has_mask_head(v) for v in model_cfg.values())
    if isinstance(model_cfg, (list, tuple)):
        return any(_has_mask_head(v) for v in model_cfg)
    return False


def apply_tta(cfg: Config) -> Config:
    """Wrap ``cfg.model`` in its TTA model and test with ``tta_pipeline``.

    Args:
        cfg (Config): A loaded config; changed in place.

    Returns:
        Config: ``cfg``.

    Raises:
        ValueError: An mmseg config without ``tta_model``/``tta_pipeline``;
            an mmdet instance segmentation config (mmdet has no mask TTA).
    """
    if cfg.default_scope == 'mmdet':
        if _has_mask_head(cfg.model) and 'tta_model' not in cfg:
            raise ValueError(
                "--tta: mmdet's DetTTAModel merges boxes only (mmdet 3.3 "
                "asserts 'TTA of instance segmentation does not support "
                "now'); this config predicts masks. Test it without --tta.")
        if 'tta_model' not in cfg:
            cfg.tta_model = copy.deepcopy(_DET_TTA_MODEL)
        if 'tta_pipeline' not in cfg:
            pipeline = copy.deepcopy(
                _innermost_dataset(cfg.test_dataloader.dataset).pipeline)
            pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ], [dict(type='PackDetInputs', meta_keys=_DET_TTA_META_KEYS)]])
            cfg.tta_pipeline = pipeline
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if missing:
        raise ValueError(
            f'--tta needs {" and ".join(missing)} in the config (mmseg has '
            'no default): add e.g. the tta_pipeline of mmseg\'s dataset base '
            '(flips and scales) and tta_model=dict(type=\'SegTTAModel\'), or '
            "dict(type='mmdiff.DepthTTAModel') for depth.")
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    return cfg


def _diffusion_backbones(model_cfg) -> list:
    """The config dicts of diffusion backbones (``DiffusionBackbone`` and
    subclasses, e.g. ``mmdiff.VPD``; ``DiTBackbone``;
    ``DiffusionPretrainer``, which takes
    ``amp_dtype`` too) anywhere in a model config."""
    found = []
    if isinstance(model_cfg, dict):
        kind = model_cfg.get('type')
        cls = MODELS.get(kind) if isinstance(kind, str) else kind
        if isinstance(cls, type) and issubclass(
                cls, (DiffusionBackbone, DiTBackbone, DiffusionPretrainer)):
            found.append(model_cfg)
        for value in model_cfg.values():
            found += _diffusion_backbones(value)
    elif isinstance(model_cfg, (list, tuple)):
        for value in model_cfg:
            found += _diffusion_backbones(value)
    return found


def apply_amp(cfg: Config, device: Optional[str] = None) -> str:
    """Mixed precision for training: AMP on GPU, bf16 autocast on CPU.

    Args:
        cfg (Config): A loaded config; changed in place.
        device (str, optional): 'cuda' or 'cpu'; the one training will use
            when None. Defaults to None.

    Returns:
        str: What was set, for the log.

    Raises:
        ValueError: On CPU, a config without an mmdiff backbone to autocast.
    """
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
        return 'AmpOptimWrapper (fp16, dynamic loss scale)'
    backbones = _diffusion_backbones(cfg.model)
    if not backbones:
        raise ValueError(
            '--amp on CPU autocasts the mmdiff backbone to bfloat16 '
            '(amp_dtype), but this config has no mmdiff backbone; mmengine\'s '
            'AmpOptimWrapper needs a GPU. Train without --amp.')
    for backbone in backbones:
        backbone['amp_dtype'] = 'bfloat16'
    return 'backbone amp_dtype=bfloat16 (CPU autocast; fp32 weights)'
