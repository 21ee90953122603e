"""Reference configs against their SOURCES' recipes, field by field.

The recipes are data transcribed from the sources' own files
(tests/data/recipes/*.yml, with URL and commit); tests/data/recipes/zoo.yml
says which recipe each config is compared with and lists every intentional
difference with its reason. Here the source's terms (mmseg 0.x / mmcv 1.x
for VPD) are translated to mmseg 1.x / mmengine paths and compared with the
resolved mmdiff config: an unlisted difference fails, and so does a listed
one that is no longer a difference. Nothing is read from mmdiff's configs
to build the expected values.
"""
import glob
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

from mmdiff.models.text import resolve_class_names

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECIPES = osp.join(ROOT, 'tests', 'data', 'recipes')
ZOO = yaml.safe_load(open(osp.join(RECIPES, 'zoo.yml')))['configs']
MISSING = '<absent>'


def recipe(name: str) -> dict:
    with open(osp.join(RECIPES, name)) as f:
        return yaml.safe_load(f)


def _plain(value):
    """Tuples and ConfigDicts as lists and dicts, for comparison."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Source terms -> mmseg 1.x / mmengine paths
# --------------------------------------------------------------------------
# source backbone argument -> mmdiff backbone argument (Meta Prompts:
# projects/MetaPrompts MetaPromptsBackbone)
BACKBONE_ARGS = {'refine_step': 'refine_steps', 'num_prompt': 'num_prompts',
                 'share_prompts': 'share_prompts',
                 'prompt_adapter': 'prompt_adapter',
                 'delete_time_embed': 'delete_time_embed',
                 'resize_scale': 'resize_scale'}


def expected_mmseg0x_seg(r: dict) -> dict:
    """An mmseg 0.x / mmcv 1.x segmentation recipe (VPD's, Meta Prompts')
    as mmseg 1.x config paths."""
    rec, exp = r['recipe'], {}
    for part in ('neck', 'decode_head', 'auxiliary_head'):
        if part not in rec['model']:
            exp[f'model.{part}'] = MISSING
            continue
        for key, value in rec['model'][part].items():
            exp[f'model.{part}.{key}'] = value
    for key, value in rec['model'].get('backbone', {}).items():
        exp[f'model.backbone.{BACKBONE_ARGS[key]}'] = value
    exp['model.test_cfg'] = rec['model']['test_cfg']
    norm = rec['img_norm_cfg']
    exp['model.data_preprocessor.mean'] = norm['mean']
    exp['model.data_preprocessor.std'] = norm['std']
    exp['model.data_preprocessor.bgr_to_rgb'] = norm['to_rgb']
    train = {s['type']: s for s in rec['train_pipeline']}
    # 0.x Pad(size) after Normalize -> the 1.x data preprocessor pads
    exp['model.data_preprocessor.size'] = train['Pad']['size']
    exp['model.data_preprocessor.pad_val'] = train['Pad']['pad_val']
    exp['model.data_preprocessor.seg_pad_val'] = train['Pad']['seg_pad_val']
    exp['train_pipeline.LoadAnnotations.reduce_zero_label'] = \
        train['LoadAnnotations']['reduce_zero_label']
    # 0.x Resize(img_scale, ratio_range) (keep_ratio defaults to True) is
    # 1.x RandomResize(scale, ratio_range, keep_ratio=True)
    exp['train_pipeline.RandomResize.scale'] = train['Resize']['img_scale']
    exp['train_pipeline.RandomResize.ratio_range'] = \
        train['Resize']['ratio_range']
    exp['train_pipeline.RandomResize.keep_ratio'] = \
        train['Resize'].get('keep_ratio', True)
    for key in ('crop_size', 'cat_max_ratio'):
        exp[f'train_pipeline.RandomCrop.{key}'] = train['RandomCrop'][key]
    exp['train_pipeline.RandomFlip.prob'] = train['RandomFlip']['prob']
    exp['train_pipeline.PhotoMetricDistortion'] = {
        k: v for k, v in train['PhotoMetricDistortion'].items()
        if k != 'type'}
    aug = {s['type']: s for s in rec['test_pipeline']}['MultiScaleFlipAug']
    inner = {s['type']: s for s in aug['transforms']}
    exp['test_pipeline.Resize.scale'] = aug['img_scale']
    exp['test_pipeline.Resize.keep_ratio'] = inner['Resize']['keep_ratio']
    # flip=False: the inner RandomFlip does nothing; no 1.x flip step
    exp['test_pipeline.RandomFlip'] = MISSING if not aug['flip'] else {}
    opt = rec['optimizer']
    exp['optim_wrapper.type'] = 'OptimWrapper'  # mmcv 1.x OptimizerHook
    for key in ('type', 'lr', 'weight_decay'):
        exp[f'optim_wrapper.optimizer.{key}'] = opt[key]
    for key, value in opt['paramwise_cfg'].items():
        exp[f'optim_wrapper.paramwise_cfg.{key}'] = value
    exp['param_scheduler'] = rec['lr_config']
    exp['train_cfg.max_iters'] = rec['runner']['max_iters']
    exp['train_cfg.val_interval'] = rec['evaluation']['interval']
    exp['default_hooks.checkpoint.interval'] = \
        rec['checkpoint_config']['interval']
    exp['train_dataloader.batch_size'] = rec['samples_per_gpu']
    exp['gpus'] = rec['gpus']
    return exp


def expected_mmseg_nyu(r: dict) -> dict:
    """mmseg 1.x's recipe (already in mmseg 1.x / mmengine terms)."""
    rec, exp = r['recipe'], {}
    model = rec['model']
    exp['model.type'] = model['type']
    for key, value in model['data_preprocessor'].items():
        exp[f'model.data_preprocessor.{key}'] = value
    for key, value in model['backbone'].items():
        exp[f'model.backbone.{key}'] = value
    for key, value in model['decode_head'].items():
        exp[f'model.decode_head.{key}'] = value
    exp['model.test_cfg'] = model['test_cfg']
    exp['train_pipeline'] = rec['train_pipeline']
    exp['test_pipeline'] = rec['test_pipeline']
    exp['scene_rule'] = rec['scene_rule']
    exp['train_dataloader.batch_size'] = rec['train_batch_size']
    exp['gpus'] = rec['gpus']
    ow = rec['optim_wrapper']
    exp['optim_wrapper.type'] = ow['type']
    exp['optim_wrapper.clip_grad'] = ow['clip_grad']
    exp['optim_wrapper.constructor'] = ow['constructor']
    for key, value in ow['optimizer'].items():
        exp[f'optim_wrapper.optimizer.{key}'] = value
    pw = ow['paramwise_cfg']
    for key in ('bias_decay_mult', 'force_default_settings'):
        exp[f'optim_wrapper.paramwise_cfg.{key}'] = pw[key]
    for key, value in pw['custom_keys'].items():
        exp[f'optim_wrapper.paramwise_cfg.custom_keys.{key}'] = value
    exp['param_scheduler'] = rec['param_scheduler']
    for key, value in rec['train_cfg'].items():
        exp[f'train_cfg.{key}'] = value
    for key, value in rec['val_evaluator'].items():
        exp[f'val_evaluator.{key}'] = value
    return exp


def expected_vpd_style_depth(r: dict) -> dict:
    """A VPD-style depth training script (argparse) as mmseg 1.x paths.
    Its shift-window test (``shift_size`` windows of the crop's height on
    NYU's 480x640 images, each averaged with its flip) is mmseg's
    ``slide_flip`` with the crop and stride (640 - 480) / (shift_size - 1)."""
    rec, exp = r['recipe'], {}
    for key in ('refine_step', 'num_prompt', 'share_prompts',
                'prompt_adapter', 'delete_time_embed', 'resize_scale'):
        exp[f'model.backbone.{BACKBONE_ARGS[key]}'] = rec[key]
    head = 'model.decode_head.'
    exp[head + 'in_channels'] = [rec['num_prompt']]
    exp[head + 'max_depth'] = rec['max_depth']
    exp[head + 'embed_dim'] = rec['embed_dim']
    assert len(rec['num_filters']) == rec['num_deconv']
    exp[head + 'num_deconv_filters'] = rec['num_filters']
    exp[head + 'deconv_kernels'] = rec['deconv_kernels']
    exp['model.data_preprocessor.size'] = rec['crop']
    test = rec['test']
    assert test['flip_test'] and test['shift_window_test']
    stride = (640 - 480) // (test['shift_size'] - 1)
    exp['model.test_cfg'] = dict(mode='slide_flip', crop_size=rec['crop'],
                                 stride=[stride, stride])
    opt = rec['optimizer']
    exp['optim_wrapper.optimizer.type'] = opt['type']
    exp['optim_wrapper.optimizer.lr'] = opt['max_lr']
    exp['optim_wrapper.optimizer.weight_decay'] = opt['weight_decay']
    exp['optim_wrapper.optimizer.betas'] = opt['betas']
    # the source's LDMOptimizerConstructor, ported (its layer_decay unread)
    assert rec['optimizer_constructor'] == 'LDMOptimizerConstructor'
    exp['optim_wrapper.constructor'] = 'LDMOptimWrapperConstructor'
    exp['optim_wrapper.paramwise_cfg'] = dict(
        no_decay_names=rec['no_decay_names'])
    exp['param_scheduler'] = rec['lr_policy']
    exp['train_dataloader.batch_size'] = rec['batch_size']
    exp['gpus'] = rec['gpus']
    # DistributedSampler pads the images to a multiple of the GPUs; each
    # GPU's DataLoader drops its last partial batch (drop_last=True)
    per_gpu = -(-rec['train_images'] // rec['gpus'])
    steps = per_gpu // rec['batch_size']
    exp['train_cfg.max_iters'] = rec['epochs'] * steps
    return exp


EXPECTED = {'vpd_ade20k.yml': expected_mmseg0x_seg,
            'meta_prompts_ade20k.yml': expected_mmseg0x_seg,
            'mmseg_vpd_nyu.yml': expected_mmseg_nyu,
            'meta_prompts_nyu.yml': expected_vpd_style_depth}


# --------------------------------------------------------------------------
# Resolved mmdiff config -> the same paths
# --------------------------------------------------------------------------
def _dataset(cfg: Config, split: str) -> dict:
    """The first real data set of a split (through Concat/Repeat)."""
    dataset = cfg[f'{split}_dataloader'].dataset
    while 'datasets' in dataset or 'dataset' in dataset:
        dataset = dataset['datasets'][0] if 'datasets' in dataset \
            else dataset['dataset']
    return dataset


def _scene_rule(dataset: dict):
    if dataset.get('type') == 'NYUSceneDataset':
        return dataset.get('scene_rule', 'mmseg')
    return 'mmseg' if dataset.get('type') == 'NYUDataset' else None


def resolve(cfg: Config, path: str, config_path: str):
    """The value at a translated path in a resolved config."""
    if path == 'gpus':
        return int(re.search(r'(\d+)xb\d+', config_path).group(1))
    if path == 'scene_rule':
        rules = {_scene_rule(_dataset(cfg, s))
                 for s in ('train', 'val', 'test')}
        assert len(rules) == 1, f'{config_path}: scene rules {rules}'
        return rules.pop()
    if path == 'model.backbone.use_attn':
        return cfg.model.backbone.get('use_attn', MISSING)
    if path == 'model.backbone.num_scenes':
        emb = cfg.model.backbone.class_embeddings
        return len(resolve_class_names(emb['class_names']))
    head, _, rest = path.partition('.')
    if head in ('train_pipeline', 'test_pipeline'):
        split = head.split('_')[0]
        pipeline = _plain(_dataset(cfg, split).pipeline)
        if not rest:
            return pipeline
        step_type, _, key = rest.partition('.')
        steps = [s for s in pipeline if s['type'] == step_type]
        if not steps:
            return MISSING
        step = {k: v for k, v in steps[0].items() if k != 'type'}
        return step.get(key, MISSING) if key else step
    node = cfg._cfg_dict
    for part in _split_path(path):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return _plain(node)


def _split_path(path: str):
    """Dotted path; custom_keys names (with dots) stay one component."""
    if '.custom_keys.' in path:
        before, key = path.split('.custom_keys.')
        return before.split('.') + ['custom_keys', key]
    return path.split('.')


def _normalise(value):
    value = _plain(value)
    if value is None:
        return MISSING
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if k != 'type'} \
            | ({'type': value['type']} if 'type' in value else {})
    return value


def compare(config_path: str) -> tuple:
    entry = ZOO[config_path]
    cfg = Config.fromfile(osp.join(ROOT, config_path))
    expected = EXPECTED[entry['recipe']](recipe(entry['recipe']))
    found = {}
    for path, value in expected.items():
        ours = resolve(cfg, path, config_path)
        if _normalise(ours) != _normalise(value):
            found[path] = (value, ours)
    # a part the config lacks is one difference, not one per field
    for part in ('neck', 'auxiliary_head'):
        prefix = f'model.{part}.'
        if any(k.startswith(prefix) for k in found) and \
                resolve(cfg, f'model.{part}', config_path) in (None, MISSING):
            found = {k: v for k, v in found.items()
                     if not k.startswith(prefix)}
            found[f'model.{part}'] = ('(a module)', MISSING)
    return found, entry.get('differences', {}) or {}


RECIPE_CONFIGS = sorted(k for k, v in ZOO.items() if v.get('recipe'))


def test_every_reference_config_is_covered():
    configs = sorted(
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', 'vpd', '*.py')))
    quoting = []
    for path in glob.glob(osp.join(ROOT, 'projects', '*', 'configs', '*.py')):
        text = open(path).read()
        if re.search(r'(paper|reports)\b.*\d+\.\d+', text, re.I):
            quoting.append(osp.relpath(path, ROOT))
    missing = [p for p in configs + quoting if p not in ZOO]
    assert not missing, f'no recipe entry in tests/data/recipes/zoo.yml: ' \
        f'{missing}'
    for path, entry in ZOO.items():
        assert osp.isfile(osp.join(ROOT, path)), path
        assert entry.get('recipe') or entry.get('no_source_recipe'), path


@pytest.mark.parametrize('config_path', RECIPE_CONFIGS)
def test_config_matches_source_recipe(config_path):
    found, listed = compare(config_path)
    unlisted = {k: v for k, v in found.items() if k not in listed}
    stale = [k for k in listed if k not in found]
    lines = [f'  {k}: source {v[0]!r}, mmdiff {v[1]!r}'
             for k, v in unlisted.items()]
    assert not unlisted, (f'{config_path} differs from its source recipe '
                          'in fields not listed in tests/data/recipes/'
                          'zoo.yml:\n' + '\n'.join(lines))
    assert not stale, (f'{config_path}: listed as different but equal to '
                       f'the source: {stale}')


def test_differences_are_documented():
    """Every listed difference appears in docs/model_zoo.md."""
    doc = open(osp.join(ROOT, 'docs', 'model_zoo.md')).read()
    fields = {k for e in ZOO.values() for k in (e.get('differences') or {})}
    missing = sorted(f for f in fields if f'`{f}`' not in doc)
    assert not missing, f'docs/model_zoo.md does not list: {missing}'


def test_vpd_scene_list_is_mmseg_class_order():
    """The scene ids index the same embedding rows under both rules."""
    from mmseg.datasets import NYUDataset
    vpd = recipe('vpd_nyu_depth.yml')['recipe']['class_list']
    assert list(NYUDataset.METAINFO['classes']) == vpd


def _mmcv1_poly_warmup_lr(it: int, base: float, lr_config: dict,
                          max_iters: int) -> float:
    """mmcv 1.x ``PolyLrUpdaterHook`` with linear warm-up at iteration
    ``it`` (a stand-in for mmcv 1.x, which does not install beside mmcv 2:
    ``get_lr`` then ``get_warmup_lr('linear')`` as mmcv 1.x computes them)."""
    coeff = (1 - it / max_iters)**lr_config['power']
    lr = (base - lr_config['min_lr']) * coeff + lr_config['min_lr']
    if lr_config.get('warmup') and it < lr_config['warmup_iters']:
        assert lr_config['warmup'] == 'linear'
        k = (1 - it / lr_config['warmup_iters']) * \
            (1 - lr_config['warmup_ratio'])
        lr *= 1 - k
    return lr


def test_ade20k_lr_curve_matches_vpd():
    """The mmengine schedulers of the ADE20K config give VPD's learning rate
    at every iteration (mmcv 1.x poly over all iterations x warm-up)."""
    import torch
    from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
    rec = recipe('vpd_ade20k.yml')['recipe']
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py'))
    base, max_iters = rec['optimizer']['lr'], rec['runner']['max_iters']
    assert cfg.train_cfg.max_iters == max_iters
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                lr=cfg.optim_wrapper.optimizer.lr)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        schedulers = [PARAM_SCHEDULERS.build(
            dict(s, optimizer=optimizer)) for s in cfg.param_scheduler]
    worst = 0.0
    for it in range(max_iters):
        ours = optimizer.param_groups[0]['lr']
        ref = _mmcv1_poly_warmup_lr(it, base, rec['lr_config'], max_iters)
        if ref > 0:
            worst = max(worst, abs(ours - ref) / ref)
        else:
            assert ours == 0, (it, ours)
        for scheduler in schedulers:
            scheduler.step()
    print(f'ADE20K lr curve: max relative difference {worst:.1e} over '
          f'{max_iters} iterations')
    assert worst < 1e-6


def test_metafile_lists_the_same_differences():
    """configs/vpd/metafile.yml's Fidelity entries match zoo.yml."""
    with open(osp.join(ROOT, 'configs', 'vpd', 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    for model in models:
        fidelity = model['Fidelity']
        listed = {d.split(' (')[0] for d in
                  fidelity['Intentional Differences']}
        entry = ZOO[model['Config']]
        assert listed == set(entry.get('differences') or {}), model['Name']
        assert entry['recipe'] in fidelity['Recipe']
