"""Linear probe of a frozen diffusion backbone: which timestep, which tap?

    python tools/analysis_tools/probe_features.py CONFIG \
        [--pretrained FOLDER] [--timesteps 1 50 100 200 400] [--taps 0 1 2 3] \
        [--num-train 64] [--num-val 32] [--steps 200] [--out DIR]

The way the text-free diffusion representation papers pick t (DDAE, "Do
text-free diffusion models learn discriminative visual representations?"):
the backbone of CONFIG (an mmseg segmentation or depth config whose
``model.backbone`` is an mmdiff diffusion backbone) is frozen, noise is added
at each timestep t (seeded, the same for every image set), the features of
every tap are computed once, and a linear head (a 1x1 conv, upsampled
bilinearly to the label size) is trained on the training split and scored
on the validation split: mIoU (mmseg's ``IoUMetric`` arithmetic) for
segmentation, RMSE for depth, beside the chance score (the most frequent
training class everywhere / the mean training depth everywhere). Prints a
t x tap table and writes
``probe.json`` and ``probe.png`` (matplotlib) to ``--out``.

For an ``mmdiff.DiTBackbone`` config (SD3, FLUX, PixArt) the columns are
transformer blocks (``--blocks``, default the config's ``taps``), and
``--backbone null`` keeps the transformer with the null prompt.

``--pretrained FOLDER`` loads a diffusers folder (e.g. the one
``configs/pretrain/`` runs export) with ``scale_latents=True``, the latent
scale the U-Net was trained with.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='mmseg seg or depth config')
    p.add_argument('--pretrained', help='diffusers folder for the backbone')
    p.add_argument('--timesteps', type=int, nargs='+',
                   default=[1, 50, 100, 200, 400])
    p.add_argument('--taps', type=int, nargs='+', default=None,
                   help='indices of the backbone outputs (default: all)')
    p.add_argument('--blocks', type=int, nargs='+', default=None,
                   help='mmdiff.DiTBackbone configs: the transformer blocks '
                   'swept (its taps; default: the config\'s)')
    p.add_argument('--backbone', choices=['null', 'config'], default='null',
                   help="null: mmdiff.DiffusionBackbone (null prompt, as a "
                   "text-free pretrained U-Net was trained) with the "
                   "config backbone's common arguments; config: as is")
    p.add_argument('--noise', choices=['seeded', 'none'], default='seeded',
                   help='noise at t (seeded: same for every run)')
    p.add_argument('--num-train', type=int, default=64)
    p.add_argument('--num-val', type=int, default=32)
    p.add_argument('--steps', type=int, default=200,
                   help='optimiser steps of each linear head (full batch)')
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='work_dirs/probe')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides of CONFIG')
    return p.parse_args(argv)


def _batches(dataset, count: int, preprocessor, batch: int = 8):
    """Preprocessed ``(inputs, labels)`` of the first ``count`` items."""
    inputs, labels = [], []
    for start in range(0, min(count, len(dataset)), batch):
        items = [dataset[i] for i in
                 range(start, min(start + batch, count, len(dataset)))]
        data = preprocessor(
            dict(inputs=[it['inputs'] for it in items],
                 data_samples=[it['data_samples'] for it in items]), False)
        inputs.append(data['inputs'])
        for s in data['data_samples']:
            if 'gt_sem_seg' in s:
                labels.append(s.gt_sem_seg.data[0].long())
            else:
                labels.append(s.gt_depth_map.data[0].float())
    return torch.cat(inputs), torch.stack(labels)


def _features(backbone, inputs, taps, batch: int = 8):
    outs = [[] for _ in taps]
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            feats = backbone(inputs[start:start + batch])
            for j, tap in enumerate(taps):
                outs[j].append(feats[tap].float())
    return [torch.cat(o) for o in outs]


def _fit_and_score(train_x, train_y, val_x, val_y, task: str,
                   num_classes: int, args) -> float:
    """Train a 1x1-conv head on frozen features; the validation score."""
    torch.manual_seed(args.seed)
    out_ch = num_classes if task == 'seg' else 1
    head = torch.nn.Conv2d(train_x.shape[1], out_ch, 1)
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True) + 1e-6
    optim = torch.optim.AdamW(head.parameters(), lr=args.lr)
    # depth: the head regresses standardised depth (metres back out), so it
    # starts near the mean depth instead of having to walk its bias there
    shift, scale = 0.0, 1.0
    if task != 'seg':
        valid_depth = train_y[train_y > 0]
        shift, scale = float(valid_depth.mean()), float(valid_depth.std())

    def predict(x):
        y = head((x - mean) / std) * scale + shift
        return F.interpolate(y, size=train_y.shape[-2:], mode='bilinear',
                             align_corners=False)

    for _ in range(args.steps):
        pred = predict(train_x)
        if task == 'seg':
            loss = F.cross_entropy(pred, train_y, ignore_index=255)
        else:
            valid = train_y > 0
            loss = F.l1_loss(pred[:, 0][valid], train_y[valid])
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        pred = predict(val_x)
    if task == 'seg':
        return _miou(pred.argmax(1), val_y, num_classes)
    return _rmse(pred[:, 0], val_y)


def _miou(pred, labels, num_classes: int) -> float:
    """mIoU (%) with mmseg's ``IoUMetric`` arithmetic (255 ignored)."""
    from mmseg.evaluation import IoUMetric
    results = [IoUMetric.intersect_and_union(p, y, num_classes, 255)
               for p, y in zip(pred, labels)]
    totals = [sum(r[i] for r in results) for i in range(4)]
    metrics = IoUMetric.total_area_to_metrics(*totals, ['mIoU'])
    return float(torch.tensor(metrics['IoU']).nanmean() * 100)


def _rmse(pred, depth) -> float:
    """RMSE over the valid (> 0) ground-truth pixels."""
    valid = depth > 0
    return float(((pred[valid] - depth[valid])**2).mean().sqrt())


def chance(train_y, val_y, task: str, num_classes: int) -> float:
    """The score without features: the training set's most frequent class
    everywhere (seg), or its mean valid depth everywhere (depth)."""
    if task == 'seg':
        counts = torch.bincount(train_y[train_y != 255].flatten(),
                                minlength=num_classes)
        return _miou(torch.full_like(val_y, int(counts.argmax())), val_y,
                     num_classes)
    return _rmse(torch.full_like(val_y, float(train_y[train_y > 0].mean())),
                 val_y)


def _plot(table: dict, timesteps, taps, metric: str, path: str,
          floor: float) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for tap in taps:
        ax.plot(timesteps, [table[str(t)][str(tap)] for t in timesteps],
                marker='o', label=f'tap {tap}')
    ax.axhline(floor, color='grey', linestyle='--', label='chance')
    ax.set_xlabel('timestep t')
    ax.set_ylabel(metric)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from mmdiff.utils.fileio import atomic_write
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format='png'))
    plt.close(fig)


def _make_demo_vae(cfg) -> None:
    """Demo configs: make their VAE as their DemoVAEHook would."""
    for hook in cfg.get('custom_hooks', []):
        if str(hook.get('type', '')).endswith('DemoVAEHook'):
            from mmdiff.datasets.demo_vae import ensure_demo_vae
            kwargs = {k: v for k, v in hook.items() if k != 'type'}
            ensure_demo_vae(kwargs.pop('out_dir'), **kwargs)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmengine.registry import DATASETS, MODELS
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        from mmengine.config import DictAction
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(
            ['--o', *args.cfg_options]).o)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    for module in cfg.get('custom_imports', {}).get('imports', []):
        __import__(module)
    task = 'depth' if cfg.model.type == 'DepthEstimator' else 'seg'
    bb_cfg = cfg.model.backbone.copy()
    dit = str(bb_cfg.get('type', '')).endswith('DiTBackbone')
    if dit:  # a diffusion transformer: its blocks are the taps
        if args.blocks:
            bb_cfg['taps'] = tuple(args.blocks)
        if args.backbone == 'null':  # the null prompt, no maps
            bb_cfg.pop('conditioner', None)
            bb_cfg['attn_blocks'] = ()
    elif args.backbone == 'null':
        import inspect

        from mmdiff.models.backbones import DiffusionBackbone
        keep = inspect.signature(DiffusionBackbone.__init__).parameters
        bb_cfg = {k: v for k, v in bb_cfg.items() if k in keep}
        bb_cfg.update(type='mmdiff.DiffusionBackbone', use_attn=False)
    bb_cfg['noise'] = args.noise
    if args.pretrained:  # (a DiT always normalises its latents)
        bb_cfg.update(pretrained=args.pretrained,
                      **({} if dit else dict(scale_latents=True)))
    _make_demo_vae(cfg)
    torch.manual_seed(args.seed)
    backbone = MODELS.build(bb_cfg)
    backbone.init_weights()
    backbone.eval().requires_grad_(False)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    # no random flips etc.: the validation pipeline for both splits
    train_cfg = cfg.train_dataloader.dataset.copy()
    train_cfg['pipeline'] = cfg.val_dataloader.dataset.pipeline
    train_set = DATASETS.build(train_cfg)
    tx, ty = _batches(train_set, args.num_train, preprocessor)
    vx, vy = _batches(val_set, args.num_val, preprocessor)
    num_classes = len(train_set.metainfo.get('classes', [])) or 1
    taps = args.taps if args.taps is not None else list(
        range(len(backbone.out_channels)))
    metric = 'mIoU' if task == 'seg' else 'RMSE'
    table, start = {}, time.perf_counter()
    for t in args.timesteps:
        backbone.timestep = t
        ftrain = _features(backbone, tx, taps)
        fval = _features(backbone, vx, taps)
        table[str(t)] = {str(tap): _fit_and_score(
            ftrain[j], ty, fval[j], vy, task, num_classes, args)
            for j, tap in enumerate(taps)}
    floor = chance(ty, vy, task, num_classes)
    best = (max if task == 'seg' else min)(
        ((t, tap) for t in table for tap in table[t]),
        key=lambda k: table[k[0]][k[1]])
    names = [f'blk {backbone.tap_blocks[k]:>2}' if dit else f'tap {k:>2}'
             for k in taps]
    header = f'{metric:>8} | ' + ' | '.join(names)
    lines = [f'linear probe of {args.config} '
             f'({args.pretrained or "config weights"}), {len(tx)} train / '
             f'{len(vx)} val images, backbone={args.backbone}, '
             f'noise={args.noise}', header,
             '-' * len(header)]
    for t in table:
        lines.append(f't={int(t):>6} | ' + ' | '.join(
            f'{table[t][str(k)]:6.2f}' if task == 'seg' else
            f'{table[t][str(k)]:6.3f}' for k in taps))
    lines.append(f'best: t={best[0]}, tap {best[1]}: '
                 f'{metric} {table[best[0]][best[1]]:.3f}; chance (no '
                 f'features) {floor:.3f} ({time.perf_counter() - start:.0f}'
                 ' s)')
    print('\n'.join(lines))
    os.makedirs(args.out, exist_ok=True)
    result = dict(config=args.config, pretrained=args.pretrained,
                  metric=metric, table=table, best=dict(
                      t=int(best[0]), tap=int(best[1]),
                      value=table[best[0]][best[1]]), chance=floor,
                  num_train=len(tx), num_val=len(vx), noise=args.noise,
                  backbone=args.backbone,
                  blocks=[backbone.tap_blocks[k] for k in taps]
                  if dit else None,
                  steps=args.steps)
    from mmdiff.utils.fileio import atomic_write

    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(result, f, indent=1)

    atomic_write(osp.join(args.out, 'probe.json'), write)
    _plot(table, args.timesteps, taps, metric,
          osp.join(args.out, 'probe.png'), floor)
    return result


if __name__ == '__main__':
    main()
