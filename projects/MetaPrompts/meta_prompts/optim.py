"""The optimizer rule the depth source really runs.

``depth/train.py:127-129`` builds AdamW through ``LDMOptimizerConstructor``
(``depth/models_depth/optimizer.py:34-104``): every trainable parameter
whose name contains ``'unet'`` (or ``'cond_stage_model'``) gets ``lr x
0.01``, all others ``lr x 1``; 1-D parameters and biases (and names
containing a ``no_decay_names`` entry) get no weight decay. The
``layer_decay_rate`` it is given (``--layer_decay 0.9``) is never read.
"""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LDMOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine port of the source's ``LDMOptimizerConstructor``.

    ``paramwise_cfg`` may hold ``no_decay_names`` (the source passes
    ``['relative_position_bias_table', 'rpe_mlp', 'logit_scale']``) and
    ``unet_lr_scale`` (default 0.01); nothing else is read, like the
    source (its ``layer_decay_rate`` is accepted and ignored).
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: dict = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        self.no_decay_names = list(paramwise_cfg.pop('no_decay_names', []))
        self.unet_lr_scale = paramwise_cfg.pop('unet_lr_scale', 0.01)
        paramwise_cfg.pop('layer_decay_rate', None)  # never read
        if paramwise_cfg:
            raise ValueError(
                'LDMOptimWrapperConstructor reads only no_decay_names and '
                f'unet_lr_scale; got {sorted(paramwise_cfg)}.')
        # always go through add_params (the base skips it without options)
        super().__init__(optim_wrapper_cfg, dict(ldm_rule=True))

    def add_params(self, params: list, module, **kwargs) -> None:
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue  # frozen weights
            decay = not (param.ndim == 1 or name.endswith('.bias') or any(
                n in name for n in self.no_decay_names))
            unet = 'unet' in name or 'cond_stage_model' in name
            key = (unet, decay)
            if key not in groups:
                scale = self.unet_lr_scale if unet else 1.0
                groups[key] = dict(params=[], lr=scale * self.base_lr)
                if not decay:
                    groups[key]['weight_decay'] = 0.
                elif self.base_wd is not None:
                    groups[key]['weight_decay'] = self.base_wd
            groups[key]['params'].append(param)
        params.extend(groups.values())
