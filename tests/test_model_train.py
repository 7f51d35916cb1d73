"""Training: configs, the Stage-2 manifest loader and flow warp, a Stage-1 run that learns, exact resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from icportrait_studio.cli import main  # noqa: E402
from icportrait_studio.errors import InputError  # noqa: E402
from icportrait_studio.model.check import validate_model_folder  # noqa: E402
from icportrait_studio.model.data import PortraitFolderDataset, SynthPairsDataset, warp_by_flow  # noqa: E402
from icportrait_studio.model.tiny import save_tiny_model, synthetic_portraits  # noqa: E402
from icportrait_studio.model.train import TrainConfig, Trainer, latest_checkpoint, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIFT = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("base") / "sd15", seed=0, layout="base")


@pytest.fixture(scope="module")
def portraits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("portraits")
    synthetic_portraits(folder, n=8, size=40, seed=1)
    return folder


def _save_png(path: Path, img: np.ndarray) -> None:
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def synth_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `icportrait synth` output: the target is the reference moved SHIFT px right, a patch occluded."""
    root = tmp_path_factory.mktemp("synth")
    rng = np.random.default_rng(3)
    samples = []
    for i in range(4):
        ref = np.kron(rng.random((10, 10, 3)), np.ones((4, 4, 1))).astype(np.float32)  # 40x40 blocks
        target = np.zeros_like(ref)
        target[:, SHIFT:] = ref[:, :-SHIFT]
        flow = np.zeros((40, 40, 2), np.float16)
        flow[..., 0] = SHIFT
        flow[10:20, 10:20] = np.nan  # not visible in the target
        for name, img in (("ref", ref), ("tgt", target)):
            _save_png(root / f"{name}_{i}.png", img)
        np.save(root / f"flow_{i}.npy", flow)
        _save_png(root / f"mask_{i}.png", np.ones((40, 40)))
        key = "" if i % 2 == 0 else "_path"  # both spellings of the manifest keys
        samples.append({f"reference{key}": f"ref_{i}.png", f"target{key}": f"tgt_{i}.png",
                        f"flow{key}": f"flow_{i}.npy", f"mask{key}": f"mask_{i}.png",
                        "yaw": 10.0 * i, "pitch": -5.0, "rig": {"lights": [{"azimuth": 30, "elevation": 10}]}})
    (root / "manifest.json").write_text(json.dumps({"samples": samples}))
    return root


def _cfg(**kw) -> TrainConfig:
    base = {"stage": "stage1", "resolution": 32, "batch_size": 4, "learning_rate": 1e-3, "lr_warmup_steps": 0,
            "patch_size": 4, "checkpoint_every": 1000, "log_every": 1000, "num_workers": 0, "prompt_dropout": 0.0}
    base.update(kw)
    return TrainConfig(**base)


def test_config_files_json_yaml_and_examples(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"mask_ratio": 0.7, "patch_size": 8, "ema": True}))
    (tmp_path / "c.yaml").write_text("mask_ratio: 0.6\nlearning_rate: 2.0e-5\n")
    cfg = load_config(tmp_path / "c.json", data="d", base="b", out="o", max_steps=5, ema=None)
    assert (cfg.mask_ratio, cfg.patch_size, cfg.ema, cfg.max_steps) == (0.7, 8, True, 5)
    assert load_config(tmp_path / "c.yaml").learning_rate == 2e-5
    (tmp_path / "bad.json").write_text(json.dumps({"mask_ration": 0.8}))
    with pytest.raises(InputError, match="mask_ration"):
        load_config(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_config(tmp_path / "broken.json")
    with pytest.raises(InputError, match="--data"):
        TrainConfig(base="b", out="o").validate()
    with pytest.raises(InputError, match="mask_ratio"):
        TrainConfig(data="d", base="b", out="o", mask_ratio=1.0).validate()
    examples = sorted(p for p in (ROOT / "configs").iterdir() if p.suffix in (".json", ".yaml", ".yml"))
    assert examples, "configs/ holds example training configs"
    for path in examples:
        load_config(path, data="d", base="b", out="o").validate()


def test_stage2_manifest_loader_warps_the_reference_with_the_flow(synth_pairs: Path) -> None:
    ds = SynthPairsDataset(synth_pairs, resolution=40)
    assert len(ds) == 4 and ds.meta(1)["yaw"] == 10.0 and ds.meta(0)["rig"]["lights"]
    item = ds[0]
    assert set(item) == {"target", "reference", "condition", "visibility", "loss_mask"}
    assert item["condition"].shape == (3, 40, 40) and item["visibility"].shape == (1, 40, 40)
    vis = item["visibility"][0].numpy() > 0.5
    assert not vis[:, :SHIFT].any(), "nothing lands left of the shift"
    assert not vis[12:18, 12 + SHIFT:18 + SHIFT].any(), "occluded (NaN-flow) pixels are not visible"
    assert vis.mean() > 0.7
    diff = np.abs(item["condition"].numpy() - item["target"].numpy()).max(axis=0)
    assert diff[vis].max() < 1e-6, "the warped reference matches the target where visible"
    # The backward convention (flow on the target grid) gives the same warp.
    ref = np.asarray(Image.open(synth_pairs / "ref_0.png"), np.float32) / 255
    back = np.zeros((40, 40, 2), np.float32)
    back[..., 0] = -SHIFT
    warped, bvis = warp_by_flow(ref, back, convention="backward")
    fwd, fvis = warp_by_flow(ref, np.load(synth_pairs / "flow_0.npy"), (40, 40))
    both = (bvis > 0) & (fvis > 0)
    assert np.abs(warped - fwd)[both].max() < 1e-5
    (synth_pairs / "flow_3.npy").rename(synth_pairs / "gone.npy")
    try:
        with pytest.raises(InputError, match="flow file"):
            SynthPairsDataset(synth_pairs, resolution=40)
    finally:
        (synth_pairs / "gone.npy").rename(synth_pairs / "flow_3.npy")
    with pytest.raises(InputError, match=r"manifest\.json"):
        SynthPairsDataset(synth_pairs / "ref_0.png.d", resolution=40)


def test_stage1_references_disturb_the_light_but_keep_the_person(portraits: Path) -> None:
    ds = PortraitFolderDataset(portraits, resolution=32, seed=0)
    a, b = ds[0], ds[0]
    assert torch.equal(a["reference"], b["reference"]), "a sample is the same whenever it is drawn"
    assert a["target"].shape == a["reference"].shape == (3, 32, 32)
    assert not torch.allclose(a["reference"], a["target"], atol=0.05)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["reference"], a["reference"]), "new epoch, new disturbance"


@pytest.mark.slow
def test_stage1_run_lowers_its_loss_and_exports_a_model(tmp_path: Path, base_model: Path, portraits: Path) -> None:
    trainer = Trainer(_cfg(data=str(portraits), base=str(base_model), out=str(tmp_path / "run"), max_steps=25,
                           checkpoint_every=20), echo=None)
    batch = trainer.fixed_batch(4)
    before = trainer.evaluate(batch)
    result = trainer.train()
    after = trainer.evaluate(batch)
    assert result.steps == 25 and len(result.losses) == 25
    assert after < 0.5 * before, (before, after)
    assert np.mean(result.losses[-10:]) < 0.6 * np.mean(result.losses[:5])
    lines = (tmp_path / "run" / "logs" / "losses.jsonl").read_text().splitlines()
    assert len(lines) == 25 and json.loads(lines[-1])["step"] == 25
    assert latest_checkpoint(tmp_path / "run").name == "step-0000025"
    check = validate_model_folder(result.model_dir)
    assert check.ok and check.kind == "icportrait", check.message

    from icportrait_studio.model.pipeline import ICPortraitPipeline

    pipe = ICPortraitPipeline.from_pretrained(result.model_dir)
    pipe.set_progress_bar_config(disable=True)
    img = batch["target"][:1]
    out = pipe(batch["reference"][:1], img, "a portrait photo", strength=0.5, num_inference_steps=2, seed=0)
    assert out.images.shape == (1, 32, 32, 3)


@pytest.mark.slow
def test_resumed_training_matches_the_uninterrupted_run(tmp_path: Path, base_model: Path, portraits: Path) -> None:
    common = {"data": str(portraits), "base": str(base_model), "batch_size": 3, "gradient_accumulation": 2,
              "ema": True, "ema_decay": 0.9, "checkpoint_every": 2, "keep_checkpoints": 1}
    straight = Trainer(_cfg(out=str(tmp_path / "a"), max_steps=4, **common), echo=None)
    ra = straight.train(export=False)
    first = Trainer(_cfg(out=str(tmp_path / "b"), max_steps=2, **common), echo=None)
    first.train(export=False)
    assert [d.name for d in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-0000002"]
    second = Trainer(_cfg(out=str(tmp_path / "b"), max_steps=4, **common), echo=None)
    rb = second.train(resume=True, export=False)
    assert second.step == 4 and rb.losses == ra.losses[2:]
    a = straight.acc.unwrap_model(straight.unet).state_dict()
    b = second.acc.unwrap_model(second.unet).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(x, y) for x, y in zip(straight.ema.shadow_params, second.ema.shadow_params, strict=True))


def test_fused_optimizer_trains_like_the_default_one(tmp_path: Path, base_model: Path, portraits: Path) -> None:
    """The fused AdamW (the default on CUDA) is the same optimizer: same losses, the same weight updates
    up to rounding (Adam's g / (sqrt(v) + eps) amplifies rounding where gradients are tiny)."""
    runs = {}
    for fused in (False, True):
        t = Trainer(_cfg(data=str(portraits), base=str(base_model), out=str(tmp_path / str(fused)), max_steps=3,
                         fused_optimizer=fused), echo=None)
        t.setup()
        start = {k: v.detach().clone() for k, v in t.acc.unwrap_model(t.unet).state_dict().items()}
        losses = t.train(export=False).losses
        end = t.acc.unwrap_model(t.unet).state_dict()
        runs[fused] = (losses, {k: end[k] - start[k] for k in start}, t.optimizer)
    assert runs[True][2].defaults.get("fused") is True and not runs[False][2].defaults.get("fused")
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-4)
    da, db = (torch.cat([d.flatten() for d in r[1].values()]) for r in (runs[False], runs[True]))
    assert float(da.norm()) > 0.01  # the weights did move
    assert float((da - db).norm() / da.norm()) < 0.02


@pytest.mark.slow
def test_cli_trains_stage2_and_checks_the_model(tmp_path: Path, base_model: Path, synth_pairs: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "s2.json"
    cfg.write_text(json.dumps({"resolution": 32, "patch_size": 4, "batch_size": 2, "num_workers": 0,
                               "learning_rate": 1e-4, "lr_warmup_steps": 0, "background_weight": 0.5,
                               "controlnet": True}))
    out = tmp_path / "s2"
    rc = main(["train", "stage2", "--data", str(synth_pairs), "--base", str(base_model), "--out", str(out),
               "--config", str(cfg), "--max-steps", "2"])
    assert rc == 0, capsys.readouterr().err
    assert "final loss" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["stage"] == "stage2"
    assert main(["model", "check", str(out / "model")]) == 0
    text = capsys.readouterr().out
    assert "Ready: IC-Portrait model" in text and "controlnet" in text
    assert main(["model", "check", str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().out
    rc = main(["train", "stage2", "--data", str(tmp_path), "--base", str(base_model), "--out", str(tmp_path / "x"),
               "--config", str(cfg), "--max-steps", "1"])
    assert rc == 2 and "manifest.json" in capsys.readouterr().err
