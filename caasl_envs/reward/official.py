"""Import official AVICI checkpoints (JAX/Haiku pickles) into :class:`AVICIModel`, safely.

An official checkpoint is a folder with ``kwargs.json`` and one ``checkpoint_*.pkl``. The pickle
holds the ``ModelState`` namedtuple pickled positionally, ``(step, rng, opt_state, params, dual,
dual_penalty_polyak, ave_params)``; we read field 3, ``params``, a Haiku dict
``{module: {param: ndarray}}`` with linear weights stored ``[in, out]``.

The pickle is read with :class:`RestrictedUnpickler`: numpy array reconstruction is the only
code it may call; every other global (the ``ModelState`` and optax classes, but equally
``os.system`` in a malicious file) becomes an inert stub that records its arguments and does
nothing, so loading a checkpoint never executes code from the file.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caasl_envs.optional import require
from caasl_envs.reward.avici import AVICIModel

HUGGINGFACE_REPO = "larslorch/avici"
OFFICIAL_MODELS = {
    "neurips-linear": False,
    "neurips-rff": False,
    "neurips-grn": True,
    "scm-v0": False,
}
"""Published checkpoints on the Hugging Face hub and whether each expects count data."""

_MODEL_STATE_FIELDS = 7
_PARAMS_FIELD = 3

_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class InertStub:
    """Stand-in for any class or function a checkpoint names: stores its arguments, runs nothing."""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        self.state = state


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction; all other globals become stubs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_ALLOWED:
            # numpy 2 moved numpy.core to numpy._core; pickles written by numpy 1 name the old path
            if module.startswith("numpy.core"):
                module = module.replace("numpy.core", "numpy._core", 1)
            target = np
            for part in module.split(".")[1:]:
                target = getattr(target, part)
            return getattr(target, name)
        return type(name, (InertStub,), {"__module__": f"stub:{module}"})


def restricted_load(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`."""
    with open(path, "rb") as handle:
        return RestrictedUnpickler(handle).load()


def _check_supported(model_kwargs: dict, inference_kwargs: dict) -> None:
    required = {
        "cosine_sim": True,
        "relational_encoder": False,
        "attn_only_d": False,
        "attn_only_n": False,
        "n_mixtures": 1,
        "ln_axis": -1,
    }
    for key, expected in required.items():
        if key in model_kwargs and model_kwargs[key] != expected:
            raise ValueError(
                f"unsupported AVICI checkpoint option {key}={model_kwargs[key]!r} (only {expected!r})"
            )
    if inference_kwargs.get("bernoulli", "sigmoid") != "sigmoid":
        raise ValueError(
            f"unsupported AVICI checkpoint option bernoulli={inference_kwargs['bernoulli']!r}"
        )
    if inference_kwargs.get("mixture_k", 1) != 1:
        raise ValueError(
            f"unsupported AVICI checkpoint option mixture_k={inference_kwargs['mixture_k']!r}"
        )


def _haiku_name(prefix: str, index: int) -> str:
    return f"BaseModel/{prefix}" if index == 0 else f"BaseModel/{prefix}_{index}"


def haiku_to_state_dict(params: dict, layers: int) -> dict[str, torch.Tensor]:
    """Map official Haiku parameter names to :class:`AVICIModel` state-dict keys (float64 tensors).

    :param params: ``{module: {param: ndarray}}`` from the checkpoint.
    :param layers: ``layers`` of the model (``2 * layers`` blocks).
    """
    n_blocks = 2 * layers

    def get(module: str, param: str) -> torch.Tensor:
        try:
            value = params[module][param]
        except (KeyError, TypeError) as err:
            raise ValueError(f"checkpoint is missing parameter {module}/{param}") from err
        return torch.from_numpy(np.asarray(value, dtype=np.float64).copy())

    state: dict[str, torch.Tensor] = {}

    def linear(key: str, module: str) -> None:
        state[f"{key}.weight"] = get(module, "w").T.contiguous()
        state[f"{key}.bias"] = get(module, "b")

    def norm(key: str, module: str) -> None:
        state[f"{key}.weight"] = get(module, "scale")
        state[f"{key}.bias"] = get(module, "offset")

    linear("embedding", _haiku_name("linear", 0))
    for b in range(n_blocks):
        norm(f"blocks.{b}.ln_q", _haiku_name("layer_norm", 4 * b))
        norm(f"blocks.{b}.ln_k", _haiku_name("layer_norm", 4 * b + 1))
        norm(f"blocks.{b}.ln_v", _haiku_name("layer_norm", 4 * b + 2))
        mha = _haiku_name("multi_head_attention", b)
        for part in ("query", "key", "value", "linear"):
            linear(f"blocks.{b}.attention.{part}", f"{mha}/{part}")
        norm(f"blocks.{b}.ln_ff", _haiku_name("layer_norm", 4 * b + 3))
        linear(f"blocks.{b}.ff_in", _haiku_name("linear", 2 * b + 1))
        linear(f"blocks.{b}.ff_out", _haiku_name("linear", 2 * b + 2))
    norm("final_norm", _haiku_name("layer_norm", 4 * n_blocks))
    norm("u_norm", _haiku_name("layer_norm", 4 * n_blocks + 1))
    linear("u_head", _haiku_name("linear", 2 * n_blocks + 1))
    norm("v_norm", _haiku_name("layer_norm", 4 * n_blocks + 2))
    linear("v_head", _haiku_name("linear", 2 * n_blocks + 2))
    state["learned_temp"] = get("BaseModel", "learned_temp").reshape(())
    state["final_matrix_bias"] = get("BaseModel", "final_matrix_bias").reshape(())
    return state


def load_official_checkpoint(
    folder: str | Path, expects_counts: bool = False, dtype: torch.dtype = torch.float32
) -> AVICIModel:
    """An :class:`AVICIModel` (eval mode, CPU) with the weights of an official checkpoint folder.

    :param folder: folder with ``kwargs.json`` and exactly one ``checkpoint_*.pkl``.
    :param expects_counts: whether the model was trained on count data (not recorded in the
        checkpoint; ``True`` for ``neurips-grn``).
    :param dtype: parameter dtype (``torch.float64`` for exact comparisons).
    """
    folder = Path(folder)
    kwargs_file = folder / "kwargs.json"
    if not kwargs_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no kwargs.json: not an official AVICI checkpoint folder"
        )
    pickles = sorted(folder.glob("checkpoint_*.pkl"))
    if len(pickles) != 1:
        raise FileNotFoundError(
            f"{folder} must hold exactly one checkpoint_*.pkl, found {len(pickles)}"
        )
    config = json.loads(kwargs_file.read_text())
    net = config.get("neural_net_kwargs", {})
    if net.get("model_class", "BaseModel") != "BaseModel":
        raise ValueError(
            f"unsupported AVICI model class {net.get('model_class')!r} (only BaseModel)"
        )
    model_kwargs = net.get("model_kwargs", net)
    inference_kwargs = config.get("inference_model_kwargs", {})
    _check_supported(model_kwargs, inference_kwargs)

    model_state = restricted_load(pickles[0])
    fields = getattr(model_state, "args", None)
    if not isinstance(fields, tuple) or len(fields) != _MODEL_STATE_FIELDS:
        raise ValueError(f"{pickles[0].name} does not hold a 7-field AVICI ModelState")
    params = fields[_PARAMS_FIELD]
    if not isinstance(params, dict):
        raise ValueError(f"{pickles[0].name}: ModelState.params is not a parameter dict")

    model = AVICIModel(
        dim=int(model_kwargs["dim"]),
        layers=int(model_kwargs["layers"]),
        num_heads=int(model_kwargs["num_heads"]),
        key_size=int(model_kwargs["key_size"]),
        widening_factor=int(model_kwargs.get("widening_factor", 4)),
        dropout=float(model_kwargs.get("dropout", 0.0)),
        out_dim=model_kwargs.get("out_dim"),
        mask_diag=bool(inference_kwargs.get("mask_diag", True)),
        expects_counts=expects_counts,
    )
    state = haiku_to_state_dict(params, model.config["layers"])
    model.load_state_dict(state)
    return model.to(dtype).eval()


def load_official_avici(name: str, expects_counts: bool | None = None, **hub_kwargs) -> AVICIModel:
    """Download (or read from the Hugging Face cache) an official AVICI checkpoint and import it.

    :param name: one of :data:`OFFICIAL_MODELS`.
    :param expects_counts: override the known setting for ``name``.
    :param hub_kwargs: passed to ``huggingface_hub.hf_hub_download`` (e.g. ``local_files_only=True``).
    """
    if name not in OFFICIAL_MODELS:
        raise ValueError(
            f"unknown official AVICI model {name!r}; expected one of {sorted(OFFICIAL_MODELS)}"
        )
    hf_hub_download = require("huggingface_hub", purpose="load_official_avici").hf_hub_download
    kwargs_path = hf_hub_download(HUGGINGFACE_REPO, f"{name}/kwargs.json", **hub_kwargs)
    hf_hub_download(HUGGINGFACE_REPO, f"{name}/checkpoint_0300000.pkl", **hub_kwargs)
    counts = OFFICIAL_MODELS[name] if expects_counts is None else expects_counts
    return load_official_checkpoint(Path(kwargs_path).parent, expects_counts=counts)
