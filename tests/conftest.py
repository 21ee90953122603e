"""Fixtures shared by every test folder."""
import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    """One intra-op thread for a module: on a shared 2-core machine OpenMP
    threads oversubscribed by parallel jobs make tiny CPU steps ~40x slower
    (converters: 31 s instead of 130 s under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
