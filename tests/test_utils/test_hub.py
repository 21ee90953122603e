"""mmdiff.utils.hub: one rule for what is a hub id (diffusion weights and
text encoders alike)."""
import pytest

from mmdiff.models.diffusion.loading import source_kind
from mmdiff.models.text.encoder import locate_text_encoder
from mmdiff.utils.hub import is_hub_id


def test_hub_ids_and_paths(tmp_path, monkeypatch):
    for hub in ('stable-diffusion-v1-5/stable-diffusion-v1-5',
                'openai/clip-vit-large-patch14', 'org_1/model.v2'):
        assert is_hub_id(hub), hub
    for path in ('./sd15', '../ckpt/x', 'sd15', '/abs/x', '~/x/y',
                 '-a/b', 'a/b.', 'a/b/c', 'a//b'):
        assert not is_hub_id(path), path
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'org' / 'model').mkdir(parents=True)
    assert not is_hub_id('org/model')  # an existing folder is a folder


def test_loaders_share_the_rule(tmp_path):
    """A relative path that does not exist is reported as missing by both
    loaders, never looked up on the hub (``./sd15`` once matched the
    U-Net loader's hub pattern)."""
    with pytest.raises(FileNotFoundError):
        source_kind('./sd15')
    with pytest.raises(OSError, match='no such folder'):
        locate_text_encoder('./clip', local_files_only=True)
    assert source_kind('stable-diffusion-v1-5/stable-diffusion-v1-5') == 'hub'
