"""mmdiff.apis.host_checks finds a host model's parts one way."""
from torch import nn

from mmdiff.apis import CLASS_HEAD_PATHS, READER_PATHS, host_part


class _Part(nn.Module):

    def __init__(self, **attrs):
        super().__init__()
        for key, value in attrs.items():
            setattr(self, key, value)


def _has_in_channels(part):
    return hasattr(part, 'in_channels')


def _scores_classes(part):
    return isinstance(getattr(part, 'num_classes', None), int)


def test_reader_is_the_first_neck_else_the_decode_head():
    model = nn.Module()
    model.decode_head = _Part(in_channels=[4, 8], num_classes=3)
    assert host_part(model, READER_PATHS, _has_in_channels) == (
        'decode_head', model.decode_head)
    first, second = _Part(in_channels=[4, 8]), _Part(in_channels=[16])
    model.neck = nn.Sequential(first, second)  # chained necks
    assert host_part(model, READER_PATHS, _has_in_channels) == (
        'neck', first)
    model.neck = nn.Sequential()  # nothing there: the head reads
    assert host_part(model, READER_PATHS, _has_in_channels)[0] == \
        'decode_head'


def test_class_head_of_one_and_two_stage_detectors():
    one = nn.Module()
    one.bbox_head = _Part(num_classes=80)
    assert host_part(one, CLASS_HEAD_PATHS, _scores_classes) == (
        'bbox_head', one.bbox_head)
    cascade = nn.Module()
    cascade.roi_head = nn.Module()
    stages = [_Part(num_classes=80) for _ in range(3)]
    cascade.roi_head.bbox_head = nn.ModuleList(stages)
    cascade.rpn_head = _Part(num_classes=1)  # not a class head
    assert host_part(cascade, CLASS_HEAD_PATHS, _scores_classes) == (
        'roi_head.bbox_head', stages[0])
    wrapped = nn.Module()
    wrapped.module = one  # DDP-style wrapper
    assert host_part(wrapped, CLASS_HEAD_PATHS, _scores_classes)[1] is \
        one.bbox_head
    assert host_part(nn.Module(), CLASS_HEAD_PATHS, _scores_classes) is None
