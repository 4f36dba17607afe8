#!/usr/bin/env python3
"""Opens datasets written by `bicameral datagen` with pyarrow and with LeRobot's own loader.

Usage (from the venv made by crates/dataset/tests/python/setup_venv.sh):

    lerobot_open.py DIR...

Each DIR is a LeRobot dataset; v3.0 ones are loaded with LeRobot 0.4.4 (the venv), v2.1 ones
with LeRobot 0.3.3 (the venv's overlay directory, in a child interpreter), offline. Prints one
line `OPENED {json}` mapping each DIR to what the loaders saw: frame and episode counts, the
first and last frames' state, action and task, the image shape, the pyarrow row count.
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def open_one(root: Path) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rows = sum(pq.read_table(f).num_rows for f in sorted((root / "data").glob("*/*.parquet")))
    ds = LeRobotDataset("bicameral/datagen", root=root)
    out = {"pyarrow_rows": rows, "frames": len(ds), "episodes": ds.num_episodes, "items": []}
    cams = [k for k in ds.meta.camera_keys]
    for i in [0, len(ds) - 1]:
        item = ds[i]
        out["items"].append(
            {
                "index": i,
                "episode_index": int(item["episode_index"]),
                "task": item["task"],
                "state": np.asarray(item["observation.state"]).astype(float).tolist(),
                "action": np.asarray(item["action"]).astype(float).tolist(),
                "images": {k: list(item[k].shape) for k in cams},
            }
        )
    return out


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print("ONE " + json.dumps(open_one(Path(sys.argv[2]))), flush=True)
        return 0
    result = {}
    for d in sys.argv[1:]:
        root = Path(d).resolve()
        version = json.loads((root / "meta/info.json").read_text())["codebase_version"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled")
        env["HF_HOME"] = str(root.parent / "hf-home")
        env.pop("PYTHONPATH", None)
        if version == "v2.1":
            env["PYTHONPATH"] = str(Path(sys.prefix) / "overlay-lerobot-v21")
        p = subprocess.run(
            [sys.executable, __file__, "--one", str(root)], env=env, capture_output=True, text=True
        )
        lines = [l for l in p.stdout.splitlines() if l.startswith("ONE ")]
        if p.returncode != 0 or not lines:
            sys.stderr.write(p.stdout[-4000:] + p.stderr[-8000:])
            print(f"{root}: loading failed (exit {p.returncode})", file=sys.stderr)
            return 1
        one = json.loads(lines[-1][4:])
        one["codebase_version"] = version
        result[d] = one
    print("OPENED " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
