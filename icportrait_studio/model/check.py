"""Is this folder a usable local model? Answered from file names and JSON headers only (no torch).

Settings → Models calls ``validate_model_folder`` on the GUI thread, so it must be quick and must not
import torch: it reads ``config.json`` files and the JSON headers of ``.safetensors`` files (which
give every tensor's shape and dtype, hence an exact parameter count for the VRAM estimate).

Accepted layouts (all diffusers-style, like a Stable Diffusion 1.5 snapshot):

    unet/ vae/ text_encoder/ tokenizer/ scheduler/   required
    controlnet/                                       optional ControlNet branch
    iclight_sd15_fc.safetensors                       optional IC-Light offset (onto a 4-channel UNet)
    icportrait.json, model_index.json                 optional metadata
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from icportrait_studio.errors import ICPortraitError
from icportrait_studio.model.layout import layout_for_in_channels

ICLIGHT_OFFSET_NAMES = ("iclight_sd15_fc.safetensors", "iclight_sd15_fc.safetensors.safetensors")
META_FILE = "icportrait.json"

_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                      "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin",
                      "diffusion_pytorch_model.fp16.bin")
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.fp16.safetensors", "model.safetensors.index.json",
                         "pytorch_model.bin", "pytorch_model.fp16.bin")
_REQUIRED_MODELS = {"unet": _DIFFUSERS_WEIGHTS, "vae": _DIFFUSERS_WEIGHTS, "text_encoder": _TRANSFORMERS_WEIGHTS}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}

# Activations of an SD1.5-sized UNet at 1024² with SDPA and a tiled VAE, plus the CUDA context.
_ACTIVATIONS_GB_SD15_1024 = 2.0
_CUDA_CONTEXT_GB = 0.5
_SD15_UNET_PARAMS = 860e6


class ModelFolderError(ICPortraitError):
    """A model folder is missing, incomplete or not one this app can run; the message says what."""


@dataclass
class ModelCheck:
    """What Settings → Models shows for a folder: can it run, what is there, what is missing."""

    ok: bool
    present: list[str]
    missing: list[str]
    estimated_vram_gb: float
    message: str
    kind: str = "unknown"  # "icportrait" | "iclight" | "sd15" | "unknown"
    in_channels: int | None = None
    path: str = ""
    parameters: dict[str, int] = field(default_factory=dict)  # per component, where countable
    iclight_offset: str | None = None  # the offset file to merge on load, when there is one

    def to_dict(self) -> dict:
        return {"ok": self.ok, "present": self.present, "missing": self.missing,
                "estimated_vram_gb": self.estimated_vram_gb, "message": self.message, "kind": self.kind,
                "in_channels": self.in_channels, "path": self.path, "parameters": self.parameters,
                "iclight_offset": self.iclight_offset}


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (tensor name -> dtype, shape, offsets)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("file too short")
        (n,) = struct.unpack("<Q", raw)
        if n <= 0 or n > 100_000_000:
            raise ValueError("bad header length")
        header = json.loads(f.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _count_params(weight: Path) -> tuple[int, int]:
    """(parameters, bytes on disk) of a weights file; parameters estimated from size for pickles."""
    if weight.name.endswith(".index.json"):
        index = json.loads(weight.read_text(encoding="utf-8"))
        params = size = 0
        for shard in sorted(set(index.get("weight_map", {}).values())):
            p, s = _count_params(weight.parent / shard)
            params, size = params + p, size + s
        return params, size
    size = weight.stat().st_size
    if weight.suffix == ".safetensors":
        params = 0
        for info in safetensors_header(weight).values():
            count = 1
            for d in info.get("shape", []):
                count *= int(d)
            params += count
        return params, size
    return size // (2 if ".fp16." in weight.name else 4), size


def _read_json(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _config_int(config: dict | None, key: str, default: int, name: str, problems: list[str]) -> int:
    """A channel count from a component's config.json; a value that is not a positive whole number is a
    problem the check reports (a damaged or hand-edited config), and ``default`` stands in for it."""
    value = (config or {}).get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 4096:
        return value
    problems.append(f"{name}/config.json: {key} must be a positive whole number, not {value!r}")
    return default


def _check_model_dir(root: Path, name: str, weight_names: tuple[str, ...], missing: list[str],
                     params: dict[str, int]) -> dict | None:
    """Check one component folder; returns its config when present and readable."""
    sub = root / name
    if not sub.is_dir():
        missing.append(f"{name}/ (folder)")
        return None
    config: dict | None = None
    cfg = sub / "config.json"
    if not cfg.is_file():
        missing.append(f"{name}/config.json")
    else:
        try:
            config = _read_json(cfg)
        except (OSError, ValueError) as exc:
            missing.append(f"{name}/config.json (unreadable: {exc})")
    weight = next((sub / w for w in weight_names if (sub / w).is_file()), None)
    if weight is None:
        missing.append(f"{name} weights ({name}/{weight_names[0]})")
        return None
    try:
        params[name], _ = _count_params(weight)
    except (OSError, ValueError, struct.error) as exc:
        missing.append(f"{name}/{weight.name} (damaged: {exc})")
        return None
    return config


def _find_iclight(root: Path) -> Path | None:
    for name in ICLIGHT_OFFSET_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def validate_model_folder(path: str | Path) -> ModelCheck:
    """Check a local model folder without loading it; never raises for a bad folder."""
    root = Path(path).expanduser()
    if not root.exists():
        return ModelCheck(False, [], ["the folder itself"], 0.0, f"model folder {root} does not exist", path=str(root))
    if not root.is_dir():
        return ModelCheck(False, [], ["a folder"], 0.0, f"{root} is a file, not a model folder", path=str(root))
    missing: list[str] = []
    params: dict[str, int] = {}
    configs: dict[str, dict | None] = {}
    for name, weights in _REQUIRED_MODELS.items():
        configs[name] = _check_model_dir(root, name, weights, missing, params)
    tok = root / "tokenizer"
    if not ((tok / "tokenizer.json").is_file() or ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file())):
        missing.append("tokenizer (tokenizer/vocab.json + merges.txt, or tokenizer/tokenizer.json)")
    sched = root / "scheduler" / "scheduler_config.json"
    if not sched.is_file():
        missing.append("scheduler/scheduler_config.json")
    present = [n for n in ("unet", "vae", "text_encoder") if n in params]
    if not any(m.startswith("tokenizer") for m in missing):
        present.append("tokenizer")
    if sched.is_file():
        present.append("scheduler")
    if (root / "controlnet").is_dir():
        _check_model_dir(root, "controlnet", _DIFFUSERS_WEIGHTS, missing, params)
        if "controlnet" in params:
            present.append("controlnet")
    offset = _find_iclight(root)
    if offset is not None:
        present.append(f"IC-Light offset ({offset.name})")
        try:
            params["iclight_offset"] = _count_params(offset)[0]
        except (OSError, ValueError, struct.error) as exc:
            missing.append(f"{offset.name} (damaged: {exc})")

    in_channels: int | None = None
    kind = "unknown"
    unet_cfg = configs.get("unet")
    problems: list[str] = []
    latent = _config_int(configs.get("vae"), "latent_channels", 4, "vae", problems)
    if unet_cfg is not None:
        in_channels = _config_int(unet_cfg, "in_channels", 4, "unet", problems)
        layout = layout_for_in_channels(in_channels, latent)
        if layout is None:
            problems.append(f"unsupported UNet input width {in_channels} (expected {latent}, {2 * latent} or "
                            f"{3 * latent + 1} channels)")
        elif layout.name == "icportrait":
            kind = "icportrait"
        elif layout.name == "iclight-fc" or offset is not None:
            kind = "iclight"
        else:
            kind = "sd15"

    unet_params = params.get("unet", 0)
    weights_gb = sum(v for k, v in params.items() if k != "iclight_offset") * 2 / 1e9  # fp16 on the GPU
    activations = _ACTIVATIONS_GB_SD15_1024 * min(1.0, max(0.05, unet_params / _SD15_UNET_PARAMS))
    vram = round(weights_gb + activations + _CUDA_CONTEXT_GB, 1) if unet_params else 0.0

    ok = not missing and not problems
    if ok:
        what = {"icportrait": "IC-Portrait model", "iclight": "IC-Light (fc) model on an SD1.5 base",
                "sd15": "SD1.5 base model (reference channels untrained: refines the render like img2img)"}[kind]
        message = f"Ready: {what}, about {vram:.1f} GB of GPU memory at 1024²."
    else:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        message = f"Model folder {root} is incomplete: " + "; ".join(parts + problems) + "."
    return ModelCheck(ok=ok, present=present, missing=missing + problems, estimated_vram_gb=vram, message=message,
                      kind=kind, in_channels=in_channels, path=str(root), parameters=params,
                      iclight_offset=str(offset) if offset is not None and in_channels == latent else None)


def require_model_folder(path: str | Path) -> ModelCheck:
    """``validate_model_folder`` that raises ``ModelFolderError`` with its message when not usable."""
    check = validate_model_folder(path)
    if not check.ok:
        raise ModelFolderError(check.message)
    return check
