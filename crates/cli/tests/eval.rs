//! `bicameral eval`: closed-loop lock-step evaluation with the runtime's node code. A tiny
//! System 2 + System 1 checkpoint (real burn models, trained two steps) runs every condition;
//! the scripted expert (the upper bound) succeeds and picks the named object.

mod common;

use std::path::Path;

use common::{bicameral, ok, rrd_entities, tiny_dual_checkpoint, tmp_dir};
use serde_json::Value;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn eval_runs_the_dual_system_in_lockstep_and_reports_every_condition() {
    let dir = tmp_dir("eval");
    let run = tiny_dual_checkpoint(&dir);
    let ck = s(&run.join("checkpoint"));
    let rrd = dir.join("rrd");
    let eval = |json: &Path, rrd: Option<&Path>, workers: &str| {
        let mut args = vec![
            "eval".to_string(),
            "--checkpoint".into(),
            ck.clone(),
            "--episodes".into(),
            "2".into(),
            "--time-limit".into(),
            "2".into(),
            "--conditions".into(),
            "policy,paraphrase,shuffled,no_plan".into(),
            "--json".into(),
            s(json),
            "--workers".into(),
            workers.into(),
        ];
        if let Some(r) = rrd {
            args.extend(["--save-rrd".into(), s(r)]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&bicameral(&refs), "eval")
    };
    let out = eval(&dir.join("a.json"), Some(&rrd), "1");
    assert!(out.contains("| policy | pick_place | 2 |"), "{out}");
    let r = read(&dir.join("a.json"));

    // Headline fields.
    assert_eq!(r["episodes"], 2);
    let (rate, lo, hi) = (
        r["success_rate"].as_f64().unwrap(),
        r["ci95_low"].as_f64().unwrap(),
        r["ci95_high"].as_f64().unwrap(),
    );
    assert!(lo <= rate && rate <= hi && hi <= 1.0 && lo >= 0.0);
    assert!(
        hi - lo > 0.5,
        "two episodes cannot give a narrow interval: {lo}..{hi}"
    );
    assert_eq!(r["headline"], "policy");

    // Every episode ran the nodes at their rates for the 2 s limit, through the executor.
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 8, "4 conditions × 2 seeds");
    for e in results {
        let c = e["condition"].as_str().unwrap();
        let t = e["sim_time_s"].as_f64().unwrap();
        assert!((2.0..2.2).contains(&t), "{c}: {t}");
        let (plans, chunks) = (e["plans"].as_u64().unwrap(), e["chunks"].as_u64().unwrap());
        if c == "no_plan" {
            assert_eq!(plans, 0, "no System 2 in the no-plan ablation");
        } else {
            // 5 Hz over 2 s (the first plan waits for the first frame).
            assert!((9..=11).contains(&plans), "{c}: {plans} plans");
        }
        // 30 Hz over the 2.05 s the episode lasts (it ends at the first control tick past 2 s).
        assert!((55..=63).contains(&chunks), "{c}: {chunks} chunks");
        assert_eq!(
            e["rejected_chunks"], 0,
            "{c}: in-limit chunks are not rejected"
        );
        assert!(!e["boundary_jumps_rad"].as_array().unwrap().is_empty());
        assert!(e["success"] == false || e["failure"].is_null());
    }
    // The shuffled condition names another object of the same scene, same template.
    let by = |c: &str, seed: u64| {
        results
            .iter()
            .find(|e| e["condition"] == c && e["seed"] == seed)
            .unwrap()
    };
    for seed in [1_000_000u64, 1_000_001] {
        let (p, sh, para) = (
            by("policy", seed),
            by("shuffled", seed),
            by("paraphrase", seed),
        );
        assert_eq!(p["template"], sh["template"]);
        assert_ne!(p["instruction"], sh["instruction"]);
        assert_ne!(p["template"], para["template"], "held-out paraphrase");
    }
    // Summaries per condition and task, pooled rows, the markdown report next to the JSON.
    let sums = r["summaries"].as_array().unwrap();
    assert_eq!(sums.len(), 8, "4 conditions × (pick_place + all)");
    let md = std::fs::read_to_string(dir.join("a.md")).unwrap();
    assert!(md.contains("Wilson 95 % CI") && md.contains("| no_plan | pick_place |"));
    for png in ["a_success.png", "a_templates.png", "a_boundary.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png}");
        assert!(md.contains(&format!("]({png})")), "the report shows {png}");
    }

    // One finished rerun recording per episode, nothing half-written.
    let mut files: Vec<String> = std::fs::read_dir(&rrd)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with(".rrd")), "{files:?}");
    for f in &files {
        let bytes = std::fs::read(rrd.join(f)).unwrap();
        assert!(bytes.starts_with(b"RRF"), "{f} is not an rrd file");
        assert!(bytes.len() > 10_000, "{f}: {} bytes", bytes.len());
    }
    let (_, entities) = rrd_entities(&rrd.join("policy_pick_place_1000000.rrd"));
    for e in [
        "/cameras/ego_view",
        "/world/plan/chunk",
        "/world/plan/subgoal/object",
        "/world/plan/subgoal/destination",
        "/world/executed",
        "/task/instruction",
        "/task/result",
    ] {
        assert!(entities.contains(e), "{e} missing from {entities:?}");
    }
    assert!(entities.iter().any(|e| e.starts_with("/world/robot/")));
    assert!(entities.iter().any(|e| e.starts_with("/world/objects/")));
    let (_, no_plan) = rrd_entities(&rrd.join("no_plan_pick_place_1000000.rrd"));
    assert!(
        !no_plan.contains("/world/plan/subgoal/object"),
        "no System 2, no subgoal"
    );

    // Lock-step: the same evaluation again gives the same bytes, whatever the number of
    // workers (which worker runs an episode changes nothing; this tiny model is below every
    // parallel threshold of the backend, so the one-thread pools themselves are not exercised
    // here).
    eval(&dir.join("b.json"), None, "2");
    assert!(
        std::fs::read(dir.join("a.json")).unwrap() == std::fs::read(dir.join("b.json")).unwrap(),
        "two runs of the same evaluation differ (1 worker, then 2)"
    );
}

#[test]
fn the_scripted_expert_succeeds_and_picks_the_named_object() {
    let dir = tmp_dir("eval-expert");
    let json = dir.join("expert.json");
    ok(
        &bicameral(&[
            "eval",
            "--conditions",
            "expert",
            "--episodes",
            "2",
            "--workers",
            "2",
            "--json",
            &s(&json),
        ]),
        "eval expert",
    );
    let r = read(&json);
    assert_eq!(r["headline"], "expert");
    assert_eq!(r["success_rate"], 1.0);
    for e in r["results"].as_array().unwrap() {
        assert_eq!(e["success"], true);
        assert_eq!(e["picked_named"], true, "{e}");
        let t = e["time_to_success_s"].as_f64().unwrap();
        assert!((3.0..20.0).contains(&t), "{t}");
    }
    // A model is needed for anything but the expert; the error says so.
    let res = bicameral(&["eval", "--conditions", "policy", "--episodes", "1"]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("--checkpoint"));
}
