//! The rerun output options shared by every command that records.

use std::path::PathBuf;

use bicameral_viz::Sink;
use clap::Args;

/// Where a recording goes: `--save FILE.rrd`, `--spawn` or `--connect URL`.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Save the recording to this .rrd file.
    #[arg(long, conflicts_with_all = ["spawn", "connect"])]
    pub save: Option<PathBuf>,
    /// Spawn a rerun viewer.
    #[arg(long, conflicts_with = "connect")]
    pub spawn: bool,
    /// Stream to a running viewer, e.g. rerun+http://127.0.0.1:9876/proxy.
    #[arg(long)]
    pub connect: Option<String>,
}

impl SinkArgs {
    /// The sink chosen, if any.
    pub fn sink(&self) -> Option<Sink> {
        match (&self.save, self.spawn, &self.connect) {
            (Some(p), _, _) => Some(Sink::Save(p.clone())),
            (None, true, _) => Some(Sink::Spawn),
            (None, false, Some(url)) => Some(Sink::Connect(url.clone())),
            (None, false, None) => None,
        }
    }
}
