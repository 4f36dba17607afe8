//! Write the synthetic dataset in each format/layout, read it back, compare everything.

mod common;

use bicameral_dataset::{
    Dataset, FeatureStats, Format, ImageHistogram, QUANTILES, quantile_sorted,
};
use common::*;

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// min, max, mean, std, quantiles (in `QUANTILES` order), per dimension.
type Recomputed = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<Vec<f64>>);

/// Independent recomputation of per-dimension stats (two-pass mean/std, numpy quantiles).
fn recompute(rows: &[Vec<f32>]) -> Recomputed {
    let dim = rows[0].len();
    let n = rows.len() as f64;
    let (mut mn, mut mx, mut mean, mut std, mut qs) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![vec![]; QUANTILES.len()],
    );
    for d in 0..dim {
        let mut col: Vec<f64> = rows.iter().map(|r| r[d] as f64).collect();
        let m = col.iter().sum::<f64>() / n;
        let v = col.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        col.sort_by(|a, b| a.partial_cmp(b).unwrap());
        mn.push(col[0]);
        mx.push(*col.last().unwrap());
        mean.push(m);
        std.push(v.sqrt());
        for (k, (_, q)) in QUANTILES.iter().enumerate() {
            // numpy 'linear': index q*(n-1)
            let pos = q * (col.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            qs[k].push(col[lo] + (col[hi] - col[lo]) * (pos - lo as f64));
        }
    }
    (mn, mx, mean, std, qs)
}

fn check_stats(s: &FeatureStats, rows: &[Vec<f32>], what: &str) {
    let (mn, mx, mean, std, qs) = recompute(rows);
    assert_eq!(s.count, rows.len() as u64, "{what} count");
    assert_close(&s.min, &mn, &format!("{what} min"));
    assert_close(&s.max, &mx, &format!("{what} max"));
    assert_close(&s.mean, &mean, &format!("{what} mean"));
    assert_close(&s.std, &std, &format!("{what} std"));
    for (k, (key, _)) in QUANTILES.iter().enumerate() {
        assert_close(
            s.quantile(key).expect("quantile"),
            &qs[k],
            &format!("{what} {key}"),
        );
    }
}

fn check_image_stats(s: &FeatureStats, images: &[Vec<u8>], what: &str) {
    assert_eq!(s.shape, vec![3, 1, 1]);
    assert_eq!(s.count, images.len() as u64);
    for c in 0..3 {
        let mut px: Vec<f64> = images
            .iter()
            .flat_map(|im| im.chunks(3).map(move |p| p[c] as f64 / 255.0))
            .collect();
        let n = px.len() as f64;
        let m = px.iter().sum::<f64>() / n;
        let v = px.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        px.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!((s.mean[c] - m).abs() < 1e-12, "{what} mean[{c}]");
        assert!((s.std[c] - v.sqrt()).abs() < 1e-12, "{what} std[{c}]");
        assert_eq!(s.min[c], px[0], "{what} min[{c}]");
        assert_eq!(s.max[c], *px.last().unwrap(), "{what} max[{c}]");
        for (key, q) in QUANTILES {
            let want = quantile_sorted(&px, q);
            let got = s.quantile(key).unwrap()[c];
            assert!(
                (got - want).abs() < 1e-12,
                "{what} {key}[{c}]: {got} vs {want}"
            );
        }
    }
}

#[test]
fn roundtrip_all_formats_and_layouts() {
    for (format, opts, name) in layouts() {
        let dir = scratch(&format!("roundtrip-{name}"));
        write_dataset(&dir, format, &opts, 3);
        let ds = Dataset::open(&dir).expect("open");
        let info = ds.info();
        assert_eq!(info.format, format, "{name}");
        assert_eq!(info.total_episodes, 3);
        assert_eq!(info.total_frames, LENGTHS.iter().sum::<usize>());
        assert_eq!(
            info.tasks,
            vec![TASKS[0].to_string(), TASKS[1].to_string()],
            "{name}"
        );
        assert_eq!(info.fps, 10.0);
        assert_eq!(
            info.camera_keys(),
            vec![
                "observation.images.ego_view",
                "observation.images.wrist_view"
            ]
        );
        assert_eq!(ds.num_episodes(), 3);

        let mut next_global = 0i64;
        let mut all_state = vec![];
        let mut all_action = vec![];
        let mut all_images: Vec<Vec<Vec<u8>>> = vec![vec![], vec![]];
        for i in 0..3 {
            let want = episode(i);
            assert_eq!(ds.episode_len(i), LENGTHS[i]);
            let got = ds.episode(i).expect("episode");
            assert_eq!(got.index, i);
            assert_eq!(got.task, TASKS[i]);
            assert_eq!(got.tasks, vec![TASKS[i].to_string()]);
            assert_eq!(got.meta, want.meta, "{name} episode meta");
            assert_eq!(got.state.len(), LENGTHS[i]);
            for (t, f) in want.frames.iter().enumerate() {
                assert_eq!(got.state[t], f.state, "{name} ep {i} t {t} state");
                assert_eq!(got.action[t], f.action, "{name} ep {i} t {t} action");
                assert_eq!(got.frame_index[t], t as i64);
                assert_eq!(got.global_index[t], next_global, "{name}: index contiguous");
                next_global += 1;
                assert!((got.timestamps[t] as f64 - t as f64 / 10.0).abs() < 1e-4);
                let want_task = if i == 1 { 1 } else { 0 };
                assert_eq!(got.task_index[t], want_task);
                for (c, all) in all_images.iter_mut().enumerate() {
                    let img = &got.images[c].1[t];
                    assert_eq!((img.width, img.height), (W, H));
                    assert_eq!(img.rgb, f.images[c], "{name} ep {i} t {t} cam {c}");
                    all.push(f.images[c].clone());
                }
            }
            all_state.extend(want.frames.iter().map(|f| f.state.clone()));
            all_action.extend(want.frames.iter().map(|f| f.action.clone()));

            // Per-episode statistics.
            let st = ds.episode_stats(i).expect("episode stats");
            let get = |k: &str| &st.iter().find(|(n, _)| n == k).expect(k).1;
            let rows_s: Vec<_> = want.frames.iter().map(|f| f.state.clone()).collect();
            let rows_a: Vec<_> = want.frames.iter().map(|f| f.action.clone()).collect();
            check_stats(
                get("observation.state"),
                &rows_s,
                &format!("{name} ep{i} state"),
            );
            check_stats(get("action"), &rows_a, &format!("{name} ep{i} action"));
            let imgs: Vec<Vec<u8>> = want.frames.iter().map(|f| f.images[0].clone()).collect();
            check_image_stats(
                get("observation.images.ego_view"),
                &imgs,
                &format!("{name} ep{i} ego"),
            );

            // Samples: horizon past the end is padded with the last action and masked.
            let h = 5;
            for t in 0..LENGTHS[i] {
                let s = ds.sample(i, t, h, t == 0).expect("sample");
                assert_eq!(s.state, want.frames[t].state);
                assert_eq!(s.task, TASKS[i]);
                assert!((s.timestamp as f64 - t as f64 / 10.0).abs() < 1e-4);
                for k in 0..h {
                    let j = (t + k).min(LENGTHS[i] - 1);
                    assert_eq!(
                        s.actions[k], want.frames[j].action,
                        "{name} ep{i} t{t} k{k}"
                    );
                    let real = t + k < LENGTHS[i];
                    assert_eq!(s.action_mask[k], if real { 1.0 } else { 0.0 });
                }
                if t == 0 {
                    assert_eq!(s.images.len(), 2);
                    assert_eq!(s.images[1].0, "observation.images.wrist_view");
                    assert_eq!(s.images[1].1.rgb, want.frames[0].images[1]);
                } else {
                    assert!(s.images.is_empty());
                }
            }
        }
        assert_eq!(next_global as usize, info.total_frames);

        // Dataset statistics (stats.json; v2.1 images aggregated from episodes_stats).
        check_stats(
            info.stats("observation.state").expect("state stats"),
            &all_state,
            name,
        );
        check_stats(
            info.stats("action").expect("action stats"),
            &all_action,
            name,
        );
        if format == Format::LeRobotV30 {
            check_image_stats(
                info.stats("observation.images.wrist_view")
                    .expect("image stats"),
                &all_images[1],
                name,
            );
        } else {
            // Aggregated LeRobot-style: exact mean/min/max.
            let s = info
                .stats("observation.images.wrist_view")
                .expect("image stats");
            let mut h = ImageHistogram::default();
            for im in &all_images[1] {
                h.add(im);
            }
            let exact = h.stats();
            assert_close(&s.mean, &exact.mean, "aggregated image mean");
            assert_close(&s.min, &exact.min, "aggregated image min");
            assert_close(&s.std, &exact.std, "aggregated image std");
        }
        let ts = info.stats("timestamp").expect("timestamp stats");
        assert_eq!(ts.min, vec![0.0]);
        assert!((ts.max[0] - 1.1).abs() < 1e-6);
        let idx = info.stats("index").expect("index stats");
        assert_eq!(idx.max, vec![(info.total_frames - 1) as f64]);

        // Out of range.
        assert!(ds.sample(3, 0, 4, false).is_err());
        assert!(ds.sample(1, 3, 4, false).is_err());
        assert!(ds.sample(1, 0, 0, false).is_err());
        assert!(ds.episode(7).is_err());
    }
}

#[test]
fn layout_files_present() {
    let dir = scratch("layout-v21");
    write_dataset(&dir, Format::LeRobotV21, &Default::default(), 3);
    let t = tree(&dir);
    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "data/chunk-000/episode_000000.parquet",
            "data/chunk-000/episode_000001.parquet",
            "data/chunk-000/episode_000002.parquet",
            "meta/episodes.jsonl",
            "meta/episodes_stats.jsonl",
            "meta/info.json",
            "meta/modality.json",
            "meta/stats.json",
            "meta/tasks.jsonl",
        ]
    );
    let modality: serde_json::Value = serde_json::from_slice(&t["meta/modality.json"]).unwrap();
    assert_eq!(
        modality["state"]["left_arm"],
        serde_json::json!({"start": 0, "end": 3})
    );
    assert_eq!(
        modality["action"]["left_hand"],
        serde_json::json!({"start": 3, "end": 4})
    );
    assert_eq!(
        modality["video"]["ego_view"],
        serde_json::json!({"original_key": "observation.images.ego_view"})
    );
    assert_eq!(
        modality["annotation"]["human.task_description"],
        serde_json::json!({"original_key": "task_index"})
    );
    let info: serde_json::Value = serde_json::from_slice(&t["meta/info.json"]).unwrap();
    assert_eq!(info["codebase_version"], "v2.1");
    assert_eq!(info["total_episodes"], 3);
    assert_eq!(info["total_chunks"], 1);
    assert_eq!(info["splits"]["train"], "0:3");
    assert_eq!(info["fps"], 10);
    assert_eq!(
        info["features"]["observation.images.ego_view"]["shape"],
        serde_json::json!([6, 8, 3])
    );
    let tasks = String::from_utf8(t["meta/tasks.jsonl"].clone()).unwrap();
    assert_eq!(
        tasks,
        "{\"task_index\": 0, \"task\": \"pick up the red cube\"}\n{\"task_index\": 1, \"task\": \"put it in the bowl\"}\n"
    );
    let eps = String::from_utf8(t["meta/episodes.jsonl"].clone()).unwrap();
    assert!(eps.starts_with(
        "{\"episode_index\": 0, \"tasks\": [\"pick up the red cube\"], \"length\": 7, \"episode_meta\": {"
    ), "{eps}");
    // GR00T reads flat stats lists: no image features in v2.1's stats.json.
    let stats: serde_json::Value = serde_json::from_slice(&t["meta/stats.json"]).unwrap();
    assert!(stats.get("observation.images.ego_view").is_none());
    assert!(stats["observation.state"]["q01"].is_array());

    let dir = scratch("layout-v30-small");
    let (_, opts, _) = layouts().remove(3);
    write_dataset(&dir, Format::LeRobotV30, &opts, 3);
    let t = tree(&dir);
    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "data/chunk-000/file-000.parquet",
            "data/chunk-000/file-001.parquet",
            "data/chunk-001/file-000.parquet",
            "meta/episodes/chunk-000/file-000.parquet",
            "meta/episodes/chunk-000/file-001.parquet",
            "meta/episodes/chunk-001/file-000.parquet",
            "meta/info.json",
            "meta/modality.json",
            "meta/stats.json",
            "meta/tasks.parquet",
        ]
    );
    let dir = scratch("layout-v30");
    write_dataset(&dir, Format::LeRobotV30, &Default::default(), 3);
    let keys: Vec<String> = tree(&dir).keys().cloned().collect();
    assert_eq!(
        keys,
        vec![
            "data/chunk-000/file-000.parquet",
            "meta/episodes/chunk-000/file-000.parquet",
            "meta/info.json",
            "meta/modality.json",
            "meta/stats.json",
            "meta/tasks.parquet",
        ]
    );
}
