//! Same input → byte-identical files; an interrupted run resumed → the same files as an
//! uninterrupted one; leftovers of a killed write are cleaned up.

mod common;

use bicameral_dataset::{Dataset, DatasetWriter, Format};
use common::*;

#[test]
fn written_twice_is_byte_identical() {
    for (format, opts, name) in layouts() {
        let a = scratch(&format!("det-a-{name}"));
        let b = scratch(&format!("det-b-{name}"));
        write_dataset(&a, format, &opts, 3);
        write_dataset(&b, format, &opts, 3);
        assert_same_tree(&a, &b);
    }
}

#[test]
fn resume_after_drop_is_byte_identical() {
    for (format, opts, name) in layouts() {
        let reference = scratch(&format!("resume-ref-{name}"));
        write_dataset(&reference, format, &opts, 3);

        let dir = scratch(&format!("resume-{name}"));
        {
            let mut w = DatasetWriter::create_with(&dir, format, spec(), false, opts.clone())
                .expect("create");
            w.write_episode(&episode(0)).expect("ep 0");
            w.write_episode(&episode(1)).expect("ep 1");
            // Dropped without finish: simulates a killed process.
        }
        // The interrupted dataset opens, with its 2 episodes.
        let ds = Dataset::open(&dir).expect("open interrupted dataset");
        assert_eq!(ds.num_episodes(), 2);
        assert_eq!(ds.episode(1).expect("ep 1").state.len(), LENGTHS[1]);
        drop(ds);
        // A stray temp file of a killed write.
        let stray = dir.join("meta/info.json.tmp");
        std::fs::write(&stray, b"{\"partial").expect("write stray");
        let stray_data = dir.join("data/chunk-000/garbage.parquet.tmp");
        std::fs::write(&stray_data, b"PAR1").expect("write stray");

        let mut w =
            DatasetWriter::create_with(&dir, format, spec(), true, opts.clone()).expect("resume");
        assert_eq!(w.episodes_written(), 2, "{name}");
        assert!(
            !stray.exists() && !stray_data.exists(),
            "{name}: temp files removed"
        );
        w.write_episode(&episode(2)).expect("ep 2");
        w.finish().expect("finish");
        assert_same_tree(&reference, &dir);
    }
}

/// Kill right before the commit point: episode 3's files are (partly) on disk but info.json
/// still says 2 episodes. Resume must drop the uncommitted leftovers.
#[test]
fn resume_after_uncommitted_episode_is_byte_identical() {
    for (format, opts, name) in layouts() {
        let reference = scratch(&format!("uncommitted-ref-{name}"));
        write_dataset(&reference, format, &opts, 3);

        let dir = scratch(&format!("uncommitted-{name}"));
        let mut w =
            DatasetWriter::create_with(&dir, format, spec(), false, opts.clone()).expect("create");
        w.write_episode(&episode(0)).expect("ep 0");
        w.write_episode(&episode(1)).expect("ep 1");
        let info_after_two = std::fs::read(dir.join("meta/info.json")).expect("info");
        w.write_episode(&episode(2)).expect("ep 2");
        drop(w);
        std::fs::write(dir.join("meta/info.json"), &info_after_two).expect("restore info");
        if format == Format::LeRobotV21 {
            // Plus a torn line, as if killed inside the append.
            let p = dir.join("meta/episodes.jsonl");
            let mut b = std::fs::read(&p).expect("episodes.jsonl");
            b.extend_from_slice(b"{\"episode_index\": 3, \"tas");
            std::fs::write(&p, b).expect("torn line");
        }
        let ds = Dataset::open(&dir).expect("open");
        assert_eq!(
            ds.num_episodes(),
            2,
            "{name}: only committed episodes visible"
        );
        assert_eq!(ds.info().total_frames, LENGTHS[0] + LENGTHS[1]);
        drop(ds);

        let mut w =
            DatasetWriter::create_with(&dir, format, spec(), true, opts.clone()).expect("resume");
        assert_eq!(w.episodes_written(), 2, "{name}");
        w.write_episode(&episode(2)).expect("ep 2 again");
        w.finish().expect("finish");
        assert_same_tree(&reference, &dir);
    }
}

/// A finished dataset can be resumed to append more episodes.
#[test]
fn resume_finished_dataset_appends() {
    for (format, opts, name) in layouts() {
        let reference = scratch(&format!("append-ref-{name}"));
        write_dataset(&reference, format, &opts, 3);
        let dir = scratch(&format!("append-{name}"));
        write_dataset(&dir, format, &opts, 2);
        let mut w =
            DatasetWriter::create_with(&dir, format, spec(), true, opts.clone()).expect("resume");
        assert_eq!(w.episodes_written(), 2);
        w.write_episode(&episode(2)).expect("ep 2");
        w.finish().expect("finish");
        assert_same_tree(&reference, &dir);
    }
}
