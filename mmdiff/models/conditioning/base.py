"""What a conditioner is: the component that gives a diffusion backbone its
conditioning tokens (the U-Net's ``encoder_hidden_states``)."""
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope
from torch import Tensor

from mmdiff.registry import MODELS


def build_conditioner(cfg: Optional[dict], dim: int,
                      local_files_only: bool = False) -> 'Conditioner':
    """Build a backbone's conditioner (``NullPrompt`` for None) in mmdiff's
    scope, whatever the host's (``type='ClassPrompts'`` resolves inside an
    mmseg or mmdet run; other packages' with their prefix)."""
    cfg = dict(type='NullPrompt') if cfg is None else cfg
    with DefaultScope.overwrite_default_scope('mmdiff'):
        return MODELS.build(cfg, default_args=dict(
            dim=dim, local_files_only=local_files_only))


class ConditionedBackbone:
    """What a backbone owning a ``conditioner`` exposes of it (a mixin of
    the U-Net and transformer backbones)."""

    @property
    def num_tokens(self) -> int:
        """Channels of each attention map (the conditioner's tokens)."""
        return self.conditioner.num_tokens

    @property
    def class_embed_select(self) -> bool:
        """Whether the conditioner reads per-image ``class_ids`` (mmseg's
        ``DepthEstimator`` then passes ``(inputs, class_ids)``)."""
        return self.conditioner.takes_class_ids


class Conditioner(BaseModule):
    """Base class of the conditioning components.

    A backbone builds its conditioner with :func:`build_conditioner`
    (``dim`` and ``local_files_only`` given) and calls it once per forward,
    under the backbone's autocast. A
    conditioner owns its tokens, its parameters (``conditioner.*`` in the
    backbone's state dict) and what becomes of its attention maps.

    Override :attr:`num_tokens` and :meth:`forward`; :meth:`reduce_maps`
    when several tokens make one map channel; :attr:`takes_class_ids` when
    :meth:`forward` uses ``class_ids``.

    Args:
        dim (int): Token width (the U-Net's ``cross_attention_dim``).
        local_files_only (bool): Never touch the network when loading text
            encoders. Defaults to False.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    #: mmseg's ``DepthEstimator`` passes ``(inputs, class_ids)`` to a
    #: backbone whose ``class_embed_select`` is true (this flag).
    takes_class_ids = False

    def __init__(self, dim: int, local_files_only: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.dim = int(dim)
        self.local_files_only = local_files_only

    @property
    def num_tokens(self) -> int:
        """Channels of each attention map after :meth:`reduce_maps`
        (the tokens per image, unless it merges them)."""
        raise NotImplementedError

    def forward(self, batch_size: int, class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None) -> Tensor:
        """Conditioning tokens ``(B, N, dim)``.

        Args:
            batch_size (int): Images in the batch ``B``.
            class_ids (Tensor, optional): ``(B, )`` per-image class indices
                (mmseg's ``DepthEstimator`` passes the ``category_id``).
            metainfo (Sequence[dict], optional): Per-image metainfo (e.g.
                ``img_path``), from :class:`~mmdiff.models.segmentors.\
MetainfoEncoderDecoder` or a direct call.
        """
        raise NotImplementedError

    def reduce_maps(self, maps: Dict[int, Tensor]) -> Dict[int, Tensor]:
        """Per-token attention maps -> :attr:`num_tokens` channels
        (identity here)."""
        return maps


@MODELS.register_module()
class NullPrompt(Conditioner):
    """One all-zero token for every image: the text-free U-Net input (the
    empty prompt's place without a text encoder). Made on the CPU in fp32;
    the backbone moves tokens to the U-Net's device and dtype."""

    @property
    def num_tokens(self) -> int:
        return 1

    def forward(self, batch_size: int, class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None) -> Tensor:
        return torch.zeros(batch_size, 1, self.dim)
