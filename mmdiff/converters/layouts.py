"""Source checkpoint layouts: how each is recognised and where its keys go.

Key layouts (see VPD's and mmsegmentation's code):

* ``sd``: a plain Stable Diffusion v1.x/v2.x single file,
  ``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.*``
  and DDPM schedule buffers.
* ``vpd_seg``: VPD's semantic segmentation (``VPDSeg``),
  ``unet.unet.diffusion_model.*``, ``encoder_vq.*``, ``text_adapter.fc.*``,
  ``gamma``, ``class_embeddings``, ``neck.*``, ``decode_head.*`` and
  ``sd_model.*`` schedule buffers.
* ``vpd_depth``: VPD's depth (``VPDDepth``, saved as ``{'model': ...}``),
  ``encoder.{unet.unet.diffusion_model,encoder_vq,text_adapter.fc}.*``,
  ``encoder.{gamma,class_embeddings}``, ``encoder.{layer1,layer2,out_layer}``,
  ``decoder.*``, ``last_layer_depth.*``.
* ``mmseg_vpd``: mmsegmentation 1.x ``VPD`` + ``VPDDepthHead``,
  ``backbone.{unet.unet.diffusion_model,encoder_vq,text_adapter.fc}.*``,
  ``backbone.{gamma,class_embeddings}`` (27 scenes + a mean row),
  ``decode_head.*``.

A :class:`Rule` maps a source key (``src`` ending in ``.``: a prefix, else an
exact key) to a target: ``'unet'``/``'vae'`` (ldm weights, converted to
diffusers names), ``'class_embeddings'``, ``'schedule'`` (dropped DDPM
buffers), ``'drop'`` (dropped with ``reason``) or a destination prefix/key in
the mmdiff model.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# ldm ``DDPM.register_schedule`` buffers, LatentDiffusion's ``scale_factor``,
# ``logvar`` and ``LitEma``'s counters: schedule state, not weights.
SCHEDULE_BUFFERS = frozenset({
    'betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod',
    'sqrt_one_minus_alphas_cumprod', 'log_one_minus_alphas_cumprod',
    'sqrt_recip_alphas_cumprod', 'sqrt_recipm1_alphas_cumprod',
    'posterior_variance', 'posterior_log_variance_clipped',
    'posterior_mean_coef1', 'posterior_mean_coef2', 'lvlb_weights',
    'logvar', 'scale_factor', 'model_ema.decay', 'model_ema.num_updates'
})

# Inside the ldm VAE: parts mmdiff never builds (features come from the
# encoder; ``VPD`` sets ``vae.decoder = vae.post_quant_conv = None``).
VAE_UNUSED = (('decoder.', 'VAE decoder (mmdiff uses the encoder only)'),
              ('post_quant_conv.',
               'VAE post_quant_conv (mmdiff uses the encoder only)'),
              ('loss.', 'VAE training loss (LPIPS/discriminator)'))


@dataclass(frozen=True)
class Rule:
    """Where source keys matching ``src`` go (see the module docstring)."""
    src: str
    dst: str
    reason: str = ''

    def match(self, key: str) -> Optional[str]:
        """The rest of ``key`` after ``src`` ('' for an exact match)."""
        if not self.src or self.src.endswith('.'):
            return key[len(self.src):] if key.startswith(self.src) else None
        return '' if key == self.src else None


@dataclass(frozen=True)
class Layout:
    """A source layout: its name, signature prefix and routing rules."""
    name: str
    description: str
    signature: str
    rules: Tuple[Rule, ...]
    task: str
    notes: List[str] = field(default_factory=list)

    def route(self, key: str) -> Optional[Tuple[Rule, str]]:
        """The first rule matching ``key`` and the key's remainder."""
        for rule in self.rules:
            rest = rule.match(key)
            if rest is not None:
                return rule, rest
        return None


def _backbone_rules(prefix: str) -> Tuple[Rule, ...]:
    """The VPD encoder's parts under ``prefix`` ('' / 'encoder.' / ...)."""
    return (
        Rule(f'{prefix}unet.unet.diffusion_model.', 'unet'),
        Rule(f'{prefix}encoder_vq.', 'vae'),
        Rule(f'{prefix}text_adapter.fc.',
             'backbone.conditioner.text_adapter.fc.'),
        Rule(f'{prefix}gamma', 'backbone.conditioner.text_adapter.gamma'),
        Rule(f'{prefix}class_embeddings', 'class_embeddings'),
    )


LAYOUTS: Dict[str, Layout] = {
    'mmseg_vpd': Layout(
        name='mmseg_vpd',
        description='mmsegmentation 1.x VPD (backbone.unet.unet.'
        'diffusion_model.*, backbone.encoder_vq.*, decode_head.*)',
        signature='backbone.unet.unet.diffusion_model.',
        rules=_backbone_rules('backbone.') + (
            Rule('neck.', 'neck.'),
            Rule('decode_head.', 'decode_head.'),
            Rule('auxiliary_head.', 'auxiliary_head.'),
        ),
        task='depth'),
    'vpd_depth': Layout(
        name='vpd_depth',
        description="VPD depth ({'model': ...}: encoder.unet.unet."
        'diffusion_model.*, encoder.{layer1,layer2,out_layer}, decoder.*, '
        'last_layer_depth.*)',
        signature='encoder.unet.unet.diffusion_model.',
        rules=_backbone_rules('encoder.') + (
            # VPDDepthEncoder's neck convs are mmseg VPDDepthHead's.
            Rule('encoder.layer1.', 'decode_head.conv1.'),
            Rule('encoder.layer2.0.', 'decode_head.conv2.'),
            Rule('encoder.out_layer.', 'decode_head.conv_aggregation.'),
            Rule('decoder.', 'decode_head.decoder.'),
            Rule('last_layer_depth.', 'decode_head.depth_pred_layer.'),
        ),
        task='depth'),
    'vpd_seg': Layout(
        name='vpd_seg',
        description='VPD semantic segmentation (unet.unet.diffusion_model.*'
        ', encoder_vq.*, neck.*, decode_head.*, sd_model.* buffers)',
        signature='unet.unet.diffusion_model.',
        rules=_backbone_rules('') + (
            Rule('neck.', 'neck.'),
            Rule('decode_head.', 'decode_head.'),
            Rule('auxiliary_head.', 'auxiliary_head.'),
            Rule('sd_model.', 'schedule'),
        ),
        task='seg'),
    'sd': Layout(
        name='sd',
        description='Stable Diffusion single file (model.diffusion_model.*, '
        'first_stage_model.*, cond_stage_model.*)',
        signature='model.diffusion_model.',
        rules=(
            Rule('model.diffusion_model.', 'unet'),
            Rule('first_stage_model.', 'vae'),
            Rule('cond_stage_model.', 'drop',
                 'text encoder (VPD conditions on precomputed class '
                 'embeddings)'),
            Rule('model_ema.decay', 'schedule'),
            Rule('model_ema.num_updates', 'schedule'),
            Rule('model_ema.', 'drop',
                 'EMA copy of the U-Net (the non-EMA weights are converted, '
                 "as diffusers' from_single_file does)"),
            Rule('', 'schedule'),  # top-level DDPM buffers
        ),
        task='backbone',
        notes=['mmdiff.VPD reads an SD single file directly '
               "(backbone.pretrained='<file>'); this output loads strictly "
               'into mmdiff.DiffusionBackbone, or non-strictly into VPD.']),
}

# Order of the checks (and of the error message).
DETECT_ORDER = ('mmseg_vpd', 'vpd_depth', 'vpd_seg', 'sd')


def unwrap_state_dict(obj) -> Tuple[dict, str]:
    """The flat state dict inside a loaded checkpoint.

    Accepts mmengine/mmcv checkpoints (``state_dict``), VPD's depth
    checkpoints (``model``), SD ``.ckpt`` files (``state_dict``) and flat
    state dicts; strips a ``module.`` prefix carried by every key (DDP).

    Returns:
        tuple[dict, str]: The state dict and where it was found.
    """
    if not isinstance(obj, dict):
        raise TypeError(f'A checkpoint must be a dict, got '
                        f'{type(obj).__name__}.')
    where = 'top level'
    for key in ('state_dict', 'model'):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(
                isinstance(k, str) for k in inner):
            obj, where = inner, f'{key!r}'
            break
    keys = list(obj)
    if keys and all(k.startswith('module.') for k in keys):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
        where += ", 'module.' stripped"
    return obj, where


def _prefix_counts(keys, depth: int = 2, limit: int = 12) -> str:
    counts: Dict[str, int] = {}
    for key in keys:
        prefix = '.'.join(key.split('.')[:depth])
        counts[prefix] = counts.get(prefix, 0) + 1
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return ', '.join(f'{p}.* ({n})' for p, n in items)


def detect_layout(state: dict) -> Layout:
    """Recognise the layout of a flat state dict by its signature prefix.

    Raises:
        ValueError: Unknown layout (the message lists the key prefixes
            found) or a checkpoint already in mmdiff layout.
    """
    keys = list(state)
    if any(k.startswith('backbone.unet.conv_in.') for k in keys):
        raise ValueError(
            'This checkpoint is already in mmdiff layout (backbone.unet.'
            'conv_in.*, diffusers names): load it directly with load_from.')
    # Signatures are checked with startswith, so they cannot shadow each
    # other; keys of a second layout mixed in are reported as unplaceable.
    for name in DETECT_ORDER:
        if any(k.startswith(LAYOUTS[name].signature) for k in keys):
            return LAYOUTS[name]
    raise ValueError(
        'Unknown checkpoint layout: none of the known U-Net prefixes '
        f'({", ".join(LAYOUTS[n].signature + "*" for n in DETECT_ORDER)}) '
        f'is present. Key prefixes found: {_prefix_counts(keys)}. '
        'Supported: ' + '; '.join(
            f'{n}: {LAYOUTS[n].description}' for n in DETECT_ORDER))
