"""mmseg's EncoderDecoder that tells a caption backbone which images it
sees (their paths), so that it can look up their captions."""
from mmseg.models.segmentors import EncoderDecoder

from mmdiff.registry import MODELS


@MODELS.register_module()
class CaptionEncoderDecoder(EncoderDecoder):
    """:class:`EncoderDecoder` setting ``backbone.image_keys`` (the
    ``img_path`` of each image) from the data samples before every forward."""

    def _set_keys(self, data_samples) -> None:
        keys = None
        if data_samples:
            keys = [s.metainfo.get('img_path') for s in data_samples]
        self.backbone.image_keys = keys

    def loss(self, inputs, data_samples):
        self._set_keys(data_samples)
        return super().loss(inputs, data_samples)

    def predict(self, inputs, data_samples=None):
        self._set_keys(data_samples)
        return super().predict(inputs, data_samples)

    def _forward(self, inputs, data_samples=None):
        self._set_keys(data_samples)
        return super()._forward(inputs, data_samples)
