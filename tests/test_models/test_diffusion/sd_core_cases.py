"""The models of the SD core refactor (issue #23), run on fixed inputs.

``python tests/test_models/test_diffusion/sd_core_cases.py OUT.json``
records every case's outputs; ``sd_core_outputs.json`` beside this file
was recorded so at commit ``f822b3d`` (before the refactor, on the code
that wrote the SD plumbing three times), and ``test_sd_core_outputs.py``
compares today's code with it.

Weights do not depend on the order in which a model creates its modules:
after building, every floating parameter and buffer is redrawn from a
generator seeded by its name (:func:`reseed`); names that moved in the
refactor are mapped back by :data:`RENAMED` (the one place that lists
them).
"""
import json
import os.path as osp
import sys
import tempfile
import zlib

import torch

#: New name prefix -> the name it had when the outputs were recorded.
RENAMED = (('conditioner.', ''), )

NUM_SAMPLES = 64


def canonical(name: str) -> str:
    """The parameter's name at the recording commit."""
    for new, old in RENAMED:
        name = name.replace(new, old)
    return name


def reseed(model: torch.nn.Module) -> None:
    """Redraw every floating parameter/buffer from a per-name generator."""
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    with torch.no_grad():
        for name, t in tensors.items():
            if not t.is_floating_point():
                continue
            key = canonical(name)
            gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            val = torch.randn(t.shape, generator=gen)
            if t.ndim >= 2:  # O(1) activations: std 1 / sqrt(fan-in)
                val = val / t[0].numel()**0.5
            elif key.endswith('weight'):  # norms
                val = 1 + 0.1 * val
            else:
                val = 0.1 * val
            t.copy_(val.to(t.dtype))


def images(batch: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=gen) * 2 - 1


def _tiny():
    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    return dict(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg())


def _run(model, fn):
    torch.manual_seed(0)
    reseed(model)
    model.eval()
    torch.manual_seed(1234)
    with torch.no_grad():
        out = fn(model)
    return out if isinstance(out, (tuple, list)) else [out]


def case_backbone(workdir):
    from mmdiff.models.backbones import DiffusionBackbone
    model = DiffusionBackbone(noise='seeded', timestep=50, vae_taps=(1, ),
                              **_tiny())
    return _run(model, lambda m: m(images(2, 72)))


def case_vpd_attn(workdir):
    from mmdiff.models.backbones import VPD
    model = VPD(class_embeddings=dict(num_classes=4, dim=32), **_tiny())
    return _run(model, lambda m: m(images()))


def case_vpd_tokens(workdir):
    from mmdiff.models.backbones import VPD
    emb = torch.zeros(3, 4, 32)  # (K, L, D) token embeddings, redrawn
    model = VPD(class_embeddings=emb, scale_latents=True, **_tiny())
    return _run(model, lambda m: m(images()))


def case_vpd_select(workdir):
    from mmdiff.models.backbones import VPD
    model = VPD(class_embeddings=dict(num_classes=3, dim=32),
                class_embed_select=True, use_attn=False, pad_shape=80,
                **_tiny())
    ids = torch.tensor([2, -1])
    return _run(model, lambda m: m((images(), ids)))


def case_vpd_sdxl(workdir):
    from mmdiff.models.backbones import VPD
    from mmdiff.models.diffusion import tiny_sdxl_unet_cfg, tiny_vae_cfg
    unet = tiny_sdxl_unet_cfg()
    model = VPD(unet_cfg=unet, vae_cfg=tiny_vae_cfg(),
                class_embeddings=dict(num_classes=3,
                                      dim=unet['cross_attention_dim']),
                text_embeds=dict(learnable=True))
    return _run(model, lambda m: m(images()))


def case_meta_prompts(workdir):
    from projects.MetaPrompts.meta_prompts import MetaPromptsVPD
    model = MetaPromptsVPD(num_prompts=8, num_loops=2, **_tiny())
    return _run(model, lambda m: m(images()))


def case_hyperfeatures(workdir):
    from projects.Hyperfeatures.hyperfeatures import HyperfeatureVPD
    model = HyperfeatureVPD(timesteps=(1, 200), seeds=(0, 7),
                            class_embeddings=dict(num_classes=3, dim=32),
                            **_tiny())
    return _run(model, lambda m: m(images()))


def _tiny_clip(workdir):
    from mmdiff.testing import build_tiny_clip
    folder = osp.join(workdir, 'clip')
    if not osp.isdir(folder):
        build_tiny_clip(folder)
    return folder


def case_caption(workdir):
    from projects.CaptionPrompts.caption_prompts import CaptionVPD
    caps = {'training/a.jpg': 'a photo of a cat.', 'b.jpg': 'a dog.'}
    model = CaptionVPD(captions=caps, text_encoder=_tiny_clip(workdir),
                       caption_template='a dark photo of {}', max_length=8,
                       **_tiny())
    keys = ['/data/training/a.jpg', '/x/validation/b.jpg']

    def fn(m):
        if hasattr(m, 'image_keys'):  # the side channel before #23
            m.image_keys = keys
            return m(images())
        return m(images(), metainfo=[dict(img_path=k) for k in keys])

    return _run(model, fn)


def _samples(metainfos):
    from mmengine.structures import BaseDataElement
    return [BaseDataElement(metainfo=m) for m in metainfos]


def _pretrainer_case(workdir, **kwargs):
    from mmdiff.models.pretrainers import DiffusionPretrainer
    if kwargs.get('conditioning') == 'caption':
        kwargs['text_encoder'] = _tiny_clip(workdir)
    model = DiffusionPretrainer(**_tiny(), **kwargs)
    if model.text_encoder is not None:
        model.text_encoder.load_weights()
    metas = [dict(class_id=1, caption='a cat.'),
             dict(class_id=0, caption='a dog.')]

    def fn(m):
        losses = m.loss(images(), _samples(metas))
        grid = m.sample(2, (8, 8), steps=2, seed=3)
        return [losses['loss'], losses['mse'], grid]

    return _run(model, fn)


def case_pretrainer_none(workdir):
    return _pretrainer_case(workdir, snr_gamma=5.0)


def case_pretrainer_class(workdir):
    return _pretrainer_case(workdir, conditioning='class', num_classes=2,
                            prediction_type='v_prediction',
                            latent_mode='mode')


def case_pretrainer_caption(workdir):
    return _pretrainer_case(workdir, conditioning='caption',
                            lora=dict(rank=4))


def _depth_case(**kwargs):
    from projects.GenerativeDepth.generative_depth import GenerativeDepth
    model = GenerativeDepth(**_tiny(), **kwargs)

    def fn(m):
        x = images(2, 72)
        out = m.encode_decode(x)
        padded = torch.nn.functional.pad(x, (0, 8, 0, 8))
        target = m.encode(images(2, 80, seed=5))
        return [out, m.predict_latent(padded, target)]

    return _run(model, fn)


def case_depth_direct(workdir):
    return _depth_case(loss='pixel_mse')


def case_depth_concat(workdir):
    return _depth_case(input_mode='concat_noise', timestep=500)


CASES = {
    name[len('case_'):]: fn
    for name, fn in sorted(globals().items()) if name.startswith('case_')
}


def summary(t: torch.Tensor) -> dict:
    """Shape, sums and evenly spaced samples of a tensor (float64)."""
    flat = t.detach().double().flatten()
    idx = torch.linspace(0, flat.numel() - 1,
                         min(NUM_SAMPLES, flat.numel())).long()
    return dict(shape=list(t.shape), sum=flat.sum().item(),
                abs_sum=flat.abs().sum().item(),
                samples=flat[idx].tolist())


def record(names=None) -> dict:
    """``{case: [summary per output]}``."""
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, fn in CASES.items():
            if names is None or name in names:
                out[name] = [summary(t) for t in fn(workdir)]
    return out


if __name__ == '__main__':
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    sys.path.insert(0, root)  # projects/ as a package, as the tests do
    with open(sys.argv[1], 'w') as f:
        json.dump(record(), f, indent=1)
