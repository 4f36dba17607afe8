//! Tasks as data, domain randomization, scripted experts and the recorder.
//!
//! The expert success tests run a few seeds per task by default (the dev profile is slow);
//! set `BICAMERAL_EXPERT_SEEDS=30` (and `--release`) for the full measurement.

use std::path::{Path, PathBuf};

use bicameral_sim::task::{ItemRole, footprint_radius, half_height};
use bicameral_sim::{
    DataRoot, EpisodeOptions, EpisodeSetup, ObjectShape, SimWorld, Split, TaskEnv, TaskSpec,
    par_map,
};
use nalgebra::{Isometry3, Translation3, UnitQuaternion};

const TASKS: [&str; 3] = ["pick_place", "stack", "handover"];

fn root() -> DataRoot {
    DataRoot {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}

fn env(task: &str) -> TaskEnv {
    TaskEnv::load(&root(), task).unwrap_or_else(|e| panic!("task {task}: {e}"))
}

#[test]
fn every_task_file_loads_with_enough_paraphrases() {
    let dir = root().root.join("sim/tasks");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    for task in TASKS {
        assert!(
            names.iter().any(|n| n == task),
            "sim/tasks/{task}.toml missing"
        );
    }
    for name in &names {
        let spec = TaskSpec::load(&dir.join(format!("{name}.toml"))).unwrap();
        assert_eq!(&spec.name, name, "task name matches its file");
        let train = spec.templates(Split::Train).len();
        let heldout = spec.templates(Split::Heldout).len();
        assert!(
            train + heldout >= 6 && heldout >= 2,
            "{name}: {train} training + {heldout} held-out paraphrases"
        );
        assert!(spec.time_limit_s > 0.0 && spec.control_hz > 0.0);
        TaskEnv::new(&root(), spec).unwrap();
    }
}

/// Renders every template of `split` for `ep`'s object and target.
fn rendered(spec: &TaskSpec, ep: &EpisodeSetup, split: Split) -> Vec<String> {
    let describe = |name: &str| {
        let it = ep.items.iter().find(|i| i.name == name).unwrap();
        format!("{} {}", it.colour, it.word)
    };
    spec.templates(split)
        .iter()
        .map(|t| {
            t.replace("{object}", &describe(&ep.object))
                .replace("{target}", &describe(&ep.target))
        })
        .collect()
}

#[test]
fn sampling_is_reproducible_and_valid() {
    for task in TASKS {
        let env = env(task);
        let spec = &env.spec;
        let a = env.sample(7, false).unwrap();
        assert_eq!(
            a,
            env.sample(7, false).unwrap(),
            "{task}: same seed, same episode"
        );
        let b = env.sample(8, false).unwrap();
        assert_ne!(
            a.scene, b.scene,
            "{task}: seeds 7 and 8 give the same scene"
        );
        assert_ne!(a.initial_q, b.initial_q);
        assert_ne!(a.camera_jitter, b.camera_jitter);

        for seed in 0..40 {
            let ep = env.sample(seed, false).unwrap();
            // The instruction comes from the training split and names the task's objects.
            assert!(
                rendered(spec, &ep, Split::Train).contains(&ep.instruction),
                "{task} seed {seed}: \"{}\" is not a training paraphrase",
                ep.instruction
            );
            let held = env.sample(seed, true).unwrap();
            assert!(
                rendered(spec, &held, Split::Heldout).contains(&held.instruction),
                "{task} seed {seed}: \"{}\" is not a held-out paraphrase",
                held.instruction
            );
            // The object named by the instruction is unambiguous.
            let obj = ep.items.iter().find(|i| i.name == ep.object).unwrap();
            assert_eq!(obj.role, ItemRole::Object);
            let same_words = ep
                .items
                .iter()
                .filter(|i| i.colour == obj.colour && i.word == obj.word)
                .count();
            assert_eq!(same_words, 1, "{task} seed {seed}: ambiguous object");
            let count = ep
                .items
                .iter()
                .filter(|i| matches!(i.role, ItemRole::Object | ItemRole::Distractor))
                .count()
                + usize::from(task == "stack");
            let [lo, hi] = spec.objects.count;
            assert!((lo..=hi).contains(&count), "{task}: {count} objects");
            // Placed inside the layout, on the table, without overlaps.
            let loose: Vec<_> = ep
                .scene
                .objects
                .iter()
                .filter(|o| ep.items.iter().any(|i| i.name == o.name))
                .collect();
            for (i, o) in loose.iter().enumerate() {
                let [x, y, z] = o.position;
                let l = &spec.layout;
                assert!(
                    (l.x[0]..=l.x[1]).contains(&x) && (l.y[0]..=l.y[1]).contains(&y),
                    "{task} seed {seed}: {} at ({x:.3}, {y:.3})",
                    o.name
                );
                let bottom = z - half_height(&o.shape);
                assert!(
                    (bottom - ep.table_z).abs() < 1e-3,
                    "{}: bottom {bottom}",
                    o.name
                );
                for p in &loose[..i] {
                    let d = (x - p.position[0]).hypot(y - p.position[1]);
                    let need = footprint_radius(&o.shape) + footprint_radius(&p.shape);
                    assert!(
                        d >= need + l.min_gap - 1e-9,
                        "{task} seed {seed}: {} and {} overlap",
                        o.name,
                        p.name
                    );
                }
            }
        }
    }
}

#[test]
fn broken_task_files_name_the_field() {
    let good = std::fs::read_to_string(root().task_path("stack")).unwrap();
    let cases = [
        (
            "unknown.toml",
            good.replace("time_limit_s", "time_limit"),
            "time_limit",
        ),
        (
            "split.toml",
            good.replace("split = \"heldout\"", "split = \"test\""),
            "test",
        ),
        (
            "placeholder.toml",
            good.replace(
                "put the {object} on the {target}",
                "put the {thing} away {object} {target}",
            ),
            "{thing}",
        ),
        (
            "no_heldout.toml",
            good.replace("split = \"heldout\"", "split = \"train\""),
            "Heldout",
        ),
        (
            "success.toml",
            good.replace("kind = \"on_top\"", "kind = \"on_spot\""),
            "success.kind",
        ),
        (
            "range.toml",
            good.replace("mass = [0.05, 0.15]", "mass = [0.15, 0.05]"),
            "objects.mass",
        ),
    ];
    let dir = std::env::temp_dir().join(format!("bicameral-task-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text, needle) in cases {
        assert_ne!(text, good, "{file}: the case does not change the file");
        let p: PathBuf = dir.join(file);
        std::fs::write(&p, text).unwrap();
        let err = TaskSpec::load(&p).unwrap_err().to_string();
        assert!(
            err.contains(file),
            "{file}: error does not name the file: {err}"
        );
        assert!(
            err.contains(needle),
            "{file}: error does not mention {needle}: {err}"
        );
    }
}

/// Builds `ep`'s world, lets it settle, moves `name` to `pose`, settles again.
fn world_with(env: &TaskEnv, ep: &EpisodeSetup, moves: &[(&str, Isometry3<f64>)]) -> SimWorld {
    let mut w = env.world(ep).unwrap();
    w.step_n(50).unwrap();
    for (name, pose) in moves {
        assert!(w.set_object_pose(name, pose));
    }
    w.step_n(400).unwrap();
    w
}

fn at(x: f64, y: f64, z: f64) -> Isometry3<f64> {
    Isometry3::from_parts(Translation3::new(x, y, z), UnitQuaternion::identity())
}

/// The success tests judge object placements: true where the task is done, false otherwise.
#[test]
fn success_tests_accept_done_and_reject_undone_placements() {
    for task in TASKS {
        let env = env(task);
        let ep = env.sample(3, false).unwrap();
        let obj = ep.object_config(&ep.object).unwrap();
        let tgt = ep.object_config(&ep.target).unwrap();
        let [tx, ty, tz] = tgt.position;
        let hh = half_height(&obj.shape);
        // Done: dropped into the container / onto the block / onto the spot.
        let done_z = match tgt.shape {
            ObjectShape::Container { size, wall } => tz - size[2] / 2.0 + wall + hh + 0.002,
            ref s => tz + half_height(s) + hh + 0.002,
        };
        let done = world_with(&env, &ep, &[(&ep.object, at(tx, ty, done_z))]);
        assert_eq!(
            env.spec.check_success(&ep, &done),
            Ok(()),
            "{task}: object placed on/in the target"
        );
        // Not done: the object as it was placed at the start.
        let start = world_with(&env, &ep, &[]);
        let err = env.spec.check_success(&ep, &start).unwrap_err();
        assert!(err.contains(&ep.object), "{task}: {err}");
        // Not done: on the table right next to the target.
        let beside_y =
            ty - (footprint_radius(&tgt.shape) + footprint_radius(&obj.shape) + 0.01) * ty.signum();
        let beside = world_with(
            &env,
            &ep,
            &[(&ep.object, at(tx, beside_y, ep.table_z + hh + 0.001))],
        );
        let err = env.spec.check_success(&ep, &beside).unwrap_err();
        assert!(
            err.contains("outside") || err.contains("not over"),
            "{task}: object beside the target: {err}"
        );
    }
}

fn expert_seeds() -> u64 {
    std::env::var("BICAMERAL_EXPERT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// Runs the expert on seeds 0..N (no images) and checks its success rate.
fn expert_success_rate(task: &str) {
    let env = env(task);
    let mut seeds: Vec<u64> = (0..expert_seeds()).collect();
    let wall = std::time::Instant::now();
    let outcomes = par_map(1, &mut seeds, |_, seed| {
        env.run(*seed, &EpisodeOptions::default()).unwrap().0
    });
    let ok = outcomes.iter().filter(|o| o.success).count();
    let rate = ok as f64 / seeds.len() as f64;
    let sim: f64 = outcomes.iter().map(|o| o.sim_time).sum::<f64>() / seeds.len() as f64;
    eprintln!(
        "{task}: expert succeeded on {ok}/{} seeds ({:.0} %), mean episode {sim:.1} s simulated, {:.1} s wall per episode",
        seeds.len(),
        100.0 * rate,
        wall.elapsed().as_secs_f64() / seeds.len() as f64
    );
    for (seed, o) in seeds.iter().zip(&outcomes) {
        if let Some(r) = &o.failure_reason {
            eprintln!("  {task} seed {seed} failed: {r}");
        }
        assert!(o.sim_time <= env.spec.time_limit_s + 0.1);
        assert_eq!(o.steps as f64, (o.sim_time * env.spec.control_hz).round());
    }
    assert!(rate >= 0.9, "{task}: expert success rate {rate:.2} < 0.9");
}

#[test]
fn expert_succeeds_at_pick_place() {
    expert_success_rate("pick_place");
}

#[test]
fn expert_succeeds_at_stack() {
    expert_success_rate("stack");
}

#[test]
fn expert_succeeds_at_handover() {
    expert_success_rate("handover");
}

/// One recorded episode with images: frames at the control rate, the embodiment's layouts,
/// three 224² RGB images per frame, causal pairing, and bit-identical when run again.
#[test]
fn recorded_episodes_are_complete_and_reproducible() {
    let env = env("stack");
    let opts = EpisodeOptions {
        record_images: true,
        ..EpisodeOptions::default()
    };
    let seed = 2;
    let (outcome, rec) = env.run(seed, &opts).unwrap();
    assert!(outcome.success, "{:?}", outcome.failure_reason);
    let rec = rec.expect("a successful episode is recorded");
    let ep = env.sample(seed, false).unwrap();
    let emb = &env.base.embodiment;
    assert_eq!(rec.task, ep.instruction);
    assert_eq!(rec.seed, seed);
    assert!(rec.success);
    assert!((rec.fps - 20.0).abs() < 1e-9, "fps {}", rec.fps);
    assert_eq!(rec.frames.len() as u64, outcome.steps);
    assert_eq!(
        rec.frames.len(),
        (outcome.sim_time * rec.fps).round() as usize,
        "one frame per control tick"
    );
    assert_eq!(rec.state_names.len(), emb.state_dim());
    assert_eq!(rec.action_names.len(), emb.action_dim());
    let names: Vec<&str> = rec.cameras.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ego_view", "left_wrist", "right_wrist"]);
    for f in &rec.frames {
        assert_eq!(f.state.len(), emb.state_dim());
        assert_eq!(f.action.len(), emb.action_dim());
        assert_eq!(f.images.len(), 3);
        assert!(f.images.iter().all(|i| i.len() == 224 * 224 * 3));
    }
    // Causal pairing: frame 0 observes the initial pose, and its action is the first target
    // (the expert starts by holding still).
    let state_idx = emb.state_dof_indices(&env.base.kin).unwrap();
    let action_idx = emb.action_dof_indices(&env.base.kin).unwrap();
    for (k, &dof) in state_idx.iter().enumerate() {
        assert!((f64::from(rec.frames[0].state[k]) - ep.initial_q[dof]).abs() < 1e-4);
    }
    for (k, &dof) in action_idx.iter().enumerate() {
        assert_eq!(rec.frames[0].action[k], ep.initial_q[dof] as f32);
    }
    // Actions lead states: the commanded gripper closes before the measured one does.
    let grip = rec
        .action_names
        .iter()
        .position(|n| n.contains("gripper"))
        .unwrap();
    let grip_state = rec
        .state_names
        .iter()
        .position(|n| *n == rec.action_names[grip])
        .unwrap();
    let first = |v: &dyn Fn(&bicameral_sim::RecordedFrame) -> f32| {
        rec.frames.iter().position(|f| v(f) < 0.03)
    };
    let right = rec
        .action_names
        .iter()
        .rposition(|n| n.contains("gripper"))
        .unwrap();
    let right_state = rec
        .state_names
        .iter()
        .position(|n| *n == rec.action_names[right])
        .unwrap();
    let act = first(&|f| f.action[grip].min(f.action[right]));
    let obs = first(&|f| f.state[grip_state].min(f.state[right_state]));
    assert!(
        matches!((act, obs), (Some(a), Some(o)) if a < o),
        "gripper closing: action at {act:?}, state at {obs:?}"
    );
    // The images see something and change over time.
    let ego = |k: usize| &rec.frames[k].images[0];
    let last = rec.frames.len() - 1;
    assert_ne!(ego(0), ego(last / 2));
    let distinct: std::collections::HashSet<&[u8]> = ego(0).chunks(3).collect();
    assert!(
        distinct.len() > 50,
        "ego view has {} colours",
        distinct.len()
    );

    let (again, rec2) = env.run(seed, &opts).unwrap();
    assert_eq!(outcome, again);
    assert_eq!(rec.hash(), rec2.unwrap().hash(), "rerun differs");
}

#[test]
fn blow_ups_and_time_limits_end_episodes_as_failures() {
    let mut env = env("stack");
    env.base.scene.physics.max_linear_speed = 1e-4;
    let (o, rec) = env.run(0, &EpisodeOptions::default()).unwrap();
    assert!(!o.success && rec.is_none());
    let reason = o.failure_reason.unwrap();
    assert!(reason.contains("diverged"), "{reason}");

    let mut env = self::env("stack");
    env.spec.time_limit_s = 1.0;
    let opts = EpisodeOptions {
        keep_failures: true,
        ..EpisodeOptions::default()
    };
    let (o, rec) = env.run(0, &opts).unwrap();
    assert!(!o.success);
    assert!(o.failure_reason.unwrap().contains("time limit"));
    assert!(o.sim_time <= 1.06);
    let rec = rec.expect("failures kept on request");
    assert!(!rec.success);
    assert_eq!(rec.frames.len() as u64, o.steps);
}

/// The episode monitor (closed-loop evaluation): an idle robot fails with a missed grasp; an
/// object lifted by hand-placed contact counts only when the robot touches it; a placement
/// that passes the success test succeeds unless another object was moved.
#[test]
fn the_monitor_names_why_an_episode_failed() {
    use bicameral_sim::{Ending, EpisodeMonitor, FailureCause};
    let env = env("pick_place");
    let ep = env.sample(3, false).unwrap();
    // Idle: nothing lifted, the object never moved.
    let mut w = env.world(&ep).unwrap();
    let mut m = EpisodeMonitor::new(&ep, &w);
    for _ in 0..20 {
        w.step_n(25).unwrap();
        assert!(!m.observe(&env.spec, &ep, &w));
    }
    assert_eq!(m.first_lift(), None);
    assert_eq!(m.picked_named(), None);
    assert_eq!(
        m.cause(&env.spec, &ep, &w, Ending::TimeLimit),
        Some(FailureCause::MissedGrasp)
    );
    // Closest approach of a grasp site to the object: the idle arms stay where they were.
    let site_distance = |w: &bicameral_sim::SimWorld| {
        let p = w.object_pose(&ep.object).unwrap().translation.vector;
        ["left_grasp_site", "right_grasp_site"]
            .iter()
            .map(|n| {
                (w.link_pose(w.model().link_id(n).unwrap())
                    .translation
                    .vector
                    - p)
                    .norm()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let idle = m.closest_approach().unwrap();
    assert!(idle > 0.1, "idle arms {idle} m from the object");
    assert!((idle - site_distance(&w)).abs() < 0.01, "{idle}");
    // Brought to 2 cm of a grasp site for one tick, then put back: the minimum is kept.
    let site = w
        .link_pose(w.model().link_id("right_grasp_site").unwrap())
        .translation
        .vector;
    let back = w.object_pose(&ep.object).unwrap();
    assert!(w.set_object_pose(&ep.object, &at(site.x, site.y, site.z - 0.02)));
    m.observe(&env.spec, &ep, &w);
    assert!(w.set_object_pose(&ep.object, &back));
    m.observe(&env.spec, &ep, &w);
    let near = m.closest_approach().unwrap();
    assert!(near <= 0.0201 && near < idle, "{near}");
    assert_eq!(
        m.cause(&env.spec, &ep, &w, Ending::SafetyStop),
        Some(FailureCause::SafetyStop)
    );
    // Raised without the robot touching it: not a lift.
    let p = w.object_pose(&ep.object).unwrap().translation.vector;
    assert!(w.set_object_pose(&ep.object, &at(p.x, p.y, p.z + 0.2)));
    w.step().unwrap();
    m.observe(&env.spec, &ep, &w);
    assert_eq!(m.first_lift(), None, "a falling object is not a pick");

    // Placed in the target: success, at the time it was first seen.
    let tgt = ep.object_config(&ep.target).unwrap();
    let obj = ep.object_config(&ep.object).unwrap();
    let [tx, ty, tz] = tgt.position;
    let z = match tgt.shape {
        ObjectShape::Container { size, wall } => {
            tz - size[2] / 2.0 + wall + half_height(&obj.shape) + 0.002
        }
        ref s => tz + half_height(s) + half_height(&obj.shape) + 0.002,
    };
    let mut w = env.world(&ep).unwrap();
    let mut m = EpisodeMonitor::new(&ep, &w);
    assert!(w.set_object_pose(&ep.object, &at(tx, ty, z)));
    w.step_n(400).unwrap();
    assert!(m.observe(&env.spec, &ep, &w));
    let t = m.success_time().unwrap();
    assert!((t - w.time()).abs() < 1e-9);
    assert_eq!(m.cause(&env.spec, &ep, &w, Ending::TimeLimit), None);

    // The same placement with a distractor knocked 10 cm away: disturbed, not success.
    let other = ep.distractors()[0].to_string();
    let mut w = env.world(&ep).unwrap();
    let mut m = EpisodeMonitor::new(&ep, &w);
    let q = w.object_pose(&other).unwrap().translation.vector;
    assert!(w.set_object_pose(&ep.object, &at(tx, ty, z)));
    assert!(w.set_object_pose(&other, &at(q.x - 0.1, q.y, q.z + 0.002)));
    w.step_n(400).unwrap();
    assert!(!m.observe(&env.spec, &ep, &w));
    let msg = m.last_check().clone().unwrap_err();
    assert!(msg.contains(&other) && msg.contains("disturbed"), "{msg}");
    assert_eq!(
        m.cause(&env.spec, &ep, &w, Ending::TimeLimit),
        Some(FailureCause::Disturbed)
    );
}

/// Retargeting an episode (the `shuffled` ablation): a distractor becomes the object, the
/// instruction names it in the same template, the scene is unchanged.
#[test]
fn retargeted_episodes_name_the_new_object() {
    let env = env("pick_place");
    for seed in 0..5 {
        let ep = env.sample(seed, false).unwrap();
        assert!(
            env.spec
                .templates(Split::Train)
                .contains(&ep.template.as_str())
        );
        let others = ep.distractors();
        assert!(
            !others.is_empty(),
            "seed {seed}: pick_place has distractors"
        );
        let new = ep.retarget(others[0]).unwrap();
        assert_eq!(new.object, others[0]);
        assert_eq!(new.scene, ep.scene);
        assert_eq!(new.template, ep.template);
        assert!(new.instruction.contains(&ep.describe(others[0]).unwrap()));
        assert!(!new.instruction.contains(&ep.describe(&ep.object).unwrap()));
        assert!(new.distractors().contains(&ep.object.as_str()));
        assert_eq!(
            new.items
                .iter()
                .filter(|i| i.role == ItemRole::Object)
                .count(),
            1
        );
        assert!(
            ep.retarget(&ep.target).is_none(),
            "the target is not a distractor"
        );
    }
}
