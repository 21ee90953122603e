"""The source's layers after the U-Net: prompt maps (einsum of features
with the meta prompts) and its deconv ``Decoder``.

Segmentation (``segmentation/models/model.py:75-81, 121-129``): per level,
x2 bilinear upsample, conv3x3 -> D + GroupNorm(16) + ReLU, einsum with the
prompts: ``N`` maps per level at strides 4, 8, 16, 32.
Depth (``depth/models_depth/model.py:29-42, 104-107``): finest tap through
a stride-1 conv3x3 + GroupNorm + ReLU, the others through kernel-4 deconv
``Decoder``s up to stride 8, concatenated, ``out_layer`` conv3x3 -> D +
GroupNorm + ReLU, einsum with the prompts: one ``N``-channel map.
"""
from typing import List, Sequence

import torch
from mmengine.model.weight_init import trunc_normal_init
from torch import Tensor, nn


def _conv_gn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, 1),
        nn.GroupNorm(16, out_channels), nn.ReLU())


def _prompt_maps(feat: Tensor, prompts: Tensor) -> Tensor:
    return torch.einsum('bchw,bnc->bnhw', feat, prompts.to(feat.dtype))


class DeconvDecoder(nn.Module):
    """The source's ``Decoder`` (depth/models_depth/model.py:153): stride-2
    deconvs (no bias) + BN + ReLU, then conv3x3 + BN + ReLU.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        filters (Sequence[int]): Deconv widths, one per deconv.
        kernels (Sequence[int]): Deconv kernels (2, 3 or 4), one per deconv.
    """

    PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}  # _get_deconv_cfg

    def __init__(self, in_channels: int, out_channels: int,
                 filters: Sequence[int], kernels: Sequence[int]) -> None:
        super().__init__()
        if len(filters) != len(kernels):
            raise ValueError(f'{len(filters)} deconv widths for '
                             f'{len(kernels)} kernels.')
        layers, planes = [], in_channels
        for width, kernel in zip(filters, kernels):
            if kernel not in self.PADDING:
                raise ValueError(
                    f'Not supported deconv kernel ({kernel}): 2, 3 or 4.')
            padding, output_padding = self.PADDING[kernel]
            layers += [
                nn.ConvTranspose2d(planes, width, kernel, stride=2,
                                   padding=padding,
                                   output_padding=output_padding, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            planes = width
        self.deconv_layers = nn.Sequential(*layers)
        self.conv_layers = nn.Sequential(
            nn.Conv2d(planes, out_channels, 3, 1, 1),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_layers(self.deconv_layers(x))


class PromptLevelMaps(nn.Module):
    """Segmentation prompt maps: ``N`` channels per tap at half its stride.

    Args:
        tap_channels (Sequence[int]): U-Net tap channels, finest first.
        dim (int): Prompt width ``D`` (768 for SD1.x).
        **kwargs: Unused (the depth head's options).
    """

    def __init__(self, tap_channels: Sequence[int], dim: int,
                 **kwargs) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode='bilinear',
                              align_corners=False)
        self.upconvs = nn.ModuleList(
            _conv_gn_relu(c, dim) for c in tap_channels)

    @staticmethod
    def strides(tap_strides: Sequence[int]) -> List[int]:
        return [s // 2 for s in tap_strides]

    def forward(self, feats: Sequence[Tensor], prompts: Tensor
                ) -> tuple:
        return tuple(_prompt_maps(conv(self.up(f)), prompts)
                     for conv, f in zip(self.upconvs, feats))


class PromptDepthMaps(nn.Module):
    """Depth prompt map: one ``N``-channel map at the finest tap's stride.

    Args:
        tap_channels (Sequence[int]): The four U-Net tap channels, finest
            first, each level half the size of the previous one.
        dim (int): Prompt width ``D`` (768 for SD1.x).
        deconv_filters (int): Width of the kernel-4 deconvs (the source:
            32). Defaults to 32.
    """

    def __init__(self, tap_channels: Sequence[int], dim: int,
                 deconv_filters: int = 32) -> None:
        super().__init__()
        if len(tap_channels) != 4:
            raise ValueError('The depth prompt head takes four taps, got '
                             f'{len(tap_channels)}.')
        c = list(tap_channels)
        self.layer1 = _conv_gn_relu(c[0], c[0])
        for i in (1, 2, 3):  # layer{i+1}: i kernel-4 deconvs (x 2^i)
            setattr(self, f'layer{i + 1}', DeconvDecoder(
                c[i], c[i], [deconv_filters] * i, [4] * i))
        self.out_layer = _conv_gn_relu(sum(c), dim)
        for m in self.modules():  # MetaPromptDepthEncoder._init_weights
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                trunc_normal_init(m, std=.02, bias=0)

    @staticmethod
    def strides(tap_strides: Sequence[int]) -> List[int]:
        return [tap_strides[0]]

    def forward(self, feats: Sequence[Tensor], prompts: Tensor) -> tuple:
        x = torch.cat([self.layer1(feats[0]), self.layer2(feats[1]),
                       self.layer3(feats[2]), self.layer4(feats[3])], dim=1)
        return (_prompt_maps(self.out_layer(x), prompts), )
