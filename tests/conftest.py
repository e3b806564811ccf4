import os

import numpy as np
import pytest
import torch

os.environ.setdefault("SPOT_EDGE_TESTING", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
