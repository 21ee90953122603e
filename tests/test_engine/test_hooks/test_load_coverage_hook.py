"""``load_from`` / ``--checkpoint`` that leaves model tensors unloaded.

mmengine's runner loads them non-strictly; ``mmdiff.LoadCoverageHook`` (in
the reference configs' ``custom_hooks``) says once which tensors stay at
their initial values, per part with counts and first names, and refuses
the load with ``strict_load=True`` (nothing copied into the model).
"""
import pytest
import torch
from mmengine.config import Config
from torch import nn


def _toy_runner(work_dir, load_from, **cfg):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    import mmdiff.engine  # noqa: F401  (registers the hooks)

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8))
            self.decode_head = nn.Linear(8, 3)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.decode_head(self.backbone(torch.stack(inputs)))

    return Runner(
        model=Toy(), work_dir=str(work_dir), load_from=load_from,
        custom_hooks=[dict(type='mmdiff.LoadCoverageHook')],
        default_scope='mmengine', cfg=Config(cfg))


def _checkpoint(path):
    """A checkpoint whose head is wider (3 -> 5 classes) and that lacks one
    backbone tensor, saved from DDP (``module.`` prefix)."""
    state = {'backbone.0.weight': torch.ones(8, 4),
             'backbone.0.bias': torch.ones(8),
             'backbone.1.weight': torch.ones(8, 8),
             'decode_head.weight': torch.ones(5, 8),
             'decode_head.bias': torch.ones(5)}
    torch.save({'state_dict': {'module.' + k: v for k, v in state.items()},
                'meta': {}}, path)
    return str(path)


def test_unloaded_tensors_are_reported_once(tmp_path, capsys):
    runner = _toy_runner(tmp_path, _checkpoint(tmp_path / 'ckpt.pth'))
    runner.load_or_resume()  # what train() / test() / val() run first
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count('were NOT loaded') == 1
    assert '3 model tensors were NOT loaded' in text
    assert 'backbone: 1 of 4 [backbone.1.bias (absent)]' in text
    assert ('decode_head: 2 of 2 [decode_head.weight (checkpoint [5, 8], '
            'model [3, 8])') in text
    assert 'strict_load=True' in text  # how to make it an error
    # the loadable tensors were loaded (mmengine's non-strict load)
    assert torch.equal(runner.model.backbone[0].weight, torch.ones(8, 4))


def test_strict_load_refuses_before_loading(tmp_path):
    runner = _toy_runner(tmp_path, _checkpoint(tmp_path / 'ckpt.pth'),
                         strict_load=True)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r'decode_head: 2 of 2'):
        runner.load_or_resume()
    after = runner.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_complete_checkpoint_is_quiet(tmp_path, capsys):
    runner = _toy_runner(tmp_path, None, strict_load=True)
    path = tmp_path / 'full.pth'
    torch.save({'state_dict': runner.model.state_dict()}, path)
    runner._load_from = str(path)
    runner.load_or_resume()
    out = capsys.readouterr()
    assert 'NOT loaded' not in out.out + out.err
