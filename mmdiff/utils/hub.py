"""Hugging Face hub ids, recognised the same way by every loader.

A value that is not an existing local path is taken for a hub id when it
reads ``org/name``, both parts starting and ending with a letter, digit or
``_`` (``-`` and ``.`` inside), as ``huggingface_hub`` names repositories.
So ``./sd15``, ``../ckpt/x`` or ``sd15`` are reported as missing folders,
never looked up on the hub.
"""
import os.path as osp
import re

#: ``org/name``, as ``stable-diffusion-v1-5/stable-diffusion-v1-5``.
HUB_ID = re.compile(r'^\w(?:[\w.-]*\w)?/\w(?:[\w.-]*\w)?$')


def is_hub_id(value) -> bool:
    """Whether ``value`` is an ``org/name`` hub id and not a local path."""
    text = str(value)
    return bool(HUB_ID.match(text)) and not osp.exists(osp.expanduser(text))
