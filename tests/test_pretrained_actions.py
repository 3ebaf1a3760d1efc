"""Every shipped policy loads and acts as recorded in ``tests/data/shipped_policy_actions.npz``.

The recording holds, per policy, three fixed observations (``history (3, N, d, 2)``, ``mask
(3, N)``: all rows, half the rows and three rows valid) and the actions the policy took on them,
deterministic and stochastic (after ``torch.manual_seed(0)``), made with the code of the commit
before the deprecated module aliases were removed (older zips name ``caasl_agent.policy``; they
load through :data:`caasl_agent.serialization.RENAMED_MODULES`). The module moves of issue 24
kept the actions bit-identical; the faster attention kernels of issue 30 (eade49e: the softmax's
division after the value product) reorder float32 operations, which moves actions by at most
1.2e-7, so actions must agree to :data:`ATOL`. A shipped zip re-saved, a rename that misses a
class, or a change of the policy's arithmetic beyond rounding fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from caasl_agent.pretrained import available_policies, load_policy

RECORDING = Path(__file__).parent / "data" / "shipped_policy_actions.npz"
#: float32 rounding of reordered kernels (measured: 1.2e-7); a changed weight moves far more
ATOL = 1e-6


def _recorded() -> dict[str, dict[str, np.ndarray]]:
    with np.load(RECORDING) as npz:
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in npz.files:
            name, _, field = key.partition("/")
            out.setdefault(name, {})[field] = npz[key]
    return out


RECORDED = _recorded()


def test_the_recorded_policies_are_still_shipped():
    assert len(RECORDED) >= 5 and set(RECORDED) <= set(available_policies())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_shipped_policy_acts_as_recorded(name):
    rec = RECORDED[name]
    policy = load_policy(name)
    obs = {"history": rec["history"], "mask": rec["mask"]}
    action, _ = policy.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, rec["deterministic"], rtol=0, atol=ATOL)
    torch.manual_seed(0)
    action, _ = policy.predict(obs, deterministic=False)
    np.testing.assert_allclose(action, rec["stochastic"], rtol=0, atol=ATOL)


def test_plain_loading_reads_a_zip_saved_under_renamed_modules():
    """``trust_pickles=True`` (SB3's own unpickling) finds the renamed policy class too."""
    from caasl_agent import CAASL
    from caasl_agent.pretrained import policy_path
    from caasl_agent.serialization import renamed_classes

    name = "caasl-linear-cpu-quick-v0"  # saved when the policies lived in caasl_agent.policy
    assert set(renamed_classes(policy_path(name))) == {"policy_class"}
    policy = CAASL.load(policy_path(name), device="cpu", trust_pickles=True)
    rec = RECORDED[name]
    action, _ = policy.predict({"history": rec["history"], "mask": rec["mask"]}, deterministic=True)
    np.testing.assert_allclose(action, rec["deterministic"], rtol=0, atol=ATOL)
