"""Cached-feature epochs vs recomputing, for a frozen VPD backbone.

    python tools/analysis_tools/benchmark_feature_cache.py \
        --unet-config sd15 --input-size 512 --num-images 4 --epochs 3

Times one epoch of a frozen ``mmdiff.VPD`` over ``--num-images`` fixed images
(batch ``--batch``) recomputed every time, then the same epochs through
``mmdiff.CachedBackbone``: the first (cold) epoch computes and stores, later
(warm) epochs only hash the images and load features. Prints the speed-up
``recompute epoch / warm epoch`` (median) and checks the cached features are
identical to the first computation.
"""
import argparse
import statistics
import tempfile
import time

import torch


def sd15_configs() -> tuple:
    """SD v1.5 ``UNet2DConditionModel`` / ``AutoencoderKL`` configs."""
    unet = dict(
        sample_size=64, in_channels=4, out_channels=4,
        down_block_types=('CrossAttnDownBlock2D', ) * 3 + ('DownBlock2D', ),
        up_block_types=('UpBlock2D', ) + ('CrossAttnUpBlock2D', ) * 3,
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        cross_attention_dim=768, attention_head_dim=8)
    vae = dict(
        in_channels=3, out_channels=3,
        down_block_types=('DownEncoderBlock2D', ) * 4,
        up_block_types=('UpDecoderBlock2D', ) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        latent_channels=4, sample_size=512)
    return unet, vae


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--unet-config', choices=['tiny', 'sd15'],
                        default='tiny')
    parser.add_argument('--input-size', type=int, default=128)
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--epochs', type=int, default=3,
                        help='cached epochs (the first one is cold)')
    parser.add_argument('--num-tokens', type=int, default=150)
    parser.add_argument('--storage', choices=['memory', 'disk'],
                        default='memory')
    parser.add_argument('--cache-dir',
                        help='with --storage disk: this folder (kept, and '
                        'reused by the next run) instead of a temporary one')
    parser.add_argument('--max-size-mb', type=float, default=4096)
    parser.add_argument('--json', dest='json_out')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmdiff.models.backbones.cached import CachedBackbone
    from mmdiff.models.diffusion import tiny_sd_configs
    unet_cfg, vae_cfg = sd15_configs() if args.unet_config == 'sd15' \
        else tiny_sd_configs()
    dim = unet_cfg['cross_attention_dim']
    torch.manual_seed(0)
    backbone = dict(
        type='mmdiff.VPD', unet_cfg=unet_cfg, vae_cfg=vae_cfg,
        class_embeddings=torch.randn(args.num_tokens, dim),
        use_attn=args.num_tokens > 1, freeze_unet=True)
    tmp = tempfile.TemporaryDirectory()
    cache_dir = None if args.storage == 'memory' else (args.cache_dir
                                                       or tmp.name)
    cached = CachedBackbone(
        backbone, freeze=True, max_size_mb=args.max_size_mb,
        cache_dir=cache_dir).eval()
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(args.num_images, 3, args.input_size, args.input_size,
                        generator=gen) * 2 - 1
    batches = images.split(args.batch)

    def epoch(model):
        start = time.perf_counter()
        outs = []
        with torch.no_grad():
            for batch in batches:
                outs.append(model(batch))
        return time.perf_counter() - start, outs

    recompute_s, reference = epoch(cached.backbone)
    recompute_s = min(recompute_s, epoch(cached.backbone)[0])
    cached_s = []
    for _ in range(args.epochs):
        seconds, outs = epoch(cached)
        cached_s.append(seconds)
    identical = all(
        torch.equal(a, b) for ref, out in zip(reference, outs)
        for a, b in zip(ref, out))
    warm = statistics.median(cached_s[1:]) if len(cached_s) > 1 else None
    result = dict(
        args=vars(args), recompute_epoch_s=recompute_s,
        cached_epochs_s=cached_s, warm_epoch_s=warm,
        speedup=recompute_s / warm if warm else None,
        identical_features=identical, store=cached.store.stats(),
        feature_mb_per_image=cached.store.total / 1e6 / args.num_images)
    print(f'| storage | images | recompute epoch (s) | cold cached epoch (s) '
          f'| warm cached epoch (s) | speed-up | features MB/image |\n'
          f'| --- | --- | --- | --- | --- | --- | --- |\n'
          f'| {args.storage} | {args.num_images} x {args.input_size}px | '
          f'{recompute_s:.3f} | {cached_s[0]:.3f} | '
          f'{warm if warm is not None else float("nan"):.4f} | '
          f'{result["speedup"] or float("nan"):.0f}x | '
          f'{result["feature_mb_per_image"]:.2f} |')
    print(f'cached features identical to recomputed: {identical}; '
          f'store: {result["store"]}')
    if args.json_out:
        from mmdiff.utils.fileio import atomic_write_json
        atomic_write_json(args.json_out, result, indent=1)
    tmp.cleanup()
    return result


if __name__ == '__main__':
    main()
