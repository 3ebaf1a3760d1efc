"""The knockout-contrast AVICI reward model (``caasl_envs.reward.knockout``)."""

import math

import pytest
import torch
from agent_toy_env import TINY_AVICI

from caasl_envs import load_reward_model
from caasl_envs.reward import AVICIModel, KnockoutAVICIModel
from caasl_envs.reward.knockout import (
    N_CONTRASTS,
    knockout_contrasts,
    load_avici,
    load_avici_part,
    log_normalised,
)

TINY = dict(TINY_AVICI, expects_counts=True)


def history(counts: list[list[float]], targets: list[list[int]]) -> torch.Tensor:
    """``(1, n, d, 2)`` float64 from per-cell counts and target flags."""
    return torch.stack([torch.tensor(counts), torch.tensor(targets, dtype=torch.float64)], -1)[
        None
    ].double()


def test_contrasts_compare_knockout_cells_with_wild_type_cells_by_hand():
    # 3 genes; 3 wild-type cells, 2 cells with gene 0 knocked out, 1 with genes 0 and 1.
    counts = [[5, 5, 10], [5, 5, 20], [5, 5, 30], [0, 9, 1], [0, 9, 3], [0, 0, 2]]
    targets = [[0, 0, 0]] * 3 + [[1, 0, 0]] * 2 + [[1, 1, 0]]
    x = history(counts, targets)
    f = knockout_contrasts(x, torch.ones(1, 6, dtype=torch.bool))[0]
    assert f.shape == (3, 3, N_CONTRASTS)
    e = log_normalised(x[..., 0])[0]
    wild, ko = e[:3, 2], e[3:, 2]  # gene 2 in the wild-type cells and in the knockouts of 0
    std = wild.std(unbiased=False)
    shift = (ko.mean() - wild.mean()) / std
    assert f[0, 2, 1].item() == pytest.approx(shift.clamp(-8, 8).item())
    assert f[0, 2, 0].item() == pytest.approx((shift / math.sqrt(1 / 3 + 1 / 3)).item())
    assert f[0, 2, 3].item() == pytest.approx(math.log1p(3))  # three knockout-of-0 cells
    assert f[0, 2, 4].item() == 1.0
    assert f[0, 2, 5].item() == pytest.approx(1 / 3)  # one of the three had another target
    # gene 1 against knockouts of 0: only the two cells where 1 was not a target
    assert f[0, 1, 3].item() == pytest.approx(math.log1p(2))
    # never knocked out (gene 2), and the diagonal: no comparison, all features 0
    assert torch.all(f[2] == 0) and torch.all(f[0, 0] == 0) and torch.all(f[1, 1] == 0)
    # gene 1 read 0 in no knockout cell: no change of its dropout rate
    assert f[0, 1, 2].item() == 0.0
    assert f[0, 2, 2].item() == 0.0 and f[1, 2, 3].item() == pytest.approx(math.log1p(1))


def test_padded_rows_change_nothing():
    torch.manual_seed(0)
    counts = torch.randint(0, 20, (2, 12, 4)).double()
    flags = (torch.rand(2, 12, 4) < 0.2).double()
    x = torch.stack([counts, flags], -1)
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 8:] = False
    padded = torch.cat([x, torch.rand(2, 3, 4, 2) * 50], 1)
    mask = torch.cat([valid, torch.zeros(2, 3, dtype=torch.bool)], 1)
    assert torch.allclose(knockout_contrasts(x, valid), knockout_contrasts(padded, mask))


def test_untrained_head_leaves_avici_as_it_is_and_files_round_trip(tmp_path):
    torch.manual_seed(1)
    plain = AVICIModel(**TINY).eval()
    model = KnockoutAVICIModel(contrast_hidden=4, **TINY)
    load_avici_part(model, plain, "plain")
    model.eval()
    x = torch.stack(
        [torch.randint(0, 30, (3, 10, 5)).float(), (torch.rand(3, 10, 5) < 0.3).float()], -1
    )
    assert torch.allclose(model.edge_probs(x), plain.edge_probs(x), atol=1e-6)
    with torch.no_grad():
        model.contrast[-1].bias.fill_(1.0)  # a head that says something
    path = model.save(tmp_path / "ko.pt")
    for loaded in (load_avici(path), load_reward_model(str(path))):
        assert isinstance(loaded, KnockoutAVICIModel) and loaded.config == model.config
        assert torch.allclose(loaded.edge_probs(x), model.edge_probs(x), atol=1e-6)
    assert not torch.allclose(model.edge_probs(x), plain.edge_probs(x), atol=1e-3)
    assert type(load_avici(plain.save(tmp_path / "plain.pt"))) is AVICIModel


def test_init_from_another_architecture_is_refused_by_name():
    model = KnockoutAVICIModel(contrast_hidden=4, **TINY)
    with pytest.raises(ValueError, match="other.pt has architecture"):
        load_avici_part(model, AVICIModel(**{**TINY, "dim": 16}), "other.pt")
    with pytest.raises(ValueError, match="contrast_hidden"):
        KnockoutAVICIModel(contrast_hidden=0, **TINY)


def test_trainer_builds_and_fine_tunes_the_contrast_model(tmp_path):
    from caasl_envs.reward.training.train_sergio import main

    plain = AVICIModel(**{**TINY, "dim": 64, "layers": 2, "num_heads": 4, "key_size": 16})
    init = plain.save(tmp_path / "plain.pt")
    tiny = ["--batch-size", "2", "--eval-datasets", "2", "--no-progress", "--device", "cpu"]
    main(
        ["--out", str(tmp_path / "run"), "--steps", "2", "--n-obs", "6", "--n-int", "2",
         "--cells-per-experiment", "3", "--contrast-hidden", "4", "--init", str(init),
         "--export", str(tmp_path / "out.pt"), *tiny]
    )  # fmt: skip
    trained = load_avici(tmp_path / "out.pt")
    assert isinstance(trained, KnockoutAVICIModel) and trained.config["contrast_hidden"] == 4
    # the AVICI part started from the init (two warm-up steps move it by ~lr / 100), the head
    # from zero, and both were trained
    assert not torch.equal(trained.u_head.weight, plain.u_head.weight)
    torch.testing.assert_close(trained.u_head.weight, plain.u_head.weight, rtol=0, atol=1e-3)
    assert trained.contrast[-1].weight.abs().sum() > 0
