"""Released-size checkpoints convert and load into the zoo configs' models.

Real SD1.5-sized sources in the layouts of the released files (VPD's ADE20K
``VPDSeg``, mmseg's NYU ``VPD`` + ``VPDDepthHead``) are built on the meta
device (shapes only, no memory), converted with the default ldm config (SD v1
inference), and loaded with ``strict=True`` into the model of the zoo config
(the metafile's ``Config``), its U-Net/VAE built from the converted
``unet_cfg``/``vae_cfg`` instead of the hub. The sources' necks and heads
come from the recipes recorded in tests/data/recipes/ (transcribed from the
sources' files), never from mmdiff's configs.
"""
import copy
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.utils import import_modules_from_strings
from torch import nn

from mmdiff.converters import SD_V1_INFERENCE, convert_state_dict

pytest.importorskip('ldm.modules.diffusionmodules.openaimodel')

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PARAMS = SD_V1_INFERENCE['model']['params']


@pytest.fixture(scope='module')
def ldm_parts():
    """SD1.5 ldm U-Net and VAE (with decoder) state dicts, meta device."""
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    dd = PARAMS['first_stage_config']['params']['ddconfig']
    with torch.device('meta'):
        unet = UNetModel(**PARAMS['unet_config']['params'])
        vae = nn.Module()
        vae.encoder = Encoder(**dd)
        vae.decoder = Decoder(**dd)
        vae.quant_conv = nn.Conv2d(8, 8, 1)
        vae.post_quant_conv = nn.Conv2d(4, 4, 1)
    return unet.state_dict(), vae.state_dict()


def _prefixed(prefix, state):
    return {prefix + k: v for k, v in state.items()}


def _host_model(config, result, num_classes):
    cfg = Config.fromfile(osp.join(ROOT, config))
    import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(
        pretrained=None, unet_cfg=result.unet_cfg, vae_cfg=result.vae_cfg)
    # replaced, not merged (a merge would keep class_names/text_encoder)
    model_cfg.backbone.class_embeddings = dict(num_classes=num_classes,
                                               dim=768)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        with torch.device('meta'):
            return MODELS.build(model_cfg)


def _load_strict(model, state_dict):
    res = model.load_state_dict(state_dict, strict=True, assign=True)
    assert res.missing_keys == [] and res.unexpected_keys == []


def _meta_module(cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        with torch.device('meta'):
            return MODELS.build(cfg)


def _recipe(name):
    with open(osp.join(ROOT, 'tests', 'data', 'recipes', name)) as f:
        return yaml.safe_load(f)['recipe']


def test_vpd_ade20k_release_loads_into_zoo_config(ldm_parts):
    import mmdiff.models  # noqa: F401
    unet, vae = ldm_parts
    vae = {k: v for k, v in vae.items()  # VPDSeg deletes the VAE decoder
           if not k.startswith('decoder.')}
    # neck and head exactly as VPD's recipe (fpn_vpd_sd1-5_512x512_gpu8x2.py
    # on its fpn_r50.py), read from the recorded recipe, not our config
    model = _recipe('vpd_ade20k.yml')['model']
    neck = _meta_module(dict(model['neck']))
    head = _meta_module(dict(model['decode_head']))
    assert head.channels == 256
    state = _prefixed('unet.unet.diffusion_model.', unet)
    state.update(_prefixed('encoder_vq.', vae))
    state.update(_prefixed('neck.', neck.state_dict()))
    state.update(_prefixed('decode_head.', head.state_dict()))
    state.update({'text_adapter.fc.0.weight': torch.zeros(768, 768),
                  'text_adapter.fc.0.bias': torch.zeros(768),
                  'text_adapter.fc.2.weight': torch.zeros(768, 768),
                  'text_adapter.fc.2.bias': torch.zeros(768),
                  'gamma': torch.zeros(768),
                  'class_embeddings': torch.zeros(150, 768),
                  'sd_model.betas': torch.zeros(1000),
                  'sd_model.alphas_cumprod': torch.zeros(1000)})
    result = convert_state_dict({'state_dict': state, 'meta': {}})
    assert result.layout.name == 'vpd_seg'
    assert result.unet_cfg['block_out_channels'] == [320, 640, 1280, 1280]
    model = _host_model(
        'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py', result, 150)
    _load_strict(model, result.state_dict)


def test_mmseg_nyu_release_loads_into_zoo_config(ldm_parts):
    import mmdiff.models  # noqa: F401
    unet, vae = ldm_parts  # mmseg keeps the VAE decoder
    rec = _recipe('mmseg_vpd_nyu.yml')['model']['decode_head']
    head = _meta_module(dict(rec, fmap_border=tuple(rec['fmap_border'])))
    emb = torch.randn(27, 768)
    state = _prefixed('backbone.unet.unet.diffusion_model.', unet)
    state.update(_prefixed('backbone.encoder_vq.', vae))
    state.update(_prefixed('decode_head.', head.state_dict()))
    state.update({
        'backbone.text_adapter.fc.0.weight': torch.zeros(768, 768),
        'backbone.text_adapter.fc.0.bias': torch.zeros(768),
        'backbone.text_adapter.fc.2.weight': torch.zeros(768, 768),
        'backbone.text_adapter.fc.2.bias': torch.zeros(768),
        'backbone.gamma': torch.zeros(768),
        'backbone.class_embeddings': torch.cat([emb, emb.mean(0, True)])})
    result = convert_state_dict({'state_dict': state})
    assert result.layout.name == 'mmseg_vpd'
    assert result.state_dict['backbone.conditioner.class_embeddings'].shape == (27, 768)
    model = _host_model('configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py',
                        result, 27)
    _load_strict(model, result.state_dict)


def test_vpd_nyu_release_loads_into_zoo_config(ldm_parts):
    """VPD's own NYU checkpoint (``VPDDepth``, in ``{'model': ...}``)."""
    import mmdiff.models  # noqa: F401
    unet, vae = ldm_parts
    unet = {k: v for k, v in unet.items()  # VPD deletes the U-Net's ``out``
            if not k.startswith('out.')}
    vae = {k: v for k, v in vae.items() if not k.startswith('decoder.')}
    rec = _recipe('vpd_nyu_depth.yml')  # depth/models_depth/model.py, test.sh
    prior, out_dim, embed = rec['ldm_prior'], rec['feature_dim'], \
        rec['embed_dim']
    with torch.device('meta'):
        enc = nn.Module()
        enc.layer1 = nn.Sequential(
            nn.Conv2d(prior[0], prior[0], 3, 2, 1), nn.GroupNorm(16, prior[0]),
            nn.ReLU(), nn.Conv2d(prior[0], prior[0], 3, 2, 1))
        enc.layer2 = nn.Sequential(nn.Conv2d(prior[1], prior[1], 3, 2, 1))
        enc.out_layer = nn.Sequential(
            nn.Conv2d(sum(prior), out_dim, 1), nn.GroupNorm(16, out_dim),
            nn.ReLU())
        layers, in_ch = [], out_dim
        for filters in rec['num_filters']:
            layers += [nn.ConvTranspose2d(in_ch, filters, 2, 2, bias=False),
                       nn.BatchNorm2d(filters), nn.ReLU()]
            in_ch = filters
        decoder = nn.Module()
        decoder.deconv_layers = nn.Sequential(*layers)
        decoder.conv_layers = nn.Sequential(
            nn.Conv2d(in_ch, embed, 3, 1, 1), nn.BatchNorm2d(embed),
            nn.ReLU())
        last = nn.Sequential(nn.Conv2d(embed, embed, 3, 1, 1), nn.ReLU(),
                             nn.Conv2d(embed, 1, 3, 1, 1))
    state = _prefixed('encoder.unet.unet.diffusion_model.', unet)
    state.update(_prefixed('encoder.encoder_vq.', vae))
    state.update(_prefixed('encoder.', enc.state_dict()))
    state.update(_prefixed('decoder.', decoder.state_dict()))
    state.update(_prefixed('last_layer_depth.', last.state_dict()))
    state.update({
        'encoder.text_adapter.fc.0.weight': torch.zeros(768, 768),
        'encoder.text_adapter.fc.0.bias': torch.zeros(768),
        'encoder.text_adapter.fc.2.weight': torch.zeros(768, 768),
        'encoder.text_adapter.fc.2.bias': torch.zeros(768),
        'encoder.gamma': torch.zeros(768),
        'encoder.class_embeddings': torch.randn(27, 768)})
    state = {'module.' + k: v for k, v in state.items()}  # saved from DDP
    result = convert_state_dict({'model': state, 'optimizer': {}})
    assert result.layout.name == 'vpd_depth'
    assert len(result.placeholders) == 4
    model = _host_model(
        'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480_vpd-scenes.py', result,
        27)
    _load_strict(model, result.state_dict)
