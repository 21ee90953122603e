"""Meta Prompts as released, transcribed for the tests (tiny widths).

Source: https://github.com/fudan-zvg/meta-prompts at commit
5628dd95c1705e83f24d972115e35d33ccefe1b3 (``SRC`` below):

* ``meta_prompts/models.py``: ``register_hier_output`` (the U-Net forward
  with ``emb = timesteps``), ``UNetWrapper`` (``use_attn=False``),
  ``TextAdapterDepth``;
* ``segmentation/models/model.py``: ``MetaPromptsSeg`` (``__init__``,
  ``extract_feat``, ``encode_decode``, ``slide_inference``);
* ``depth/models_depth/model.py``: ``MetaPromptDepthEncoder``,
  ``MetaPromptDepth``, ``Decoder``;
* ``depth/test.py`` (= ``depth/train.py`` ``validate``): shift-window +
  flip test; ``depth/train.py``: the per-step learning rate;
* ``depth/models_depth/optimizer.py``: ``LDMOptimizerConstructor``'s rule.

The source's modules do not import here (mmseg 0.x / mmcv 1.x, timm,
pytorch_lightning): its code is transcribed line for line on the real ldm
modules (``stable-diffusion-sdkit``'s ``UNetModel`` / VAE ``Encoder``, via
:mod:`mmdiff.testing.ldm`) and mmseg 1.x's ``UPerHead``/``FCNHead`` (the
same modules as mmseg 0.x's). Differences, all forced by the tiny widths:
the timestep vector is ``4 * model_channels`` wide (the source writes 1280
= 4 x 320) and ``text_dim`` is the tiny U-Net's context width (768).
"""
import torch
import torch.nn.functional as F
from torch import nn

from mmdiff.testing import ldm

SRC = ('https://github.com/fudan-zvg/meta-prompts/blob/'
       '5628dd95c1705e83f24d972115e35d33ccefe1b3/')


def hier_forward(self, x, timesteps, context):
    """meta_prompts/models.py:173-213 (``register_hier_output``)."""
    hs = []
    emb = timesteps
    h = x.type(self.dtype)
    for i_in, module in enumerate(self.input_blocks):
        if i_in == 0 and h.shape[1] == 320:
            h = h
        else:
            h = module(h, emb, context)
        hs.append(h)
    h = self.middle_block(h, emb, context)
    out_list = []
    for i_out, module in enumerate(self.output_blocks):
        h_pop = hs.pop()
        if h.shape[-2:] != h_pop.shape[-2:]:
            h_pop = F.interpolate(h_pop, size=h.shape[-2:], mode='bilinear',
                                  align_corners=False)
        h = torch.cat([h, h_pop], dim=1)
        h = module(h, emb, context)
        if i_out in [1, 4, 7]:
            out_list.append(h)
    h = h.type(x.dtype)
    out_list.append(h)
    return out_list


class DiffusionWrapper(nn.Module):
    """ldm ``DiffusionWrapper`` (crossattn): ``.diffusion_model``."""

    def __init__(self, unet_params):
        super().__init__()
        self.diffusion_model = ldm.ldm_unet(unet_params)

    def forward(self, x, t, c_crossattn):
        cc = torch.cat(c_crossattn, 1)
        return hier_forward(self.diffusion_model, x, t, cc)


class UNetWrapper(nn.Module):
    """meta_prompts/models.py:217-242 with ``use_attn=False``."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, latents, t, c_crossattn):
        out_list = self.unet(latents, t, c_crossattn=c_crossattn)
        return out_list[::-1]


class TextAdapterDepth(nn.Module):
    """meta_prompts/models.py:295-317."""

    def __init__(self, text_dim=768):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(text_dim, text_dim), nn.GELU(),
                                nn.Linear(text_dim, text_dim))

    def forward(self, latents, texts):
        n_sen, channel = texts.shape
        bs = latents.shape[0]
        texts = self.fc(texts)
        if n_sen == bs:
            return texts[:, None]  # repeat 'n c -> n b c', b=1
        return texts[None].expand(bs, -1, -1)  # 'n c -> b n c'


def _refine(owner, latents, batch, prompts_of):
    """The refinement loop shared by ``extract_feat`` (seg, model.py:111-
    120) and ``MetaPromptDepthEncoder.forward`` (model.py:87-104)."""
    c_crossattn = None
    for i in range(owner.refine_step):
        if isinstance(latents, list):
            latents = latents[0]
        if i > 0:
            cross_unet_conv = getattr(owner, f'cross_unet_conv{i + 1}')
            latents = cross_unet_conv(latents)
        c_crossattn = prompts_of(i, latents)
        t = getattr(owner, f't{i + 1}')
        t = t.repeat(batch, 1)
        latents = owner.unet(latents, t, c_crossattn=[c_crossattn])
    return latents, c_crossattn


def _schedule(module):
    """``sd_model`` after the source empties it: LatentDiffusion's DDPM
    schedule buffers and ``scale_factor``."""
    for i, name in enumerate(('betas', 'alphas_cumprod', 'alphas_cumprod_prev',
                              'sqrt_alphas_cumprod', 'posterior_variance',
                              'posterior_mean_coef1')):
        module.register_buffer(name, torch.linspace(0, 1, 10) + i)
    module.register_buffer('scale_factor', torch.tensor(0.18215))
    return module


class MetaPromptsSegSource(nn.Module):
    """segmentation/models/model.py ``MetaPromptsSeg`` (no neck)."""

    def __init__(self, decode_head, auxiliary_head, refine_step, num_prompt,
                 unet_params, test_cfg, ddconfig=None):
        super().__init__()
        from mmseg.registry import MODELS
        sd_model = nn.Module()
        sd_model.model = DiffusionWrapper(unet_params)
        sd_model.first_stage_model = ldm.LdmAutoencoderKL(ddconfig,
                                                          decoder=False)
        self.refine_step = refine_step
        self.num_prompt = num_prompt
        text_dim = unet_params['context_dim']
        time_dim = 4 * unet_params['model_channels']
        for i in range(self.refine_step):
            if i > 0:
                cross_unet_conv = sd_model.model.diffusion_model.out
                setattr(self, f'cross_unet_conv{i + 1}', cross_unet_conv)
            t = nn.Parameter(torch.randn(1, time_dim), requires_grad=True)
            setattr(self, f't{i + 1}', t)
        self.meta_prompts = nn.Parameter(torch.randn(num_prompt, text_dim),
                                         requires_grad=True)
        self.encoder_vq = sd_model.first_stage_model
        self.unet = UNetWrapper(sd_model.model)
        self.sd_model = _schedule(nn.Module())
        ldm_dim = [unet_params['model_channels'] * m
                   for m in unet_params['channel_mult']]
        for i in range(len(ldm_dim)):
            upconv = nn.ModuleList([
                nn.Conv2d(ldm_dim[i], text_dim, 3, 1, 1),
                nn.GroupNorm(16, text_dim),
                nn.ReLU()])
            setattr(self, f'upconv{i + 1}', upconv)
        self.up = nn.Upsample(scale_factor=2, mode='bilinear',
                              align_corners=False)
        self.decode_head = MODELS.build(decode_head)
        self.auxiliary_head = MODELS.build(auxiliary_head)
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.decode_head.num_classes
        self.test_cfg = test_cfg

    def extract_feat(self, img):
        with torch.no_grad():
            latents = self.encoder_vq.encode(img).mode().detach()
        latents, c_crossattn = _refine(
            self, latents, img.shape[0],
            lambda i, _: self.meta_prompts[None, :, :].expand(
                img.shape[0], -1, -1))
        outs = []
        for i in range(4):
            upconv = getattr(self, f'upconv{i + 1}')
            feat = latents[i]
            feat = self.up(feat)
            for j in upconv:
                feat = j(feat)
            feat = torch.einsum('bchw,bnc->bnhw', feat, c_crossattn)
            outs.append(feat)
        return outs

    def encode_decode(self, img):
        x = self.extract_feat(img)
        out = self.decode_head(x)
        return F.interpolate(out, size=img.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)

    def slide_inference(self, img, ori_shape):
        """model.py:220-263 with ``rescale=True``."""
        h_stride, w_stride = self.test_cfg['stride']
        h_crop, w_crop = self.test_cfg['crop_size']
        batch_size, _, h_img, w_img = img.size()
        num_classes = self.num_classes
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        preds = img.new_zeros((batch_size, num_classes, h_img, w_img))
        count_mat = img.new_zeros((batch_size, 1, h_img, w_img))
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y1 = h_idx * h_stride
                x1 = w_idx * w_stride
                y2 = min(y1 + h_crop, h_img)
                x2 = min(x1 + w_crop, w_img)
                y1 = max(y2 - h_crop, 0)
                x1 = max(x2 - w_crop, 0)
                crop_img = img[:, :, y1:y2, x1:x2]
                crop_seg_logit = self.encode_decode(crop_img)
                preds += F.pad(crop_seg_logit,
                               (int(x1), int(preds.shape[3] - x2), int(y1),
                                int(preds.shape[2] - y2)))
                count_mat[:, :, y1:y2, x1:x2] += 1
        assert (count_mat == 0).sum() == 0
        preds = preds / count_mat
        return F.interpolate(preds, size=ori_shape, mode='bilinear',
                             align_corners=self.align_corners)


class Decoder(nn.Module):
    """depth/models_depth/model.py:153-225 (``up`` unused, no weights)."""

    def __init__(self, in_channels, out_channels, num_deconv, num_filters,
                 deconv_kernels):
        super().__init__()
        self.deconv = num_deconv
        self.in_channels = in_channels
        layers = []
        in_planes = self.in_channels
        for i in range(num_deconv):
            kernel = deconv_kernels[i]
            padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[
                kernel]
            planes = num_filters[i]
            layers.append(nn.ConvTranspose2d(
                in_planes, planes, kernel, stride=2, padding=padding,
                output_padding=output_padding, bias=False))
            layers.append(nn.BatchNorm2d(planes))
            layers.append(nn.ReLU(inplace=True))
            in_planes = planes
        self.deconv_layers = nn.Sequential(*layers)
        self.conv_layers = nn.Sequential(
            nn.Conv2d(num_filters[-1], out_channels, 3, 1, 1),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, conv_feats):
        out = self.deconv_layers(conv_feats[0])
        return self.conv_layers(out)


class MetaPromptDepthEncoder(nn.Module):
    """depth/models_depth/model.py:18-108 (``share_meta_prompts=False``)."""

    def __init__(self, refine_step, num_prompt, unet_params, ddconfig=None):
        super().__init__()
        text_dim = unet_params['context_dim']
        ldm_prior = [unet_params['model_channels'] * m
                     for m in unet_params['channel_mult']]
        self.layer1 = nn.Sequential(
            nn.Conv2d(ldm_prior[0], ldm_prior[0], 3, stride=1, padding=1),
            nn.GroupNorm(16, ldm_prior[0]),
            nn.ReLU())
        self.layer2 = Decoder(ldm_prior[1], ldm_prior[1], 1, [32], [4])
        self.layer3 = Decoder(ldm_prior[2], ldm_prior[2], 2, [32, 32], [4, 4])
        self.layer4 = Decoder(ldm_prior[3], ldm_prior[3], 3, [32, 32, 32],
                              [4, 4, 4])
        self.out_layer = nn.Sequential(
            nn.Conv2d(sum(ldm_prior), text_dim, 3, 1, 1),
            nn.GroupNorm(16, text_dim),
            nn.ReLU())
        sd_model = nn.Module()
        sd_model.model = DiffusionWrapper(unet_params)
        sd_model.first_stage_model = ldm.LdmAutoencoderKL(ddconfig,
                                                          decoder=False)
        self.refine_step = refine_step
        self.num_prompt = num_prompt
        time_dim = 4 * unet_params['model_channels']
        for i in range(self.refine_step):
            if i > 0:
                cross_unet_conv = sd_model.model.diffusion_model.out
                setattr(self, f'cross_unet_conv{i + 1}', cross_unet_conv)
            t = nn.Parameter(torch.randn(1, time_dim), requires_grad=True)
            setattr(self, f't{i + 1}', t)
            meta_prompts = nn.Parameter(torch.randn(num_prompt, text_dim),
                                        requires_grad=True)
            setattr(self, f'meta_prompts{i + 1}', meta_prompts)
            setattr(self, f'text_adapter{i + 1}', TextAdapterDepth(text_dim))
        self.encoder_vq = sd_model.first_stage_model
        self.unet = UNetWrapper(sd_model.model)
        del self.unet.unet.diffusion_model.time_embed
        for param in self.encoder_vq.parameters():
            param.requires_grad = False

    def forward(self, x):
        with torch.no_grad():
            latents = self.encoder_vq.encode(x).mode()
            latents = latents.detach()

        def prompts_of(i, latents):
            meta_prompts = getattr(self, f'meta_prompts{i + 1}')
            text_adapter = getattr(self, f'text_adapter{i + 1}')
            return text_adapter(latents, meta_prompts)

        outs, c_crossattn = _refine(self, latents, x.shape[0], prompts_of)
        x = torch.cat([self.layer1(outs[0]), self.layer2([outs[1]]),
                       self.layer3([outs[2]]), self.layer4([outs[3]])], dim=1)
        out = self.out_layer(x)
        return torch.einsum('bchw,bnc->bnhw', out, c_crossattn)


class MetaPromptDepthSource(nn.Module):
    """depth/models_depth/model.py:110-150 ``MetaPromptDepth``; ``args``:
    max_depth, resize_scale, refine_step, num_deconv, num_filters,
    deconv_kernels (``embed_dim`` is 192 there; a test may narrow it)."""

    def __init__(self, args, unet_params, num_prompt=50, embed_dim=192,
                 ddconfig=None):
        super().__init__()
        self.max_depth = args['max_depth']
        channels_out = embed_dim
        self.resize_scale = args['resize_scale']
        self.encoder = MetaPromptDepthEncoder(args['refine_step'], num_prompt,
                                              unet_params, ddconfig)
        self.decoder = Decoder(num_prompt, channels_out, args['num_deconv'],
                               args['num_filters'], args['deconv_kernels'])
        self.last_layer_depth = nn.Sequential(
            nn.Conv2d(channels_out, channels_out, kernel_size=3, stride=1,
                      padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(channels_out, 1, kernel_size=3, stride=1, padding=1))

    def forward(self, x):
        b, c, h, w = x.shape
        x = x * 2.0 - 1.0  # normalize to [-1, 1]
        res_shape = ((h // 64 + self.resize_scale) * 64,
                     (w // 64 + self.resize_scale) * 64)
        x = F.interpolate(x, size=res_shape, mode='bilinear',
                          align_corners=False)
        conv_feats = self.encoder(x)
        conv_feats = F.interpolate(conv_feats, size=(h // 8, w // 8),
                                   mode='bilinear', align_corners=False)
        out = self.decoder([conv_feats])
        out = self.last_layer_depth(out)
        out_depth = torch.sigmoid(out) * self.max_depth
        return {'pred_d': out_depth}


def shift_flip_test(model, input_rgb, shift_size):
    """depth/test.py:100-127 with ``--shift_window_test --flip_test``."""
    bs, _, h, w = input_rgb.shape
    assert w > h and bs == 1
    interval_all = w - h
    interval = interval_all // (shift_size - 1)
    sliding_images = []
    sliding_masks = torch.zeros((bs, 1, h, w), device=input_rgb.device)
    for i in range(shift_size):
        sliding_images.append(input_rgb[..., :, i * interval:i * interval + h])
        sliding_masks[..., :, i * interval:i * interval + h] += 1
    input_rgb = torch.cat(sliding_images, dim=0)
    input_rgb = torch.cat((input_rgb, torch.flip(input_rgb, [3])), dim=0)
    pred_d = model(input_rgb)['pred_d']
    batch_s = pred_d.shape[0] // 2
    pred_d = (pred_d[:batch_s] + torch.flip(pred_d[batch_s:], [3])) / 2.0
    pred_s = torch.zeros((bs, 1, h, w), device=pred_d.device)
    for i in range(shift_size):
        pred_s[..., :, i * interval:i * interval + h] += pred_d[i:i + 1]
    return pred_s / sliding_masks


def train_lr(global_step, iterations, epochs, max_lr, min_lr):
    """depth/train.py:206-217: the lr of step ``global_step`` (from 1)."""
    half_epoch = epochs // 2
    if global_step < iterations * half_epoch:
        current_lr = (max_lr - min_lr) * (
            global_step / iterations / half_epoch)**0.9 + min_lr
    else:
        current_lr = max(min_lr, (min_lr - max_lr) * (
            global_step / iterations / half_epoch - 1)**0.9 + max_lr)
    return current_lr


def ldm_optimizer_groups(model, base_lr, weight_decay, no_decay_names=()):
    """depth/models_depth/optimizer.py:49-91: ``{name: (lr, weight
    decay)}`` of every trainable parameter (``named_parameters`` lists a
    shared parameter once, under its first name)."""
    out = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen weights
        if len(param.shape) == 1 or name.endswith('.bias') or name in (
                'absolute_pos_embed'):
            this_weight_decay = 0.
        else:
            this_weight_decay = weight_decay
            for nd_name in no_decay_names:
                if nd_name in name:
                    this_weight_decay = 0.
                    break
        if 'unet' in name or 'cond_stage_model' in name:
            scale = 0.01
        else:
            scale = 1.0
        out[name] = (scale * base_lr, this_weight_decay)
    return out
