"""System 2 planner in PyTorch (transformers), for benches/s2_vs_torch.sh.

For each exported directory (`bicameral bench s2 --export DIR`): builds transformers'
SiglipVisionModel and Qwen3Model (only `select_layer` layers, as our planner runs) from
planner.json, loads planner.safetensors (our tensor names: `vision_model.*`,
`language_model.model.*`, `mlp1.*`), runs the same pipeline (vision → pixel shuffle →
connector → image embeddings written at the placeholder positions → LM → final norm) on
bench_inputs.safetensors, checks the plan tokens against ours (max abs error), and times one
observation in eager mode with 1 and 2 threads (preprocessing excluded here; ours includes it).

Prints `TORCH {json}` on stdout.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Qwen3Config, Qwen3Model, SiglipVisionConfig, SiglipVisionModel


def build(d: Path):
    cfg = json.loads((d / "planner.json").read_text())
    v = dict(cfg["vision"])
    v.pop("model_type", None)
    v["vision_use_head"] = False  # GR00T does not use SigLIP's pooling head; neither do we
    vision = SiglipVisionModel(SiglipVisionConfig(**v)).eval()
    t = dict(cfg["text"])
    t.pop("model_type", None)
    t["num_hidden_layers"] = cfg["select_layer"]
    lm = Qwen3Model(Qwen3Config(**t)).eval()
    s = cfg.get("pixel_shuffle", 1)
    dv = v["hidden_size"] * s * s
    dl = t["hidden_size"]
    if cfg["connector"] == "linear":
        conn = torch.nn.Sequential(torch.nn.Linear(dv, dl))
    else:
        conn = torch.nn.Sequential(
            torch.nn.LayerNorm(dv), torch.nn.Linear(dv, dl), torch.nn.GELU(), torch.nn.Linear(dl, dl)
        )
    sd = load_file(str(d / "planner.safetensors"))
    vis_sd = {k[len("vision_model."):]: x for k, x in sd.items() if k.startswith("vision_model.")}
    lm_sd = {k[len("language_model.model."):]: x for k, x in sd.items()
             if k.startswith("language_model.model.")}
    conn_sd = {k[len("mlp1."):]: x for k, x in sd.items() if k.startswith("mlp1.")}
    vision.load_state_dict(vis_sd, strict=True)
    lm.load_state_dict(lm_sd, strict=True)
    conn.load_state_dict(conn_sd, strict=True)
    conn.eval()
    grid = v["image_size"] // v["patch_size"]
    return cfg, vision, conn, lm, s, grid


def pixel_shuffle(x, s, grid):
    if s == 1:
        return x
    bv, n, d = x.shape
    gs = grid // s
    return x.reshape(bv * gs, s, gs, s * d).transpose(1, 2).reshape(bv, gs * gs, s * s * d)


def plan(model, inputs):
    cfg, vision, conn, lm, s, grid = model
    px = inputs["pixel_values"]
    ids = inputs["input_ids"]
    mask = inputs["attention_mask"]
    img_mask = inputs["image_mask"].bool()
    feats = vision(pixel_values=px).last_hidden_state
    img = conn(pixel_shuffle(feats, s, grid))
    emb = lm.embed_tokens(ids)
    emb = emb.clone()
    emb[img_mask] = img.reshape(-1, img.shape[-1]).to(emb.dtype)
    return lm(inputs_embeds=emb, attention_mask=mask).last_hidden_state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    out = {"torch": torch.__version__, "configs": {}}
    import transformers

    out["transformers"] = transformers.__version__
    for d in map(Path, a.dirs):
        model = build(d)
        inputs = load_file(str(d / "bench_inputs.safetensors"))
        ours = inputs.pop("plan_tokens")
        row = {}
        with torch.inference_mode():
            ref = plan(model, inputs)
            row["max_abs_err_vs_burn"] = float((ref - ours).abs().max())
            for th in [int(x) for x in a.threads.split(",")]:
                torch.set_num_threads(th)
                for _ in range(2):
                    plan(model, inputs)
                times = []
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    plan(model, inputs)
                    times.append((time.perf_counter() - t0) * 1000.0)
                row[f"threads_{th}_ms"] = statistics.median(times)
                row[f"threads_{th}_ms_min"] = min(times)
        out["configs"][d.name] = row
        print(f"{d.name}: {row}", file=sys.stderr)
    print("TORCH " + json.dumps(out))


if __name__ == "__main__":
    main()
