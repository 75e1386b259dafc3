"""Fixtures shared by several test modules."""

import pytest
import torch

from diffusers_infoflow.metrics import locate_mnist


@pytest.fixture(scope="module")
def mnist_path():
    """The real MNIST .npz ($INFOFLOW_MNIST or ../shared/data/mnist.npz); the test is skipped without it."""
    try:
        return locate_mnist()
    except FileNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids the oversubscription stalls of a shared CPU (modules opt in
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
