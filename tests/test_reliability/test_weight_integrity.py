"""Items 2, 7, 9 and 10 of issue 24 through the user's path.

``weights_probe_driver.py`` writes the files (checkpoints of the demo
segmentor, a DiffusionPretrainer export and damaged copies, bad single
files), serves two different checkpoints under one file name at two URLs,
and runs ``tools/test.py`` / ``tools/train.py`` / ``publish_model.py`` on
them, all in one subprocess (one import of torch/mmseg). Before:

* item 2: the second URL got the first URL's cached file (``tools/test.py``
  tested it, ``publish_model.py`` published it under a fresh sha256);
* item 7: a checkpoint with one NaN U-Net weight, or with a head whose
  logits overflow, printed a metric table with exit 0;
* item 9: a truncated or hostile ``pretrained=`` file or folder failed
  inside diffusers and was reported as weights to download;
* item 10: a flipped byte in an exported safetensors file (as
  ``pretrained=`` or ``unet_weights=``) and NaN weights loaded silently.
"""
import re

import pytest
import torch

NAN_KEY = 'backbone.unet.conv_in.weight'


@pytest.fixture(scope='module')
def probes(tmp_path_factory, run_probe_driver):
    return run_probe_driver('weights_probe_driver.py',
                            str(tmp_path_factory.mktemp('weight_probes')))


_FILE = r'unet/diffusion_pytorch_model\.safetensors'
_NAN = r'holds non-finite weights \(NaN/inf\) in {}.*Fix'
CASES = {
    # item 2: one file name, two URLs (b holds a NaN weight: item 7 says so)
    'url_a_test': ('ok', ''),
    'url_b_test': ('CheckpointError', r'url-[0-9a-f]{16}/model\.pth.* ' +
                   _NAN.format(re.escape(NAN_KEY))),
    # item 7: NaN weights, overflowing predictions
    'nan_ckpt_test': ('CheckpointError', r'nan/model\.pth.* ' +
                      _NAN.format(re.escape(NAN_KEY))),
    'huge_ckpt_test': ('FloatingPointError', r'predicted non-finite values '
                       r'\(NaN/inf\) in seg_logits.*demo_0000.*Fix'),
    # item 9: pretrained= refused by mmdiff's check, with the right message
    'pretrained_single_truncated_train': (
        'CheckpointError', r'pretrained=.*sd_truncated\.ckpt.* truncated or '
        r'corrupted.*Fix'),
    'pretrained_single_evil_train': (
        'UnsafeCheckpointError', r'pretrained=.*sd_evil\.ckpt.* outside the '
        r'weights-only allow-list.*NOT loaded'),
    'pretrained_missing_train': ('FileNotFoundError', r'no_such_folder'),
    'pretrained_folder_truncated_train': (
        'CheckpointError', r'pretrained=.*truncated: ' + _FILE +
        r'.* truncated or corrupted.*Fix'),
    'pretrained_folder_evil_bin_train': (
        'UnsafeCheckpointError', r'pretrained=.*evil_bin: unet/diffusion_'
        r'pytorch_model\.bin.* outside the weights-only allow-list.*NOT '
        r'loaded'),
    'pretrained_folder_no_weights_train': (
        'FileNotFoundError', r'pretrained=.*no_weights: unet/ holds no '
        r'weights .*Fix'),
    # item 10: the export's sha256 list; NaN in a folder / unet_weights=
    'pretrained_folder_ok_train': ('ok', ''),
    'pretrained_folder_flipped_train': (
        'CheckpointError', r'pretrained=.*flipped: ' + _FILE + r' hashes to '
        r'[0-9a-f]{12}\.\.\., not the [0-9a-f]{12}\.\.\. recorded in .*'
        r'mmdiff_pretrain\.json.*Fix: copy or export the folder again'),
    'unet_weights_flipped_train': (
        'CheckpointError', r'unet_weights=.*flipped/' + _FILE +
        r'.* hashes to .* recorded in .*mmdiff_pretrain\.json'),
    'pretrained_folder_nan_train': (
        'CheckpointError', r'pretrained=.*nan \(U-Net\) ' +
        _NAN.format('conv_in.weight')),
    'unet_weights_nan_train': ('CheckpointError', r'unet_weights=.*unet_nan'
                               r'\.safetensors ' +
                               _NAN.format('conv_in.weight')),
}


@pytest.mark.parametrize('probe', sorted(CASES))
def test_probe(probes, probe, expect_probe):
    rec = probes[probe]
    expect_probe(rec, *CASES[probe])
    assert 'machine with network' not in rec['message'] or \
        probe == 'pretrained_missing_train'


def test_publish_names_the_model_behind_each_url(probes):
    """publish_model.py on two URLs ending in model.pth publishes each
    URL's own bytes; a damaged cached copy of a hash-named URL is
    downloaded again."""
    a, b = probes['publish_a'], probes['publish_b']
    assert a['outcome'] == b['outcome'] == 'ok', (a, b)
    wa = torch.load(a['message'], weights_only=True)['state_dict'][NAN_KEY]
    wb = torch.load(b['message'], weights_only=True)['state_dict'][NAN_KEY]
    assert torch.isfinite(wa).all() and not torch.isfinite(wb).all()
    assert a['message'][-12:-4] != b['message'][-12:-4]  # sha256 suffixes
    for name in ('publish_hashed', 'publish_hashed_again'):
        assert probes[name]['outcome'] == 'ok', probes[name]
