"""What gets encoded: class-name sets and prompt templates.

Class names come from a list, a text file, or a host data set's metainfo
(read from mmseg / mmdet, not copied); templates from a named set, a list or
a text file. :mod:`mmdiff.models.text.embedding` encodes them.
"""
import os
import os.path as osp
from importlib import import_module
from typing import Dict, List, Sequence, Tuple, Union

__all__ = [
    'CLASS_NAME_SETS', 'TEMPLATE_SETS', 'VPD_TEMPLATES', 'IMAGENET_TEMPLATES',
    'NameSpec', 'resolve_class_names', 'resolve_templates'
]

# Class-name sets, read from the host libraries' metainfo when asked for (no
# copies of the lists here): name -> (module, dataset class).
# 'nyu_scenes' are the 27 NYUv2 scene types VPD's depth model is conditioned
# on; mmseg keeps them as ``NYUDataset.METAINFO['classes']`` (spelling
# 'excercise_room' included), in the order of VPD's released embeddings.
CLASS_NAME_SETS: Dict[str, Tuple[str, str]] = {
    'ade20k': ('mmseg.datasets', 'ADE20KDataset'),
    'cityscapes': ('mmseg.datasets', 'CityscapesDataset'),
    'voc': ('mmseg.datasets', 'PascalVOCDataset'),
    'coco': ('mmdet.datasets', 'CocoDataset'),
    # 80 things then 53 stuff, mmdet's panoptic label order
    'coco_panoptic': ('mmdet.datasets', 'CocoPanopticDataset'),
    'nyu_scenes': ('mmseg.datasets', 'NYUDataset'),
}

# VPD's single template ("a photo of a [CLASS]", no full stop).
VPD_TEMPLATES: List[str] = ['a photo of a {}']

# The 80 ImageNet prompt templates of OpenAI CLIP
# (notebooks/Prompt_Engineering_for_ImageNet.ipynb), in their order.
IMAGENET_TEMPLATES: List[str] = [
    'a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.',
    'a photo of the hard to see {}.', 'a low resolution photo of the {}.',
    'a rendering of a {}.', 'graffiti of a {}.', 'a bad photo of the {}.',
    'a cropped photo of the {}.', 'a tattoo of a {}.', 'the embroidered {}.',
    'a photo of a hard to see {}.', 'a bright photo of a {}.',
    'a photo of a clean {}.', 'a photo of a dirty {}.',
    'a dark photo of the {}.', 'a drawing of a {}.', 'a photo of my {}.',
    'the plastic {}.', 'a photo of the cool {}.',
    'a close-up photo of a {}.', 'a black and white photo of the {}.',
    'a painting of the {}.', 'a painting of a {}.',
    'a pixelated photo of the {}.', 'a sculpture of the {}.',
    'a bright photo of the {}.', 'a cropped photo of a {}.',
    'a plastic {}.', 'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.', 'a blurry photo of the {}.',
    'a photo of the {}.', 'a good photo of the {}.',
    'a rendering of the {}.', 'a {} in a video game.', 'a photo of one {}.',
    'a doodle of a {}.', 'a close-up photo of the {}.', 'a photo of a {}.',
    'the origami {}.', 'the {} in a video game.', 'a sketch of a {}.',
    'a doodle of the {}.', 'a origami {}.',
    'a low resolution photo of a {}.', 'the toy {}.',
    'a rendition of the {}.', 'a photo of the clean {}.',
    'a photo of a large {}.', 'a rendition of a {}.',
    'a photo of a nice {}.', 'a photo of a weird {}.',
    'a blurry photo of a {}.', 'a cartoon {}.', 'art of a {}.',
    'a sketch of the {}.', 'a embroidered {}.',
    'a pixelated photo of a {}.', 'itap of the {}.',
    'a jpeg corrupted photo of the {}.', 'a good photo of a {}.',
    'a plushie {}.', 'a photo of the nice {}.', 'a photo of the small {}.',
    'a photo of the weird {}.', 'the cartoon {}.', 'art of the {}.',
    'a drawing of the {}.', 'a photo of the large {}.',
    'a black and white photo of a {}.', 'the plushie {}.',
    'a dark photo of a {}.', 'itap of a {}.', 'graffiti of the {}.',
    'a toy {}.', 'itap of my {}.', 'a photo of a cool {}.',
    'a photo of a small {}.', 'a tattoo of the {}.'
]

TEMPLATE_SETS: Dict[str, List[str]] = {
    'vpd': VPD_TEMPLATES,
    'imagenet80': IMAGENET_TEMPLATES,
}

NameSpec = Union[str, os.PathLike, Sequence[str]]


def _read_lines(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def resolve_class_names(spec: NameSpec) -> List[str]:
    """Class names from a list, a text file or a host dataset's metainfo.

    Args:
        spec (str | PathLike | Sequence[str]): a list of names; a path to a
            text file with one name per line (blank lines skipped); or the
            name of a set in :data:`CLASS_NAME_SETS` (``'ade20k'`` 150,
            ``'cityscapes'`` 19, ``'voc'`` 21, ``'coco'`` 80, ``'coco_panoptic'`` 133,
            ``'nyu_scenes'`` 27), read from mmseg's / mmdet's metainfo.

    Returns:
        list[str]: the class names, in order.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = os.fspath(spec)
        if spec in CLASS_NAME_SETS:
            module, cls = CLASS_NAME_SETS[spec]
            dataset = getattr(import_module(module), cls)
            names = list(dataset.METAINFO['classes'])
        elif osp.isfile(spec):
            names = _read_lines(spec)
        else:
            raise ValueError(
                f'Class names {spec!r} are neither a known set '
                f'({", ".join(sorted(CLASS_NAME_SETS))}) nor an existing '
                'text file (one name per line). Pass one of those, or a '
                'list of names.')
    else:
        names = list(spec)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(
            f'Class names must be a non-empty list of non-empty strings, '
            f'got {names!r}.')
    return [n.strip() for n in names]


def resolve_templates(spec: NameSpec = 'vpd') -> List[str]:
    """Prompt templates by set name (:data:`TEMPLATE_SETS`), list or file.

    Every template must contain exactly one ``{}`` (the class name).
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = os.fspath(spec)
        if spec in TEMPLATE_SETS:
            templates = list(TEMPLATE_SETS[spec])
        elif osp.isfile(spec):
            templates = _read_lines(spec)
        else:
            raise ValueError(
                f'Templates {spec!r} are neither a known set '
                f'({", ".join(sorted(TEMPLATE_SETS))}) nor an existing text '
                'file (one template with "{}" per line).')
    else:
        templates = list(spec)
    if not templates:
        raise ValueError('Templates must not be empty.')
    bad = [t for t in templates
           if not isinstance(t, str) or t.count('{}') != 1]
    if bad:
        raise ValueError(
            f'Each template needs exactly one "{{}}" for the class name; '
            f'these do not: {bad!r}.')
    return templates
