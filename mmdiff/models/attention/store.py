"""A store of cross-attention maps, averaged over heads and layers."""
import math
from typing import Dict, Tuple

from torch import Tensor


class AttentionStore:
    """Accumulate cross-attention probabilities per query resolution.

    Processors call :meth:`add` with head-averaged probabilities of shape
    ``(B, Nq, K)``; the store keeps a running sum per ``Nq`` (one entry per
    resolution) and :meth:`maps` returns the layer mean as ``(B, K, h, w)``.

    Args:
        detach (bool): Store maps without gradient (the effect of VPD's
            released code, whose maps are stored under ldm's checkpointed,
            no_grad forward). Defaults to True.
    """

    def __init__(self, detach: bool = True) -> None:
        self.detach = detach
        self.active = False
        self.layer_tokens: Dict[str, int] = {}
        self._sums: Dict[int, Tensor] = {}
        self._counts: Dict[int, int] = {}

    def reset(self) -> None:
        """Drop the maps of the previous forward."""
        self._sums = {}
        self._counts = {}

    def add(self, name: str, probs: Tensor) -> None:
        """Record one layer's head-averaged probabilities.

        Args:
            name (str): The layer's processor name.
            probs (Tensor): Shape ``(B, Nq, K)``.
        """
        if not self.active:
            return
        if self.detach:
            probs = probs.detach()
        num_queries = probs.shape[1]
        self.layer_tokens[name] = num_queries
        if num_queries in self._sums:
            self._sums[num_queries] = self._sums[num_queries] + probs
            self._counts[num_queries] += 1
        else:
            self._sums[num_queries] = probs
            self._counts[num_queries] = 1

    def layer_downsamples(self, latent_hw: Tuple[int, int]
                          ) -> Dict[str, int]:
        """Downsampling (w.r.t. the latent) of every layer seen so far.

        Args:
            latent_hw (tuple[int, int]): Height and width of the U-Net input
                of the forward(s) that recorded the layers.

        Returns:
            dict[str, int]: Processor name -> ``d``.
        """
        return {name: downsample_of(num, latent_hw)
                for name, num in self.layer_tokens.items()}

    def maps(self, latent_hw: Tuple[int, int]) -> Dict[int, Tensor]:
        """Layer-averaged maps keyed by downsampling w.r.t. the latent.

        Args:
            latent_hw (tuple[int, int]): Height and width of the U-Net input.

        Returns:
            dict[int, Tensor]: ``downsample -> (B, K, H / d, W / d)``.
        """
        height, width = latent_hw
        out = {}
        for num_queries, total in self._sums.items():
            down = downsample_of(num_queries, latent_hw)
            mean = total / self._counts[num_queries]
            out[down] = mean.transpose(1, 2).reshape(
                mean.shape[0], mean.shape[2], height // down, width // down)
        return out


def downsample_of(num_queries: int, latent_hw: Tuple[int, int]) -> int:
    """The downsampling factor ``d`` with ``(H / d) * (W / d) == Nq``."""
    height, width = latent_hw
    down = int(round(math.sqrt(height * width / num_queries)))
    if (height // down) * (width // down) != num_queries:
        raise RuntimeError(f'{num_queries} queries do not tile a '
                           f'{height}x{width} latent')
    return down
