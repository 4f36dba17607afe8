#!/usr/bin/env python3
"""Replays a bicameral joint trajectory in MuJoCo and compares it with our simulator.

Input: the trajectory file written by `bicameral bench sim --json --trajectory-out FILE` (URDF path,
dt, PD gains / effort / damping per joint, armature, initial joint positions, one target row per
physics step and our world-frame link origins after every step) and, optionally, the JSON that
command printed on stdout (for `physics_steps_per_s_one_world`).

The robot is loaded from the same URDF with MuJoCo's URDF importer (MjSpec) and set up like our
rapier world: root link fixed at the origin, every movable joint driven by a PD position actuator
(gain kp, bias [0, -kp, -kd], force clamped at the URDF effort), rotor armature, URDF viscous
damping, gravity compensated on every body (gravity itself stays -9.81 z), contacts off (the
motion is in free space), implicitfast integrator at the same dt. Mimic joints get their own
actuator driven with the leader's target (no equality constraint), as in our simulator.

Output on stdout: one JSON object (everything else goes to stderr):
  mujoco_version, ours_steps_per_s, mujoco_steps_per_s, ratio_to_mujoco (ours / mujoco),
  max_divergence_mm, final_divergence_mm, worst_link, steps, dt, plus details
  (per-link maximum divergence, step of the maximum, timing method, python-loop steps/s).

MuJoCo's speed is measured on one thread with `mujoco.rollout` (the stepping loop runs in C, like
ours runs in Rust), replaying the whole trajectory repeatedly for at least --min-seconds.
`mujoco_steps_per_s_python_loop` is the same replay driven from a Python loop, for reference.

Usage: python benches/sim_vs_mujoco.py --trajectory FILE [--ours-json FILE]
(benches/sim_vs_mujoco.sh runs our bench and this script in one go.)
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

try:
    import mujoco
except ImportError:  # pragma: no cover - reported to the user
    sys.exit("sim_vs_mujoco.py: the `mujoco` Python package (>= 3.2) is required: pip install mujoco numpy")


def log(*args):
    print("[sim_vs_mujoco]", *args, file=sys.stderr, flush=True)


def version_tuple(v):
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Input files


def load_json_file(path, what):
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # Tolerate stray non-JSON lines around the object (e.g. a build tool printing to stdout).
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            try:
                return json.loads(text[start:end + 1])
            except json.JSONDecodeError:
                pass
        raise SystemExit(f"sim_vs_mujoco.py: {what} {path} is not a JSON object")


def resolve_urdf(traj, traj_path, override):
    candidates = [override] if override else []
    u = traj.get("urdf")
    if u:
        candidates.append(u)
        if not os.path.isabs(u):
            candidates.append(os.path.join(os.path.dirname(os.path.abspath(traj_path)), u))
    for c in candidates:
        if c and os.path.isfile(c):
            return os.path.abspath(c)
    raise SystemExit(f"sim_vs_mujoco.py: URDF not found (tried {candidates}); pass --urdf")


def check_trajectory(traj):
    for key in ("dt", "joints", "dof_names", "initial", "targets"):
        if key not in traj:
            raise SystemExit(f"sim_vs_mujoco.py: trajectory file has no \"{key}\"")
    dofs = traj["dof_names"]
    targets = np.asarray(traj["targets"], dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != len(dofs):
        raise SystemExit(f"sim_vs_mujoco.py: targets must be steps x {len(dofs)} (got {targets.shape})")
    steps = int(traj.get("steps", targets.shape[0]))
    if targets.shape[0] != steps:
        raise SystemExit(f"sim_vs_mujoco.py: {targets.shape[0]} target rows but steps = {steps}")
    initial = np.asarray(traj["initial"], dtype=np.float64)
    if initial.shape != (len(dofs),):
        raise SystemExit(f"sim_vs_mujoco.py: initial must have {len(dofs)} entries (got {initial.shape})")
    origins = None
    if traj.get("origins") is not None:
        origins = np.asarray(traj["origins"], dtype=np.float64)
        links = traj.get("links") or []
        if origins.shape != (steps, len(links), 3):
            raise SystemExit(
                f"sim_vs_mujoco.py: origins must be {steps} x {len(links)} x 3 (got {origins.shape})")
    return steps, targets, initial, origins


# ---------------------------------------------------------------------------------------------
# Model


def spec_list(spec, attr, obj_type):
    """spec.joints / spec.bodies / ... (MuJoCo >= 3.2.x), falling back to find_all."""
    items = getattr(spec, attr, None)
    if items is not None:
        return list(items)
    return list(spec.worldbody.find_all(obj_type))


def set_scalar_or_first(obj, attr, value):
    cur = getattr(obj, attr)
    if isinstance(cur, np.ndarray):  # MuJoCo 4 joint damping is a polynomial: [linear, ...]
        arr = np.zeros_like(cur)
        arr[0] = value
        setattr(obj, attr, arr)
    else:
        setattr(obj, attr, value)


def first_value(v):
    return float(v[0]) if isinstance(v, np.ndarray) else float(v)


def build_model(traj, urdf_path, fusestatic):
    spec = mujoco.MjSpec.from_file(urdf_path)
    spec.compiler.fusestatic = fusestatic

    # Options: same dt, implicit-in-velocity integration of the PD damping, free-space motion.
    spec.option.timestep = float(traj["dt"])
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
    if "gravity" in traj:
        spec.option.gravity = np.asarray(traj["gravity"], dtype=np.float64)
    for g in spec_list(spec, "geoms", mujoco.mjtObj.mjOBJ_GEOM):
        g.contype = 0
        g.conaffinity = 0

    # Mimic joints become joint equality constraints in MuJoCo's URDF importer; our simulator drives
    # the follower with its own motor instead, so drop them.
    for eq in spec_list(spec, "equalities", mujoco.mjtObj.mjOBJ_EQUALITY):
        log(f"removing imported equality constraint ({eq.type.name}: {eq.name1} -> {eq.name2}); "
            "the follower gets its own PD actuator instead")
        spec.delete(eq)

    gravcomp = bool(traj.get("gravity_compensation", True))
    for b in spec_list(spec, "bodies", mujoco.mjtObj.mjOBJ_BODY):
        if b.name != "world":
            b.gravcomp = 1.0 if gravcomp else 0.0

    joints_by_name = {j.name: j for j in spec_list(spec, "joints", mujoco.mjtObj.mjOBJ_JOINT)}
    armature = float(traj.get("armature", 0.0))
    listed = set()
    for jt in traj["joints"]:
        name = jt["name"]
        if name not in joints_by_name:
            raise SystemExit(f"sim_vs_mujoco.py: joint \"{name}\" is not in the MuJoCo model of {urdf_path}")
        listed.add(name)
        j = joints_by_name[name]
        j.armature = armature
        if jt.get("damping") is not None:
            set_scalar_or_first(j, "damping", float(jt["damping"]))
        if first_value(j.frictionloss) != 0.0:
            log(f"joint {name}: dropping imported frictionloss {j.frictionloss} (not modelled by ours)")
            j.frictionloss = 0.0
        kp, kd, effort = float(jt["kp"]), float(jt["kd"]), float(jt["effort"])
        a = spec.add_actuator()
        a.name = f"pd_{name}"
        a.target = name
        a.trntype = mujoco.mjtTrn.mjTRN_JOINT
        a.dyntype = mujoco.mjtDyn.mjDYN_NONE
        a.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        a.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        gain = np.zeros_like(np.asarray(a.gainprm))
        gain[0] = kp
        bias = np.zeros_like(np.asarray(a.biasprm))
        bias[0:3] = [0.0, -kp, -kd]
        a.gainprm = gain
        a.biasprm = bias
        a.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        a.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        a.forcerange = np.array([-effort, effort])
    missing = sorted(set(joints_by_name) - listed)
    if missing:
        raise SystemExit(f"sim_vs_mujoco.py: MuJoCo joints without a trajectory entry: {missing}")

    model = spec.compile()
    return spec, model


def load_model(traj, urdf_path):
    links = list(traj.get("links") or [])
    spec, model = build_model(traj, urdf_path, fusestatic=True)
    absent = [n for n in links if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) < 0]
    if absent:
        log(f"links fused away by fusestatic: {absent}; rebuilding with fusestatic off")
        spec, model = build_model(traj, urdf_path, fusestatic=False)
        absent = [n for n in links if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) < 0]
        if absent:
            raise SystemExit(f"sim_vs_mujoco.py: links not in the MuJoCo model: {absent}")
    return spec, model


def control_layout(traj, model):
    """Per actuator: (dof index, multiplier, offset); per joint: qpos address."""
    dof_index = {n: i for i, n in enumerate(traj["dof_names"])}
    layout = []
    for jt in traj["joints"]:
        leader = jt.get("target_of", jt["name"])
        if leader not in dof_index:
            raise SystemExit(f"sim_vs_mujoco.py: joint {jt['name']}: target_of \"{leader}\" is not a DoF")
        act = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"pd_{jt['name']}")
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, jt["name"])
        layout.append((act, int(model.jnt_qposadr[jid]), dof_index[leader],
                       float(jt.get("multiplier", 1.0)), float(jt.get("offset", 0.0))))
    return layout


# ---------------------------------------------------------------------------------------------
# Simulation


def replay(model, targets, initial, layout):
    """Python-loop replay. Returns (ctrl matrix, initial qpos, qpos after every step)."""
    steps = targets.shape[0]
    ctrl = np.zeros((steps, model.nu))
    qpos0 = model.qpos0.copy()
    for act, qadr, dof, mult, off in layout:
        ctrl[:, act] = targets[:, dof] * mult + off
        qpos0[qadr] = initial[dof] * mult + off
    for jid in range(model.njnt):
        lo, hi = model.jnt_range[jid]
        q = qpos0[model.jnt_qposadr[jid]]
        if model.jnt_limited[jid] and not (lo - 1e-9 <= q <= hi + 1e-9):
            log(f"warning: initial {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, jid)} = {q} "
                f"is outside its limits [{lo}, {hi}]")
    data = mujoco.MjData(model)
    data.qpos[:] = qpos0
    data.qvel[:] = 0.0
    mujoco.mj_forward(model, data)
    qpos = np.empty((steps, model.nq))
    for i in range(steps):
        data.ctrl[:] = ctrl[i]
        mujoco.mj_step(model, data)
        qpos[i] = data.qpos
    return ctrl, qpos0, qpos, data


def body_origins(model, qpos, body_ids):
    """World origins of the given bodies' frames for every qpos row (mj_step leaves xpos one step
    behind qpos, so recompute the kinematics of the post-step state)."""
    data = mujoco.MjData(model)
    out = np.empty((qpos.shape[0], len(body_ids), 3))
    for i in range(qpos.shape[0]):
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        out[i] = data.xpos[body_ids]
    return out


class Timer:
    """Accumulates wall time (the headline number, like ours) and this thread's CPU time (less
    sensitive to other processes competing for the cores) over repeated runs."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.best = math.inf
        self.runs = self.steps = 0

    def run(self, fn, steps):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        t1, c1 = time.perf_counter(), time.thread_time()
        self.wall += t1 - t0
        self.cpu += c1 - c0
        self.best = min(self.best, t1 - t0)
        self.runs += 1
        self.steps += steps

    def summary(self, steps):
        return {
            "steps_per_s": self.steps / self.wall,
            "best_run_steps_per_s": steps / self.best,
            "cpu_steps_per_s": self.steps / self.cpu if self.cpu > 0 else None,
            "runs": self.runs,
        }


def time_python_loop(model, qpos0, ctrl, min_seconds):
    data = mujoco.MjData(model)
    steps = ctrl.shape[0]
    step = mujoco.mj_step

    def one_run():
        for i in range(steps):
            data.ctrl[:] = ctrl[i]
            step(model, data)

    timer = Timer()
    while timer.wall < min_seconds or timer.runs < 1:
        mujoco.mj_resetData(model, data)
        data.qpos[:] = qpos0
        mujoco.mj_forward(model, data)
        timer.run(one_run, steps)
    return timer.summary(steps)


def time_rollout(model, qpos0, ctrl, min_seconds, reference_final_qpos):
    """Single-threaded C rollout of the whole trajectory, repeated for >= min_seconds.
    Returns a Timer summary, or None when mujoco.rollout is unavailable."""
    try:
        from mujoco import rollout
    except ImportError:
        return None
    data = mujoco.MjData(model)
    data.qpos[:] = qpos0
    mujoco.mj_forward(model, data)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    nstate = mujoco.mj_stateSize(model, spec)
    state0 = np.empty(nstate)
    mujoco.mj_getState(model, data, state0, spec)
    steps = ctrl.shape[0]
    control = np.ascontiguousarray(ctrl[None, :, :])
    out_state = np.empty((1, steps, nstate))
    initial = state0[None, :]
    # Warm-up run, also checks that the C rollout reproduces the Python replay exactly.
    rollout.rollout(model, data, initial, control, state=out_state)
    check = mujoco.MjData(model)
    mujoco.mj_setState(model, check, out_state[0, -1], spec)
    diff = float(np.max(np.abs(check.qpos - reference_final_qpos)))
    if diff > 1e-9:
        log(f"warning: rollout final qpos differs from the Python replay by {diff:g}")
    timer = Timer()
    while timer.wall < min_seconds or timer.runs < 3:
        timer.run(lambda: rollout.rollout(model, data, initial, control, state=out_state), steps)
    return timer.summary(steps)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trajectory", required=True, help="trajectory JSON from `bicameral bench sim --trajectory-out`")
    ap.add_argument("--ours-json", help="JSON printed by `bicameral bench sim --json` (for our steps/s)")
    ap.add_argument("--urdf", help="override the URDF path recorded in the trajectory")
    ap.add_argument("--min-seconds", type=float, default=5.0,
                    help="minimum total wall time of the MuJoCo speed measurement (default 5)")
    ap.add_argument("--python-loop-seconds", type=float, default=1.0,
                    help="wall time of the secondary Python-loop speed measurement (0 = skip; default 1)")
    ap.add_argument("--save-mjcf", help="write the MuJoCo model as built (MJCF) to this file")
    args = ap.parse_args()

    if version_tuple(mujoco.__version__) < (3, 2):
        raise SystemExit(f"sim_vs_mujoco.py: mujoco {mujoco.__version__} is too old (MjSpec needs >= 3.2)")

    traj = load_json_file(args.trajectory, "trajectory")
    steps, targets, initial, origins = check_trajectory(traj)
    dt = float(traj["dt"])
    urdf = resolve_urdf(traj, args.trajectory, args.urdf)
    log(f"mujoco {mujoco.__version__}; {urdf}; {steps} steps of {dt} s; {len(traj['dof_names'])} DoFs, "
        f"{len(traj['joints'])} actuated joints")

    spec, model = load_model(traj, urdf)
    log(f"model: {model.nbody} bodies, {model.njnt} joints, {model.nu} actuators, {model.neq} equalities, "
        f"integrator {mujoco.mjtIntegrator(model.opt.integrator).name}, timestep {model.opt.timestep}")
    if args.save_mjcf:
        with open(args.save_mjcf, "w") as f:
            f.write(spec.to_xml())
        log(f"wrote {args.save_mjcf}")

    layout = control_layout(traj, model)
    ctrl, qpos0, qpos, _ = replay(model, targets, initial, layout)
    if not np.all(np.isfinite(qpos)):
        raise SystemExit("sim_vs_mujoco.py: MuJoCo replay diverged (non-finite qpos)")

    result = {"mujoco_version": mujoco.__version__}

    # Our speed.
    ours_sps = None
    if args.ours_json:
        ours = load_json_file(args.ours_json, "ours JSON")
        ours_sps = ours.get("physics_steps_per_s_one_world")
        if ours_sps is None:
            log("warning: ours JSON has no physics_steps_per_s_one_world")
    # MuJoCo's speed.
    rolled = time_rollout(model, qpos0, ctrl, args.min_seconds, qpos[-1])
    loop = None
    if rolled is None:
        log("mujoco.rollout unavailable: timing the Python loop instead")
        timing = time_python_loop(model, qpos0, ctrl, args.min_seconds)
        method = "python_loop_1_thread"
    else:
        timing = rolled
        method = "rollout_1_thread"
        if args.python_loop_seconds > 0:
            loop = time_python_loop(model, qpos0, ctrl, args.python_loop_seconds)
    mj_sps = timing["steps_per_s"]
    log(f"mujoco: {mj_sps:.0f} steps/s wall ({method}, {timing['runs']} runs of {steps} steps; "
        f"best run {timing['best_run_steps_per_s']:.0f}, per CPU second {timing['cpu_steps_per_s'] or 0:.0f})"
        + (f"; python loop {loop['steps_per_s']:.0f} steps/s" if loop else ""))
    try:  # our own process accounts for about 1 of the load average
        load, ncpu = os.getloadavg()[0], len(os.sched_getaffinity(0))
        if load - 1.0 >= 0.5 * ncpu:
            log(f"warning: load average {load:.2f} on {ncpu} CPUs: other processes probably perturbed "
                "the timings (compare mujoco_cpu_steps_per_s)")
    except (AttributeError, OSError):
        pass

    result["ours_steps_per_s"] = ours_sps
    result["mujoco_steps_per_s"] = round(mj_sps, 1)
    result["ratio_to_mujoco"] = (round(float(ours_sps) / mj_sps, 4) if ours_sps else None)

    # Divergence of the link origins.
    if origins is not None and len(traj.get("links") or []) > 0:
        links = list(traj["links"])
        body_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in links]
        ours_xyz = origins
        mj_xyz = body_origins(model, qpos, body_ids)
        dist_mm = np.linalg.norm(mj_xyz - ours_xyz, axis=-1) * 1000.0  # steps x links
        per_link = dist_mm.max(axis=0)
        worst = int(np.argmax(per_link))
        max_step = int(np.argmax(dist_mm[:, worst]))
        result["max_divergence_mm"] = round(float(per_link[worst]), 4)
        result["final_divergence_mm"] = round(float(dist_mm[-1].max()), 4)
        result["worst_link"] = links[worst]
        result["max_divergence_step"] = max_step
        result["per_link_max_divergence_mm"] = {n: round(float(v), 4) for n, v in zip(links, per_link)}
        log(f"divergence: max {per_link[worst]:.3f} mm ({links[worst]}, step {max_step}), "
            f"final {dist_mm[-1].max():.3f} mm")
    else:
        log("warning: trajectory has no origins; divergence not computed")
        result["max_divergence_mm"] = None
        result["final_divergence_mm"] = None
        result["worst_link"] = None

    result["steps"] = steps
    result["dt"] = dt
    result["mujoco_timing"] = method
    result["mujoco_timing_runs"] = timing["runs"]
    result["mujoco_best_run_steps_per_s"] = round(timing["best_run_steps_per_s"], 1)
    result["mujoco_cpu_steps_per_s"] = (round(timing["cpu_steps_per_s"], 1)
                                        if timing["cpu_steps_per_s"] else None)
    result["mujoco_steps_per_s_python_loop"] = round(loop["steps_per_s"], 1) if loop else None
    result["mujoco_integrator"] = "implicitfast"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
