"""Class embeddings cached on disk, keyed by everything that shapes them.

The backbone builds ``class_embeddings=dict(class_names=..., text_encoder=
...)`` through :func:`get_or_build_class_embeddings`: the first build runs
the text encoder and writes ``<cache_dir>/<key>.safetensors``; later builds
load that file without loading the encoder.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from mmdiff.utils.digest import tensors_sha256
from .embedding import (FORMAT, append_mean_row, check_output,
                        compute_class_embeddings)
from .embedding_file import load_class_embeddings, save_class_embeddings
from .encoder import encoder_identity, locate_text_encoder
from .prompts import NameSpec, resolve_class_names, resolve_templates


def default_cache_dir() -> str:
    """``$MMDIFF_CACHE/class_embeddings``, else
    ``~/.cache/mmdiff/class_embeddings``."""
    root = os.environ.get('MMDIFF_CACHE') or osp.join('~', '.cache', 'mmdiff')
    return osp.join(osp.expanduser(root), 'class_embeddings')


def load_cached(file: str, key: str,
                num_classes: int) -> Tuple[Optional[Tensor], Optional[str]]:
    """``(embeddings, None)`` from the cache file ``file`` when it serves
    ``key``, else ``(None, why)``: unreadable, another key, wrong shape,
    non-finite values or a checksum mismatch."""
    try:
        embeddings, meta = load_class_embeddings(file)
    except Exception as e:  # truncated, overwritten, not safetensors
        return None, f'unreadable: {e}'
    if meta.get('cache_key') != key:
        return None, 'written for other classes, templates or encoder'
    if embeddings.shape[0] != num_classes:
        return None, f'{embeddings.shape[0]} rows for {num_classes} classes'
    if not torch.isfinite(embeddings).all():
        return None, 'non-finite values'
    digest = meta.get('sha256')  # files of mmdiff <= 0.x have none
    if digest is not None and digest != tensors_sha256([embeddings]):
        return None, 'its values do not match the sha256 stored with them'
    return embeddings, None


def get_or_build_class_embeddings(
        class_names: NameSpec,
        text_encoder: Union[str, os.PathLike],
        templates: NameSpec = 'vpd',
        output: str = 'pooled',
        cache_dir: Optional[str] = None,
        local_files_only: bool = False,
        max_length: int = 77,
        mean_row: bool = False,
        text_encoder_subfolder: Optional[str] = None,
        **kwargs) -> Tensor:
    """:func:`compute_class_embeddings`, cached on disk.

    The cache key is the sha256 of the class names, templates, output,
    max_length, ``normalize``/``underscore_to_space`` and the encoder's
    identity (sha256 of a local folder's weight/tokenizer files, or hub id +
    commit + subfolder: another ``text_encoder_subfolder`` is another
    entry). A hit loads the file without loading the text encoder.

    Args:
        cache_dir (str, optional): defaults to :func:`default_cache_dir`.
        mean_row (bool): append the mean row (:func:`append_mean_row`)
            after loading/building. Defaults to False.
        text_encoder_subfolder (str, optional): the encoder's subfolder in
            a pipeline (SD3's T5: ``'text_encoder_3'``), see
            :func:`compute_class_embeddings`. Defaults to None.
        **kwargs: passed to :func:`compute_class_embeddings` (``device``,
            ``batch_size``, ``progress``, ``normalize``,
            ``underscore_to_space``, ``revision``).
    """
    from mmengine.logging import print_log
    check_output(output)
    names = resolve_class_names(class_names)
    tmpls = resolve_templates(templates)
    loc = locate_text_encoder(text_encoder, kwargs.get('revision'),
                              local_files_only, text_encoder_subfolder)
    key_src = dict(
        format=FORMAT, classes=names, templates=tmpls, output=output,
        max_length=max_length, normalize=kwargs.get('normalize', False),
        underscore_to_space=kwargs.get('underscore_to_space', True),
        model_identity=encoder_identity(loc))
    key = hashlib.sha256(
        json.dumps(key_src, sort_keys=True).encode()).hexdigest()
    file = osp.join(cache_dir or default_cache_dir(),
                    f'{key[:24]}.safetensors')
    if osp.isfile(file):
        embeddings, problem = load_cached(file, key, len(names))
        if problem is None:
            print_log(f'Class embeddings: cache hit {file}', logger='current')
            return append_mean_row(embeddings) if mean_row else embeddings
        print_log(f'Class embeddings: the cache file {file} cannot be used '
                  f'({problem}); rebuilding it.', logger='current',
                  level=30)
    where = f'{text_encoder}' + (f' ({loc["model_sub"]})'
                                 if loc['model_sub'] else '')
    print_log(f'Class embeddings: building {len(names)} classes x '
              f'{len(tmpls)} templates with {where} -> {file}',
              logger='current')
    embeddings, meta = compute_class_embeddings(
        names, text_encoder, tmpls, output=output, max_length=max_length,
        local_files_only=local_files_only, return_metadata=True,
        text_encoder_subfolder=text_encoder_subfolder, **kwargs)
    meta['cache_key'] = key
    meta['sha256'] = tensors_sha256([embeddings])
    save_class_embeddings(file, embeddings, meta)
    return append_mean_row(embeddings) if mean_row else embeddings
