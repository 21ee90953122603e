"""ViTDet's simple feature pyramid, for single-stride (transformer)
features: deconvolutions up to strides 4 and 8, identity at 16, max-pool
to 32; from stride-32 features (Sana's), scale 8 reaches stride 4 (Li et
al., "Exploring Plain Vision Transformer Backbones for Object Detection",
2022; mmdet's ``projects/ViTDet`` ``SimpleFPN``)."""
from typing import List, Optional, Sequence, Tuple, Union

from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdiff.registry import MODELS


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale maps from features that share one stride.

    Each scale factor ``s`` gets, from its input: ``s = 4``: two 2x2
    stride-2 transposed convolutions (norm + GELU between; ``s = 8``,
    for stride-32 inputs: three), ``s = 2``: one,
    ``s = 1``: identity, ``s = 0.5`` (``0.25``): 2x2 (4x4) max-pool; then
    a 1x1 and a 3x3 convolution to ``out_channels`` (with ``norm_cfg``).
    With one input all scales are made from it (ViTDet); with one input
    per scale (several taps, finest scale first) input ``i`` makes scale
    ``i``. Levels past
    the scales (``num_outs``) are max-pooled from the last one (as mmdet's
    FPN without extra convs), e.g. Mask R-CNN's fifth level.

    Args:
        in_channels (int | Sequence[int]): Channels of the input(s).
        out_channels (int): Channels of every output.
        scale_factors (Sequence[float]): Any of 8, 4, 2, 1, 0.5, 0.25.
            Defaults to (4, 2, 1, 0.5) (strides 4-32 from stride 16;
            from stride 32 (Sana): (8, 4, 2, 1) for 4-32, (4, 2, 1, 0.5)
            for 8-64).
        num_outs (int, optional): Outputs; defaults to one per scale.
        norm_cfg (dict, optional): Norm of the deconvs and output convs
            (ViTDet: layer norm). Defaults to dict(type='GN',
            num_groups=1) (normalises each map over channels and space).
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 out_channels: int,
                 scale_factors: Sequence[float] = (4, 2, 1, 0.5),
                 num_outs: Optional[int] = None,
                 norm_cfg: Optional[dict] = dict(type='GN', num_groups=1),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        ins = [in_channels] if isinstance(in_channels, int) \
            else list(in_channels)
        if len(ins) not in (1, len(scale_factors)):
            raise ValueError(
                f'SimpleFeaturePyramid got {len(ins)} inputs (in_channels='
                f'{in_channels}) for {len(scale_factors)} scale_factors: '
                'give one input (all scales from it) or one per scale. Fix: '
                "set in_channels to the backbone's out_channels and "
                'scale_factors to as many scales as it has taps.')
        self.in_channels = ins
        self.scale_factors = tuple(scale_factors)
        self.num_outs = num_outs or len(scale_factors)
        if self.num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} is below the '
                             f'{len(scale_factors)} scale_factors.')
        self.stages = nn.ModuleList()
        for i, scale in enumerate(self.scale_factors):
            chans = ins[i if len(ins) > 1 else 0]
            layers, dim = self._resample(scale, chans, norm_cfg)
            layers += [
                ConvModule(dim, out_channels, 1, norm_cfg=norm_cfg,
                           act_cfg=None),
                ConvModule(out_channels, out_channels, 3,
                           padding=1, norm_cfg=norm_cfg, act_cfg=None)
            ]
            self.stages.append(nn.Sequential(*layers))

    @staticmethod
    def _resample(scale: float, chans: int,
                  norm_cfg: Optional[dict]) -> Tuple[List[nn.Module], int]:
        if scale in (4, 8):
            layers, dim = [], chans
            for _ in range(int(scale).bit_length() - 2):
                norm = [build_norm_layer(norm_cfg, dim // 2)[1]] \
                    if norm_cfg else []
                layers += [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
                           *norm, nn.GELU()]
                dim //= 2
            return layers + [nn.ConvTranspose2d(dim, dim // 2, 2,
                                                stride=2)], dim // 2
        if scale == 2:
            return [nn.ConvTranspose2d(chans, chans // 2, 2, stride=2)], \
                chans // 2
        if scale == 1:
            return [], chans
        if scale in (0.5, 0.25):
            size = int(1 / scale)
            return [nn.MaxPool2d(size, stride=size)], chans
        raise ValueError(f'scale_factors: {scale} is not one of 4, 2, 1, '
                         "0.5 (ViTDet's), 8 or 0.25.")

    def out_strides(self, in_strides: Sequence[int]) -> List[int]:
        """Strides of the outputs for inputs of ``in_strides``."""
        outs = [int(in_strides[i if len(in_strides) > 1 else 0] / scale)
                for i, scale in enumerate(self.scale_factors)]
        while len(outs) < self.num_outs:
            outs.append(outs[-1] * 2)
        return outs

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Inputs: the backbone's tuple. Returns ``num_outs`` maps, finest
        first."""
        if len(inputs) not in (1, len(self.stages)) or \
                len(inputs) != len(self.in_channels):
            raise ValueError(
                f'SimpleFeaturePyramid built for {len(self.in_channels)} '
                f'input(s) got {len(inputs)}. Fix: in_channels must list '
                "the backbone's out_channels.")
        outs = [stage(inputs[i if len(inputs) > 1 else 0])
                for i, stage in enumerate(self.stages)]
        while len(outs) < self.num_outs:
            outs.append(nn.functional.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
