"""VPD's text adapter: a residual MLP with a small per-channel gate."""
import torch
from torch import Tensor, nn


class TextAdapter(nn.Module):
    """Refine text embeddings: ``out = x + gamma * fc(x)``.

    ``fc`` is ``Linear(d, d) -> GELU -> Linear(d, d)`` (PyTorch default init)
    and ``gamma`` a per-channel parameter initialised to ``gamma_init``, so
    the adapter starts as (almost) the identity.

    Args:
        dim (int): Embedding width ``d``.
        gamma_init (float): Initial value of every ``gamma`` entry.
            Defaults to 1e-4 (VPD).
    """

    def __init__(self, dim: int, gamma_init: float = 1e-4) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.gamma = nn.Parameter(torch.full((dim, ), float(gamma_init)))

    def forward(self, texts: Tensor) -> Tensor:
        """Apply the adapter.

        Args:
            texts (Tensor): Embeddings ``(..., d)``.

        Returns:
            Tensor: Same shape as ``texts``.
        """
        return texts + self.gamma * self.fc(texts)
