"""A user's config in its own folder with ``backbone=dict(type=
'mmdiff.DiTBackbone', ...)`` trains under mmseg's and mmdet's own
``tools/train.py`` (which read the config before anything imports mmdiff).

Tiny random FLUX (segmentation, with its text->image maps) and SD3.5
(Faster R-CNN) transformers on random 16-channel VAEs, ViTDet's simple
feature pyramid, the demo data made on first use in the working folder.
"""
import os.path as osp

import torch

from mmdiff.models.diffusion import tiny_dit_configs

HERE = osp.dirname(osp.abspath(__file__))


def _write(folder, base: str, backbone: dict, body: str) -> str:
    path = osp.join(str(folder), 'my_dit_config.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = 'mmdiff::demo/{base}'\n"
                'train_cfg = dict(max_iters=2)\n'
                f'dit_backbone = {backbone!r}\n{body}')
    return path


def _train(run_tool, tool: str, config: str, folder, options) -> dict:
    work = str(folder / 'work')
    proc = run_tool(tool, config, '--work-dir', work, '--cfg-options',
                    *options, cwd=str(folder))
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log, log[-3000:]
    return torch.load(osp.join(work, 'iter_2.pth'),
                      map_location='cpu')['state_dict']


def test_dit_config_trains_with_mmseg_and_mmdet_tools(
        run_tool, load_tool, fast_demo_options, tmp_path):
    host_tool = load_tool(osp.join(HERE, 'test_host_tools.py')).host_tool
    transformer, vae = tiny_dit_configs('flux')
    flux = dict(type='mmdiff.DiTBackbone', family='flux', pretrained=None,
                transformer_cfg=transformer, vae_cfg=vae, taps=(-1, ),
                attn_blocks=(1, ),
                conditioner=dict(type='ClassPrompts',
                                 class_embeddings=dict(num_classes=4,
                                                       dim=32)))
    (tmp_path / 'seg').mkdir()
    seg = _write(
        tmp_path / 'seg', 'vpd_tiny-fpn_demo-seg.py', flux,
        'model = dict(\n'
        '    backbone=dict(_delete_=True, **dit_backbone),\n'
        "    neck=dict(_delete_=True, type='mmdiff.SimpleFeaturePyramid',\n"
        '              in_channels=[32 + 4], out_channels=32,\n'
        '              scale_factors=(2, 1, 0.5, 0.25)))\n')
    state = _train(run_tool, host_tool('mmseg', 'train.py'), seg,
                   tmp_path / 'seg', fast_demo_options)
    assert any(k.startswith('backbone.transformer.single_transformer_blocks')
               for k in state)

    transformer, vae = tiny_dit_configs('sd3')
    sd3 = dict(type='mmdiff.DiTBackbone', family='sd3', pretrained=None,
               transformer_cfg=transformer, vae_cfg=vae, taps=(-1, ))
    (tmp_path / 'det').mkdir()
    det = _write(
        tmp_path / 'det', 'faster-rcnn_vpd_tiny-fpn_demo-coco.py', sd3,
        'model = dict(\n'
        '    backbone=dict(_delete_=True, **dit_backbone),\n'
        "    neck=dict(_delete_=True, type='mmdiff.SimpleFeaturePyramid',\n"
        '              in_channels=[32], out_channels=64, num_outs=5,\n'
        '              scale_factors=(2, 1, 0.5, 0.25)))\n')
    state = _train(run_tool, host_tool('mmdet', 'train.py'), det,
                   tmp_path / 'det', fast_demo_options)
    assert any(k.startswith('backbone.transformer.transformer_blocks.2.')
               for k in state)
