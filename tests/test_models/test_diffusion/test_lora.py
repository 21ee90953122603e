"""LoRA fine-tuning of the U-Net as a backbone argument (``lora=dict(...)``).

Tiny SD-shaped U-Net/VAE saved as a diffusers folder, loaded through
``pretrained=`` into backbones with and without LoRA.
"""
import pytest
import torch
from torch import nn

from mmdiff.models.backbones import VPD, DiffusionBackbone
from mmdiff.models.diffusion import tiny_sd_configs
from mmdiff.models.diffusion.lora import DEFAULT_TARGETS

pytest.importorskip('peft')

RANK = 4


def build(root, init=True, **kwargs):
    model = DiffusionBackbone(pretrained=root, local_files_only=True,
                              **kwargs)
    if init:
        model.init_weights()
    return model


def images(batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, 64, 64, generator=gen) * 2 - 1


def trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def base_state(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if 'lora_' not in k}


def expected_lora_params(unet, rank=RANK):
    """``rank * (in + out)`` for every targeted ``nn.Linear`` of a plain
    U-Net (A: rank x in, B: out x rank)."""
    return sum(
        rank * (mod.in_features + mod.out_features)
        for name, mod in unet.named_modules()
        if isinstance(mod, nn.Linear) and name.endswith(DEFAULT_TARGETS))


@pytest.mark.parametrize('cls', [DiffusionBackbone, VPD])
def test_only_lora_params_train(sd_folder, cls):
    root, unet, _ = sd_folder
    kwargs = dict(class_embeddings=dict(num_classes=3)) if cls is VPD else {}
    model = cls(pretrained=root, local_files_only=True,
                lora=dict(rank=RANK), **kwargs)
    model.init_weights()
    for _ in range(2):  # after init_weights and after (re-)entering train
        params = trainable(model.unet)
        assert params and all('lora_' in n for n in params)
        assert sum(p.numel() for p in params.values()) == \
            expected_lora_params(unet)
        if cls is DiffusionBackbone:  # null prompt: nothing else to train
            assert trainable(model).keys() == {
                f'unet.{n}' for n in params}
        model.train()
    assert model.unet.training and not model.vae.training
    # the base weights landed in peft's base_layer; lora_B starts at zero
    attn = model.unet.down_blocks[0].attentions[0].transformer_blocks[0]
    assert torch.equal(
        attn.attn1.to_q.base_layer.weight,
        unet.down_blocks[0].attentions[0].transformer_blocks[0]
        .attn1.to_q.weight)
    assert not attn.attn1.to_q.lora_B['default'].weight.any()


def test_features_at_init_equal_plain_unet(sd_folder):
    root, *_ = sd_folder
    plain = build(root).eval()
    lora = build(root, lora=dict(rank=RANK)).eval()
    x = images()
    with torch.no_grad():
        for ref, out in zip(plain(x), lora(x)):
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize('grad_checkpointing', [False, True])
def test_step_moves_features_not_base(sd_folder, grad_checkpointing):
    root, *_ = sd_folder
    model = build(root, lora=dict(rank=RANK),
                  grad_checkpointing=grad_checkpointing).train()
    x = images()
    with torch.no_grad():
        before = [f.clone() for f in model(x)]
    base = base_state(model)
    # as mmengine does: every parameter goes to the optimizer
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = sum(f.pow(2).mean() for f in model(x))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    assert grads and all('lora_' in n for n in grads)
    assert any(g.any() for n, g in grads.items() if 'lora_B' in n)
    optim.step()
    with torch.no_grad():
        after = model(x)
    assert all(not torch.allclose(a, b) for a, b in zip(after, before))
    for key, value in base_state(model).items():
        assert torch.equal(value, base[key]), key


@pytest.mark.parametrize('cls', [DiffusionBackbone, VPD])
def test_freeze_unet_with_lora_is_refused(cls):
    unet_cfg, vae_cfg = tiny_sd_configs()
    with pytest.raises(ValueError, match='freeze_unet=True and lora'):
        cls(unet_cfg=unet_cfg, vae_cfg=vae_cfg, freeze_unet=True,
            lora=dict(rank=RANK))


@pytest.mark.parametrize('lora, error, match', [
    (dict(rank=0), ValueError, 'rank must be an integer >= 1'),
    (dict(rank=2.5), ValueError, 'rank must be an integer >= 1'),
    (dict(rank=4, scale=2), ValueError, r"Unknown lora keys \['scale'\]"),
    (dict(unet=None), ValueError, r"Unknown lora keys \['unet'\]"),
    (8, TypeError, r'lora=dict\(rank=8\)'),
])
def test_bad_lora_cfg(lora, error, match):
    unet_cfg, vae_cfg = tiny_sd_configs()
    with pytest.raises(error, match=match):
        DiffusionBackbone(unet_cfg=unet_cfg, vae_cfg=vae_cfg, lora=lora)


def test_checkpoint_round_trip_strict(sd_folder, tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
    root, *_ = sd_folder
    model = build(root, lora=dict(rank=RANK, alpha=8)).train()
    with torch.no_grad():  # trained-looking adapters
        for name, param in model.named_parameters():
            if 'lora_B' in name:
                param.normal_(std=0.1)
    path = str(tmp_path / 'lora.pth')
    save_checkpoint(dict(state_dict=model.state_dict()), path)
    fresh = build(root, init=False, lora=dict(rank=RANK, alpha=8))
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    assert trainable(fresh).keys() == trainable(model).keys()
    x = images(batch=1)
    with torch.no_grad():
        for ref, out in zip(model.eval()(x), fresh.eval()(x)):
            assert torch.equal(out, ref)


def test_unet_weights_load_into_lora(sd_folder, tmp_path):
    from safetensors.torch import save_file
    _, unet, _ = sd_folder
    path = str(tmp_path / 'unet.safetensors')
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, path)
    unet_cfg, vae_cfg = tiny_sd_configs()
    model = DiffusionBackbone(unet_cfg=unet_cfg, vae_cfg=vae_cfg,
                              unet_weights=path, lora=dict(rank=RANK))
    model.init_weights()
    own = model.unet.state_dict()
    for key, value in unet.state_dict().items():
        module, _, leaf = key.rpartition('.')
        key = key if key in own else f'{module}.base_layer.{leaf}'
        assert torch.equal(own[key], value), key
    assert all('lora_' in n for n in trainable(model))


def test_plain_checkpoint_loads_into_lora_backbone(sd_folder, tmp_path):
    """load_from / init_cfg / converted zoo checkpoints of a run without
    LoRA: their plain keys fill the wrapped layers' base weights (torch and
    mmengine loaders), only the adapters are missing."""
    from mmengine.runner.checkpoint import load_checkpoint
    root, *_ = sd_folder
    plain = build(root)
    torch.manual_seed(3)
    for p in plain.unet.parameters():  # weights unlike the pretrained ones
        p.data.add_(torch.randn_like(p) * 0.01)
    ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=plain.state_dict()), ckpt)
    for how in ('torch', 'mmengine'):
        model = build(root, lora=dict(rank=RANK))
        if how == 'torch':
            missing, unexpected = model.load_state_dict(
                torch.load(ckpt)['state_dict'], strict=False)
            assert not unexpected
            assert missing and all('lora_' in k for k in missing)
        else:
            load_checkpoint(model, ckpt, map_location='cpu')
        own = model.state_dict()
        for key, value in plain.state_dict().items():
            module, _, leaf = key.rpartition('.')
            key = key if key in own else f'{module}.base_layer.{leaf}'
            assert torch.equal(own[key], value), (how, key)
