//! `bicameral`: the command-line entry point. Thin: parses arguments, builds library objects,
//! shows progress, prints results.

mod agents;
mod bench;
mod bench_runtime;
mod bench_s2;
mod bridge;
mod datagen;
mod dataset;
mod demo;
mod eval;
mod launch;
mod plan;
mod plots;
mod policy;
mod score;
mod serve;
mod sink;
mod train;
mod view;
mod vlm;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// A GR00T-style dual-system humanoid robot runtime: simulation, data, models, runtime.
#[derive(Debug, Parser)]
#[command(name = "bicameral", version, about)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `bicameral_sim=debug`.
    #[arg(long, global = true, default_value = "info", env = "BICAMERAL_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulation tools.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Benchmarks printing JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Generate scripted-expert demonstrations as a LeRobot dataset.
    Datagen(datagen::DatagenArgs),
    /// Train models.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Inspect LeRobot datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// The models: System 1's action head, System 2's towers and planner.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The live dual-system demo in simulation: a few episodes with a trained checkpoint over
    /// zenoh in real time, recorded to rerun; prints success and node rates.
    Demo(demo::DemoArgs),
    /// Closed-loop evaluation in lock-step simulation: success rates with Wilson intervals,
    /// failure causes, ablations (expert, no plan, shuffled instructions, paraphrases).
    Eval(eval::EvalArgs),
    /// Start, supervise and stop the nodes of a launch file (System 2, System 1, executor,
    /// simulated robot) over zenoh.
    Launch(launch::LaunchArgs),
    /// One node of a launch file (System 2 `planner` or System 1 `action`) in its own process,
    /// connected to the launch's zenoh endpoint.
    Node(launch::NodeArgs),
    /// The onboard daemon: executor, safety filter and robot device (optionally System 1),
    /// configured by a launch file with `[executor]` and `[hal]`.
    Robot(launch::RobotArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Sample an action chunk from a checkpoint on inputs from a safetensors file; write
    /// `action_pred` and the per-step velocities `v_k`.
    RunHead(policy::RunHeadArgs),
    /// Run a System 2 tower (SigLIP vision or Qwen3 LM, by config.json's model_type) on inputs
    /// from a safetensors file; write its hidden states (and logits / pooled output).
    RunVlm(vlm::RunVlmArgs),
    /// Run System 2 of a `train dual` checkpoint on camera images (PNG) and an instruction:
    /// plan shape, subgoal, latency.
    Plan(plan::PlanArgs),
    /// Flow-matching and subgoal loss of a checkpoint on demonstration datasets (JSON), over
    /// the same fixed batches as training's validation: data it trained on against data it
    /// never saw.
    Score(score::ScoreArgs),
}

#[derive(Debug, Subcommand)]
enum TrainCommand {
    /// System 1 (the action head) alone, on a LeRobot dataset.
    S1(train::TrainS1Args),
    /// System 2 (the planner) and System 1 jointly: the config has a [planner] section; the
    /// flow-matching loss trains the planner's unfrozen parts, plus the subgoal loss.
    Dual(train::TrainS1Args),
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Summary, features and statistics of a dataset.
    Info(dataset::InfoArgs),
    /// Replay one episode in rerun: recorded images and signals, plus the re-simulated world
    /// when the episode came from `bicameral datagen`.
    View(dataset::ViewArgs),
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run a scripted motion on a scene (reach, open/close grippers, one physical grasp) and
    /// log it to rerun.
    View(view::ViewArgs),
    /// Serve a simulated robot over zenoh: joint states and camera frames out, joint commands
    /// in, in real time.
    Serve(serve::ServeArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Physics and rendering throughput.
    Sim(bench::BenchSimArgs),
    /// Demonstrations per hour of `datagen`, per task.
    Datagen(bench::BenchDatagenArgs),
    /// System 1 action-head latency per chunk (burn, CPU).
    S1(bench::BenchS1Args),
    /// System 2 planner latency per observation (burn, CPU).
    S2(bench_s2::BenchS2Args),
    /// Executor jitter and zenoh one-hop latency.
    Runtime(bench_runtime::BenchRuntimeArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Sim(SimCommand::View(args)) => view::run(&args),
        Command::Sim(SimCommand::Serve(args)) => serve::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Launch(args) => launch::run(&args),
        Command::Robot(args) => launch::run_robot(&args),
        Command::Node(args) => launch::run_node(&args),
        Command::Bench(BenchCommand::Sim(args)) => bench::run_sim(&args),
        Command::Datagen(args) => datagen::run(&args),
        Command::Train(TrainCommand::S1(args)) => train::run(&args, false),
        Command::Train(TrainCommand::Dual(args)) => train::run(&args, true),
        Command::Dataset(DatasetCommand::Info(args)) => dataset::info(&args),
        Command::Dataset(DatasetCommand::View(args)) => dataset::view(&args),
        Command::Bench(BenchCommand::Datagen(args)) => bench::run_datagen(&args),
        Command::Bench(BenchCommand::S1(args)) => bench::run_s1(&args),
        Command::Bench(BenchCommand::S2(args)) => bench_s2::run(&args),
        Command::Bench(BenchCommand::Runtime(args)) => bench_runtime::run(&args),
        // Model runs inside a compute pool (RAYON_NUM_THREADS threads, default one per core)
        // entered once, as the runtime's nodes run theirs (one thread each by default).
        Command::Policy(cmd) => {
            agents::ComputePool::sized_like_global("policy")?.run(|| match cmd {
                PolicyCommand::RunHead(args) => policy::run_head(&args),
                PolicyCommand::RunVlm(args) => vlm::run_vlm(&args),
                PolicyCommand::Plan(args) => plan::run(&args),
                PolicyCommand::Score(args) => score::run(&args),
            })
        }
    }
}
