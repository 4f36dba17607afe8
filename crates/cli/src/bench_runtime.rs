//! `bicameral bench runtime`: the runtime's timing on this machine.
//!
//! * Executor period jitter (tick lateness after its absolute deadline) at 500 Hz and 1 kHz,
//!   with chunks and joint states arriving from another thread as in the live system.
//!   Target p99 ≤ 100 µs.
//! * zenoh one-hop latency (two peer sessions over tcp/127.0.0.1 in this process) for an
//!   ActionChunk (16 × 32 f32) and a Plan (64 × 512 f32), paced at 100 Hz; compared in the
//!   same run with a raw TCP loopback hop carrying the same bytes (the floor any middleware
//!   adds to). Target p50 ≤ 150 µs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bicameral_msgs::{ActionChunk, Header, Message, NO_PLAN, Plan, Tensor, encode};
use bicameral_runtime::clock::{Clock, WallClock};
use bicameral_runtime::executor::{Executor, ExecutorConfig, spawn};
use bicameral_runtime::safety::SafetyLimits;
use bicameral_transport::{Node, Qos, ZenohConfig};
use clap::Args;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct BenchRuntimeArgs {
    /// Seconds of executor ticking per rate.
    #[arg(long, default_value_t = 60.0, value_parser = crate::launch::seconds_arg)]
    seconds: f64,
    /// Executor rates to measure, Hz (comma-separated).
    #[arg(long, default_value = "500,1000")]
    rates: String,
    /// Messages per latency measurement.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Pace latency messages at this rate, Hz (0 = back to back).
    #[arg(long, default_value_t = 100.0, value_parser = crate::launch::seconds_arg)]
    pace_hz: f64,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
    /// Checkpoint for the observation → command measurement: `launch/sim_s2_s1.toml` runs
    /// with it (sim, S2, S1, executor, live) for `--obs-seconds` (default: models/default when
    /// present; skipped otherwise).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// Seconds of the live run for the observation → command latency.
    #[arg(long, default_value_t = 20.0, value_parser = crate::launch::seconds_arg)]
    obs_seconds: f64,
}

/// Observation → command latency in a live launch of `launch/sim_s2_s1.toml` with `ckpt`:
/// a joint state's stamp → the chunk System 1 made from it handed to the executor (its first
/// command follows within one control period), plus the nodes' inference latencies.
fn obs_to_command(ckpt: &std::path::Path, seconds: f64) -> Result<Value> {
    use crate::launch::{LaunchFile, RunOptions, run_launch};
    let root = bicameral_sim::DataRoot::discover()?;
    let path = root.root.join("launch/sim_s2_s1.toml");
    let mut file = LaunchFile::load(&path)?;
    file.zenoh.listen = vec![format!("tcp/127.0.0.1:{}", free_port()?)];
    for c in [
        file.planner.as_mut().map(|p| &mut p.checkpoint),
        file.action.as_mut().map(|a| &mut a.checkpoint),
    ]
    .into_iter()
    .flatten()
    {
        *c = ckpt.to_path_buf();
    }
    let r = run_launch(
        &file,
        &path,
        &RunOptions {
            seconds: Some(seconds),
            stop_after_success_s: None,
            recording: None,
        },
    )?;
    let pick = |node: &str, k: &str| r.get(node).and_then(|n| n.get(k)).cloned();
    Ok(json!({
        "checkpoint": ckpt.display().to_string(),
        "seconds": seconds,
        "obs_to_chunk_at_executor_ms": pick("executor", "obs_to_chunk_ms"),
        "planner": {"measured_hz": pick("planner", "measured_hz"), "latency_p50_ms": pick("planner", "latency_p50_ms"), "latency_p99_ms": pick("planner", "latency_p99_ms")},
        "action": {"measured_hz": pick("action", "measured_hz"), "latency_p50_ms": pick("action", "latency_p50_ms"), "latency_p99_ms": pick("action", "latency_p99_ms")},
    }))
}

fn limits(n: usize) -> SafetyLimits {
    SafetyLimits::uniform(n, (-3.0, 3.0), 3.0, 50.0, 0.05)
}

fn chunk(now: u64, h: usize, d: usize) -> Result<ActionChunk> {
    let v: Vec<f32> = (0..h * d).map(|i| (i % 7) as f32 * 1e-3).collect();
    Ok(ActionChunk {
        header: Header::new::<ActionChunk>("bench", 0, now),
        plan_seq: NO_PLAN,
        plan_stamp_ns: 0,
        obs_stamp_ns: now,
        t0_ns: now,
        dt_ns: 33_333_333,
        actions: Tensor::from_f32(&[h, d], &v)?,
    })
}

fn executor_jitter(rate_hz: f64, seconds: f64) -> Result<Value> {
    let cfg = ExecutorConfig {
        rate_hz,
        ..Default::default()
    };
    let (exec, mut io) = Executor::new(cfg, limits(32))?;
    let clock = WallClock::new();
    let thread = spawn(exec, clock)?;
    io.state.send(&[0.0; 32])?;
    let start = Instant::now();
    let mut last = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        // 30 Hz chunks and 100 Hz states, as from S1 and the robot.
        std::thread::sleep(Duration::from_millis(10));
        io.state.send(&[0.0; 32])?;
        if last.elapsed() >= Duration::from_millis(33) {
            last = Instant::now();
            io.chunks.send(&chunk(clock.now_ns(), 16, 32)?)?;
        }
    }
    let stats = thread.stats.clone();
    let exec = thread.stop()?;
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(json!({
        "rate_hz": rate_hz,
        "seconds": seconds,
        "ticks": stats.count(),
        "deadline_misses": stats.misses(),
        "lateness_p50_us": us(stats.quantile_ns(0.5)),
        "lateness_p99_us": us(stats.quantile_ns(0.99)),
        "lateness_max_us": us(stats.max_ns()),
        "executor_ticks": exec.counters().ticks(),
    }))
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.99), v[v.len() - 1])
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One-way latency of `message` between two zenoh peers on loopback, µs.
fn zenoh_latency<M: Message + Clone>(
    a: &Node,
    b: &Node,
    key: &str,
    message: &M,
    n: usize,
    pace_hz: f64,
) -> Result<Vec<f64>> {
    let clock = WallClock::new();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let (s, c) = (samples.clone(), clock);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let _sub = a.on_message::<M>(key.to_string(), move |m| {
        if let Ok(m) = m {
            let lat = c.now_ns().saturating_sub(m.header().stamp_ns) as f64 / 1000.0;
            if let Ok(mut v) = s.lock() {
                v.push(lat);
            }
            if let Ok(t) = tx.lock() {
                let _ = t.send(());
            }
        }
    })?;
    // Wait until the subscription is known on b's side: a's token appears after it.
    let watch = b.watch_alive()?;
    let _token = a.with_name("bench-sub")?.declare_alive()?;
    watch.wait_alive("bench-sub", Duration::from_secs(10))?;
    let mut publisher = b.publisher::<M>(key.to_string(), Qos::Control)?;
    let period = (pace_hz > 0.0).then(|| Duration::from_secs_f64((1.0 / pace_hz).min(1e9)));
    let warmup = 50;
    for i in 0..n + warmup {
        let mut m = message.clone();
        m.header_mut().stamp_ns = clock.now_ns();
        publisher.put(&mut m)?;
        rx.recv_timeout(Duration::from_secs(5))
            .with_context(|| format!("message {i} on {key} not received"))?;
        if let Some(p) = period {
            std::thread::sleep(p);
        }
    }
    let v = samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(v[warmup..].to_vec())
}

/// One-way latency of `bytes` over a raw TCP loopback connection (length-prefixed), µs.
fn tcp_latency(bytes: &[u8], n: usize, pace_hz: f64) -> Result<Vec<f64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let len = bytes.len();
    let reader = std::thread::spawn(move || -> Result<Vec<(Instant, usize)>> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; len];
        let mut out = Vec::new();
        let mut hdr = [0u8; 4];
        loop {
            if s.read_exact(&mut hdr).is_err() {
                break;
            }
            s.read_exact(&mut buf)?;
            out.push((Instant::now(), buf.len()));
            s.write_all(&[1])?;
        }
        Ok(out)
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let period = (pace_hz > 0.0).then(|| Duration::from_secs_f64((1.0 / pace_hz).min(1e9)));
    let mut sent = Vec::with_capacity(n);
    let mut ack = [0u8; 1];
    let warmup = 50;
    for _ in 0..n + warmup {
        let t = Instant::now();
        s.write_all(&(len as u32).to_le_bytes())?;
        s.write_all(bytes)?;
        s.read_exact(&mut ack)?;
        sent.push(t);
        if let Some(p) = period {
            std::thread::sleep(p);
        }
    }
    drop(s);
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("tcp reader panicked"))??;
    if got.len() != sent.len() {
        bail!("tcp: sent {} got {}", sent.len(), got.len());
    }
    Ok(sent
        .iter()
        .zip(&got)
        .skip(warmup)
        .map(|(t0, (t1, _))| t1.duration_since(*t0).as_secs_f64() * 1e6)
        .collect())
}

fn latency_entry<M: Message + Clone>(
    name: &str,
    a: &Node,
    b: &Node,
    key: &str,
    m: &M,
    args: &BenchRuntimeArgs,
) -> Result<Value> {
    let z = zenoh_latency(a, b, key, m, args.messages, args.pace_hz)?;
    let bytes = encode(m)?;
    let t = tcp_latency(&bytes, args.messages, args.pace_hz)?;
    let (zp50, zp99, zmax) = quantiles(z);
    let (tp50, tp99, tmax) = quantiles(t);
    Ok(json!({
        "message": name,
        "bytes": bytes.len(),
        "messages": args.messages,
        "pace_hz": args.pace_hz,
        "zenoh_p50_us": zp50, "zenoh_p99_us": zp99, "zenoh_max_us": zmax,
        "raw_tcp_p50_us": tp50, "raw_tcp_p99_us": tp99, "raw_tcp_max_us": tmax,
        "ratio_zenoh_over_tcp_p50": zp50 / tp50,
    }))
}

pub fn run(args: &BenchRuntimeArgs) -> Result<()> {
    let mut executor = Vec::new();
    for r in args.rates.split(',') {
        let rate: f64 = r
            .trim()
            .parse()
            .with_context(|| format!("--rates: `{r}`"))?;
        if !args.json {
            eprintln!("executor at {rate} Hz for {} s ...", args.seconds);
        }
        executor.push(executor_jitter(rate, args.seconds)?);
    }
    let port = free_port()?;
    let a = Node::open(&ZenohConfig::loopback_listener(port), "bench", "a")?;
    let b = Node::open(&ZenohConfig::loopback_client(port), "bench", "b")?;
    let watch = a.watch_alive()?;
    let _tb = b.declare_alive()?;
    watch.wait_alive("b", Duration::from_secs(10))?;
    let now = WallClock::new().now_ns();
    let c = chunk(now, 16, 32)?;
    let tokens: Vec<f32> = (0..64 * 512).map(|i| (i % 13) as f32 * 0.01).collect();
    let plan = Plan {
        header: Header::new::<Plan>("bench", 0, now),
        obs_stamp_ns: now,
        instruction: "pick up the red cube and put it in the bowl".into(),
        tokens: Tensor::from_f32(&[64, 512], &tokens)?,
        attention_mask: Tensor::from_u8(&[64], &[1; 64])?,
        image_mask: Tensor::from_u8(&[64], &[0; 64])?,
        subgoal: vec![0.0; 6],
    };
    if !args.json {
        eprintln!(
            "zenoh vs raw TCP one-hop latency, {} messages each ...",
            args.messages
        );
    }
    let latency = vec![
        latency_entry(
            "action_chunk_16x32",
            &a,
            &b,
            &a.keys().action_chunk(),
            &c,
            args,
        )?,
        latency_entry("plan_64x512", &a, &b, &a.keys().plan(), &plan, args)?,
    ];
    let default_ckpt = bicameral_sim::DataRoot::discover()
        .ok()
        .map(|r| r.root.join("models/default"))
        .filter(|p| p.join("config.json").is_file());
    let obs = match args.checkpoint.clone().or(default_ckpt) {
        Some(ckpt) => {
            if !args.json {
                eprintln!(
                    "observation → command, live launch with {} ...",
                    ckpt.display()
                );
            }
            obs_to_command(&ckpt, args.obs_seconds)?
        }
        None => json!({"skipped": "no checkpoint (pass --checkpoint DIR or add models/default)"}),
    };
    let report = json!({
        "bench": "runtime",
        "executor_jitter": executor,
        "observation_to_command": obs,
        "targets": {"executor_p99_us": 100.0, "zenoh_chunk_p50_us": 150.0},
        "one_hop_latency": latency,
        "notes": "executor: tick lateness after its absolute deadline (sleep then spin), 32 joints, chunks at 30 Hz and states at 100 Hz from another thread; latency: one-way, two zenoh peer sessions over tcp/127.0.0.1 in one process vs a raw TCP loopback hop of the same encoded bytes (nodelay, length-prefixed), both paced",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
