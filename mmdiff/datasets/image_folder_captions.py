"""Captions of an image folder, in the two layouts trainers read.

* Hugging Face ``imagefolder`` (what diffusers' ``train_text_to_image.py``
  loads): a ``metadata.jsonl`` file, one JSON object a line with
  ``file_name`` (relative to the folder holding that ``metadata.jsonl``) and
  a caption column (``text`` by default, diffusers' ``--caption_column``).
  Any folder under ``data_root`` may hold one.
* Sidecar text files (kohya / DreamBooth): ``photo_01.txt`` beside
  ``photo_01.png``, its whole content (stripped) the caption.

:func:`read_captions` returns ``{image path: caption}``; bad input (broken
JSON, a row without ``file_name`` or without the caption column, a
``file_name`` that names no image found, the same image twice, the two
sources disagreeing on an image) is an error naming the file and the fix.
"""
import json
import os
import os.path as osp
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

METADATA_FILE = 'metadata.jsonl'
#: Where captions are read from.
CAPTION_SOURCES = ('auto', 'metadata', 'txt')


def walk_once(root: str, recursive: bool = True,
              repeated: Optional[list] = None
              ) -> Iterator[Tuple[str, List[str]]]:
    """``(folder, sorted file names)`` of every folder under ``root``,
    following links but visiting each real folder once (a link back up
    the tree, ``self -> .``, or a second link to a scanned folder adds
    nothing); hidden folders are skipped. The skipped links are appended to
    ``repeated`` when given."""
    seen = {osp.realpath(root)}
    for dirpath, dirnames, names in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames) if recursive else []:
            if d.startswith('.'):
                continue
            real = osp.realpath(osp.join(dirpath, d))
            if real in seen:
                if repeated is not None:
                    repeated.append(osp.join(dirpath, d))
                continue
            seen.add(real)
            keep.append(d)
        dirnames[:] = keep
        yield dirpath, sorted(names)


def _metadata_files(root: str) -> list:
    return [osp.join(dirpath, METADATA_FILE)
            for dirpath, names in walk_once(root) if METADATA_FILE in names]


def read_text(path: str) -> str:
    """A caption file's text: UTF-8 (a byte-order mark is dropped); other
    encodings raise an error naming the file and how to convert it."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise ValueError(
            f'{path}: not UTF-8 text (byte {data[e.start]:#04x} at offset '
            f'{e.start}); captions are read as UTF-8. Fix: re-save the file '
            'as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8 && '
            'mv FILE.utf8 FILE` (use its real encoding for latin1: cp1252, '
            'shift_jis, ...).') from None


def read_metadata_captions(root: str, images: Iterable[str],
                           column: str = 'text') -> Dict[str, str]:
    """Captions from every ``metadata.jsonl`` under ``root``.

    Args:
        root (str): The data set folder.
        images (Iterable[str]): Every image file found (paths under
            ``root``), including those skipped as undecodable.
        column (str): The caption column. Defaults to 'text'.

    Returns:
        dict: ``{normalised image path: caption}``.
    """
    known = {osp.normpath(p) for p in images}
    out: Dict[str, str] = {}
    for meta in _metadata_files(root):
        folder = osp.dirname(meta)
        unknown = []
        for num, line in enumerate(
                read_text(meta).replace('\r\n', '\n').split('\n'), 1):
            if not line.strip():
                continue
            where = f'{meta}, line {num}'
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f'{where}: not valid JSON ({e.msg}). Fix: one JSON '
                    'object per line, e.g. {"file_name": "0001.png", '
                    f'"{column}": "a photo of ..."}}.') from e
            if not isinstance(row, dict) or 'file_name' not in row:
                raise ValueError(
                    f'{where}: no "file_name" (the image path, '
                    f'relative to {folder}). Fix: add it to each row.')
            if column not in row:
                keys = sorted(row)
                raise ValueError(
                    f'{where}: no caption column {column!r} (columns: '
                    f'{keys}). Fix: set caption_column to the column '
                    'holding the captions (diffusers\' --caption_column).')
            caption = row[column]
            if not isinstance(caption, str):
                raise ValueError(
                    f'{where}: caption {column!r} must be a string, got '
                    f'{type(caption).__name__} ({caption!r}).')
            path = osp.normpath(osp.join(folder, row['file_name']))
            if path not in known:
                unknown.append(row['file_name'])
                continue
            if path in out:
                raise ValueError(
                    f'{where}: {row["file_name"]!r} has a caption '
                    'already (listed twice in the metadata.jsonl files '
                    f'under {root}). Fix: keep one row per image.')
            out[path] = caption.strip()
        if unknown:
            raise ValueError(
                f'{meta}: {len(unknown)} file_name(s) name no image found '
                f'under {folder}: {unknown[:5]}'
                f'{" ..." if len(unknown) > 5 else ""}. Fix: file_name is '
                'relative to the folder holding metadata.jsonl; remove the '
                'rows of images that are gone (or check extensions=).')
    return out


def read_txt_captions(images: Iterable[str]) -> Dict[str, str]:
    """Captions from ``<image stem>.txt`` files beside the images."""
    out = {}
    for path in images:
        txt = osp.splitext(path)[0] + '.txt'
        if osp.isfile(txt):
            out[osp.normpath(path)] = read_text(txt).strip()
    return out


def read_captions(root: str, images: Sequence[str], source: str = 'auto',
                  column: str = 'text') -> Dict[str, str]:
    """``{image path: caption}`` from ``metadata.jsonl`` and/or ``.txt``.

    Args:
        root (str): The data set folder.
        images (Sequence[str]): Every image file found under ``root``.
        source (str): ``'metadata'``, ``'txt'`` or ``'auto'`` (both; an
            image captioned by both must have the same caption).
            Defaults to 'auto'.
        column (str): The ``metadata.jsonl`` caption column. Defaults to
            'text'.

    Returns:
        dict: Keys are ``os.path.normpath`` of the image paths.
    """
    if source not in CAPTION_SOURCES:
        raise ValueError(f'captions must be one of {list(CAPTION_SOURCES)} '
                         f'or None, got {source!r}.')
    meta = read_metadata_captions(root, images, column) if source in (
        'auto', 'metadata') else {}
    txt = read_txt_captions(images) if source in ('auto', 'txt') else {}
    clash = sorted(p for p in meta.keys() & txt.keys() if meta[p] != txt[p])
    if clash:
        raise ValueError(
            f'{len(clash)} image(s) have different captions in '
            f'{METADATA_FILE} and in their .txt file, e.g. {clash[0]}: '
            f'{meta[clash[0]]!r} vs {txt[clash[0]]!r}. Fix: keep one source '
            "(captions='metadata' or 'txt') or make them agree.")
    return {**txt, **meta}
