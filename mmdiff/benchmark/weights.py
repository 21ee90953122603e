"""The benchmark's shared weights: one seeded SD-shaped ldm model written
as an SD single file and converted to diffusers with diffusers' own helpers
(``convert_ldm_unet_checkpoint``/``convert_ldm_vae_checkpoint``), plus class
embeddings and a text adapter, so that mmdiff and mmseg see the same
weights."""
import os.path as osp

import torch
from torch import nn

from mmdiff.testing import ldm


def prepare_weights(cfg_name: str, num_tokens: int, seed: int,
                    work_dir: str) -> dict:
    """Write the shared weights once; return their paths.

    Files: ``sd.safetensors`` (SD single-file layout) and ``sd.yaml``;
    ``diffusers/{unet,vae}`` converted by diffusers' helpers;
    ``class_embeddings.pth`` (K, D); ``adapter.pth`` (text adapter + gamma).
    """
    paths = dict(
        ldm=osp.join(work_dir, 'sd.safetensors'),
        yaml=osp.join(work_dir, 'sd.yaml'),
        diffusers=osp.join(work_dir, 'diffusers'),
        embeddings=osp.join(work_dir, f'class_embeddings_{num_tokens}.pth'),
        adapter=osp.join(work_dir, 'adapter.pth'))
    done = osp.join(work_dir, 'DONE')
    cfg = ldm.LDM_CONFIGS[cfg_name]
    dim = cfg['unet']['context_dim']
    gen = torch.Generator().manual_seed(seed)
    if not osp.isfile(paths['embeddings']):
        torch.save(torch.randn(num_tokens, dim, generator=gen),
                   paths['embeddings'])
    if osp.isfile(done):
        return paths
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm)

    torch.manual_seed(seed)
    sd = ldm.LdmStableDiffusion(cfg['unet'], cfg['vae'])
    ldm.randomise(sd, gen, perturb_norms=False)
    original = ldm.original_config(cfg['unet'], cfg['vae'])
    state = ldm.save_single_file(sd, paths['ldm'], paths['yaml'], original)
    del sd
    for cls, make_config, convert, sub in (
            (UNet2DConditionModel, create_unet_diffusers_config_from_ldm,
             convert_ldm_unet_checkpoint, 'unet'),
            (AutoencoderKL, create_vae_diffusers_config_from_ldm,
             convert_ldm_vae_checkpoint, 'vae')):
        config = make_config(original, state)
        model = cls(**config)
        model.load_state_dict(convert(state, config), strict=True)
        model.save_pretrained(osp.join(paths['diffusers'], sub))
        del model
    del state
    adapter = nn.Sequential(nn.Linear(dim, dim), nn.GELU(),
                            nn.Linear(dim, dim))
    torch.save(dict(fc=adapter.state_dict(),
                    gamma=torch.full((dim, ), 1e-4)), paths['adapter'])
    open(done, 'w').close()
    return paths
