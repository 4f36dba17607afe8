#!/usr/bin/env python3
"""GR00T N1.5 flow-matching action head in plain PyTorch (eager, float32, CPU): the reference
side of benches/s1_vs_torch.sh.

Written from the semantics in tests/fixtures/gr00t-n1.5-action-head-tiny/README.md and checked
against that fixture (upstream GR00T outputs) before anything is timed, so the timed model is
the upstream computation. Weights are read from a checkpoint directory (config.json +
model.safetensors, upstream tensor names with the `action_head.` prefix).

    s1_torch_head.py check FIXTURE_DIR            # parity with the upstream fixture
    s1_torch_head.py bench DIR [DIR...] [--threads 1,2] [--repeats 20]

`bench` prints one line `TORCH {json}`: per DIR and thread count, the median latency of one
chunk (K Euler steps, B=1) in two variants: `upstream` recomputes the plan tokens' cross-
attention K/V at every step (as upstream does), `kv_cached` computes them once per chunk.
"""

import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

P = "action_head."


class Head:
    def __init__(self, ckpt: Path):
        cfg = json.loads((ckpt / "config.json").read_text())
        self.cfg = cfg.get("action_head_cfg", cfg)
        self.w = {k[len(P):]: v for k, v in load_file(str(ckpt / "model.safetensors")).items()}
        dcfg = self.cfg["diffusion_model_cfg"]
        self.heads = dcfg["num_attention_heads"]
        self.layers = dcfg["num_layers"]
        self.interleave = dcfg.get("interleave_self_attention", False)
        vcfg = self.cfg["vl_self_attention_cfg"]
        self.vl_heads = vcfg["num_attention_heads"]
        self.vl_layers = vcfg["num_layers"]
        self.H = self.cfg["action_horizon"]

    def lin(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def cat_lin(self, x, name, emb):
        W = self.w[name + ".W"][emb]  # [B, in, out]
        b = self.w[name + ".b"][emb]  # [B, out]
        return torch.bmm(x, W) + b.unsqueeze(1)

    def attn(self, x, ctx, name, heads, kv=None):
        B, T, _ = x.shape
        q = self.lin(x, name + ".to_q")
        if kv is None:
            k, v = self.lin(ctx, name + ".to_k"), self.lin(ctx, name + ".to_v")
        else:
            k, v = kv
        d = q.shape[-1] // heads
        q = q.view(B, T, heads, d).transpose(1, 2)
        k = k.view(B, -1, heads, d).transpose(1, 2)
        v = v.view(B, -1, heads, d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.lin(o.transpose(1, 2).reshape(B, T, heads * d), name + ".to_out.0")

    def ff(self, x, name):
        return self.lin(F.gelu(self.lin(x, name + ".net.0.proj"), approximate="tanh"), name + ".net.2")

    def vl(self, feats):
        x = F.layer_norm(feats, feats.shape[-1:], self.w["vlln.weight"], self.w["vlln.bias"], 1e-5)
        for i in range(self.vl_layers):
            n = f"vl_self_attention.transformer_blocks.{i}"
            h = F.layer_norm(x, x.shape[-1:], self.w[n + ".norm1.weight"], self.w[n + ".norm1.bias"], 1e-5)
            x = x + self.attn(h, h, n + ".attn1", self.vl_heads)
            h = F.layer_norm(x, x.shape[-1:], self.w[n + ".norm3.weight"], self.w[n + ".norm3.bias"], 1e-5)
            x = x + self.ff(h, n + ".ff")
        return x

    def cross_kv(self, ctx):
        out = {}
        for i in range(self.layers):
            if self.interleave and i % 2 == 1:
                continue
            n = f"model.transformer_blocks.{i}.attn1"
            out[i] = (self.lin(ctx, n + ".to_k"), self.lin(ctx, n + ".to_v"))
        return out

    def temb(self, t_disc, B):
        half = 128
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1)
        arg = torch.full((B,), float(t_disc))[:, None] * torch.exp(exponent)[None, :]
        proj = torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)
        n = "model.timestep_encoder.timestep_embedder"
        return self.lin(F.silu(self.lin(proj, n + ".linear_1")), n + ".linear_2")

    def sin_enc(self, t_disc, B, T, D):
        half = D // 2
        t = torch.full((B, T), float(t_disc))
        exponent = -torch.arange(half, dtype=torch.float32) * (torch.log(torch.tensor(10000.0)) / half)
        freqs = t.unsqueeze(-1) * exponent.exp()
        return torch.cat([torch.sin(freqs), torch.cos(freqs)], dim=-1)

    def velocity(self, x, t_disc, vl, state_feat, emb, kv):
        B, H, _ = x.shape
        a = self.cat_lin(x, "action_encoder.W1", emb)
        tau = self.sin_enc(t_disc, B, H, a.shape[-1])
        h = self.cat_lin(torch.cat([a, tau], dim=-1), "action_encoder.W2", emb)
        h = h * torch.sigmoid(h)
        act = self.cat_lin(h, "action_encoder.W3", emb)
        act = act + self.w["position_embedding.weight"][:H].unsqueeze(0)
        fut = self.w["future_tokens.weight"].unsqueeze(0).expand(B, -1, -1)
        hs = torch.cat([state_feat, fut, act], dim=1)
        temb = self.temb(t_disc, B)
        st = F.silu(temb)
        for i in range(self.layers):
            n = f"model.transformer_blocks.{i}"
            scale, shift = self.lin(st, n + ".norm1.linear").chunk(2, dim=-1)
            h = F.layer_norm(hs, hs.shape[-1:], eps=1e-5) * (1 + scale[:, None]) + shift[:, None]
            if self.interleave and i % 2 == 1:
                hs = hs + self.attn(h, h, n + ".attn1", self.heads)
            else:
                hs = hs + self.attn(h, vl, n + ".attn1", self.heads, kv.get(i) if kv else None)
            hs = hs + self.ff(F.layer_norm(hs, hs.shape[-1:], eps=1e-5), n + ".ff")
        shift, scale = self.lin(st, "model.proj_out_1").chunk(2, dim=-1)
        y = F.layer_norm(hs, hs.shape[-1:], eps=1e-6) * (1 + scale[:, None]) + shift[:, None]
        out = self.lin(y, "model.proj_out_2")
        d = self.cat_lin(F.relu(self.cat_lin(out, "action_decoder.layer1", emb)), "action_decoder.layer2", emb)
        return d[:, -H:]

    @torch.no_grad()
    def sample(self, feats, state, emb, noise, steps, cache_kv=False):
        vl = self.vl(feats)
        s = self.cat_lin(F.relu(self.cat_lin(state, "state_encoder.layer1", emb)), "state_encoder.layer2", emb)
        kv = self.cross_kv(vl) if cache_kv else None
        x = noise
        vs = []
        for k in range(steps):
            t_disc = int(k / steps * 1000)
            v = self.velocity(x, t_disc, vl, s, emb, kv)
            vs.append(v)
            x = x + v / steps
        return x, vs


def check(fixture: Path) -> dict:
    head = Head(fixture)
    i = load_file(str(fixture / "inputs.safetensors"))
    o = load_file(str(fixture / "outputs.safetensors"))
    steps = head.cfg["num_inference_timesteps"]
    worst = 0.0
    for cache in (False, True):
        x, vs = head.sample(i["backbone_features"], i["state"], i["embodiment_id"], i["init_noise"], steps, cache)
        worst = max(worst, (x - o["action_pred"]).abs().max().item())
        for k, v in enumerate(vs):
            worst = max(worst, (v - o[f"v_{k}"]).abs().max().item())
    assert worst <= 1e-4, f"torch reference differs from the upstream fixture by {worst}"
    return {"fixture_max_abs_err": worst}


def bench(dirs, threads, repeats) -> dict:
    out = {}
    for d in dirs:
        d = Path(d)
        head = Head(d)
        meta = json.loads((d / "bench_inputs.json").read_text())
        g = torch.Generator().manual_seed(0)
        feats = torch.randn(1, meta["plan_tokens"], head.cfg["backbone_embedding_dim"], generator=g)
        state = torch.randn(1, 1, head.cfg["max_state_dim"], generator=g)
        noise = torch.randn(1, head.H, head.cfg["action_dim"], generator=g)
        emb = torch.zeros(1, dtype=torch.long)
        steps = meta["steps"]
        res = {}
        for n in threads:
            torch.set_num_threads(n)
            for variant, cache in (("upstream", False), ("kv_cached", True)):
                for _ in range(2):
                    head.sample(feats, state, emb, noise, steps, cache)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    head.sample(feats, state, emb, noise, steps, cache)
                    times.append(time.perf_counter() - t0)
                res[f"{variant}_threads_{n}_ms"] = 1000 * statistics.median(times)
        out[d.name] = res
    return out


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    if args[0] == "check":
        print("TORCH " + json.dumps(check(Path(args[1]))), flush=True)
        return 0
    if args[0] == "bench":
        threads = [1, 2]
        repeats = 20
        dirs = []
        it = iter(args[1:])
        for a in it:
            if a == "--threads":
                threads = [int(x) for x in next(it).split(",")]
            elif a == "--repeats":
                repeats = int(next(it))
            else:
                dirs.append(a)
        print("TORCH " + json.dumps({"torch": torch.__version__, "configs": bench(dirs, threads, repeats)}), flush=True)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
