"""model-index.yml and configs/*/metafile.yml: OpenMMLab layout, files exist.
"""
import glob
import os.path as osp
import re

import pytest
import yaml

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _load(path):
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _metafiles():
    return _load('model-index.yml')['Import']


def test_model_index_imports_every_metafile():
    imports = _metafiles()
    assert imports, 'model-index.yml imports nothing'
    for path in imports:
        assert osp.isfile(osp.join(ROOT, path)), path
    on_disk = {osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(ROOT, 'configs', '*', 'metafile.y*ml'))}
    assert on_disk == set(imports)


@pytest.mark.parametrize('metafile', _metafiles())
def test_metafile(metafile):
    meta = _load(metafile)
    collections = {c['Name'] for c in meta['Collections']}
    assert collections
    for collection in meta['Collections']:
        readme = collection.get('README')
        assert readme is None or osp.isfile(osp.join(ROOT, readme)), readme
    names = [m['Name'] for m in meta['Models']]
    assert len(names) == len(set(names)), 'duplicate model names'
    folder = osp.dirname(metafile)
    for model in meta['Models']:
        config = model['Config']
        assert osp.isfile(osp.join(ROOT, config)), config
        assert osp.dirname(config) == folder
        assert model['Name'] == osp.splitext(osp.basename(config))[0]
        assert model['In Collection'] in collections
        assert re.match(r'https?://', model['Weights'])
        assert model['Results']
        for result in model['Results']:
            assert result['Task'] and result['Dataset'] and result['Metrics']
            assert all(isinstance(v, (int, float))
                       for v in result['Metrics'].values())
            assert result['Reported By'].startswith('source')
        source = model.get('Converted From')
        if source is not None:
            assert source['Weights'] == model['Weights']
            assert source['Layout'] in (
                'vpd_seg', 'vpd_depth', 'mmseg_vpd', 'sd')
            tool = source['Command'].split()[1]
            assert osp.isfile(osp.join(ROOT, tool)), tool
