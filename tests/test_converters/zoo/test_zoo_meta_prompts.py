"""Meta Prompts zoo entries vs the source's own model, from the source's side.

The source (fudan-zvg/meta-prompts@5628dd9) does not import here (mmseg
0.x, timm, pytorch_lightning): meta_prompts_source.py transcribes its
model, test loops and optimizer rule line by line on the real ldm modules.
Each source model is built at tiny U-Net widths (the zoo's ldm U-Net),
with every other hyper-parameter from its recipe in tests/data/recipes/
(head widths narrowed for CPU time), saved in the source's checkpoint
layout, converted with tools/model_converters/meta_prompts_to_mmdiff.py
(a subprocess), loaded with ``strict=True`` into the model of the project
config (tiny U-Net swapped in), and both run the source's test protocol on
the same image file: ADE20K's slide window (512/341) after mmseg 0.x's
test resize, NYU's shift-window + flip on a 480x640 image. Predictions must
agree within 1e-4 relative.
"""
import copy
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
if ROOT not in sys.path:  # projects.MetaPrompts (the configs' import)
    sys.path.insert(0, ROOT)

ADE_CONFIG = ('projects/MetaPrompts/configs/'
              'meta-prompts_sd15-upernet_8xb1-80k_ade20k-512x512.py')
NYU_CONFIG = ('projects/MetaPrompts/configs/'
              'meta-prompts_sd15_8xb3-25k_nyu-480x480.py')
TOOL = 'tools/model_converters/meta_prompts_to_mmdiff.py'
# head widths for the numerics (the source: UPerHead/FCNHead 512, depth
# Decoder 192; a 512-wide UPerHead at stride 4 of a 512 window costs
# ~150 GFLOP); every other width and hyper-parameter is the recipe's
SEG_HEAD_CHANNELS = 16
DEPTH_EMBED_DIM = 8


@pytest.fixture(scope='module')
def source_code(load_tool):
    """meta_prompts_source.py (the source's code, transcribed)."""
    return load_tool('tests/test_converters/zoo/meta_prompts_source.py')


def _convert(run_tool, tmp_path, obj, yaml_path, name):
    src, dst = tmp_path / f'{name}.pth', tmp_path / f'{name}_mmdiff.pth'
    torch.save(obj, src)
    proc = run_tool(TOOL, str(src), str(dst), '--original-config', yaml_path,
                    cwd=str(tmp_path))
    return torch.load(dst, weights_only=True), proc.stdout


def _project_model(config, ckpt, **part_widths):
    """The project config's model with the converted file's tiny U-Net/VAE
    and narrowed head widths (``part_widths``: part -> updates), loaded
    strictly."""
    from mmengine.utils import import_modules_from_strings
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    meta = ckpt['meta']['converted_from']
    model_cfg.backbone.update(pretrained=None, unet_cfg=meta['unet_cfg'],
                              vae_cfg=meta['vae_cfg'])
    for part, widths in part_widths.items():
        model_cfg[part].update(widths)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(model_cfg)
    res = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    return cfg, model.eval()


def _lr_wd(model, optim_wrapper: dict) -> dict:
    """``{name: (lr, weight decay)}`` of every trainable parameter, as
    mmengine's optimizer-wrapper constructor of ``optim_wrapper`` sets
    them."""
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
    cfg = copy.deepcopy(dict(optim_wrapper))
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=cfg.pop('constructor', 'DefaultOptimWrapperConstructor'),
        paramwise_cfg=cfg.pop('paramwise_cfg', None),
        optim_wrapper_cfg=cfg))
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in ctor(model).optimizer.param_groups:
        for param in group['params']:
            if param.requires_grad:
                out[names[id(param)]] = (group['lr'], group['weight_decay'])
    return out


def _source_names(source, original_config, convert):
    """mmdiff key -> the source names of its tensor (a shared tensor has
    several), by converting the source's state dict with every tensor
    tagged with its index."""
    tags, names = {}, []
    tagged = {}
    for name, tensor in source.state_dict().items():
        key = (tensor.data_ptr(), tensor.shape)
        if key not in tags:
            tags[key] = len(names)
            names.append([])
        names[tags[key]].append(name)
        tagged[name] = torch.full(tensor.shape, tags[key] + 0.25)
    result = convert(tagged, original_config)
    return {k: names[int(v.flatten()[0])]
            for k, v in result.state_dict.items()}


def _assert_same_rule(model, ours: dict, ref: dict, to_source: dict):
    """Every parameter trains with the source's (lr, weight decay) for it,
    and the two models train the same parameters."""
    checked, groups = set(), set()
    for name, (lr, wd) in ours.items():
        src = [n for n in to_source[name] if n in ref]
        assert src, f'{name} trains; the source does not train ' \
            f'{to_source[name]}'
        assert (lr, wd) == pytest.approx(ref[src[0]], rel=1e-9), (
            f'{name}: lr {lr}, wd {wd}; source {src[0]}: {ref[src[0]]}')
        checked.add(src[0])
        groups.add((lr, wd))
    untrained = sorted(set(ref) - checked)
    assert not untrained, f'the source trains, mmdiff does not: {untrained}'
    return groups


# --------------------------------------------------------------------------
# ADE20K: MetaPromptsSeg, mmseg 0.x test resize, slide 512/341
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def ade(source_code, run_tool, helpers, zoo, zoo_ldm, tmp_path_factory):
    rec = zoo.recipe('meta_prompts_ade20k.yml')['recipe']
    tmp = tmp_path_factory.mktemp('meta_prompts_ade')
    model_rec = rec['model']
    narrow = dict(channels=SEG_HEAD_CHANNELS)
    torch.manual_seed(0)  # module init, before randomise()
    with DefaultScope.overwrite_default_scope('mmseg'):
        source = source_code.MetaPromptsSegSource(
            decode_head=dict(model_rec['decode_head'], **narrow),
            auxiliary_head=dict(model_rec['auxiliary_head'], **narrow),
            refine_step=model_rec['backbone']['refine_step'],
            num_prompt=model_rec['backbone']['num_prompt'],
            unet_params=zoo_ldm[0], test_cfg=model_rec['test_cfg'])
    helpers.randomise(source, seed=21)
    # an mmseg 0.x checkpoint ({'meta', 'state_dict'})
    ckpt, log = _convert(run_tool, tmp,
                         dict(meta=dict(mmseg_version='0.30.0'),
                              state_dict=source.state_dict()),
                         zoo_ldm[1], 'meta_prompts_seg')
    assert 'layout: meta_prompts_seg' in log and 'shared' not in log
    cfg, model = _project_model(ADE_CONFIG, ckpt, decode_head=narrow,
                                auxiliary_head=narrow)
    return dict(rec=rec, source=source, cfg=cfg, model=model, tmp=tmp)


def test_meta_prompts_ade20k_source_whole_model(ade, zoo):
    """Slide-window logits and predictions of one image file."""
    rec, source, model, cfg = (ade[k] for k in ('rec', 'source', 'model',
                                                'cfg'))
    img_path, seg_path = ade['tmp'] / 'img.png', ade['tmp'] / 'seg.png'
    zoo.write_image(img_path, 300, 400, seed=4)  # resized to 512 x 683
    mmcv.imwrite(np.zeros((300, 400), np.uint8), str(seg_path))
    from mmcv.transforms import Compose
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pipeline(dict(img_path=str(img_path), seg_map_path=str(seg_path),
                         reduce_zero_label=True, seg_fields=[]))
    with torch.no_grad():
        out = model.test_step(pseudo_collate([data]))[0]
    # the source: mmseg 0.x test pipeline + MetaPromptsSeg.slide_inference
    img = zoo.mmseg0x_test_image(img_path, rec)
    assert img.shape[-2:] == (512, 683)  # two windows
    with torch.no_grad():
        ref = source.slide_inference(img, (300, 400))[0]
    diff = zoo.rel_diff(out.seg_logits.data, ref)
    print(f'Meta Prompts ADE20K: logits after the slide test, max |diff| / '
          f'max |logit| = {diff:.1e} (max |logit| {ref.abs().max():.2f})')
    assert diff <= zoo.RTOL
    # simple_test: argmax of softmax(logits) (skip near-ties)
    top2 = ref.softmax(0).topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4
    pred = out.pred_sem_seg.data[0]
    assert clear.float().mean() > 0.9
    assert torch.equal(pred[clear], ref.argmax(0)[clear])
    assert len(ref.argmax(0).unique()) > 3  # not one class everywhere


def test_meta_prompts_ade20k_optimizer_matches_source(ade, zoo_ldm):
    """Every parameter trains with the (lr, weight decay) the source's
    optimizer config gives its source parameter (mmcv 1.x custom_keys,
    the same rule as mmengine's default constructor)."""
    from projects.MetaPrompts.meta_prompts.converter import \
        convert_meta_prompts
    opt = ade['rec']['optimizer']
    ref = _lr_wd(ade['source'], dict(
        optimizer=dict(type=opt['type'], lr=opt['lr'],
                       weight_decay=opt['weight_decay']),
        paramwise_cfg=opt['paramwise_cfg']))
    # never updated by the source: lr 0 (encoder_vq) or no gradient (ldm's
    # time_embed, replaced by the t{k} vectors); frozen in mmdiff
    ref = {n: v for n, v in ref.items()
           if v[0] > 0 and '.time_embed.' not in n}
    ours = _lr_wd(ade['model'], ade['cfg'].optim_wrapper)
    to_source = _source_names(ade['source'], zoo_ldm[1], convert_meta_prompts)
    groups = _assert_same_rule(ade['model'], ours, ref, to_source)
    print(f'ADE20K optimizer: {len(ours)} parameters, (lr, wd) groups '
          f'{sorted(groups)}')
    assert len(groups) == 3  # prompts/heads, U-Net x0.1, U-Net norms


# --------------------------------------------------------------------------
# NYU: MetaPromptDepth, shift-window + flip (depth/test.py)
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def nyu(source_code, run_tool, helpers, zoo, zoo_ldm, tmp_path_factory):
    rec = zoo.recipe('meta_prompts_nyu.yml')['recipe']
    tmp = tmp_path_factory.mktemp('meta_prompts_nyu')
    args = {k: rec[k] for k in ('max_depth', 'resize_scale', 'refine_step',
                                'num_deconv', 'num_filters',
                                'deconv_kernels')}
    torch.manual_seed(0)
    source = source_code.MetaPromptDepthSource(
        args, zoo_ldm[0], num_prompt=rec['num_prompt'],
        embed_dim=DEPTH_EMBED_DIM)
    helpers.randomise(source, seed=22)
    with torch.no_grad():  # depth over its range, not ~max_depth / 2
        source.last_layer_depth[2].weight.mul_(100)
    # train.py saves {'model': model_without_ddp.state_dict(), ...}
    ckpt, log = _convert(run_tool, tmp, dict(model=source.state_dict()),
                         zoo_ldm[1], 'meta_prompts_depth')
    assert 'layout: meta_prompts_depth' in log
    cfg, model = _project_model(NYU_CONFIG, ckpt, decode_head=dict(
        embed_dim=DEPTH_EMBED_DIM))
    return dict(rec=rec, source=source, cfg=cfg, model=model, tmp=tmp)


def test_meta_prompts_nyu_source_whole_model(nyu, zoo, source_code):
    """Depth after the shift-window + flip test of one NYU image file."""
    from mmseg.registry import DATASETS
    rec, source, model, cfg = (nyu[k] for k in ('rec', 'source', 'model',
                                                'cfg'))
    root = nyu['tmp'] / 'nyu'
    img = root / 'images' / 'test' / 'study_room_0004_00045.jpg'
    depth = root / 'annotations' / 'test' / 'study_room_0004_00045.png'
    img.parent.mkdir(parents=True)
    depth.parent.mkdir(parents=True)
    zoo.write_image(img, 480, 640, seed=6)
    mmcv.imwrite(np.full((480, 640), 2000, np.uint16), str(depth))
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset,
                                  data_root=str(root)))
    with torch.no_grad():
        ours = model.test_step(pseudo_collate([dataset[0]]))[0]
        # depth/dataset: cv2 BGR -> RGB, ToTensor (/ 255)
        rgb = mmcv.imread(str(img), channel_order='rgb')
        x01 = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        test = rec['test']
        assert test['shift_window_test'] and test['flip_test']
        ref = source_code.shift_flip_test(source, x01,
                                          test['shift_size'])[0]
    ours = ours.pred_depth_map.data
    assert ref.shape == ours.shape == (1, 480, 640)
    diff = zoo.rel_diff(ours, ref)
    print(f'Meta Prompts NYU: depth after shift-window + flip, max |diff| / '
          f'max depth = {diff:.1e} (depth {ref.min():.2f}..{ref.max():.2f})')
    assert diff <= zoo.RTOL
    assert ref.std() > 0.1


def test_meta_prompts_nyu_optimizer_matches_source(nyu, zoo_ldm,
                                                   source_code):
    """The source's LDMOptimizerConstructor rule, parameter by parameter:
    U-Net x0.01, no decay on 1-D parameters and biases."""
    from projects.MetaPrompts.meta_prompts.converter import \
        convert_meta_prompts
    opt = nyu['rec']['optimizer']
    ref = source_code.ldm_optimizer_groups(
        nyu['source'], opt['max_lr'], opt['weight_decay'],
        nyu['rec']['no_decay_names'])
    ours = _lr_wd(nyu['model'], nyu['cfg'].optim_wrapper)
    to_source = _source_names(nyu['source'], zoo_ldm[1],
                              convert_meta_prompts)
    groups = _assert_same_rule(nyu['model'], ours, ref, to_source)
    print(f'NYU optimizer: {len(ours)} parameters, (lr, wd) groups '
          f'{sorted(groups)}')
    assert len(groups) == 4  # (x1, x0.01) x (decay, no decay)


def test_meta_prompts_nyu_lr_curve_matches_source(nyu, source_code):
    """The config's schedulers give depth/train.py's lr at every step."""
    from mmengine.registry import PARAM_SCHEDULERS
    rec, cfg = nyu['rec'], nyu['cfg']
    per_gpu = -(-rec['train_images'] // rec['gpus'])
    iterations = per_gpu // rec['batch_size']  # DataLoader drop_last
    assert cfg.train_cfg.max_iters == rec['epochs'] * iterations
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                  for s in cfg.param_scheduler]
    worst = 0.
    for global_step in range(1, cfg.train_cfg.max_iters + 1):
        ref = source_code.train_lr(global_step, iterations, rec['epochs'],
                                   rec['optimizer']['max_lr'],
                                   rec['optimizer']['min_lr'])
        ours = optimizer.param_groups[0]['lr']
        worst = max(worst, abs(ours - ref) / ref)
        for scheduler in schedulers:
            scheduler.step()
    print(f'NYU lr curve: max relative difference {worst:.1e} over '
          f'{cfg.train_cfg.max_iters} steps')
    assert worst < 1e-9


@pytest.mark.parametrize('task', ['seg', 'depth'])
def test_meta_prompts_release_size_loads_strictly(task, source_code, zoo):
    """SD1.5-sized sources (meta device: shapes only) with the recipes'
    full head widths, in the released layouts, convert with the default
    ldm config (SD v1 inference, the source's) and load strictly into the
    project configs' models."""
    from mmdiff.converters import SD_V1_INFERENCE
    from projects.MetaPrompts.meta_prompts.converter import \
        convert_meta_prompts
    params = SD_V1_INFERENCE['model']['params']
    unet = params['unet_config']['params']
    dd = params['first_stage_config']['params']['ddconfig']
    with torch.device('meta'), DefaultScope.overwrite_default_scope('mmseg'):
        if task == 'seg':
            rec = zoo.recipe('meta_prompts_ade20k.yml')['recipe']['model']
            source = source_code.MetaPromptsSegSource(
                rec['decode_head'], rec['auxiliary_head'],
                rec['backbone']['refine_step'],
                rec['backbone']['num_prompt'], unet, rec['test_cfg'], dd)
            ckpt, config = dict(state_dict=source.state_dict()), ADE_CONFIG
        else:
            rec = zoo.recipe('meta_prompts_nyu.yml')['recipe']
            source = source_code.MetaPromptDepthSource(
                {k: rec[k] for k in ('max_depth', 'resize_scale',
                                     'refine_step', 'num_deconv',
                                     'num_filters', 'deconv_kernels')},
                unet, rec['num_prompt'], rec['embed_dim'], dd)
            ckpt, config = dict(model=source.state_dict()), NYU_CONFIG
    result = convert_meta_prompts(ckpt)
    assert result.layout.name == f'meta_prompts_{task}'
    state = result.state_dict
    assert state['backbone.timesteps.2'].shape == (1, 1280)
    if task == 'seg':
        assert state['backbone.prompts.0'].shape == (150, 768)
        assert state['decode_head.lateral_convs.0.conv.weight'].shape[:2] \
            == (512, 150)
    else:
        assert state['backbone.prompts.2'].shape == (50, 768)
        assert state['backbone.prompt_head.out_layer.0.weight'].shape == (
            768, 3520, 3, 3)
        assert not any('time_embedding' in k for k in state)
    from mmengine.utils import import_modules_from_strings
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(pretrained=None, unet_cfg=result.unet_cfg,
                              vae_cfg=result.vae_cfg)
    with torch.device('meta'), DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(model_cfg)
    res = model.load_state_dict(state, strict=True, assign=True)
    assert not res.missing_keys and not res.unexpected_keys
