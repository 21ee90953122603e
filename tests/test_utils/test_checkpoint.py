"""mmengine's own checkpoints load weights-only; arbitrary pickles do not."""
import os
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner
from torch.utils.data import Dataset

import mmdiff  # noqa: F401  (registers the allow-list on import)


class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(torch.stack(inputs)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels)) ** 2).mean())
        return out


class _ToyData(Dataset):
    metainfo = dict(classes=('a', 'b'), palette=[[1, 2, 3], [4, 5, 6]])

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(2, generator=g), labels=torch.tensor(1.))


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('toy')
    runner = Runner(
        model=_ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=_ToyData(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1,
                              by_epoch=False, begin=0, end=2),
                         dict(type='PolyLR', by_epoch=False, begin=2, end=4)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4,
                                           by_epoch=False)),
        randomness=dict(seed=0), cfg=dict(note='toy'))
    runner.train()
    return str(work_dir / 'iter_4.pth')


def test_mmengine_checkpoint_loads_weights_only(mmengine_checkpoint):
    # Without the allow-list, torch >= 2.6 refuses mmengine's own file.
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(mmengine_checkpoint, weights_only=True)
    finally:
        torch.serialization.add_safe_globals(allowed)
    ckpt = torch.load(mmengine_checkpoint, weights_only=True)
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.statistics('mean') == pytest.approx(float(buf.data[0].mean()))
    assert ckpt['meta']['iter'] == 4
    # mmengine's own loader (used by --resume / load_from) goes through too.
    loaded = CheckpointLoader.load_checkpoint(mmengine_checkpoint, 'cpu')
    assert torch.equal(loaded['state_dict']['fc.weight'],
                       ckpt['state_dict']['fc.weight'])


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('echo should-never-run',))


class _AbusesGetattr:
    """Asks the unpickler for an attribute other than a statistics method."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _Arbitrary:
    pass


@pytest.mark.parametrize('payload', [_RunsCode(), _AbusesGetattr(),
                                     _Arbitrary()])
def test_arbitrary_pickles_still_refused(tmp_path, payload):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
