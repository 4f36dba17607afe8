//! `bicameral sim view`: a scripted tour of the scene logged to rerun.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bicameral_sim::{
    Arm, ArmScript, CameraImage, DataRoot, SimError, SimSetup, SimWorld, WorldCameras, top_down,
};
use bicameral_viz::{Recording, SimLogger, Sink};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nalgebra::{Isometry3, Translation3, Vector3};

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Scene name under sim/scenes/ or a path to a scene TOML.
    #[arg(long, default_value = "default")]
    scene: String,
    /// Robot name under robots/ or a path to an embodiment.toml (default: the scene's robot).
    #[arg(long)]
    robot: Option<String>,
    /// Stop after this many seconds of simulated time (the full tour takes about 16 s).
    #[arg(long)]
    seconds: Option<f64>,
    #[command(flatten)]
    output: crate::sink::SinkArgs,
    /// Camera render rate (Hz of simulated time).
    #[arg(long, default_value_t = 10.0)]
    camera_hz: f64,
    /// Control rate of the scripted motion (Hz).
    #[arg(long, default_value_t = 50.0)]
    control_hz: f64,
    /// Name of the object to grasp.
    #[arg(long, default_value = "red_cube")]
    object: String,
}

/// Stops the tour once the time budget is spent (not an error for the caller).
const TIME_UP: &str = "time budget reached";

pub fn run(args: &ViewArgs) -> Result<()> {
    let sink = match args.output.sink() {
        Some(s) => s,
        None => Sink::Save(PathBuf::from("sim_view.rrd")),
    };
    if !(args.camera_hz > 0.0 && args.control_hz > 0.0) {
        bail!("--camera-hz and --control-hz must be positive");
    }
    let root = DataRoot::discover()?;
    let setup = SimSetup::load(&root, &args.scene, args.robot.as_deref())?;
    let mut world = setup.world()?;
    let mut cameras = setup.cameras(&world)?;
    let object = world.object_pose(&args.object).with_context(|| {
        format!(
            "scene \"{}\" has no object \"{}\"",
            setup.scene.name, args.object
        )
    })?;

    let recording = Recording::open("bicameral_sim_view", &sink)?;
    let logger = SimLogger::new(&recording.rec);
    logger.log_static_scene(&world)?;
    logger.log_state(&world)?;

    let total = args.seconds.unwrap_or(16.0);
    let bar = ProgressBar::new((total * 1000.0) as u64).with_style(ProgressStyle::with_template(
        "{spinner} sim {pos} / {len} ms [{elapsed_precise}] {msg}",
    )?);
    let camera_period = 1.0 / args.camera_hz;
    let mut next_camera = 0.0;
    let mut image = CameraImage::default();
    let wall = Instant::now();
    let mut frames = 0usize;
    let mut on_tick = |w: &SimWorld| -> Result<(), SimError> {
        logger
            .log_state(w)
            .map_err(|e| SimError::Command(e.to_string()))?;
        if w.time() + 1e-9 >= next_camera {
            next_camera += camera_period;
            render_cameras(&logger, &mut cameras, w, &mut image)?;
            frames += cameras.specs().len();
        }
        bar.set_position((w.time() * 1000.0) as u64);
        if w.time() >= total {
            return Err(SimError::Command(TIME_UP.into()));
        }
        Ok(())
    };

    let mut script = ArmScript::new(&setup, args.control_hz)?;
    match tour(&mut script, &mut world, &object, &mut on_tick) {
        Ok(()) => {}
        Err(SimError::Command(m)) if m == TIME_UP => {}
        Err(e) => return Err(e.into()),
    }
    bar.finish_and_clear();
    let moved = world
        .object_pose(&args.object)
        .map(|p| p.translation.vector - object.translation.vector)
        .unwrap_or_default();
    recording.finish()?;
    println!(
        "simulated {:.2} s in {:.2} s wall ({} physics steps, {} camera frames); {} moved by ({:+.3}, {:+.3}, {:+.3}) m",
        world.time(),
        wall.elapsed().as_secs_f64(),
        world.steps(),
        frames,
        args.object,
        moved.x,
        moved.y,
        moved.z
    );
    match &sink {
        Sink::Save(p) => println!("saved {}", p.display()),
        Sink::Spawn => println!("streamed to a spawned viewer"),
        Sink::Connect(url) => println!("streamed to {url}"),
    }
    Ok(())
}

fn render_cameras(
    logger: &SimLogger<'_>,
    cameras: &mut WorldCameras,
    world: &SimWorld,
    image: &mut CameraImage,
) -> Result<(), SimError> {
    for i in 0..cameras.specs().len() {
        cameras
            .render_into(world, i, image)
            .map_err(|e| SimError::Command(format!("render: {e}")))?;
        let spec = &cameras.specs()[i];
        let k = &spec.intrinsics;
        logger
            .log_camera(
                &spec.name,
                &image.pose,
                k.fx,
                k.fy,
                k.cx,
                k.cy,
                k.width,
                k.height,
                &image.rgb,
                &image.depth,
            )
            .map_err(|e| SimError::Command(e.to_string()))?;
    }
    Ok(())
}

fn at(p: Vector3<f64>, yaw: f64) -> Isometry3<f64> {
    Isometry3::from_parts(Translation3::from(p), top_down(yaw))
}

/// Both arms reach over the table, open and close their grippers, then the left arm picks the
/// object up, carries it, puts it back and lets go.
fn tour(
    script: &mut ArmScript,
    world: &mut SimWorld,
    object: &Isometry3<f64>,
    on_tick: &mut bicameral_sim::script::TickFn<'_>,
) -> Result<(), SimError> {
    let home = script.targets.clone();
    let table_z = object.translation.z;
    script.hold(world, 0.3, on_tick)?;
    // Reach: left arm to the far left, right arm to the near right.
    script.move_to(
        world,
        Arm::Left,
        &at(Vector3::new(0.55, 0.25, table_z + 0.12), 0.0),
        1.5,
        on_tick,
    )?;
    script.move_to(
        world,
        Arm::Right,
        &at(Vector3::new(0.35, -0.25, table_z + 0.12), 0.0),
        1.5,
        on_tick,
    )?;
    for arm in [Arm::Left, Arm::Right] {
        script.gripper(world, arm, 0.0, 0.4, on_tick)?;
        script.gripper(world, arm, 0.045, 0.4, on_tick)?;
    }
    script.move_joints(world, &home, 1.2, on_tick)?;
    // The grasp, with the arm nearer to the object.
    let arm = if object.translation.y >= 0.0 {
        Arm::Left
    } else {
        Arm::Right
    };
    let p = object.translation.vector;
    script.move_to(
        world,
        arm,
        &at(p + Vector3::new(0.0, 0.0, 0.12), 0.0),
        1.5,
        on_tick,
    )?;
    script.move_to(world, arm, &at(p, 0.0), 1.0, on_tick)?;
    script.gripper(world, arm, 0.012, 0.5, on_tick)?;
    script.hold(world, 0.3, on_tick)?;
    script.move_to(
        world,
        arm,
        &at(p + Vector3::new(0.0, 0.0, 0.15), 0.0),
        1.2,
        on_tick,
    )?;
    let side = if arm == Arm::Left { -1.0 } else { 1.0 };
    let carried = p + Vector3::new(0.0, side * 0.15, 0.15);
    script.move_to(world, arm, &at(carried, 0.0), 1.5, on_tick)?;
    script.move_to(
        world,
        arm,
        &at(p + Vector3::new(0.0, side * 0.15, 0.002), 0.0),
        1.2,
        on_tick,
    )?;
    script.gripper(world, arm, 0.045, 0.4, on_tick)?;
    script.move_to(
        world,
        arm,
        &at(p + Vector3::new(0.0, side * 0.15, 0.12), 0.0),
        0.8,
        on_tick,
    )?;
    script.move_joints(world, &home, 1.5, on_tick)?;
    script.hold(world, 0.5, on_tick)
}
