"""MetainfoEncoderDecoder: every backbone call (training, whole and slide
inference, tensor mode) gets the images' metainfo; conditioners resolve in
mmdiff's scope inside an mmseg-scoped build."""
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample

from mmdiff.models.conditioning import Conditioner
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
from mmdiff.registry import MODELS
from mmdiff.testing import demo_images

CALLS = []


@MODELS.register_module(force=True)
class PathPrompts(Conditioner):
    """Two tokens per image, recording the paths it was called with."""

    @property
    def num_tokens(self):
        return 2

    def forward(self, batch_size, class_ids=None, metainfo=None):
        CALLS.append([m['img_path'] for m in metainfo])
        return torch.ones(batch_size, 2, self.dim)


def _segmentor(test_cfg):
    init_default_scope('mmseg')  # as tools/train.py with an mmseg config
    return MMSEG_MODELS.build(dict(
        type='mmdiff.MetainfoEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3,
                               std=[127.5] * 3),
        backbone=dict(type='mmdiff.DiffusionBackbone',
                      unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
                      use_attn=True, conditioner=dict(type='PathPrompts')),
        decode_head=dict(type='FCNHead', in_channels=64 + 2, in_index=1,
                         channels=8, num_convs=1, num_classes=3),
        test_cfg=ConfigDict(test_cfg)))


def _samples(paths, size):
    out = []
    for p in paths:
        s = SegDataSample(metainfo=dict(img_path=p, img_shape=size,
                                        ori_shape=size, pad_shape=size))
        s.gt_sem_seg = PixelData(data=torch.zeros(1, *size).long())
        out.append(s)
    return out


def test_metainfo_reaches_the_conditioner_in_every_mode(one_thread):
    paths = ['a/1.jpg', 'b/2.jpg']
    images = demo_images(2, 64)
    model = _segmentor(dict(mode='whole'))
    CALLS.clear()
    model.loss(images, _samples(paths, (64, 64)))
    model.predict(images, _samples(paths, (64, 64)))
    model._forward(images, _samples(paths, (64, 64)))
    assert CALLS == [paths] * 3
    # slide: one call per window, each with the batch's metainfo
    model = _segmentor(dict(mode='slide', crop_size=(64, 64),
                            stride=(32, 32)))
    CALLS.clear()
    model.predict(demo_images(2, (64, 128)), _samples(paths, (64, 128)))
    assert CALLS == [paths] * 3  # windows at x = 0, 32, 64
