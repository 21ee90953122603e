"""The Meta Prompts depth head for mmseg's ``DepthEstimator``."""
from typing import Sequence

import torch
from mmseg.models.decode_heads import VPDDepthHead
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS as MMSEG_MODELS
from torch import Tensor, nn

from mmdiff.registry import MODELS
from .prompt_heads import DeconvDecoder


@MODELS.register_module()
class MetaPromptsDepthHead(VPDDepthHead):
    """``MetaPromptDepth``'s decoder and last layer (depth/models_depth/
    model.py:122-133, 145-147): ``Decoder(N, embed_dim)`` (stride-2
    deconvs, x8 for three), conv3x3 + ReLU + conv3x3 -> 1,
    ``sigmoid * max_depth``. Its input is the backbone's prompt map at
    stride 8; loss and prediction are mmseg's :class:`VPDDepthHead`'s.

    Args:
        max_depth (float): Defaults to 10.0.
        in_channels (Sequence[int]): Channels of the one input, the prompt
            map (``N``; NYU: 50). Defaults to (50, ).
        embed_dim (int): Decoder output width (the source: 192).
            Defaults to 192.
        num_deconv_filters (Sequence[int]): Deconv widths (``--num_filters
            32 32 32``). Defaults to (32, 32, 32).
        deconv_kernels (Sequence[int]): Deconv kernels (``--deconv_kernels
            2 2 2``). Defaults to (2, 2, 2).
        align_corners (bool): Defaults to False.
        loss_decode (dict): Defaults to ``dict(type='SiLogLoss')``.
        init_cfg (dict): The source's ``Decoder.init_weights`` and
            ``last_layer_depth`` init (normal, std 0.001, bias 0).
    """

    def __init__(self,
                 max_depth: float = 10.0,
                 in_channels: Sequence[int] = (50, ),
                 embed_dim: int = 192,
                 num_deconv_filters: Sequence[int] = (32, 32, 32),
                 deconv_kernels: Sequence[int] = (2, 2, 2),
                 align_corners: bool = False,
                 loss_decode: dict = dict(type='SiLogLoss'),
                 init_cfg=dict(type='Normal', std=0.001, bias=0,
                               layer=['Conv2d', 'ConvTranspose2d'])):
        super(BaseDecodeHead, self).__init__(init_cfg=init_cfg)
        if len(in_channels) != 1:
            raise ValueError('MetaPromptsDepthHead reads one input (the '
                             f'prompt map), got in_channels={in_channels}.')
        self.in_channels = list(in_channels)
        self.max_depth = max_depth
        self.align_corners = align_corners
        self.decoder = DeconvDecoder(in_channels[0], embed_dim,
                                     num_deconv_filters, deconv_kernels)
        self.depth_pred_layer = nn.Sequential(
            nn.Conv2d(embed_dim, embed_dim, 3, 1, 1), nn.ReLU(inplace=False),
            nn.Conv2d(embed_dim, 1, 3, 1, 1))
        losses = loss_decode if isinstance(loss_decode, (list, tuple)) \
            else [loss_decode]
        self.loss_decode = nn.ModuleList(
            MMSEG_MODELS.build(c) for c in losses)

    def forward(self, x: Sequence[Tensor]) -> Tensor:
        out = self.depth_pred_layer(self.decoder(x[0]))
        return torch.sigmoid(out) * self.max_depth
