"""Linear probe of a frozen diffusion backbone: which timestep, which tap?

Library code of ``tools/analysis_tools/probe_features.py``. The way the
text-free diffusion representation papers pick t (DDAE, "Do text-free
diffusion models learn discriminative visual representations?"): the
backbone of an mmseg segmentation or depth config is frozen, noise is added
at each timestep t (seeded, the same for every image set), the features of
every tap are computed once, and a linear head (a 1x1 conv, upsampled
bilinearly to the label size) is trained on the training split and scored
on the validation split: mIoU (mmseg's ``IoUMetric`` arithmetic) for
segmentation, RMSE for depth, beside the chance score (the most frequent
training class everywhere / the mean training depth everywhere).
"""
import json
import os
import os.path as osp
import time
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdiff.datasets.demo_vae import ensure_demo_vae
from mmdiff.utils.fileio import atomic_write


def batches(dataset, count: int, preprocessor, batch: int = 8):
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


def features(backbone, inputs, taps, batch: int = 8):
    outs = [[] for _ in taps]
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            feats = backbone(inputs[start:start + batch])
            for j, tap in enumerate(taps):
                outs[j].append(feats[tap].float())
    return [torch.cat(o) for o in outs]


def fit_and_score(train_x, train_y, val_x, val_y, task: str,
                  num_classes: int, seed: int = 0, lr: float = 1e-2,
                  steps: int = 200) -> float:
    """Train a 1x1-conv head on frozen features; the validation score.

    Args:
        train_x, val_x (Tensor): Features ``(N, C, h, w)``.
        train_y, val_y (Tensor): Labels ``(N, H, W)`` (class ids, 255
            ignored) or depth in metres (0 invalid).
        task (str): ``'seg'`` (mIoU, %) or ``'depth'`` (RMSE).
        num_classes (int): Classes of ``'seg'``.
        seed (int): Seed of the head. Defaults to 0.
        lr (float): AdamW learning rate. Defaults to 1e-2.
        steps (int): Full-batch steps. Defaults to 200.

    Returns:
        float: The validation score.
    """
    torch.manual_seed(seed)
    out_ch = num_classes if task == 'seg' else 1
    head = torch.nn.Conv2d(train_x.shape[1], out_ch, 1)
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True) + 1e-6
    optim = torch.optim.AdamW(head.parameters(), lr=lr)
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

    for _ in range(steps):
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
        return miou(pred.argmax(1), val_y, num_classes)
    return rmse(pred[:, 0], val_y)


def miou(pred, labels, num_classes: int) -> float:
    """mIoU (%) with mmseg's ``IoUMetric`` arithmetic (255 ignored)."""
    from mmseg.evaluation import IoUMetric
    results = [IoUMetric.intersect_and_union(p, y, num_classes, 255)
               for p, y in zip(pred, labels)]
    totals = [sum(r[i] for r in results) for i in range(4)]
    metrics = IoUMetric.total_area_to_metrics(*totals, ['mIoU'])
    return float(torch.tensor(metrics['IoU']).nanmean() * 100)


def rmse(pred, depth) -> float:
    """RMSE over the valid (> 0) ground-truth pixels."""
    valid = depth > 0
    return float(((pred[valid] - depth[valid])**2).mean().sqrt())


def chance(train_y, val_y, task: str, num_classes: int) -> float:
    """The score without features: the training set's most frequent class
    everywhere (seg), or its mean valid depth everywhere (depth)."""
    if task == 'seg':
        counts = torch.bincount(train_y[train_y != 255].flatten(),
                                minlength=num_classes)
        return miou(torch.full_like(val_y, int(counts.argmax())), val_y,
                     num_classes)
    return rmse(torch.full_like(val_y, float(train_y[train_y > 0].mean())),
                 val_y)


def plot(table: dict, timesteps, taps, metric: str, path: str,
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
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format='png'))
    plt.close(fig)


def make_demo_vae(cfg) -> None:
    """Demo configs: make their VAE as their DemoVAEHook would."""
    for hook in cfg.get('custom_hooks', []):
        if str(hook.get('type', '')).endswith('DemoVAEHook'):
            kwargs = {k: v for k, v in hook.items() if k != 'type'}
            ensure_demo_vae(kwargs.pop('out_dir'), **kwargs)


def probe_features(cfg: Config,
                   config: str,
                   pretrained: Optional[str] = None,
                   timesteps: Sequence[int] = (1, 50, 100, 200, 400),
                   taps: Optional[Sequence[int]] = None,
                   blocks: Optional[Sequence[int]] = None,
                   backbone: str = 'null',
                   noise: str = 'seeded',
                   num_train: int = 64,
                   num_val: int = 32,
                   steps: int = 200,
                   lr: float = 1e-2,
                   seed: int = 0,
                   out: str = 'work_dirs/probe') -> dict:
    """The linear probe of the module docstring; prints and writes it.

    Args:
        cfg (Config): An mmseg seg or depth config with an mmdiff backbone.
        config (str): Its name, for the report.
        pretrained (str, optional): A diffusers folder for the backbone
            (``scale_latents=True``). Defaults to None (the config's).
        timesteps (Sequence[int]): Noise levels t. Defaults to
            (1, 50, 100, 200, 400).
        taps (Sequence[int], optional): Backbone outputs probed. Defaults to
            None (all).
        blocks (Sequence[int], optional): For an ``mmdiff.DiTBackbone``
            config, the transformer blocks swept (its ``taps``). Defaults
            to None (the config's).
        backbone (str): ``'null'``: ``mmdiff.DiffusionBackbone`` with the
            config backbone's common arguments (a DiT config keeps its
            transformer, with the null prompt and no maps); ``'config'``:
            as is. Defaults to 'null'.
        noise (str): ``'seeded'`` or ``'none'``. Defaults to 'seeded'.
        num_train (int): Training images. Defaults to 64.
        num_val (int): Validation images. Defaults to 32.
        steps (int): Full-batch steps of each head. Defaults to 200.
        lr (float): The heads' learning rate. Defaults to 1e-2.
        seed (int): Seed of the backbone build and the heads. Defaults to 0.
        out (str): Folder of ``probe.json`` and ``probe.png``. Defaults to
            'work_dirs/probe'.

    Returns:
        dict: What ``probe.json`` holds.
    """
    from mmengine.registry import DATASETS, MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    for module in cfg.get('custom_imports', {}).get('imports', []):
        __import__(module)
    task = 'depth' if cfg.model.type == 'DepthEstimator' else 'seg'
    bb_cfg = cfg.model.backbone.copy()
    if backbone not in ('null', 'config'):
        raise ValueError(f"backbone must be 'null' or 'config', got "
                         f'{backbone!r}')
    dit = str(bb_cfg.get('type', '')).endswith('DiTBackbone')
    if dit:  # a diffusion transformer: its blocks are the taps
        if blocks:
            bb_cfg['taps'] = tuple(blocks)
        if backbone == 'null':  # the null prompt, no maps
            bb_cfg.pop('conditioner', None)
            bb_cfg['attn_blocks'] = ()
    elif backbone == 'null':
        import inspect

        from mmdiff.models.backbones import DiffusionBackbone
        keep = inspect.signature(DiffusionBackbone.__init__).parameters
        bb_cfg = {k: v for k, v in bb_cfg.items() if k in keep}
        bb_cfg.update(type='mmdiff.DiffusionBackbone', use_attn=False)
    bb_cfg['noise'] = noise
    if pretrained:  # (a DiT always normalises its latents)
        bb_cfg.update(pretrained=pretrained,
                      **({} if dit else dict(scale_latents=True)))
    make_demo_vae(cfg)
    torch.manual_seed(seed)
    model = MODELS.build(bb_cfg)
    model.init_weights()
    model.eval().requires_grad_(False)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    # no random flips etc.: the validation pipeline for both splits
    train_cfg = cfg.train_dataloader.dataset.copy()
    train_cfg['pipeline'] = cfg.val_dataloader.dataset.pipeline
    train_set = DATASETS.build(train_cfg)
    tx, ty = batches(train_set, num_train, preprocessor)
    vx, vy = batches(val_set, num_val, preprocessor)
    num_classes = len(train_set.metainfo.get('classes', [])) or 1
    taps = taps if taps is not None else list(range(len(model.out_channels)))
    metric = 'mIoU' if task == 'seg' else 'RMSE'
    table, start = {}, time.perf_counter()
    for t in timesteps:
        model.timestep = t
        ftrain = features(model, tx, taps)
        fval = features(model, vx, taps)
        table[str(t)] = {str(tap): fit_and_score(
            ftrain[j], ty, fval[j], vy, task, num_classes, seed, lr, steps)
            for j, tap in enumerate(taps)}
    floor = chance(ty, vy, task, num_classes)
    best = (max if task == 'seg' else min)(
        ((t, tap) for t in table for tap in table[t]),
        key=lambda k: table[k[0]][k[1]])
    names = [f'blk {model.tap_blocks[k]:>2}' if dit else f'tap {k:>2}'
             for k in taps]
    header = f'{metric:>8} | ' + ' | '.join(names)
    lines = [f'linear probe of {config} '
             f'({pretrained or "config weights"}), {len(tx)} train / '
             f'{len(vx)} val images, backbone={backbone}, '
             f'noise={noise}', header,
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
    os.makedirs(out, exist_ok=True)
    result = dict(config=config, pretrained=pretrained,
                  metric=metric, table=table, best=dict(
                      t=int(best[0]), tap=int(best[1]),
                      value=table[best[0]][best[1]]), chance=floor,
                  num_train=len(tx), num_val=len(vx), noise=noise,
                  backbone=backbone,
                  blocks=[model.tap_blocks[k] for k in taps] if dit else None,
                  steps=steps)

    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(result, f, indent=1)

    atomic_write(osp.join(out, 'probe.json'), write)
    plot(table, timesteps, taps, metric, osp.join(out, 'probe.png'), floor)
    return result
