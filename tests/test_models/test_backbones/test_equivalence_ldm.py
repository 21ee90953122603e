"""mmdiff.VPD on diffusers vs ldm code, from one SD-layout file.

ldm here is Stability-AI's ``ldm`` package (PyPI stable-diffusion-sdkit
2.1.5), not the CompVis commit VPD pins as a submodule; for the SD1 config
its modules and fp32 numbers are the same.

The tiny ldm model is SD1-shaped; diffusers' single-file machinery converts
it. Taps must equal ldm's ``output_blocks`` 1, 4, 7 and final, latents the
ldm posterior mode, and attention maps an explicit softmax(QK^T * scale)
computed from ldm's own ``attn2`` weights (heads then layers averaged).
"""
from collections import defaultdict

import pytest
import torch

pytest.importorskip('ldm.modules.diffusionmodules.openaimodel')

from mmdiff.models.backbones import VPD  # noqa: E402
from mmdiff.testing.ldm import cross_attention_probs  # noqa: E402
from mmdiff.testing import demo_images  # noqa: E402

TOL = 1e-4
K = 5


@pytest.fixture(scope='module')
def model(single_file_ckpt):
    """VPD loaded from the single file through diffusers' conversion."""
    ckpt, yaml_path = single_file_ckpt
    torch.manual_seed(0)
    vpd = VPD(pretrained=ckpt, original_config=yaml_path,
              local_files_only=True, use_attn=True,
              class_embeddings=dict(num_classes=K))
    vpd.init_weights()
    return vpd.eval()


def _ldm_taps(unet, latents, context):
    feats = {}
    handles = [
        unet.output_blocks[i].register_forward_hook(
            lambda m, a, o, i=i: feats.__setitem__(i, o))
        for i in (1, 4, 7, len(unet.output_blocks) - 1)
    ]
    try:
        unet(latents, torch.ones(latents.shape[0], dtype=torch.long),
             context=context)
    finally:
        for h in handles:
            h.remove()
    return feats


def _ldm_maps(unet, latents, context):
    """Explicit softmax(QK^T * scale) of ldm's down/up attn2 layers."""
    height, width = latents.shape[-2:]
    sums, counts = defaultdict(float), defaultdict(int)

    def hook(module, args, kwargs, output):
        probs = cross_attention_probs(module, args[0], kwargs['context'])
        n = probs.shape[1]
        sums[n] = sums[n] + probs
        counts[n] += 1

    handles = []
    for blocks in (unet.input_blocks, unet.output_blocks):
        for name, mod in blocks.named_modules():
            if name.endswith('attn2'):
                handles.append(mod.register_forward_hook(
                    hook, with_kwargs=True))
    try:
        unet(latents, torch.ones(latents.shape[0], dtype=torch.long),
             context=context)
    finally:
        for h in handles:
            h.remove()
    maps = {}
    for n, total in sums.items():
        down = int(round((height * width / n)**0.5))
        if down >= 2:  # VPD keeps resolutions <= latent / 2
            mean = total / counts[n]
            maps[down] = mean.transpose(1, 2).reshape(
                mean.shape[0], -1, height // down, width // down)
    return maps


def test_latents_match_ldm(model, ldm_models):
    _, ldm_vae = ldm_models
    images = demo_images(2, 128, seed=1)
    with torch.no_grad():
        diff = (model.encode(images) - ldm_vae.encode_mode(images)).abs()
    print(f'VAE latents max abs diff: {diff.max().item():.3e}')
    assert diff.max().item() <= TOL


def test_taps_match_ldm_output_blocks(model, ldm_models):
    ldm_unet, ldm_vae = ldm_models
    images = demo_images(2, 128, seed=1)
    with torch.no_grad():
        # attention maps are appended channels: drop them to compare
        outs = [out[:, :chans] for out, chans in
                zip(model(images), model.tap_channels)]
        context = model.condition(images.shape[0])
        ref = _ldm_taps(ldm_unet, ldm_vae.encode_mode(images), context)
    # finest first: final output block, then 7, 4, 1
    for out, idx in zip(outs, (11, 7, 4, 1)):
        assert out.shape == ref[idx].shape
        diff = (out - ref[idx]).abs().max().item()
        print(f'output_blocks[{idx}] max abs diff: {diff:.3e} '
              f'(max |x| {ref[idx].abs().max().item():.2f})')
        assert diff <= TOL


def test_attention_maps_match_explicit_softmax(model, ldm_models):
    ldm_unet, ldm_vae = ldm_models
    images = demo_images(2, 128, seed=1)
    with torch.no_grad():
        outs = model(images)
        context = model.condition(images.shape[0])
        latents = ldm_vae.encode_mode(images)
        ref_maps = _ldm_maps(ldm_unet, latents, context)
        ref_feats = _ldm_taps(ldm_unet, latents, context)
    assert sorted(ref_maps) == [2, 4]  # 1/16 and 1/32 of the image
    by_stride = dict(zip(model.tap_strides, outs))
    for down, ref in ref_maps.items():
        out = by_stride[8 * down]
        feat, maps = out[:, :-K], out[:, -K:]
        diff = (maps - ref).abs().max().item()
        print(f'attention maps 1/{8 * down}: max abs diff {diff:.3e}')
        assert diff <= TOL
        assert torch.allclose(maps.sum(1), torch.ones_like(maps[:, 0]),
                              atol=1e-5)
        ldm_idx = {2: 7, 4: 4}[down]
        assert (feat - ref_feats[ldm_idx]).abs().max().item() <= TOL
    # taps without a map resolution keep their plain channels
    assert model.out_channels == (32, 64 + K, 64 + K, 64)
