"""caasl_envs.histories: the one history/observation check and the space helpers."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from caasl_envs.histories import (
    batched_observation,
    check_history,
    history_space_dims,
    observation_space,
)


def test_batched_observation_accepts_arrays_and_tensors_batched_or_not():
    history = np.arange(2 * 3 * 4 * 2, dtype=np.float64).reshape(2, 3, 4, 2)
    mask = np.ones((2, 3))
    h, m, single = batched_observation({"history": torch.as_tensor(history), "mask": mask})
    assert h.dtype == m.dtype == np.float32 and h.shape == (2, 3, 4, 2) and not single
    np.testing.assert_array_equal(h, history)
    h, m, single = batched_observation({"history": history[0], "mask": mask[0]})
    assert single and h.shape == (1, 3, 4, 2) and m.shape == (1, 3)


@pytest.mark.parametrize(
    "observation, message",
    [
        ({"history": np.zeros((3, 4, 2))}, "keys 'history' and 'mask'"),
        ({"history": np.zeros((3, 4, 3)), "mask": np.ones(3)}, "history must have shape"),
        ({"history": np.zeros((3, 4, 2)), "mask": np.ones(2)}, "does not match"),
        ({"history": np.full((3, 4, 2), np.inf), "mask": np.ones(3)}, "NaN or inf"),
    ],
)
def test_batched_observation_names_the_problem(observation, message):
    with pytest.raises(ValueError, match=message):
        batched_observation(observation)


def test_check_history():
    check_history(torch.zeros(2, 3, 4, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least d=2"):
        check_history(torch.zeros(2, 3, 1, 2))
    check_history(torch.zeros(2, 3, 1, 2), min_d=1)
    with pytest.raises(ValueError, match="mask must have shape"):
        check_history(torch.zeros(2, 3, 4, 2), torch.ones(2, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_history(np.zeros((2, 3, 4, 2)))


def test_observation_space_round_trip_and_foreign_spaces():
    assert history_space_dims(observation_space(60, 10)) == (60, 10)
    with pytest.raises(ValueError, match="keys 'history' and 'mask'"):
        history_space_dims(spaces.Box(0, 1, (3,)))
    bad = spaces.Dict({"history": spaces.Box(0, 1, (5, 3, 2)), "mask": spaces.Box(0, 1, (4,))})
    with pytest.raises(ValueError, match=r"shape \(N, d, 2\)"):
        history_space_dims(bad)
