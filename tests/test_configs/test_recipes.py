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
import inspect
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

from mmdiff.models.text import (compute_class_embeddings,
                                resolve_class_names, resolve_templates)

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
# What an SD file or a config's ``pretrained`` holds: (model, U-Net weights:
# 'ema' / 'non-ema' / None when its publisher does not say).
SD_WEIGHTS = {
    # the EMA-only single file (VPD's start): ldm stores the EMA U-Net as
    # model.diffusion_model.*
    'v1-5-pruned-emaonly.ckpt': ('sd-v1-5', 'ema'),
    'v1-5-pruned-emaonly.safetensors': ('sd-v1-5', 'ema'),
    # the full training file (raw U-Net + LitEma copy): mmdiff reads its
    # EMA copy (mmdiff.models.diffusion.ema; diffusers' from_single_file
    # alone would take the raw weights)
    'v1-5-pruned.ckpt': ('sd-v1-5', 'ema'),
    'v1-5-pruned.safetensors': ('sd-v1-5', 'ema'),
    # diffusers folders of SD v1.5: unet/diffusion_pytorch_model.* is the
    # EMA U-Net, the raw one is the 'non_ema' variant
    # (huggingface.co/runwayml/stable-diffusion-v1-5/discussions/170)
    'stable-diffusion-v1-5/stable-diffusion-v1-5': ('sd-v1-5', 'ema'),
    'runwayml/stable-diffusion-v1-5': ('sd-v1-5', 'ema'),
    # mmseg's download: SD v1.5, which U-Net copy is not stated
    'stable_diffusion_v1-5_pretrain_third_party.pth': ('sd-v1-5', None),
}
# backbone_recipe keys compared as model.backbone.<key>
BACKBONE_RECIPE_ARGS = ('class_embed_select', 'text_adapter', 'gamma_init',
                        'timestep', 'noise', 'latent_mode', 'scale_latents',
                        'use_attn', 'attn_grad')
# class-embedding spec keys compared as model.backbone.class_embeddings.<key>
EMBEDDING_SPEC = ('output', 'text_encoder', 'max_length', 'normalize',
                  'underscore_to_space', 'templates')


def _sd_weights(spec: str) -> tuple:
    name = spec if spec in SD_WEIGHTS else osp.basename(str(spec))
    return SD_WEIGHTS.get(name, (f'unknown: {spec}', None))


def _expected_embeddings(r: dict, emb: dict) -> dict:
    """The class-embedding spec of a backbone recipe as mmdiff paths."""
    exp = {}
    if 'from_recipe' in emb:
        other = recipe(emb['from_recipe'])['recipe']
        emb = other['backbone_recipe']['class_embeddings']
        if 'class_list' in other:
            emb = dict(emb, class_list=other['class_list'])
    if 'class_list' not in emb and 'class_list' in r['recipe']:
        emb = dict(emb, class_list=r['recipe']['class_list'])
    prefix = 'model.backbone.class_embeddings.'
    for key in EMBEDDING_SPEC:
        if key in emb:
            exp[prefix + key] = emb[key]
    exp[prefix + 'num_classes'] = emb['rows']
    if 'class_list' in emb:  # the class names as written into the prompts
        exp[prefix + 'prompt_names'] = [
            n.replace('_', ' ') if emb.get('underscore_to_space') else n
            for n in emb['class_list']]
    return exp


def expected_backbone(r: dict) -> dict:
    """The source's backbone (``backbone_recipe``) as mmdiff.VPD paths."""
    rec = r['recipe'].get('backbone_recipe')
    if not rec:
        return {}
    exp = {}
    model, stored = _sd_weights(rec['sd_weights'])
    exp['model.backbone.pretrained'] = model
    weights = rec.get('unet_weights', stored)
    if weights is not None:  # unknown: only the model is compared
        exp['model.backbone.unet_weights'] = weights
    if 'class_embeddings' in rec:  # none for learned prompts
        exp.update(_expected_embeddings(r, rec['class_embeddings']))
    for key in BACKBONE_RECIPE_ARGS:
        if key in rec:
            exp[f'model.backbone.{key}'] = rec[key]
    return exp
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
    if path == 'precision':
        return precision(cfg)
    if path == 'scene_rule':
        rules = {_scene_rule(_dataset(cfg, s))
                 for s in ('train', 'val', 'test')}
        assert len(rules) == 1, f'{config_path}: scene rules {rules}'
        return rules.pop()
    if path.startswith('model.backbone.'):
        found = _backbone_value(cfg.model.backbone, path[len('model.'
                                                             'backbone.'):])
        if found is not None:
            return found
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


DTYPES = {'bfloat16': 'bf16', 'bf16': 'bf16', 'float16': 'fp16',
          'fp16': 'fp16', 'half': 'fp16', 'float32': 'fp32', 'fp32': 'fp32'}


def precision(cfg) -> str:
    """What a config trains in: 'fp32', 'bf16' or 'fp16', read from a
    FlexibleRunner strategy (DeepSpeed bf16/fp16/amp, FSDP mixed_precision),
    an AmpOptimWrapper, or the mmdiff backbone's autocast (amp_dtype)."""
    strategy = cfg.get('strategy') or {}
    if strategy.get('type') == 'DeepSpeedStrategy':
        for key in ('bf16', 'fp16', 'amp'):
            if (strategy.get(key) or {}).get('enabled'):
                return 'fp16' if key == 'amp' else key
    if strategy.get('type') == 'FSDPStrategy':
        mixed = (strategy.get('model_wrapper') or {}).get('mixed_precision')
        if isinstance(mixed, dict):
            mixed = mixed.get('param_dtype')
        if mixed:
            return DTYPES[str(mixed).replace('torch.', '')]
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') == 'AmpOptimWrapper':
        return DTYPES[str(wrapper.get('dtype') or 'float16')]
    amp = (cfg.model.get('backbone') or {}).get('amp_dtype')
    return DTYPES[str(amp)] if amp else 'fp32'


def _default(fn, name: str):
    """The default of ``fn``'s argument ``name`` (what a config that leaves
    the argument out gets), else MISSING. For a class, the first
    ``__init__`` in its MRO that names the argument (a subclass passes the
    rest on with ``**kwargs``)."""
    for f in ([c.__init__ for c in fn.__mro__] if inspect.isclass(fn)
              else [fn]):
        param = inspect.signature(f).parameters.get(name)
        if param is not None:
            return MISSING if param.default is param.empty else \
                param.default
    return MISSING


def _backbone_value(backbone: dict, key: str):
    """The effective value of a backbone setting of the config: the value
    the config gives, else the backbone class's default; None for a key
    read as a plain path."""
    from mmdiff.registry import MODELS
    cls = MODELS.get(backbone['type'])
    if key in ('pretrained', 'unet_weights'):
        model, weights = _sd_weights(backbone.get('pretrained'))
        return model if key == 'pretrained' else (weights or MISSING)
    if key in BACKBONE_RECIPE_ARGS:
        return _plain(backbone[key]) if key in backbone else \
            _default(cls, key)
    if key == 'num_scenes':
        return len(resolve_class_names(
            backbone.class_embeddings['class_names']))
    emb_prefix = 'class_embeddings.'
    if not key.startswith(emb_prefix):
        return None
    key, emb = key[len(emb_prefix):], backbone.get('class_embeddings')
    if not isinstance(emb, dict) or 'class_names' not in emb:
        return f'not a generated spec: {emb!r}'
    value = emb[key] if key in emb else \
        _default(compute_class_embeddings, key)
    if key == 'templates':
        return resolve_templates(value)
    names = resolve_class_names(emb['class_names'])
    if key == 'num_classes':
        return len(names)
    if key == 'prompt_names':
        spaces = emb.get('underscore_to_space', _default(
            compute_class_embeddings, 'underscore_to_space'))
        return [n.replace('_', ' ') if spaces else n for n in names]
    return _plain(value)


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
    source = recipe(entry['recipe'])
    expected = EXPECTED[entry['recipe']](source)
    # the backbone of another recipe where zoo.yml says so (a config for
    # one source's checkpoint on another source's training recipe)
    expected.update(expected_backbone(
        recipe(entry['backbone_recipe']) if 'backbone_recipe' in entry
        else source))
    if 'precision' in source['recipe']:
        expected['precision'] = source['recipe']['precision']
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


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


@pytest.mark.parametrize('config_path', RECIPE_CONFIGS)
def test_config_matches_source_recipe(config_path):
    found, listed = compare(config_path)
    unlisted = {k: v for k, v in found.items() if k not in listed}
    stale = [k for k in listed if k not in found]
    lines = [f'  {k}: source {_short(v[0])}, mmdiff {_short(v[1])}'
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


@pytest.mark.parametrize('name', sorted(
    osp.basename(p) for p in glob.glob(osp.join(RECIPES, '*.yml'))
    if 'backbone_recipe' in recipe(osp.basename(p)).get('recipe', {})))
def test_backbone_recipes_cite_their_source(name):
    """Every backbone value names the source file and line it was read
    from, at the recipe's commit (or says it is the paper's)."""
    rec = recipe(name)
    backbone = rec['recipe']['backbone_recipe']
    cites = backbone['provenance']
    assert set(cites) == set(backbone) - {'provenance'}, name
    commit = str(rec['source']['commit']).split()[0]
    for key, cite in cites.items():
        assert re.search(r'#L\d+', cite), (name, key, cite)
        urls = re.findall(r'https://github\.com/\S+', cite)
        assert urls, (name, key, cite)
        for url in urls:  # the source's commit, or the SD code it pins
            assert commit in url or 'CompVis/stable-diffusion/blob/' \
                '21f890f9da3cfbeaba8e2ac3c425ee9e998d5229' in url, url


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


STRATEGIES = osp.join(ROOT, 'configs', '_base_', 'strategies')


@pytest.mark.parametrize('overlay', sorted(
    osp.basename(p) for p in glob.glob(osp.join(STRATEGIES, '*.py'))))
def test_strategy_overlay_trains_in_the_precision_it_names(overlay):
    """The strategy overlays train in fp32 (VPD's precision) unless their
    name says otherwise (``*_bf16.py``), and a named option changes the
    precision only: its strategy is its fp32 base's plus the dtype keys."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(STRATEGIES, overlay))
    cfg.model = {}
    named = overlay[:-3].rsplit('_', 1)[-1]
    declared = named if named in ('bf16', 'fp16') else 'fp32'
    assert precision(cfg) == declared, overlay
    if declared == 'fp32':
        return
    base = Config.fromfile(osp.join(STRATEGIES, overlay.replace(
        f'_{declared}', '')))
    dtype_keys = {'bf16', 'fp16', 'amp', 'inputs_to_half',
                  'mixed_precision'}

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()
                    if k not in dtype_keys}
        return node

    assert strip(_plain(cfg.strategy)) == strip(_plain(base.strategy))


ADE_CONFIG = 'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py'


def _mmseg0x_aug_scales(img_scale, img_ratios) -> list:
    """mmseg 0.x ``MultiScaleFlipAug`` given a scale tuple and ratios
    (its mode 2): ``(int(w * r), int(h * r))`` for each ratio."""
    return [(int(img_scale[0] * r), int(img_scale[1] * r))
            for r in img_ratios]


def test_ade20k_tta_is_vpds_aug_test(tmp_path):
    """``tools/test.py --tta`` on the ADE20K zoo config runs VPD's
    ``--aug-test`` (the protocol of its ms+flip figure): on an image file,
    the same resized and flipped images, branch by branch, averaged by
    SegTTAModel (softmax mean, as mmseg 0.x's aug_test); the metafile's
    ms+flip figure names that protocol."""
    import mmcv
    import numpy as np
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope

    from mmdiff.apis import apply_tta
    rec = recipe('vpd_ade20k.yml')['recipe']
    aug = rec['aug_test']
    msfa = {s['type']: s for s in rec['test_pipeline']}['MultiScaleFlipAug']
    scales = _mmseg0x_aug_scales(msfa['img_scale'], aug['img_ratios'])
    flips = [False, True] if aug['flip'] else [False]
    img_path, seg_path = str(tmp_path / 'img.png'), str(tmp_path / 'seg.png')
    rng = np.random.default_rng(0)
    mmcv.imwrite(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
                 img_path)
    mmcv.imwrite(np.zeros((300, 400), np.uint8), seg_path)
    img = mmcv.imread(img_path)
    expected = []
    for scale in scales:  # mmseg 0.x Resize(keep_ratio) + RandomFlip
        resized = mmcv.imrescale(img, scale)
        for flip in flips:
            expected.append((resized.shape[:2], flip, mmcv.imflip(
                resized, aug['flip_direction']) if flip else resized))

    cfg = apply_tta(Config.fromfile(osp.join(ROOT, ADE_CONFIG)))
    assert cfg.model.type == 'SegTTAModel'  # softmax average of branches
    with DefaultScope.overwrite_default_scope('mmseg'):
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        data = pipeline(dict(img_path=img_path, seg_map_path=seg_path,
                             reduce_zero_label=True, seg_fields=[]))
    ours = [(tuple(s.img_shape), bool(s.flip), x.permute(1, 2, 0).numpy())
            for s, x in zip(data['data_samples'], data['inputs'])]
    branches = sorted(o[:2] for o in ours)
    assert branches == sorted(e[:2] for e in expected), branches
    for shape, flip, pixels in expected:
        match = next(o for o in ours if o[:2] == (shape, flip))
        assert np.array_equal(match[2], pixels), (shape, flip)
    assert all(s.flip_direction == aug['flip_direction']
               for s in data['data_samples'] if s.flip)

    with open(osp.join(ROOT, 'configs', 'vpd', 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    entry = next(m for m in models if m['Config'] == ADE_CONFIG)
    ms = [r for r in entry['Results']
          if any('ms+flip' in k for k in r['Metrics'])]
    assert len(ms) == 1 and 'Test Protocol' in ms[0], entry['Results']
    protocol = ms[0]['Test Protocol']
    assert '--tta' in protocol and 'test.py:142-150' in protocol
    assert str(aug['img_ratios']) in protocol, protocol
    assert str(tuple(msfa['img_scale'])) in protocol, protocol
