"""Findings 3 and 4 of issue 14 through the user's path.

``probe_driver.py`` writes each bad input as files on disk (host data set
classes: ``BaseSegDataset``, ``NYUDataset``, ``CocoDataset``) and each bad
checkpoint, and runs ``tools/train.py`` / ``tools/test.py`` on them, all in
one subprocess (one import of torch/mmseg/mmdet). Each test below checks one
probe: one error, of the expected kind, naming the problem and the fix,
where before there was a traceback, a silent conversion or metrics printed
with exit 0.
"""
import pytest


@pytest.fixture(scope='module')
def probes(tmp_path_factory, run_probe_driver):
    return run_probe_driver('probe_driver.py',
                            str(tmp_path_factory.mktemp('probes')))


CASES = {
    # finding 3: wrong results with exit 0 / tracebacks
    'std0_test': ('ValueError', r'std=\[0, 0, 0\] holds 0.*Fix: std='),
    'nan_float_test': ('FloatingPointError',
                       r'demo_00000\.tiff holds NaN/inf.*Fix'),
    'depth0_train': ('ValueError', r'Depth map .*\.png has no valid pixel'
                     r'.*Fix: check the file and depth_rescale_factor'),
    'labels_train': ('ValueError', r'labels \[7\] in .*training/demo_00000'
                     r'\.png are outside the 4 classes 0\.\.3 \(ignore '
                     r'index 255\)\. Fix'),
    'labels_test': ('ValueError', r'labels \[7\] in .*validation/'
                    r'demo_00000\.png are outside'),
    'u16_test': ('ValueError', r'reaches the model as uint16 .*about '
                 r'\[.*513\]. Fix: .*image_dtypes'),
    'rgba_test': ('ValueError', r'has shape \(4, 64, 64\).*Fix: '
                  r"LoadImageFromFile\(color_type='color'\)"),
    'tiny_train': ('DataInputError', r'demo_00000\.jpg is 1x1 pixels.*Fix'),
    'huge_test': ('ValueError', r'2100x2100 = 4\.4 MP, over max_image_'
                  r'pixels.*Fix: resize.*max_image_pixels=4410000'),
    'typo_train': ('ValueError', r"Unknown keys \['learnabel'\] in "
                   r'class_embeddings.*Fix'),
    'coco_empty_train': ('DataInputError', r'is empty: 4 images listed, 0 '
                         r'left after filtering\. Fix'),
    # finding 4: checkpoint pre-check gaps
    'ckpt_legacy_test': ('ok', ''),
    'ckpt_truncated_test': ('CheckpointError', r'truncated\.pth.* truncated '
                            r'or corrupted .*Fix'),
    'ckpt_flipped_test': ('CheckpointError', r'fails its CRC-32 check'),
    'ckpt_hashed_test': ('CheckpointError', r'sha256 prefix 00000000 .*'
                         r'hashes to [0-9a-f]{8}'),
    'ckpt_evil_url_train': ('UnsafeCheckpointError',
                            r'outside the weights-only allow-list.*NOT '
                            r'loaded'),
}


@pytest.mark.parametrize('probe', sorted(CASES))
def test_probe(probes, probe, expect_probe):
    outcome, pattern = CASES[probe]
    rec = probes[probe]
    expect_probe(rec, outcome, pattern)
    if outcome != 'ok':
        assert '--trust-pickle' not in rec['message'] or \
            'Unsafe' in outcome, 'trust-pickle suggested for a bad file'
    if probe.startswith('ckpt_') and outcome != 'ok':
        # refused before the Runner (and its model) was built
        assert 'precheck_checkpoint' in rec['where']
        assert 'from_cfg' not in rec['where']


def test_float_images_in_the_8bit_range_pass():
    """mmdet's Mask2Former LSJ pipeline loads images with to_float32=True
    (values 0..255 after resizing): 8-bit content, accepted; a float image
    already scaled to [0, 1] is refused, naming its range."""
    import torch

    from mmdiff.engine.hooks.input_guard_hook import InputGuardHook
    hook = InputGuardHook()
    lsj = torch.rand(3, 16, 16) * 254.6 + 0.2
    hook._check_image(None, lsj, 'lsj.jpg', 'train')
    hook._check_image(None, lsj.to(torch.uint8), 'lsj.jpg', 'train')
    with pytest.raises(ValueError, match=r'scaled\.png reaches the model as '
                       r'float32 \(values 0\.\.1\).*Fix'):
        hook._check_image(None, torch.linspace(0, 1, 16).expand(3, 16, 16),
                          'scaled.png', 'train')
    with pytest.raises(ValueError, match='as float32'):
        hook._check_image(None, lsj * 257, 'u16.png', 'train')
