"""Layout detection, the plain SD layout, and loud failures on bad input."""
import os

import pytest
import torch

from mmdiff.converters import (ConversionError, convert_state_dict,
                               detect_layout, unwrap_state_dict)
from mmdiff.converters.convert import _is_mean_row



@pytest.fixture(scope='module')
def ldm_state(helpers):
    """Tiny ldm U-Net and VAE state dicts (no prefixes)."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    torch.manual_seed(0)
    unet = UNetModel(**helpers.ORIGINAL_CONFIG['model']['params']
                     ['unet_config']['params'])
    vae = helpers.LdmVae()
    return unet.state_dict(), vae.state_dict()


def _t():
    return torch.zeros(2)


@pytest.mark.parametrize('keys,name', [
    (['backbone.unet.unet.diffusion_model.x', 'decode_head.y'], 'mmseg_vpd'),
    (['encoder.unet.unet.diffusion_model.x', 'last_layer_depth.0.weight'],
     'vpd_depth'),
    (['unet.unet.diffusion_model.x', 'sd_model.betas'], 'vpd_seg'),
    (['model.diffusion_model.x', 'first_stage_model.y'], 'sd'),
])
def test_detect_layout(keys, name):
    assert detect_layout({k: _t() for k in keys}).name == name


def test_unwrap_vpd_depth_ddp_checkpoint():
    ckpt = {'model': {'module.encoder.gamma': _t(), 'module.decoder.w': _t()},
            'optimizer': {}, 'epoch': 25}
    state, where = unwrap_state_dict(ckpt)
    assert sorted(state) == ['decoder.w', 'encoder.gamma']
    assert "'model'" in where and 'module.' in where


def test_unknown_layout_lists_prefixes():
    with pytest.raises(ValueError, match='Unknown checkpoint layout') as e:
        convert_state_dict({'foo.bar.weight': _t(), 'foo.bar.bias': _t()})
    assert 'foo.bar.* (2)' in str(e.value)


def test_mmdiff_checkpoint_is_refused():
    with pytest.raises(ValueError, match='already in mmdiff layout'):
        detect_layout({'backbone.unet.conv_in.weight': _t()})


def test_unplaceable_keys_all_listed(tool, tmp_path, capsys):
    state = {'unet.unet.diffusion_model.input_blocks.0.0.weight': _t(),
             'encoder_vq.encoder.conv_in.weight': _t(),
             'sd_model.betas': _t(),
             'sd_model.model.extra.weight': _t(),  # not a schedule buffer
             'extra_head.conv.weight': _t(),
             'backbone.gamma': _t()}  # another layout's key
    with pytest.raises(ConversionError) as e:
        convert_state_dict(state)
    expected = ['sd_model.model.extra.weight', 'extra_head.conv.weight',
                'backbone.gamma']
    assert e.value.keys == expected
    for key in expected:
        assert key in str(e.value)
    # the command line: exit status 1, the list on stderr, no output file
    src, dst = str(tmp_path / 'bad.pth'), str(tmp_path / 'out.pth')
    torch.save({'state_dict': state}, src)
    assert tool.main([src, dst]) == 1
    err = capsys.readouterr().err
    assert all(k in err for k in expected)
    assert sorted(os.listdir(tmp_path)) == ['bad.pth']


def test_unplaced_ldm_key_and_wrong_config(ldm_state, original_config_yaml):
    unet, vae = ldm_state
    base = {f'unet.unet.diffusion_model.{k}': v for k, v in unet.items()}
    base.update({f'encoder_vq.{k}': v for k, v in vae.items()})
    # the tiny model against the default SD v1 config: shapes do not fit
    with pytest.raises(ConversionError, match='--original-config'):
        convert_state_dict(base)
    # a key inside the U-Net that diffusers' conversion does not place
    bad = dict(base)
    bad['unet.unet.diffusion_model.input_blocks.1.0.extra.weight'] = _t()
    with pytest.raises(ConversionError) as e:
        convert_state_dict(bad, original_config_yaml)
    assert e.value.keys == [
        'unet.unet.diffusion_model.input_blocks.1.0.extra.weight']
    result = convert_state_dict(base, original_config_yaml)
    assert result.layout.name == 'vpd_seg'
    assert result.placed['backbone.unet'] == len(unet)
    # VAE decoder keys are dropped with a reason, not converted
    assert len(result.dropped['VAE decoder (mmdiff uses the encoder only)']) \
        == len([k for k in vae if k.startswith('decoder.')])


def test_plain_sd_file_loads_into_diffusion_backbone(ldm_state, helpers,
                                                     original_config_yaml):
    from mmdiff.models.backbones import DiffusionBackbone
    unet, vae = ldm_state
    state = {f'model.diffusion_model.{k}': v for k, v in unet.items()}
    state.update({f'first_stage_model.{k}': v for k, v in vae.items()})
    state['cond_stage_model.transformer.embeddings.weight'] = _t()
    for name in helpers.SCHEDULE + ('model_ema.decay',
                                    'model_ema.num_updates'):
        state[name] = _t()
    result = convert_state_dict({'state_dict': state}, original_config_yaml)
    assert result.layout.name == 'sd'
    assert len(result.dropped['DDPM schedule buffers (not weights)']) == \
        len(helpers.SCHEDULE) + 2
    backbone = DiffusionBackbone(unet_cfg=result.unet_cfg,
                                 vae_cfg=result.vae_cfg)
    prefix = 'backbone.'
    res = backbone.load_state_dict(
        {k[len(prefix):]: v for k, v in result.state_dict.items()},
        strict=True)
    assert not res.missing_keys and not res.unexpected_keys


def test_mean_row_detection():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(27, 8, generator=gen)
    with_mean = torch.cat([emb, emb.mean(0, keepdim=True)])
    assert _is_mean_row(with_mean)
    assert not _is_mean_row(torch.cat([emb, emb[:1]]))


@pytest.fixture(scope='module')
def sd_files(helpers, tmp_path_factory):
    """Tiny SD single files: a full training file (raw U-Net + ldm's
    LitEma copy, as v1-5-pruned.ckpt) and the EMA-only file made from it
    (the EMA weights under model.diffusion_model.*, as
    v1-5-pruned-emaonly.ckpt), both with the VAE."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    from mmdiff.testing.ldm import lit_ema_copy
    torch.manual_seed(0)
    unet = UNetModel(**helpers.ORIGINAL_CONFIG['model']['params']
                     ['unet_config']['params'])
    vae = helpers.LdmVae()
    raw = {f'model.diffusion_model.{k}': v
           for k, v in unet.state_dict().items()}
    vae_state = {f'first_stage_model.{k}': v
                 for k, v in vae.state_dict().items()}
    shadow = lit_ema_copy(unet, torch.Generator().manual_seed(1))
    # the EMA-only file: each U-Net weight replaced by its LitEma buffer
    # (LitEma: the parameter name without its dots, ldm/modules/ema.py)
    emaonly = {k: shadow['model_ema.' + k[len('model.'):].replace('.', '')]
               for k in raw}
    tmp = tmp_path_factory.mktemp('sd_files')
    files = dict(full={**raw, **shadow, **vae_state},
                 emaonly={**emaonly, **vae_state},
                 raw_only={**raw, **vae_state})
    paths = {}
    for name, state in files.items():
        paths[name] = str(tmp / f'{name}.ckpt')
        torch.save({'state_dict': state}, paths[name])
    return paths


def _converted_unet(tool, src, dst, yaml_path, *flags):
    assert tool.main([src, dst, '--original-config', yaml_path,
                      *flags]) == 0
    ckpt = torch.load(dst, weights_only=True)
    unet = {k: v for k, v in ckpt['state_dict'].items()
            if k.startswith('backbone.unet.')}
    return unet, ckpt['meta']['converted_from']


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sd_converter_takes_the_ema_weights(tool, sd_files, tmp_path,
                                            original_config_yaml, capsys):
    """A full SD file converts to the EMA weights by default (VPD starts
    from v1-5-pruned-emaonly: the same weights), to the raw ones with
    --no-ema; the summary and meta say which."""
    yaml_path = original_config_yaml
    emaonly, meta = _converted_unet(tool, sd_files['emaonly'],
                                    str(tmp_path / 'e.pth'), yaml_path)
    assert meta['unet_weights'] == 'as stored'
    assert 'no EMA copy' in capsys.readouterr().out
    raw, _ = _converted_unet(tool, sd_files['raw_only'],
                             str(tmp_path / 'r.pth'), yaml_path)
    assert not _same(raw, emaonly)
    capsys.readouterr()

    default, meta = _converted_unet(tool, sd_files['full'],
                                    str(tmp_path / 'd.pth'), yaml_path)
    out = capsys.readouterr().out
    assert _same(default, emaonly)
    assert meta['unet_weights'] == 'ema'
    assert 'U-Net: the EMA weights (model_ema.*)' in out

    no_ema, meta = _converted_unet(tool, sd_files['full'],
                                   str(tmp_path / 'n.pth'), yaml_path,
                                   '--no-ema')
    out = capsys.readouterr().out
    assert _same(no_ema, raw)
    assert meta['unet_weights'] == 'non-ema'
    assert 'U-Net: the raw (non-EMA)' in out


def test_sd_converter_refuses_a_partial_ema_copy(tool, sd_files, tmp_path,
                                                 original_config_yaml,
                                                 capsys):
    state = torch.load(sd_files['full'], weights_only=True)['state_dict']
    gone = next(k for k in state if k.startswith('model_ema.diffusion_'))
    del state[gone]
    src, dst = str(tmp_path / 'partial.ckpt'), str(tmp_path / 'out.pth')
    torch.save({'state_dict': state}, src)
    assert tool.main([src, dst, '--original-config',
                      original_config_yaml]) == 1
    err = capsys.readouterr().err
    assert '1 U-Net weights without an EMA entry' in err and '--no-ema' in err
    assert not os.path.exists(dst)
    assert tool.main([src, dst, '--original-config', original_config_yaml,
                      '--no-ema']) == 0


def test_backbone_reads_the_ema_weights_of_a_full_sd_file(
        sd_files, tmp_path, tool, original_config_yaml):
    """pretrained=<full SD file> gives the same U-Net as the EMA-only file
    (VPD's start) and as the converter's default, not diffusers' raw one."""
    from mmdiff.models.backbones import DiffusionBackbone

    def unet(path):
        backbone = DiffusionBackbone(pretrained=path,
                                     original_config=original_config_yaml)
        backbone.init_weights()
        return backbone.unet.state_dict()

    full, emaonly = unet(sd_files['full']), unet(sd_files['emaonly'])
    assert _same(full, emaonly)
    assert not _same(full, unet(sd_files['raw_only']))
    converted, _ = _converted_unet(tool, sd_files['full'],
                                   str(tmp_path / 'c.pth'),
                                   original_config_yaml)
    converted = {k[len('backbone.unet.'):]: v for k, v in converted.items()}
    assert _same(full, converted)
