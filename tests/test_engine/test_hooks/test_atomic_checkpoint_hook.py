"""``save_best`` in a copied work dir: a new best replaces the copy's best
checkpoint, never the original dir's (mmengine restores the previous best as
the absolute path it was saved at, and deletes that file)."""
import os
import os.path as osp
import shutil

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mmdiff.engine  # noqa: F401  (registers the hooks)


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack(inputs)
        if mode == 'loss':
            return dict(loss=self.linear(x).pow(2).mean())
        return [dict(score=float(v)) for v in self.linear(x).flatten()]


class _Steps(BaseMetric):
    """A score that grows with every evaluation: each one is a new best."""
    calls = 0

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        type(self).calls += 1
        return dict(acc=float(type(self).calls))


def _runner(work_dir, max_iters, resume=False):
    data = [dict(inputs=torch.ones(2) * i) for i in range(4)]
    loader = dict(dataset=data, batch_size=2,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='pseudo_collate'))
    return Runner(
        model=_Toy(), work_dir=str(work_dir),
        train_dataloader=loader, val_dataloader=loader,
        val_evaluator=[_Steps()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=2),
        val_cfg=dict(),
        default_hooks=dict(checkpoint=dict(
            type='mmdiff.AtomicCheckpointHook', by_epoch=False, interval=2,
            save_best='acc', rule='greater')),
        log_processor=dict(by_epoch=False), resume=resume,
        default_scope='mmengine')


def test_new_best_in_a_copy_leaves_the_original_best(tmp_path):
    original, copy = tmp_path / 'wd', tmp_path / 'wd2'
    _runner(original, 2).train()
    best = [n for n in os.listdir(original) if n.startswith('best_acc')]
    assert best == ['best_acc_iter_2.pth']
    shutil.copytree(original, copy, symlinks=True)
    os.remove(copy / 'last_checkpoint')  # resume from the copy's own file
    (copy / 'last_checkpoint').write_text(str(copy / 'iter_2.pth'))
    runner = _runner(copy, 4, resume=True)
    runner.train()
    # the original dir keeps its best checkpoint; the copy replaced its own
    assert osp.isfile(original / 'best_acc_iter_2.pth')
    assert sorted(n for n in os.listdir(copy) if n.startswith('best_')) == [
        'best_acc_iter_4.pth']
    assert runner.message_hub.get_info('best_ckpt') == str(
        copy / 'best_acc_iter_4.pth')
