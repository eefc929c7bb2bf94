"""Fixtures of the feature tests: a small raw (not normalised) store of 5 utterances, 3 speakers."""

import numpy as np
import pytest

from data_prep.features.store import write_store


def _raw_store(root, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    lengths = [7, 1, 30, 12, 4]
    utts = ["1001-1-0001", "1001-1-0002", "1002-7-0001", "1002-7-0002", "1003-2-0001"]
    speakers = [u.split("-")[0] for u in utts]
    feats = (rng.standard_normal((sum(lengths), dim)) * 3 + 1).astype(np.float16)
    return write_store(root, feats, utts, lengths, speakers, {"cmvn": "none"})


@pytest.fixture(scope="session")
def raw_store():
    """``raw_store(root, dim=5, seed=0)`` writes the store and returns it (a FeatureStore)."""
    return _raw_store
