#!/usr/bin/env python3
"""Interop checks between bicameral-dataset and real consumers: pyarrow, pandas, LeRobot.

Run by crates/dataset/tests/python_interop.rs as

    interop.py all --work DIR

DIR holds ours-v21/ and ours-v30/ (written by the Rust writer) and expected.json (values the
Rust side wrote). This script
  (a) reads every parquet file of ours with pyarrow and checks the schema types;
  (b) loads ours-v30 with LeRobot 0.4.4's LeRobotDataset, ours-v21 with LeRobot 0.3.3's (the
      last v2.1 release, from the overlay directory), and ours-v21 converted to v3.0 by LeRobot
      0.4.4's own converter, all offline, checking lengths and values;
  (c) writes lerobot-v30/ with LeRobot 0.4.4 and lerobot-v21/ with LeRobot 0.3.3 (PNG image
      features), and lerobot-v30-video/, lerobot-v21-video/ (LeRobot's own mp4 encoding), plus
      a .json beside each with the values written, for the Rust reader to check.
When DIR also holds ours-v21-video/ and ours-v30-video/ (Rust wrote them because ffmpeg is on
PATH), LeRobot 0.4.4 / 0.3.3 load those too (decoding with PyAV).
It prints one line `INTEROP {json summary}` and exits non-zero if anything failed.

Each LeRobot step runs in a child interpreter (`interop.py STEP ...`) with its own PYTHONPATH.
"""

import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ID = "bicameral/interop"


def child_env(work: Path, v21: bool) -> dict:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(work / "hf-home"),
        HF_LEROBOT_HOME=str(work / "lerobot-home"),
        WANDB_MODE="disabled",
        PYTHONHASHSEED="0",
    )
    env.pop("PYTHONPATH", None)
    if v21:
        env["PYTHONPATH"] = str(Path(sys.prefix) / "overlay-lerobot-v21")
    return env


def run_step(work: Path, v21: bool, *args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *map(str, args)]
    p = subprocess.run(cmd, env=child_env(work, v21), capture_output=True, text=True)
    result = None
    for line in p.stdout.splitlines():
        if line.startswith("STEP "):
            result = json.loads(line[5:])
    if p.returncode != 0 or result is None:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-8000:])
        raise RuntimeError(f"step {args[0]} failed (exit {p.returncode})")
    return result


def emit(result: dict) -> None:
    print("STEP " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- (a) pyarrow


def check_pyarrow(root: Path, expected: dict) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = json.loads((root / "meta/info.json").read_text())
    fps = info["fps"]
    ds, da = expected["state_dim"], expected["action_dim"]
    cams = expected["cameras"]
    checked = 0
    indices = []
    data_files = sorted((root / "data").glob("*/*.parquet"))
    assert data_files, f"no data files in {root}"
    for f in data_files:
        pf = pq.ParquetFile(f)
        s = pf.schema_arrow
        assert s.field("observation.state").type == pa.list_(pa.float32(), ds), s
        assert s.field("action").type == pa.list_(pa.float32(), da), s
        for c in cams:
            t = s.field(f"observation.images.{c}").type
            assert t == pa.struct([("bytes", pa.binary()), ("path", pa.string())]), t
        assert s.field("timestamp").type == pa.float32()
        for k in ["frame_index", "episode_index", "index", "task_index"]:
            assert s.field(k).type == pa.int64(), (k, s.field(k).type)
        hf = json.loads(s.metadata[b"huggingface"])
        assert hf["info"]["features"][f"observation.images.{cams[0]}"]["_type"] == "Image"
        t = pf.read()
        eps = t.column("episode_index").to_pylist()
        # One row group per episode.
        assert pf.num_row_groups == len(set(eps)), (f, pf.num_row_groups, set(eps))
        for g in range(pf.num_row_groups):
            assert len(set(pf.read_row_group(g, columns=["episode_index"]).column(0).to_pylist())) == 1
        ts = np.array(t.column("timestamp").to_pylist())
        fi = np.array(t.column("frame_index").to_pylist())
        assert np.all(np.abs(ts - fi / fps) < 1e-4)
        indices += t.column("index").to_pylist()
        from PIL import Image
        import io

        img = t.column(f"observation.images.{cams[0]}")[0].as_py()
        im = Image.open(io.BytesIO(img["bytes"]))
        assert im.format == "PNG" and im.mode == "RGB", (im.format, im.mode)
        assert np.asarray(im).shape == tuple(info["features"][f"observation.images.{cams[0]}"]["shape"])
        checked += 1
    assert sorted(indices) == list(range(expected["total_frames"])), "index not contiguous"
    assert indices == sorted(indices)

    if info["codebase_version"] == "v3.0":
        pf = pq.ParquetFile(root / "meta/tasks.parquet")
        meta = json.loads(pf.schema_arrow.metadata[b"pandas"])
        assert meta["index_columns"] == ["task"], meta
        df = pd.read_parquet(root / "meta/tasks.parquet")
        assert df.index.name == "task", df.index.name
        assert list(df.index) == expected["tasks"], list(df.index)
        assert list(df["task_index"]) == list(range(len(expected["tasks"])))
        checked += 1
        ep_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
        eps = pd.concat([pd.read_parquet(f) for f in ep_files], ignore_index=True)
        for col in [
            "episode_index",
            "tasks",
            "length",
            "data/chunk_index",
            "data/file_index",
            "dataset_from_index",
            "dataset_to_index",
            "meta/episodes/chunk_index",
            "meta/episodes/file_index",
            "stats/observation.state/q01",
            "stats/observation.state/q99",
            f"stats/observation.images.{cams[0]}/mean",
        ]:
            assert col in eps.columns, col
        assert list(eps["length"]) == expected["lengths"]
        assert list(eps["dataset_from_index"]) == list(np.cumsum([0] + expected["lengths"][:-1]))
        img_mean = np.array(eps[f"stats/observation.images.{cams[0]}/mean"][0].tolist(), dtype=object)
        assert np.array(img_mean.tolist()).shape == (3, 1, 1)
        checked += len(ep_files)
    else:
        tasks = [json.loads(l) for l in (root / "meta/tasks.jsonl").read_text().splitlines()]
        assert [t["task"] for t in tasks] == expected["tasks"]
        lines = [json.loads(l) for l in (root / "meta/episodes.jsonl").read_text().splitlines()]
        assert [l["length"] for l in lines] == expected["lengths"]
        st = [json.loads(l) for l in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
        assert np.array(st[0]["stats"][f"observation.images.{cams[0]}"]["mean"]).shape == (3, 1, 1)
        modality = json.loads((root / "meta/modality.json").read_text())
        assert modality["annotation"]["human.task_description"]["original_key"] == "task_index"
    stats = json.loads((root / "meta/stats.json").read_text())
    for k in ["min", "max", "mean", "std", "q01", "q99"]:
        assert len(stats["observation.state"][k]) == ds, k
    return {"files": checked}


# ----------------------------------------------------------------------------- (b) LeRobot reads ours


def check_lerobot_load(root: Path, expected: dict) -> dict:
    import numpy as np
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    video = expected.get("video", False)
    # Video features: decode with PyAV (bundled in the `av` wheel; no system FFmpeg needed).
    kw = {"video_backend": "pyav"} if video else {}
    ds = LeRobotDataset(REPO_ID, root=root, **kw)
    assert len(ds) == expected["total_frames"], (len(ds), expected["total_frames"])
    assert ds.num_episodes == len(expected["lengths"])
    checked = 0
    for row in expected["rows"]:
        item = ds[row["index"]]
        assert int(item["episode_index"]) == row["episode_index"]
        assert int(item["frame_index"]) == row["frame_index"]
        assert item["task"] == row["task"], (item["task"], row["task"])
        assert abs(float(item["timestamp"]) - row["timestamp"]) < 1e-6
        np.testing.assert_array_equal(item["observation.state"].numpy(), np.float32(row["state"]))
        np.testing.assert_array_equal(item["action"].numpy(), np.float32(row["action"]))
        img = item[f"observation.images.{expected['cameras'][0]}"]  # C,H,W float in [0,1]
        assert tuple(img.shape) == (3, expected["height"], expected["width"]), img.shape
        hwc = (img.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        if video:
            # Same H.264 stream; PyAV's YUV→RGB conversion may differ slightly from ffmpeg's.
            diff = np.abs(hwc.reshape(-1).astype(float) - np.float64(row["image0"])).mean()
            assert diff < 3.0, f"video frame {row['index']}: mean abs diff {diff}"
        else:
            np.testing.assert_array_equal(hwc.reshape(-1), np.uint8(row["image0"]))
        checked += 1
    # Action chunks past the episode end: LeRobot pads with the last frame and flags is_pad,
    # the same semantics as our Sample's action mask.
    fps = ds.fps
    h = expected["horizon"]
    chunked = LeRobotDataset(
        REPO_ID, root=root, delta_timestamps={"action": [k / fps for k in range(h)]}, **kw
    )
    last = expected["lengths"][0] - 2
    item = chunked[last]
    pad = item["action_is_pad"].tolist()
    assert pad == [k >= 2 for k in range(h)], pad
    assert torch.equal(item["action"][1], item["action"][h - 1])
    stats = ds.meta.stats
    assert stats is not None and "observation.state" in stats
    return {"frames": len(ds), "rows_checked": checked, "chunk_pad": pad}


def convert_v21(src: Path, dst_parent: Path) -> dict:
    """LeRobot 0.4.4's own v2.1 → v3.0 converter, offline, on a copy of ours-v21."""
    from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

    target = dst_parent / REPO_ID
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target)
    convert_dataset(REPO_ID, root=str(dst_parent), push_to_hub=False)
    return {"converted": str(target)}


# ----------------------------------------------------------------------------- (c) LeRobot writes


def synthetic_episode(ep: int, video: bool):
    import numpy as np

    rng = np.random.default_rng(100 + ep)
    n = [5, 8][ep]
    frames = []
    for t in range(n):
        if video:
            # Smooth moving gradients: video codecs are lossy on noise.
            y, x = np.mgrid[0:VIDEO_SHAPE[0], 0:VIDEO_SHAPE[1]]
            base = x * 3.0 + y * 2.0 + t * 6.0 + ep * 30.0
            img = np.stack(
                [128 + 90 * np.sin(base / 30.0), 128 + 90 * np.cos(base / 45.0), (x * 3 + t * 4) % 200 + 20],
                axis=-1,
            ).astype(np.uint8)
        else:
            img = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        frames.append(
            {
                "observation.state": rng.standard_normal(3).astype(np.float32),
                "action": rng.standard_normal(2).astype(np.float32),
                "observation.images.cam": img,
            }
        )
    return frames, ["stack the blocks", "wipe the table"][ep]


VIDEO_SHAPE = (64, 64, 3)


FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (3,), "names": ["j0", "j1", "j2"]},
    "action": {"dtype": "float32", "shape": (2,), "names": ["a0", "a1"]},
    "observation.images.cam": {
        "dtype": "image",
        "shape": (6, 8, 3),
        "names": ["height", "width", "channel"],
    },
}


def write_lerobot(root: Path, v21: bool, video: bool) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if root.exists():
        shutil.rmtree(root)
    features = dict(FEATURES)
    if video:
        features["observation.images.cam"] = {
            "dtype": "video",
            "shape": VIDEO_SHAPE,
            "names": ["height", "width", "channels"],
        }
    ds = LeRobotDataset.create(
        REPO_ID, fps=15, features=features, root=root, robot_type="lerobot_toy", use_videos=video
    )
    written = {"fps": 15, "video": video, "episodes": []}
    for ep in range(2):
        frames, task = synthetic_episode(ep, video)
        for f in frames:
            if v21:
                ds.add_frame(dict(f), task=task)  # lerobot 0.3.x API
            else:
                ds.add_frame({**f, "task": task})
        ds.save_episode()
        written["episodes"].append(
            {
                "task": task,
                "state": [f["observation.state"].tolist() for f in frames],
                "action": [f["action"].tolist() for f in frames],
                "image": [f["observation.images.cam"].reshape(-1).tolist() for f in frames],
            }
        )
    if hasattr(ds, "finalize"):
        ds.finalize()
    import lerobot

    written["lerobot_version"] = getattr(lerobot, "__version__", "?")
    (root.parent / f"{root.name}.json").write_text(json.dumps(written))
    return {"episodes": 2, "lerobot": written["lerobot_version"]}


# ----------------------------------------------------------------------------- driver


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    step = args[0]
    try:
        if step == "all":
            work = Path(args[args.index("--work") + 1]).resolve()
            expected = json.loads((work / "expected.json").read_text())
            summary = {}
            for fmt in ["v21", "v30"]:
                summary[f"pyarrow_{fmt}"] = run_step(work, False, "pyarrow", work / f"ours-{fmt}", fmt)
            summary["lerobot_0.4.4_loads_ours_v30"] = run_step(work, False, "load", work / "ours-v30", "v30")
            summary["lerobot_0.3.3_loads_ours_v21"] = run_step(work, True, "load", work / "ours-v21", "v21")
            conv = work / "converted"
            summary["lerobot_0.4.4_converts_ours_v21"] = run_step(work, False, "convert", work / "ours-v21", conv)
            summary["lerobot_0.4.4_loads_converted_v21"] = run_step(
                work, False, "load", conv / REPO_ID, "v21"
            )
            if "v30-video" in expected:
                summary["lerobot_0.4.4_loads_ours_v30-video"] = run_step(
                    work, False, "load", work / "ours-v30-video", "v30-video"
                )
                summary["lerobot_0.3.3_loads_ours_v21-video"] = run_step(
                    work, True, "load", work / "ours-v21-video", "v21-video"
                )
            summary["lerobot_0.4.4_writes_v30"] = run_step(work, False, "write", work / "lerobot-v30", "v30")
            summary["lerobot_0.3.3_writes_v21"] = run_step(work, True, "write", work / "lerobot-v21", "v21")
            summary["lerobot_0.4.4_writes_v30-video"] = run_step(
                work, False, "write", work / "lerobot-v30-video", "v30-video"
            )
            summary["lerobot_0.3.3_writes_v21-video"] = run_step(
                work, True, "write", work / "lerobot-v21-video", "v21-video"
            )
            print("INTEROP " + json.dumps(summary), flush=True)
            return 0
        if step == "pyarrow":
            root = Path(args[1])
            expected = json.loads((root.parent / "expected.json").read_text())[args[2]]
            emit(check_pyarrow(root, expected))
        elif step == "load":
            root = Path(args[1])
            work = Path(os.environ["HF_HOME"]).parent
            expected = json.loads((work / "expected.json").read_text())[args[2]]
            emit(check_lerobot_load(root, expected))
        elif step == "convert":
            emit(convert_v21(Path(args[1]), Path(args[2])))
        elif step == "write":
            emit(write_lerobot(Path(args[1]), args[2].startswith("v21"), args[2].endswith("video")))
        else:
            print(f"unknown step {step}", file=sys.stderr)
            return 2
        return 0
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
