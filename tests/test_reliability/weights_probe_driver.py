"""Run the weight-integrity probes of issue 24 (items 2, 7, 9, 10) in one
process.

    python weights_probe_driver.py WORK_DIR

Writes under ``WORK_DIR`` the files the probes read: checkpoints of the
demo segmentor (good, one NaN U-Net weight, an overflowing head), a
DiffusionPretrainer export (``export_diffusers``) and damaged copies of it,
single ``pretrained=`` files (truncated, hostile pickle) and a NaN
``unet_weights=`` file; serves two different checkpoints under one file
name at two URLs (a local ``http.server``). Then it runs
``tools/test.py`` / ``tools/train.py`` / ``publish_model.py`` once per
probe in this process (as ``probe_driver.py`` does) and prints one line
per probe, ``PROBE {"probe", "outcome", "message", ...}``, which
``test_weight_integrity.py`` checks.
"""
import functools
import http.server
import json
import os
import os.path as osp
import runpy
import shutil
import sys
import threading

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
import probe_driver as pd  # noqa: E402 (tests/test_reliability)

PUBLISH = osp.join(pd.REPO, 'tools', 'model_converters', 'publish_model.py')
NAN_KEY = 'backbone.unet.conv_in.weight'
HUGE_KEY = 'decode_head.conv_seg.weight'


def segmentor_checkpoints(work: str) -> dict:
    """The demo segmentor's weights: good, NaN in one U-Net tensor, and a
    finite head that overflows (its predictions are NaN/inf)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import mmdiff.models  # noqa: F401
    init_default_scope('mmseg')
    torch.manual_seed(0)
    state = MODELS.build(Config.fromfile(pd.SEG_CFG).model).state_dict()
    out = {}
    for name in ('good', 'nan', 'huge'):
        s = {k: v.clone() for k, v in state.items()}
        if name == 'nan':
            s[NAN_KEY].view(-1)[0] = float('nan')
        elif name == 'huge':  # finite, but the logits overflow
            s[HUGE_KEY].fill_(3e38)
        out[name] = osp.join(work, 'ckpt', name, 'model.pth')
        os.makedirs(osp.dirname(out[name]))
        torch.save({'state_dict': s, 'meta': {}}, out[name])
    return out


def exports(work: str) -> dict:
    """``export_diffusers`` of a tiny DiffusionPretrainer (the demos' U-Net
    and VAE), good and with one NaN U-Net weight, and damaged copies."""
    import torch
    from safetensors.torch import save_file
    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    from mmdiff.models.pretrainers import DiffusionPretrainer
    from mmdiff.models.pretrainers.export import export_diffusers
    torch.manual_seed(0)
    model = DiffusionPretrainer(unet_cfg=tiny_unet_cfg(),
                                vae_cfg=tiny_vae_cfg())
    model.init_weights()
    e = osp.join(work, 'exports')
    out = {'good': export_diffusers(model, osp.join(e, 'good'))}
    unet = osp.join('unet', 'diffusion_pytorch_model.safetensors')
    for name in ('flipped', 'truncated', 'evil_bin', 'no_weights'):
        out[name] = osp.join(e, name)
        shutil.copytree(out['good'], out[name])
    raw = open(osp.join(out['good'], unet), 'rb').read()
    flipped = bytearray(raw)
    flipped[-100] ^= 0x01  # in the last tensor's data: still loads
    open(osp.join(out['flipped'], unet), 'wb').write(bytes(flipped))
    open(osp.join(out['truncated'], unet), 'wb').write(raw[:len(raw) // 2])
    # a plain diffusers folder (no export record) whose U-Net is a .bin
    os.remove(osp.join(out['evil_bin'], unet))
    os.remove(osp.join(out['evil_bin'], 'mmdiff_pretrain.json'))
    torch.save(dict(model.unet.state_dict(), x=pd.Evil(MARKER[0])),
               osp.join(out['evil_bin'], 'unet',
                        'diffusion_pytorch_model.bin'))
    os.remove(osp.join(out['no_weights'], unet))  # and no .bin either
    with torch.no_grad():
        model.unet.conv_in.weight.view(-1)[0] = float('nan')
    out['nan'] = export_diffusers(model, osp.join(e, 'nan'))
    out['unet_nan'] = osp.join(e, 'unet_nan.safetensors')
    save_file(model.unet.state_dict(), out['unet_nan'])
    return out


def single_files(work: str, ckpt: dict) -> dict:
    """``pretrained=`` single files: truncated, and a hostile pickle."""
    import torch
    s = osp.join(work, 'single')
    os.makedirs(s)
    raw = open(ckpt['good'], 'rb').read()
    out = {'truncated': osp.join(s, 'sd_truncated.ckpt'),
           'evil': osp.join(s, 'sd_evil.ckpt')}
    open(out['truncated'], 'wb').write(raw[:len(raw) * 2 // 3])
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'x': pd.Evil(MARKER[0])},
               out['evil'])
    return out


MARKER = ['']


def serve(folder: str) -> str:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=folder)
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{server.server_address[1]}'


def publish(src: str, out: str) -> dict:
    """publish_model.py's ``publish`` (its main prints, exits 1 on errors);
    the message is the published path."""
    tool = runpy.run_path(PUBLISH, run_name='publish_model')
    try:
        return dict(outcome='ok', message=tool['publish'](src, out))
    except BaseException as e:  # noqa: B902 - report every outcome
        return dict(outcome=type(e).__name__, message=str(e))


def main() -> None:
    work = osp.abspath(sys.argv[1])
    os.makedirs(work, exist_ok=True)
    os.chdir(work)  # data/demo/vae (the demo VAE) lands here
    os.environ['TORCH_HOME'] = osp.join(work, 'torch_home')
    import torch
    torch.set_num_threads(1)
    from mmdiff.datasets.demo_data import ensure_demo_data
    from mmdiff.utils.fileio import sha256_file
    MARKER[0] = osp.join(work, 'PWNED')
    seg = ensure_demo_data('seg', osp.join(work, 'data', 'demo'), pd.N_TRAIN,
                           pd.N_VAL, pd.SIZE)
    cfg = pd.seg_config(work, 'seg', seg)
    ckpt = segmentor_checkpoints(work)
    exp = exports(work)
    single = single_files(work, ckpt)

    # two different checkpoints, one file name, two URLs
    srv = osp.join(work, 'srv')
    for sub, src in (('a', ckpt['good']), ('b', ckpt['nan'])):
        os.makedirs(osp.join(srv, sub))
        shutil.copy(src, osp.join(srv, sub, 'model.pth'))
    hashed = f'model-{sha256_file(ckpt["good"])[:8]}.pth'
    os.makedirs(osp.join(srv, 'h'))
    shutil.copy(ckpt['good'], osp.join(srv, 'h', hashed))
    url = serve(srv)

    wd = osp.join(work, 'work_dirs')

    def test(name, checkpoint):
        return (name, pd.TEST, [cfg, checkpoint, '--work-dir',
                                osp.join(wd, name), '--cfg-options',
                                'test_dataloader.batch_size=1'])

    def train(name, option):
        return (name, pd.TRAIN, [cfg, '--work-dir', osp.join(wd, name),
                                 '--cfg-options', *pd.TRAIN_OPTS, option])

    unet = osp.join('unet', 'diffusion_pytorch_model.safetensors')
    probes = [test('url_a_test', f'{url}/a/model.pth'),
              test('url_b_test', f'{url}/b/model.pth'),
              test('nan_ckpt_test', ckpt['nan']),
              test('huge_ckpt_test', ckpt['huge']),
              train('unet_weights_nan_train',
                    f'model.backbone.unet_weights={exp["unet_nan"]}'),
              train('unet_weights_flipped_train', 'model.backbone.'
                    f'unet_weights={osp.join(exp["flipped"], unet)}')]
    for name, value in (
            ('single_truncated', single['truncated']),
            ('single_evil', single['evil']),
            ('missing', osp.join(work, 'no_such_folder')),
            ('folder_ok', exp['good']), ('folder_flipped', exp['flipped']),
            ('folder_truncated', exp['truncated']),
            ('folder_evil_bin', exp['evil_bin']),
            ('folder_no_weights', exp['no_weights']),
            ('folder_nan', exp['nan'])):
        probes.append(train(f'pretrained_{name}_train',
                            f'model.backbone.pretrained={value}'))
    for name, tool, argv in probes:
        env_key = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
        if 'evil' in name:
            os.environ[env_key] = '1'
        result = pd.run_tool(tool, argv)
        os.environ.pop(env_key, None)
        result.update(probe=name, marker=osp.exists(MARKER[0]))
        print('PROBE ' + json.dumps(result), flush=True)

    # publish_model.py on the two URLs, then on a hash-named URL whose
    # cached copy was damaged
    for name, src in (('publish_a', f'{url}/a/model.pth'),
                      ('publish_b', f'{url}/b/model.pth'),
                      ('publish_hashed', f'{url}/h/{hashed}')):
        result = publish(src, osp.join(work, 'published', name + '.pth'))
        print('PROBE ' + json.dumps(dict(result, probe=name)), flush=True)
    for root, _, names in os.walk(os.environ['TORCH_HOME']):
        for n in names:
            if n == hashed:
                with open(osp.join(root, n), 'r+b') as f:
                    f.seek(100)
                    byte = f.read(1)
                    f.seek(100)
                    f.write(bytes([byte[0] ^ 1]))
    result = publish(f'{url}/h/{hashed}',
                     osp.join(work, 'published', 'again.pth'))
    print('PROBE ' + json.dumps(dict(result, probe='publish_hashed_again')),
          flush=True)
    print('PROBE ' + json.dumps(dict(
        probe='sources', outcome='ok', message='', good=sha256_file(
            ckpt['good']), nan=sha256_file(ckpt['nan']))), flush=True)


if __name__ == '__main__':
    main()
