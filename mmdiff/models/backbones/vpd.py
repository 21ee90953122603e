"""VPD: Visual Perception with a pre-trained Diffusion model (Zhao et al.).

The generic :class:`DiffusionBackbone` with VPD's defaults and its
conditioning, a :class:`~mmdiff.models.conditioning.ClassPrompts`: per-class
text embeddings refined by a text adapter, with cross-attention maps
concatenated to the features (segmentation) or one embedding per image
(depth, ``class_embed_select``).
"""
from mmdiff.models.conditioning import EmbeddingSpec
from mmdiff.registry import MODELS
from .diffusion_backbone import DiffusionBackbone


@MODELS.register_module()
class VPD(DiffusionBackbone):
    """VPD backbone for mmseg / mmdet, on diffusers components.

    Defaults follow VPD's released code: VAE posterior mode, no latent
    scaling, ``t = 1``, no noise, features inside the U-Net decoder (ldm
    output blocks 1, 4, 7 and final, finest first), cross-attention maps of
    the down and up blocks at 1/16 and 1/32 of the image, without gradient
    (VPD's maps are stored inside ldm-checkpointed blocks, whose forward runs
    under no_grad; mmdiff detaches them).

    Args:
        class_embeddings (str | dict | Tensor, optional): ``(K, D)`` text
            embeddings: a ``.pth``/``.safetensors`` file; ``dict(class_names=
            [...] | 'ade20k', text_encoder=..., templates=..., output=
            'pooled' | 'tokens', cache_dir=...)`` computed and cached at
            build time; ``dict(num_classes=K, dim=D)`` random and learnable;
            None for a null prompt (``NullPrompt``: one zero token, no
            adapter). Defaults to None.
        text_adapter (bool): Refine the embeddings with a
            :class:`~mmdiff.models.text.TextAdapter`. Defaults to True.
        gamma_init (float): Initial adapter gate. Defaults to 1e-4.
        class_embed_select (bool): Condition each image on one embedding,
            chosen by ``class_ids`` in :meth:`forward`; the mean embedding
            when the id is unknown (-1) or no ids are given. Defaults to
            False.
        use_attn (bool): Concatenate the K-channel cross-attention maps.
            Defaults to True.
        **kwargs: :class:`DiffusionBackbone` arguments (``pretrained``,
            ``unet_cfg``, ``vae_cfg``, ``taps``, ``timestep``, ``noise``,
            ``lora``, ``amp_dtype``, ...), with the same defaults. Not
            ``conditioner``: VPD's is built from the arguments above (use
            :class:`DiffusionBackbone` for another).
    """

    def __init__(self,
                 class_embeddings: EmbeddingSpec = None,
                 text_adapter: bool = True,
                 gamma_init: float = 1e-4,
                 class_embed_select: bool = False,
                 use_attn: bool = True,
                 **kwargs) -> None:
        if 'conditioner' in kwargs:
            raise TypeError(
                'VPD builds its conditioner (ClassPrompts) from '
                'class_embeddings, text_adapter, gamma_init and '
                'class_embed_select. Fix: drop conditioner=, or use '
                "type='mmdiff.DiffusionBackbone' with conditioner=dict(...).")
        conditioner = None if class_embeddings is None else dict(
            type='ClassPrompts', class_embeddings=class_embeddings,
            text_adapter=text_adapter, gamma_init=gamma_init,
            select=class_embed_select)
        super().__init__(use_attn=use_attn, conditioner=conditioner,
                         **kwargs)
