"""NYU zoo entries vs mmseg's and VPD's own models (method: conftest.py)."""
import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate


# --------------------------------------------------------------------------
# NYU: mmseg's VPD + VPDDepthHead (mmseg's own code), slide_flip test
# --------------------------------------------------------------------------
NYU_CONFIG = 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py'
NYU_VPD_CONFIG = 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480_vpd-scenes.py'
# Depth-head widths for the numerics (VPD / mmseg: 192, 1536, (32, 32, 32),
# whose last 3x3 conv at full resolution alone costs ~150 GFLOP per window;
# the released widths are checked by test_real_size.py's strict loads).
TINY_HEAD = dict(embed_dim=8, feature_dim=64, num_deconv_filters=(16, 16, 16))


def _spread(conv, factor=30):
    """Scale the last conv so that depth spans its range (not ~max/2)."""
    with torch.no_grad():
        conv.weight.mul_(factor)


def _nyu_files(zoo, root, rel_img, h=480, w=640, seed=5):
    """One NYU test image + depth map under ``root`` at ``images/test`` /
    ``annotations/test`` (the data_prefix of mmseg's and mmdiff's configs)."""
    img = root / 'images' / 'test' / rel_img
    depth = root / 'annotations' / 'test' / rel_img.replace('.jpg', '.png')
    img.parent.mkdir(parents=True, exist_ok=True)
    depth.parent.mkdir(parents=True, exist_ok=True)
    zoo.write_image(img, h, w, seed)
    mmcv.imwrite(np.full((h, w), 2000, np.uint16), str(depth))
    return str(img)


def _first_sample(dataset_cfg, root):
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(dict(dataset_cfg, data_root=str(root)))
    assert len(dataset) == 1
    return dataset[0], dataset.get_data_info(0)['category_id']


def test_mmseg_nyu_release_whole_model(tool, helpers, zoo, zoo_ldm,
                                       ldm_target, tmp_path):
    """NYU zoo entry: mmseg's own DepthEstimator(VPD, VPDDepthHead) from its
    recipe vs the zoo config, each with its data set, pipeline and
    slide_flip test on the same file."""
    from mmseg.registry import MODELS
    rec = zoo.recipe('mmseg_vpd_nyu.yml')['recipe']
    model_rec = rec['model']
    class_file = str(tmp_path / 'nyu_class_embeddings.pth')
    gen = torch.Generator().manual_seed(7)
    torch.save(torch.randn(model_rec['backbone']['num_scenes'], helpers.DIM,
                           generator=gen), class_file)
    torch.manual_seed(0)  # module init, before randomise()
    source = MODELS.build(dict(
        type=model_rec['type'],
        data_preprocessor=model_rec['data_preprocessor'],
        backbone=dict(
            type='VPD', diffusion_cfg=dict(
                target=ldm_target, params=dict(unet_config=zoo_ldm[0])),
            class_embed_path=class_file,
            class_embed_select=model_rec['backbone']['class_embed_select'],
            pad_shape=model_rec['backbone']['pad_shape'],
            unet_cfg=dict(use_attn=model_rec['backbone']['use_attn'])),
        decode_head=dict(model_rec['decode_head'],
                         in_channels=helpers.TAP_CHANNELS, **TINY_HEAD),
        test_cfg=ConfigDict(zoo.tuples(model_rec['test_cfg']))))
    torch.manual_seed(0)
    source.init_weights()
    helpers.randomise(source, seed=12)
    _spread(source.decode_head.depth_pred_layer[2])
    with torch.no_grad():
        source.backbone.gamma.uniform_(0, 0.5)
    ckpt, emb = zoo.convert(tool, tmp_path,
                            {'state_dict': source.state_dict()}, zoo_ldm[1],
                            'mmseg_nyu')
    cfg, model = zoo.zoo_model(NYU_CONFIG, ckpt, emb, 'decode_head',
                               **TINY_HEAD)

    root = tmp_path / 'nyu'
    _nyu_files(zoo, root, 'study_room_0004_00045.jpg')
    src_ds = dict(type='NYUDataset', test_mode=True,
                  data_prefix=dict(img_path='images/test',
                                   depth_map_path='annotations/test'),
                  pipeline=zoo.tuples(rec['test_pipeline']))
    ref_data, ref_id = _first_sample(src_ds, root)
    our_data, our_id = _first_sample(cfg.test_dataloader.dataset, root)
    classes = zoo.recipe('vpd_nyu_depth.yml')['recipe']['class_list']
    assert ref_id == our_id == classes.index('study_room')  # mmseg's rule
    with torch.no_grad():
        ref = source.test_step(pseudo_collate([ref_data]))[0]
        ours = model.test_step(pseudo_collate([our_data]))[0]
    ref, ours = ref.pred_depth_map.data, ours.pred_depth_map.data
    assert ref.shape[-2:] == (480, 640)  # two slide windows, flipped
    diff = zoo.rel_diff(ours, ref)
    print(f'NYU zoo entry (mmseg release layout): depth after slide_flip '
          f'max |diff| / max depth = {diff:.1e} (depth {ref.min():.2f}.. '
          f'{ref.max():.2f} m)')
    assert diff <= zoo.RTOL
    assert ref.std() > 0.1


# --------------------------------------------------------------------------
# NYU: VPD's own VPDDepth, VPD's scene rule and shift-window + flip test
# --------------------------------------------------------------------------
def vpd_scene_id(img_path, class_list):
    """depth/dataset/nyudepthv2.py: first listed name in
    '<folder>_<file>' (VPD asserts one is found)."""
    parts = img_path.split('/')
    filename = parts[-2] + '_' + parts[-1]
    ids = [i for i, name in enumerate(class_list) if name in filename]
    assert ids
    return ids[0]


def vpd_depth_forward(source, x01, class_ids, pad):
    """VPDDepth.forward: [0, 1] -> [-1, 1], zero-pad 480 -> 512, U-Net
    features, encoder convs, border crop, decoder, last layer."""
    b, c, h, w = x01.shape
    x = x01 * 2.0 - 1.0
    assert (h, w) == (pad['from'], pad['from'])
    padded = x.new_zeros(b, c, pad['to'], pad['to'])
    padded[:, :, :h, :w] = x
    outs = source.features(padded, class_ids)
    enc = source.encoder
    feats = [outs[0], outs[1], torch.cat(
        [outs[2], F.interpolate(outs[3], scale_factor=2)], dim=1)]
    feat = enc.out_layer(torch.cat(
        [enc.layer1(feats[0]), enc.layer2(feats[1]), feats[2]], dim=1))
    b_crop = pad['border_crop']
    feat = feat[:, :, :-b_crop, :-b_crop]
    out = source.decoder.conv_layers(source.decoder.deconv_layers(feat))
    out = F.interpolate(out, scale_factor=2, mode='bilinear',
                        align_corners=False)
    out = F.interpolate(out, scale_factor=2, mode='bilinear',
                        align_corners=False)
    return torch.sigmoid(source.last_layer_depth(out)) * source.max_depth


def vpd_shift_flip_test(source, x01, class_id, rec):
    """depth/test.py with --shift_window_test --shift_size N --flip_test."""
    test = rec['test']
    bs, _, h, w = x01.shape
    interval = (w - h) // (test['shift_size'] - 1)
    windows = [x01[..., i * interval:i * interval + h]
               for i in range(test['shift_size'])]
    masks = x01.new_zeros((bs, 1, h, w))
    for i in range(test['shift_size']):
        masks[..., i * interval:i * interval + h] += 1
    inputs = torch.cat(windows)
    inputs = torch.cat([inputs, torch.flip(inputs, [3])])
    ids = torch.tensor([class_id] * inputs.shape[0])
    pred = vpd_depth_forward(source, inputs, ids, rec['input_pad'])
    half = pred.shape[0] // 2
    pred = (pred[:half] + torch.flip(pred[half:], [3])) / 2.0
    out = x01.new_zeros((bs, 1, h, w))
    for i in range(test['shift_size']):
        out[..., i * interval:i * interval + h] += pred[i:i + 1]
    return out / masks


def test_vpd_depth_release_whole_model(tool, helpers, zoo, zoo_ldm,
                                       tmp_path):
    """VPD's own NYU checkpoint layout in the zoo config made for it: VPD's
    scene rule, and VPD's shift-window + flip test vs mmseg's slide_flip."""
    rec = zoo.recipe('vpd_nyu_depth.yml')['recipe']
    # VPD's widths (embed 192, features 1536, filters 32) cost ~1 TFLOP
    # here: the depth-head widths are tiny (TINY_HEAD), the rest is VPD's
    assert rec['feature_dim'] == 8 * rec['embed_dim']
    assert len(rec['num_filters']) == len(TINY_HEAD['num_deconv_filters'])
    head = dict(TINY_HEAD, max_depth=rec['max_depth'])
    assert rec['deconv_kernels'] == [2, 2, 2]  # the stand-in's ConvT(2, 2)
    torch.manual_seed(0)  # module init, before randomise()
    source = helpers.randomise(
        helpers.VPDDepthSource(num_scenes=len(rec['class_list']), head=head,
                               unet_params=zoo_ldm[0]),
        seed=13)
    _spread(source.last_layer_depth[2], 100)
    state = {'module.' + k: v for k, v in source.state_dict().items()}
    ckpt, emb = zoo.convert(tool, tmp_path, {'model': state}, zoo_ldm[1],
                            'vpd_depth')
    cfg, model = zoo.zoo_model(NYU_VPD_CONFIG, ckpt, emb, 'decode_head',
                               **TINY_HEAD)

    root = tmp_path / 'nyu'
    img_path = _nyu_files(zoo, root, 'study_room_0004/rgb_00045.jpg')
    data, our_id = _first_sample(cfg.test_dataloader.dataset, root)
    ref_id = vpd_scene_id(img_path, rec['class_list'])
    assert our_id == ref_id == rec['class_list'].index('study')  # VPD's rule
    with torch.no_grad():
        ours = model.test_step(pseudo_collate([data]))[0].pred_depth_map.data
        img = mmcv.imread(img_path, channel_order='rgb')  # cv2 BGR -> RGB
        x01 = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        ref = vpd_shift_flip_test(source, x01, ref_id, rec)[0]
    diff = zoo.rel_diff(ours, ref)
    print(f'NYU zoo entry (VPD release layout): depth after VPD shift-window '
          f'+ flip vs slide_flip max |diff| / max depth = {diff:.1e} '
          f'(depth {ref.min():.2f}..{ref.max():.2f} m)')
    assert diff <= zoo.RTOL
    assert ref.std() > 0.1
