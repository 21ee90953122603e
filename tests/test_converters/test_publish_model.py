"""tools/model_converters/publish_model.py: strip training state, hash name."""
import hashlib
import os
import os.path as osp

import numpy as np
import torch

TOOL = osp.join(osp.dirname(__file__), '..', '..', 'tools',
                'model_converters', 'publish_model.py')


def test_publish_strips_and_names_by_hash(tmp_path, capsys, load_tool):
    from mmengine.logging import HistoryBuffer
    hub = HistoryBuffer()
    hub.update(np.float64(0.5))
    src = tmp_path / 'iter_100.pth'
    torch.save(dict(
        state_dict={'backbone.w': torch.arange(4.)},
        meta=dict(iter=100, mmdiff_version='0.1.0'),
        optimizer=dict(state={}, param_groups=[dict(lr=1e-4)]),
        message_hub=dict(log_scalars={'loss': hub}),
        param_schedulers=[dict(last_step=100)]), src)
    out_dir = tmp_path / 'publish'
    assert load_tool(TOOL).main([str(src), str(out_dir / 'vpd_tiny.pth')]) == 0
    files = os.listdir(out_dir)
    assert len(files) == 1, files  # no temporary file left behind
    name = files[0]
    assert name.startswith('vpd_tiny-') and name.endswith('.pth')
    data = (out_dir / name).read_bytes()
    assert name[len('vpd_tiny-'):-len('.pth')] == \
        hashlib.sha256(data).hexdigest()[:8]
    ckpt = torch.load(out_dir / name, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert torch.equal(ckpt['state_dict']['backbone.w'], torch.arange(4.))
    out = capsys.readouterr().out
    assert 'message_hub, optimizer, param_schedulers' in out
