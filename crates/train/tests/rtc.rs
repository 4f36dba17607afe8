//! Real-time chunking on a trained head. The data are bimodal on purpose: the demonstrations
//! agree until frame 12, then joint 0 swings either up or down (say, around an obstacle on the
//! left or the right). A chunk sampled before the branch picks a side at random, so with naive
//! switching two consecutive chunks often disagree and the command jumps from one side to the
//! other. With RTC the new chunk reproduces the committed actions exactly and blends out of
//! them, so the jump at the switch shrinks. Guided RTC (inpainting plus Black et al.'s guidance
//! term, one VJP through the head per Euler step) also keeps the prefix exactly and brings the
//! new chunk's overlap closer to the committed chunk than naive switching. The test prints how
//! often each method's new chunk ends on the side the committed chunk took: on this sharply
//! bimodal toy head none of them follows the committed side better than chance, because the
//! head's estimate of the final chunk hardly depends on its input while the side is decided
//! (the Jacobian the guidance works through is near zero there).

mod common;

use std::path::Path;

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame};
use bicameral_train::{load_checkpoint, train_s1};
use common::{tiny_config, tmp};

const LEN: usize = 32;
/// Chunk length of the tiny head (`tiny_config`).
const H: usize = 8;
const BRANCH: usize = 12;

/// Side `m` (±1) at frame `t`: joint 0 holds 0 until the branch and then ramps by ±0.12 rad
/// per frame; joint 1 ramps the same way on both sides.
fn action_at(m: f32, t: usize) -> Vec<f32> {
    let j0 = m * 0.12 * t.saturating_sub(BRANCH) as f32;
    vec![j0, t as f32 / LEN as f32 - 0.5]
}

/// The state is the previous action (a stiff position controller); up to the branch it is the
/// same on both sides.
fn state_at(m: f32, t: usize) -> Vec<f32> {
    action_at(m, t.saturating_sub(1))
}

fn write_dataset(dir: &Path) {
    let spec = DatasetSpec {
        fps: 10.0,
        robot_type: "toy_arm".into(),
        state_names: vec!["j0".into(), "j1".into()],
        action_names: vec!["j0".into(), "j1".into()],
        state_slices: vec![("arm".into(), 0, 2)],
        action_slices: vec![("arm".into(), 0, 2)],
        cameras: vec![],
        video: false,
    };
    let mut w = DatasetWriter::create(dir, Format::LeRobotV30, spec, false).unwrap();
    for m in [1.0f32, -1.0] {
        w.write_episode(&Episode {
            task: "swing".into(),
            frames: (0..LEN)
                .map(|t| Frame {
                    state: state_at(m, t),
                    action: action_at(m, t),
                    images: vec![],
                })
                .collect(),
            meta: serde_json::json!({}),
        })
        .unwrap();
    }
    w.finish().unwrap();
}

/// Largest per-step change (max over joints) of `path` from index `from` on.
fn max_step(path: &[Vec<f32>], from: usize) -> f32 {
    path.windows(2)
        .skip(from)
        .map(|w| {
            w[0].iter()
                .zip(&w[1])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
        })
        .fold(0.0, f32::max)
}

#[test]
fn rtc_keeps_the_prefix_and_shrinks_the_boundary_jump() {
    let dir = tmp("rtc");
    let data = dir.join("data");
    write_dataset(&data);
    let mut cfg = tiny_config(1500, 5, None);
    cfg.checkpoint_every = 1500;
    assert_eq!(cfg.head.action_horizon, H);
    let device = bicameral_policy::cpu_device();
    let report = train_s1(&[data], &cfg, &dir.join("run"), false, &device, &mut |_| {
        true
    })
    .unwrap();
    let (policy, _, _) = load_checkpoint(&report.checkpoint, &device).unwrap();

    // The executor runs chunk A from t0; after `e` steps it asks for chunk B (at the state of
    // t0 + e); B arrives `d` steps later, so A's actions e..e+d are committed. The prefix
    // offered to B is A's remaining e..H (P = H - e ≥ d).
    let (e, d) = (4usize, 2usize);
    let data_step = (0..LEN - 1)
        .map(|t| {
            let (a, b) = (action_at(1.0, t), action_at(1.0, t + 1));
            (a[0] - b[0]).abs().max((a[1] - b[1]).abs())
        })
        .fold(0.0, f32::max);
    // Per switch: the boundary jump |first new action - last committed action| (max over
    // joints) and the largest step change from there to the end of the new chunk.
    let (mut jumps_naive, mut jumps_rtc, mut after_naive, mut after_rtc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut same_naive, mut same_rtc, mut same_guided) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gap_naive, mut gap_rtc, mut gap_guided) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 0..12u64 {
        // Chunk A starts before the branch and reaches past it; B is asked for at a state
        // that is still before the branch (both sides possible), with a prefix past it.
        for t0 in [7usize, 8, 9] {
            let a = policy.act(0, &state_at(1.0, t0), 100 + seed).unwrap();
            let s1 = state_at(1.0, t0 + e);
            assert_eq!(
                s1,
                state_at(-1.0, t0 + e),
                "B's state must not tell the sides apart"
            );
            let naive = policy.act(0, &s1, 200 + seed).unwrap();
            let rtc = policy
                .act_rtc(0, &s1, &a[e..], d, None, 200 + seed)
                .unwrap();
            let guided = policy
                .act_rtc(0, &s1, &a[e..], d, Some(5.0), 200 + seed)
                .unwrap();
            // The committed prefix is honoured exactly (up to the f32 normalization round trip).
            for b in [&rtc, &guided] {
                for k in 0..d {
                    for (x, y) in b[k].iter().zip(&a[e + k]) {
                        assert!((x - y).abs() <= 1e-5, "prefix step {k}: {x} vs {y}");
                    }
                }
            }
            // Which side each chunk ends on (joint 0 is past the branch at both ends).
            let side = |c: &[Vec<f32>]| c[H - 1][0] > 0.0;
            let committed = side(&a);
            same_naive.push(side(&naive) == committed);
            same_rtc.push(side(&rtc) == committed);
            same_guided.push(side(&guided) == committed);
            // Distance to the committed chunk over the overlap (steps d..P of the new chunk).
            let gap = |c: &[Vec<f32>]| -> f32 {
                (d..H - e)
                    .map(|k| {
                        c[k].iter()
                            .zip(&a[e + k])
                            .map(|(x, y)| (x - y).abs())
                            .fold(0.0, f32::max)
                    })
                    .sum::<f32>()
                    / (H - e - d) as f32
            };
            gap_naive.push(gap(&naive));
            gap_rtc.push(gap(&rtc));
            gap_guided.push(gap(&guided));
            // Executed: A[0..e+d], then B from its index d on.
            let exec = |b: &[Vec<f32>]| -> Vec<Vec<f32>> {
                a[..e + d].iter().chain(&b[d..]).cloned().collect()
            };
            let (xn, xr) = (exec(&naive), exec(&rtc));
            let jump = |x: &[Vec<f32>]| max_step(&x[e + d - 1..e + d + 1], 0);
            jumps_naive.push(jump(&xn));
            jumps_rtc.push(jump(&xr));
            after_naive.push(max_step(&xn, e + d - 1));
            after_rtc.push(max_step(&xr, e + d - 1));
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (jn, jr) = (mean(&jumps_naive), mean(&jumps_rtc));
    eprintln!(
        "{} switches: boundary jump naive {jn:.4} vs RTC {jr:.4} (mean, rad); largest step \
         change after the switch naive {:.4} vs RTC {:.4}; largest step in the data {data_step:.4}",
        jumps_naive.len(),
        mean(&after_naive),
        mean(&after_rtc)
    );
    assert!(
        jr < 0.75 * jn,
        "RTC's boundary jump {jr} is not clearly smaller than naive switching's {jn}"
    );
    let rate = |v: &[bool]| v.iter().filter(|&&b| b).count() as f32 / v.len() as f32;
    let (sn, sr, sg) = (rate(&same_naive), rate(&same_rtc), rate(&same_guided));
    eprintln!(
        "new chunk ends on the committed side: naive {sn:.2}, inpainting {sr:.2}, guided {sg:.2}; \
         mean gap to the committed chunk over the overlap: naive {:.4}, inpainting {:.4}, guided {:.4}",
        mean(&gap_naive),
        mean(&gap_rtc),
        mean(&gap_guided)
    );
    let (gn, gg) = (mean(&gap_naive), mean(&gap_guided));
    assert!(
        gg < 0.85 * gn,
        "guided RTC's overlap gap {gg} is not clearly smaller than naive switching's {gn}"
    );
}
