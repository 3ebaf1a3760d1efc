"""Per-environment random streams for batched simulators.

Every environment of a batch owns its own :class:`numpy.random.Generator`, so a batched env
with seeds ``[s0, ..., sB-1]`` produces exactly what ``B`` single envs with those seeds produce.
The only loop over environments in the whole package lives here: one vectorised numpy draw per
environment, stacked into a ``(B, *shape)`` tensor. Everything downstream is batched tensor code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class BatchedRNG:
    """``B`` independent numpy generators that draw stacked ``(B, *shape)`` tensors.

    :param generators: one generator per environment.
    :param device: torch device of the returned tensors.
    """

    def __init__(
        self, generators: Sequence[np.random.Generator], device: torch.device | str = "cpu"
    ):
        if len(generators) == 0:
            raise ValueError("BatchedRNG needs at least one generator")
        self.generators = list(generators)
        self.device = torch.device(device)

    @classmethod
    def from_seeds(
        cls, seeds: Sequence[int | None], device: torch.device | str = "cpu"
    ) -> BatchedRNG:
        return cls([np.random.default_rng(s) for s in seeds], device)

    def __len__(self) -> int:
        return len(self.generators)

    def subset(self, index: Sequence[int]) -> BatchedRNG:
        """The generators of the environments in ``index`` (shared, not copied)."""
        return BatchedRNG([self.generators[i] for i in index], self.device)

    def draw(
        self, fn: Callable[[np.random.Generator], np.ndarray], dtype=torch.float32
    ) -> torch.Tensor:
        """Stack ``fn(generator)`` over environments into a ``(B, ...)`` tensor."""
        out = np.stack([np.asarray(fn(g)) for g in self.generators])
        return torch.as_tensor(out, dtype=dtype, device=self.device)

    def fill(
        self,
        fn: Callable[[np.random.Generator, np.ndarray], object],
        shape: tuple[int, ...],
        dtype: type = np.float32,
    ) -> torch.Tensor:
        """``(B, *shape)`` tensor whose row ``i`` is written in place by ``fn(generator_i, row)``.

        For generator methods that take ``out=`` (``random``, ``standard_normal``, ...): large
        draws skip the per-environment temporaries and the stacking copy of :meth:`draw`.
        """
        out = np.empty((len(self.generators), *shape), dtype=dtype)
        for g, row in zip(self.generators, out):
            fn(g, row)
        return torch.from_numpy(out).to(self.device)

    def normal(self, *shape: int) -> torch.Tensor:
        return self.draw(lambda g: g.standard_normal(shape))

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return self.draw(lambda g: g.uniform(low, high, shape))

    def laplace(self, *shape: int) -> torch.Tensor:
        return self.draw(lambda g: g.laplace(0.0, 1.0, shape))

    def gumbel(self, *shape: int) -> torch.Tensor:
        return self.draw(lambda g: g.gumbel(0.0, 1.0, shape))

    def gamma(self, shape_param: float, *shape: int) -> torch.Tensor:
        return self.draw(lambda g: g.gamma(shape_param, 1.0, shape))

    def beta(self, a: float, b: float, *shape: int) -> torch.Tensor:
        return self.draw(lambda g: g.beta(a, b, shape))

    def poisson(self, lam: torch.Tensor) -> torch.Tensor:
        """Poisson counts with per-environment rates ``lam`` of shape ``(B, ...)``."""
        rates = lam.detach().cpu().double().numpy()
        out = np.stack([g.poisson(r) for g, r in zip(self.generators, rates, strict=True)])
        return torch.as_tensor(out, dtype=torch.float32, device=self.device)

    def permutation(self, n: int) -> torch.Tensor:
        return self.draw(lambda g: g.permutation(n), dtype=torch.long)

    def integers(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return self.draw(lambda g: g.integers(low, high, shape), dtype=torch.long)
