"""The optimizer constructor's per-parameter lines become one line each."""
import logging

import torch
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from mmdiff.utils.quiet_logs import OptimizerLogSummary


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_paramwise_and_frozen_lines_summarised():
    model = torch.nn.ModuleDict(dict(
        vae=torch.nn.Linear(4, 4), unet=torch.nn.Linear(4, 4),
        head=torch.nn.Conv2d(4, 2, 1)))
    model.vae.requires_grad_(False)
    logger = MMLogger.get_instance('mmdiff_quiet_logs_test')
    records = _Records()
    logger.addHandler(records)
    summary = OptimizerLogSummary()
    logger.addFilter(summary)
    try:
        DefaultOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01)),
            dict(custom_keys={'unet': dict(lr_mult=0.1)}))(model)
    finally:
        logger.removeFilter(summary)
    lines = summary.lines()
    for line in lines:
        logger.info(line)
    # mmengine would have said: 2 unet tensors x (lr, weight_decay, lr_mult)
    # and 2 frozen vae tensors
    assert not [m for m in records.messages if 'paramwise_options --' in m]
    assert not [m for m in records.messages if 'is skipped since' in m]
    assert len(lines) == 2
    assert lines[0].startswith('paramwise_options: 2 parameters')
    assert 'lr_mult=0.1 x2' in lines[0]
    assert lines[1].startswith('requires_grad=False: 2 frozen tensors')
    assert '(vae.weight x1, vae.bias x1)' in lines[1]  # first 2 name parts
    assert records.messages[-2:] == lines
