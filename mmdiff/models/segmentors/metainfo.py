"""mmseg's EncoderDecoder passing each image's metainfo to the backbone, for
conditioners that read it (e.g. ``CaptionPrompts``: the image's path)."""
import contextlib
from typing import List, Optional

from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor

from mmdiff.registry import MODELS


@MODELS.register_module()
class MetainfoEncoderDecoder(EncoderDecoder):
    """:class:`EncoderDecoder` whose backbone is called as
    ``backbone(inputs, metainfo=[img_meta, ...])`` (one dict per image,
    e.g. ``img_path``), in training, testing (whole and slide) and tensor
    mode; the backbone's conditioner reads what it needs."""

    _metas: Optional[List[dict]] = None

    @contextlib.contextmanager
    def _metainfo(self, data_samples):
        self._metas = [s.metainfo for s in data_samples] \
            if data_samples else None
        try:
            yield
        finally:
            self._metas = None

    def extract_feat(self, inputs: Tensor,
                     batch_img_metas: Optional[List[dict]] = None
                     ) -> List[Tensor]:
        """Backbone (given the images' metainfo) and neck features."""
        metas = batch_img_metas if batch_img_metas is not None \
            else self._metas
        x = self.backbone(inputs, metainfo=metas)
        return self.neck(x) if self.with_neck else x

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        x = self.extract_feat(inputs, batch_img_metas)
        return self.decode_head.predict(x, batch_img_metas, self.test_cfg)

    def loss(self, inputs, data_samples):
        with self._metainfo(data_samples):
            return super().loss(inputs, data_samples)

    def _forward(self, inputs, data_samples=None):
        with self._metainfo(data_samples):
            return super()._forward(inputs, data_samples)
