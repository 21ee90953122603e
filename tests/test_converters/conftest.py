"""Tiny source models in the three VPD checkpoint layouts, on real ldm code.

* ``VPDSegSource``: VPD's ``VPDSeg`` (extract_feat + neck + head) with ldm's
  ``UNetModel`` and VAE ``Encoder``, VPD's text adapter, VPD's attention-map
  rule (``UNetWrapper``/``AttentionStore``/``process_attn``: softmax(QK^T *
  scale) of the down/up ``attn2`` layers, heads averaged, maps up to
  ``base_size / 16`` kept, layers averaged per size) and mmseg's FPN +
  FPNHead (which VPD's config uses).
* ``VPDDepthSource``: VPD's ``VPDDepth`` (``encoder`` with ldm U-Net/VAE,
  ``layer1``/``layer2``/``out_layer``, ``decoder``, ``last_layer_depth``),
  written with plain torch layers as VPD writes them; ldm's U-Net ``out`` and
  the VAE decoder deleted as VPD does.
* mmseg: the real ``mmseg.models.backbones.VPD`` inside mmseg's
  ``DepthEstimator`` with ``VPDDepthHead``. mmseg's VPD builds
  ``diffusion_cfg`` with ldm's ``instantiate_from_config``; ldm's
  ``LatentDiffusion`` needs pytorch_lightning, so
  ``mmdiff.testing.ldm.LdmStableDiffusion`` stands in: a container with the
  same two attributes mmseg's VPD reads (``first_stage_model``,
  ``model.diffusion_model``), holding real ldm modules.
"""
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from torch import nn

pytest.importorskip('ldm.modules.diffusionmodules.openaimodel')

from mmdiff.testing import ldm  # noqa: E402

DIM = 32  # text / cross-attention width
LDM_UNET = ldm.TINY_UNET
ORIGINAL_CONFIG = ldm.original_config()
# U-Net tap channels, finest first (final, output_blocks 7, 4, 1)
TAP_CHANNELS = [32, 64, 64, 64]
SCHEDULE = ('betas', 'alphas_cumprod', 'alphas_cumprod_prev',
            'sqrt_alphas_cumprod', 'sqrt_one_minus_alphas_cumprod',
            'log_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod',
            'sqrt_recipm1_alphas_cumprod', 'posterior_variance',
            'posterior_log_variance_clipped', 'posterior_mean_coef1',
            'posterior_mean_coef2')
DEPTH_HEAD = dict(max_depth=10.0, in_channels=TAP_CHANNELS, embed_dim=8,
                  feature_dim=64, num_deconv_filters=(16, 16, 16))


# --------------------------------------------------------------------------
# ldm parts (mmdiff.testing.ldm) as VPD's released code arranges them
# --------------------------------------------------------------------------
LdmVae = ldm.LdmAutoencoderKL


def ldm_unet(delete_out: bool = False, params: dict = None) -> nn.Module:
    """ldm ``UNetModel`` with ``params`` (default :data:`LDM_UNET`)."""
    unet = ldm.ldm_unet(params)
    if delete_out:
        del unet.out  # VPDDepthEncoder: del self.unet.unet.diffusion_model.out
    return unet


def wrap(**children) -> nn.Module:
    module = nn.Module()
    for name, child in children.items():
        setattr(module, name, child)
    return module


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Fill zero-initialised parameters, perturb norms and BN statistics so
    that no layer is an identity and every converted key matters."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ldm.randomise(module, gen, reset_small_convs=True)
    return module.eval()


class TextAdapter(nn.Module):
    """VPD's ``TextAdapter``/``TextAdapterDepth`` (fc only; gamma outside)."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.GELU(),
                                nn.Linear(dim, dim))

    def forward(self, texts, gamma):
        return texts + gamma * self.fc(texts)


def ldm_outputs(unet, latents, context, keep_maps_upto=None):
    """VPD's modified ldm forward: output_blocks 1, 4, 7, final (coarse
    first), and VPD's averaged cross-attention maps by size."""
    from ldm.modules.diffusionmodules.util import timestep_embedding
    store = defaultdict(list)
    handles = []
    if keep_maps_upto:
        def hook(module, args, kwargs, output):
            probs = ldm.cross_attention_probs(module, args[0],
                                              kwargs['context'])
            if probs.shape[1] <= keep_maps_upto**2:
                store[probs.shape[1]].append(probs)
        for blocks in (unet.input_blocks, unet.output_blocks):  # down, up
            for name, mod in blocks.named_modules():
                if name.endswith('attn2'):
                    handles.append(mod.register_forward_hook(
                        hook, with_kwargs=True))
    try:
        t = torch.ones(latents.shape[0], dtype=torch.long)
        emb = unet.time_embed(timestep_embedding(t, unet.model_channels))
        hs, h = [], latents
        for module in unet.input_blocks:
            h = module(h, emb, context)
            hs.append(h)
        h = unet.middle_block(h, emb, context)
        outs = []
        for i, module in enumerate(unet.output_blocks):
            h = module(torch.cat([h, hs.pop()], 1), emb, context)
            if i in (1, 4, 7):
                outs.append(h)
        outs.append(h)
    finally:
        for handle in handles:
            handle.remove()
    return outs, ldm.maps_by_size(store)


# --------------------------------------------------------------------------
# Source models
# --------------------------------------------------------------------------
class VPDSegSource(nn.Module):
    """VPD's ``VPDSeg`` (+ ``sd_model`` schedule buffers) at test size."""

    def __init__(self, num_classes: int, base_size: int,
                 neck: dict = None, decode_head: dict = None,
                 unet_params: dict = None) -> None:
        """``neck``/``decode_head``: mmseg configs (e.g. from a recorded
        recipe); default: small test widths. ``unet_params``: ldm U-Net
        arguments, default :data:`LDM_UNET`."""
        super().__init__()
        from mmseg.registry import MODELS
        self.unet = wrap(unet=wrap(diffusion_model=ldm_unet(
            params=unet_params)))
        self.encoder_vq = LdmVae(decoder=False)  # del encoder_vq.decoder
        self.text_adapter = TextAdapter()
        self.gamma = nn.Parameter(torch.rand(DIM) * 0.5)
        gen = torch.Generator().manual_seed(3)
        self.register_buffer('class_embeddings',
                             torch.randn(num_classes, DIM, generator=gen))
        self.sd_model = nn.Module()
        for i, name in enumerate(SCHEDULE):
            self.sd_model.register_buffer(name, torch.linspace(0, 1, 10) + i)
        self.base_size = base_size
        k = num_classes
        self.neck = MODELS.build(neck or dict(
            type='FPN', in_channels=[32, 64 + k, 64 + k, 64],
            out_channels=16, num_outs=4))
        self.decode_head = MODELS.build(decode_head or dict(
            type='FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
            feature_strides=[8, 16, 32, 64], channels=16,
            dropout_ratio=0.1, num_classes=k, norm_cfg=dict(type='BN'),
            align_corners=False))

    def extract_feat(self, img):
        latents = self.encoder_vq.encode(img).mode()
        texts = self.text_adapter(self.class_embeddings, self.gamma)
        context = texts[None].expand(img.shape[0], -1, -1)
        size16, size32 = self.base_size // 32, self.base_size // 16
        outs, maps = ldm_outputs(self.unet.unet.diffusion_model, latents,
                                 context, keep_maps_upto=self.base_size // 16)
        outs[1] = torch.cat([outs[1], maps[size16]], 1)
        outs[2] = torch.cat([outs[2], maps[size32]], 1)
        return outs[::-1]

    def forward(self, img):
        return self.decode_head(self.neck(self.extract_feat(img)))


class VPDDepthSource(nn.Module):
    """VPD's ``VPDDepth`` (encoder with neck convs, decoder, last layer)."""

    def __init__(self, num_scenes: int = 27, head: dict = None,
                 unet_params: dict = None) -> None:
        """``head``: ``embed_dim``, ``feature_dim``, ``num_deconv_filters``
        and ``max_depth`` (e.g. from VPD's recorded recipe); default
        :data:`DEPTH_HEAD` (small test widths)."""
        super().__init__()
        head = head or DEPTH_HEAD
        self.max_depth = head['max_depth']
        prior = [32, 64, 128]  # ldm_prior: 320, 640, 1280 + 1280 in SD
        out_dim = head['feature_dim']
        emb = head['embed_dim']
        enc = nn.Module()
        enc.layer1 = nn.Sequential(
            nn.Conv2d(prior[0], prior[0], 3, stride=2, padding=1),
            nn.GroupNorm(16, prior[0]), nn.ReLU(),
            nn.Conv2d(prior[0], prior[0], 3, stride=2, padding=1))
        enc.layer2 = nn.Sequential(
            nn.Conv2d(prior[1], prior[1], 3, stride=2, padding=1))
        enc.out_layer = nn.Sequential(
            nn.Conv2d(sum(prior), out_dim, 1), nn.GroupNorm(16, out_dim),
            nn.ReLU())
        enc.encoder_vq = LdmVae(decoder=False)
        enc.unet = wrap(unet=wrap(diffusion_model=ldm_unet(
            delete_out=True, params=unet_params)))
        enc.text_adapter = TextAdapter()
        gen = torch.Generator().manual_seed(4)
        enc.register_buffer('class_embeddings',
                            torch.randn(num_scenes, DIM, generator=gen))
        enc.gamma = nn.Parameter(torch.rand(DIM) * 0.5)
        self.encoder = enc
        layers, in_ch = [], out_dim
        for filters in head['num_deconv_filters']:
            layers += [nn.ConvTranspose2d(in_ch, filters, 2, stride=2,
                                          bias=False),
                       nn.BatchNorm2d(filters), nn.ReLU(inplace=True)]
            in_ch = filters
        self.decoder = wrap(
            deconv_layers=nn.Sequential(*layers),
            conv_layers=nn.Sequential(
                nn.Conv2d(in_ch, emb, 3, padding=1), nn.BatchNorm2d(emb),
                nn.ReLU(inplace=True)))
        self.last_layer_depth = nn.Sequential(
            nn.Conv2d(emb, emb, 3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(emb, 1, 3, padding=1))

    def features(self, img, class_ids):
        enc = self.encoder
        latents = enc.encoder_vq.encode(img).mode()
        texts = enc.text_adapter(enc.class_embeddings[class_ids.tolist()],
                                 enc.gamma)[:, None]  # 'n c -> n b c', b=1
        outs, _ = ldm_outputs(enc.unet.unet.diffusion_model, latents, texts)
        return outs[::-1]

    def forward(self, img, class_ids):
        return self.head(self.features(img, class_ids))

    def head(self, outs):
        """VPDDepthEncoder's convs after the U-Net, decoder, last layer."""
        enc = self.encoder
        feats = [outs[0], outs[1], torch.cat(
            [outs[2], nn.functional.interpolate(outs[3], scale_factor=2)],
            dim=1)]
        x = torch.cat([enc.layer1(feats[0]), enc.layer2(feats[1]), feats[2]],
                      dim=1)
        x = enc.out_layer(x)
        up = nn.Upsample(scale_factor=2, mode='bilinear',
                         align_corners=False)
        x = up(up(self.decoder.conv_layers(self.decoder.deconv_layers(x))))
        return torch.sigmoid(self.last_layer_depth(x)) * self.max_depth


@pytest.fixture(scope='module')
def tool(load_tool):
    """tools/model_converters/vpd_to_mmdiff.py, imported."""
    return load_tool('tools/model_converters/vpd_to_mmdiff.py')


@pytest.fixture(scope='session')
def ldm_target():
    """``diffusion_cfg.target`` of mmseg's VPD: ldm's modules in
    ``LatentDiffusion``'s layout (ldm's ``instantiate_from_config`` imports
    it by module path)."""
    return 'mmdiff.testing.ldm.LdmStableDiffusion'


@pytest.fixture(scope='session')
def helpers():
    """The helpers above, for test modules (importlib import mode)."""
    return SimpleNamespace(
        DIM=DIM, ORIGINAL_CONFIG=ORIGINAL_CONFIG, TAP_CHANNELS=TAP_CHANNELS,
        DEPTH_HEAD=DEPTH_HEAD, SCHEDULE=SCHEDULE, LdmVae=LdmVae,
        VPDSegSource=VPDSegSource, VPDDepthSource=VPDDepthSource,
        randomise=randomise, ldm_outputs=ldm_outputs)


@pytest.fixture(scope='session')
def original_config_yaml(tmp_path_factory):
    import yaml
    path = tmp_path_factory.mktemp('ldm_config') / 'tiny-inference.yaml'
    path.write_text(yaml.safe_dump(ldm.original_config()))
    return str(path)
