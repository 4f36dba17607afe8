//! Refusals: wrong directories, wrong frames, NaN, mismatched resume, unwritable output.

mod common;

use bicameral_dataset::{Dataset, DatasetError, DatasetWriter, Format};
use common::*;

#[test]
fn refuses_non_dataset_directory_and_touches_nothing() {
    let dir = scratch("bad-nondataset");
    let precious = dir.join("notes.txt");
    std::fs::write(&precious, b"keep me").unwrap();
    for format in [Format::LeRobotV21, Format::LeRobotV30] {
        for resume in [false, true] {
            let err = DatasetWriter::create(&dir, format, spec(), resume).unwrap_err();
            assert!(matches!(err, DatasetError::NotADataset { .. }), "{err}");
            assert!(err.to_string().contains(&dir.display().to_string()));
        }
    }
    let t = tree(&dir);
    assert_eq!(t.len(), 1);
    assert_eq!(t["notes.txt"], b"keep me");
}

#[test]
fn refuses_existing_dataset_without_resume() {
    let dir = scratch("bad-existing");
    write_dataset(&dir, Format::LeRobotV30, &Default::default(), 1);
    let before = tree(&dir);
    let err = DatasetWriter::create(&dir, Format::LeRobotV30, spec(), false).unwrap_err();
    assert!(matches!(err, DatasetError::AlreadyExists { .. }), "{err}");
    assert_eq!(before, tree(&dir), "nothing overwritten");
}

#[test]
fn refuses_resume_with_other_format_or_spec() {
    let dir = scratch("bad-resume-mismatch");
    write_dataset(&dir, Format::LeRobotV21, &Default::default(), 1);
    let err = DatasetWriter::create(&dir, Format::LeRobotV30, spec(), true).unwrap_err();
    assert!(matches!(err, DatasetError::ResumeMismatch { .. }), "{err}");
    let mut other = spec();
    other.state_names.push("extra".into());
    let err = DatasetWriter::create(&dir, Format::LeRobotV21, other, true).unwrap_err();
    assert!(matches!(err, DatasetError::ResumeMismatch { .. }), "{err}");
    let mut other = spec();
    other.fps = 20.0;
    let err = DatasetWriter::create(&dir, Format::LeRobotV21, other, true).unwrap_err();
    assert!(matches!(err, DatasetError::ResumeMismatch { .. }), "{err}");
}

#[test]
fn unwritable_output_names_the_path() {
    let base = scratch("bad-unwritable");
    let file = base.join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("dataset");
    let err = DatasetWriter::create(&dir, Format::LeRobotV21, spec(), false).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }), "{err}");
    assert!(err.to_string().contains("a_file"), "{err}");
    // A path that is a file, not a directory.
    let err = DatasetWriter::create(&file, Format::LeRobotV21, spec(), false).unwrap_err();
    assert!(err.to_string().contains("a_file"), "{err}");
}

#[test]
fn rejects_bad_frames_naming_episode_frame_field() {
    for format in [Format::LeRobotV21, Format::LeRobotV30] {
        let dir = scratch(&format!("bad-frames-{}", format.codebase_version()));
        let mut w = DatasetWriter::create(&dir, format, spec(), false).unwrap();
        w.write_episode(&episode(0)).unwrap();

        let mut ep = episode(1);
        ep.frames[2].state.pop();
        let err = w.write_episode(&ep).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                DatasetError::InvalidFrame {
                    episode: 1,
                    frame: 2,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("observation.state"), "{msg}");

        let mut ep = episode(1);
        ep.frames[1].action.push(0.0);
        let msg = w.write_episode(&ep).unwrap_err().to_string();
        assert!(msg.contains("episode 1, frame 1: action"), "{msg}");

        let mut ep = episode(1);
        ep.frames[0].action[3] = f32::NAN;
        let msg = w.write_episode(&ep).unwrap_err().to_string();
        assert!(
            msg.contains("frame 0: action") && msg.contains("NaN"),
            "{msg}"
        );

        let mut ep = episode(1);
        ep.frames[2].state[0] = f32::INFINITY;
        assert!(w.write_episode(&ep).is_err());

        let mut ep = episode(1);
        ep.frames[1].images[1].truncate(10);
        let msg = w.write_episode(&ep).unwrap_err().to_string();
        assert!(
            msg.contains("frame 1: observation.images.wrist_view"),
            "{msg}"
        );

        let mut ep = episode(1);
        ep.frames[1].images.pop();
        assert!(w.write_episode(&ep).is_err());

        let mut ep = episode(1);
        ep.frames.clear();
        let err = w.write_episode(&ep).unwrap_err();
        assert!(
            matches!(err, DatasetError::InvalidEpisode { episode: 1, .. }),
            "{err}"
        );

        let mut ep = episode(1);
        ep.task = "  ".into();
        assert!(w.write_episode(&ep).is_err());

        // Rejected episodes left no trace: the next valid one is episode 1.
        assert_eq!(w.episodes_written(), 1);
        w.write_episode(&episode(1)).unwrap();
        w.finish().unwrap();
        let ds = Dataset::open(&dir).unwrap();
        assert_eq!(ds.num_episodes(), 2);
        assert_eq!(ds.episode(1).unwrap().state[2], episode(1).frames[2].state);
    }
}

#[test]
fn rejects_bad_specs() {
    let dir = scratch("bad-spec");
    let mut s = spec();
    s.fps = 0.0;
    assert!(matches!(
        DatasetWriter::create(&dir, Format::LeRobotV21, s, false),
        Err(DatasetError::InvalidSpec { .. })
    ));
    let mut s = spec();
    s.state_slices.push(("oops".into(), 4, 9));
    let err = DatasetWriter::create(&dir, Format::LeRobotV21, s, false).unwrap_err();
    assert!(err.to_string().contains("state_slices"), "{err}");
    let mut s = spec();
    s.cameras.push(("ego_view".into(), 4, 4));
    assert!(DatasetWriter::create(&dir, Format::LeRobotV21, s, false).is_err());
    // Nothing was created by the refused specs.
    assert!(tree(&dir).is_empty());
}

#[test]
fn spec_deserializes_and_denies_unknown_fields() {
    let ok = r#"{"fps": 30, "robot_type": "r", "state_names": ["a"], "action_names": ["b"],
        "state_slices": [["arm", 0, 1]], "action_slices": [], "cameras": [["ego_view", 4, 3]]}"#;
    let s: bicameral_dataset::DatasetSpec = serde_json::from_str(ok).unwrap();
    assert_eq!(s.cameras[0], ("ego_view".to_string(), 4, 3));
    assert!(!s.video);
    let bad = ok.replace("\"fps\"", "\"fsp\": 1, \"fps\"");
    assert!(serde_json::from_str::<bicameral_dataset::DatasetSpec>(&bad).is_err());
}

#[test]
fn open_reports_missing_or_broken_metadata() {
    let dir = scratch("bad-open");
    let err = Dataset::open(&dir).unwrap_err();
    assert!(err.to_string().contains("info.json"), "{err}");
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(
        dir.join("meta/info.json"),
        b"{\"codebase_version\": \"v9.9\"",
    )
    .unwrap();
    assert!(Dataset::open(&dir).is_err());
}
