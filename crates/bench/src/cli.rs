//! Command line: one subcommand per scenario, `all` for every one, and the global options that
//! choose the kubelets, the runtimes and the sizes.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kubelet-bench",
    about = "Measures kubelets from outside, through CRI and /proc: pod start latency, the \
             runtime's floor, reaction to a killed container, cost at density, churn"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub opts: Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Scenario {
    /// Start latency: one pod K times, then a burst of N pods written at once.
    Start,
    /// The runtime's floor: the same pods created by the bench directly through CRI.
    Floor,
    /// A container's process killed from outside, K times on fresh pods.
    Reaction,
    /// Kubelet CPU and memory with 0, N and N/2 pods running.
    Steady,
    /// N running pods removed and replaced by N new ones.
    Churn,
    /// Every scenario, the floor included, in one kubelet session per kubelet.
    All,
}

/// A container runtime the bench sets up (or is pointed at) and measures every subject on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// A private containerd (scripts/containerd-up.sh), or --runtime-endpoint.
    Containerd,
    /// kubelet-rs's own runtime, served alone by `KUBELET runtime` (--builtin-binary).
    Builtin,
}

impl RuntimeKind {
    /// How tables, plots and JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Builtin => "builtin",
        }
    }
}

impl Options {
    /// The runtimes to measure on, each once, in the order given; containerd alone by default.
    pub fn runtimes(&self) -> Vec<RuntimeKind> {
        let mut out: Vec<RuntimeKind> = Vec::new();
        for kind in &self.runtimes {
            if !out.contains(kind) {
                out.push(*kind);
            }
        }
        if out.is_empty() {
            out.push(RuntimeKind::Containerd);
        }
        out
    }
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// A kubelet binary to measure; repeat it to compare kubelets, run alternately [default:
    /// target/release/kubelet]
    #[arg(long = "kubelet-binary", global = true)]
    pub kubelet_binaries: Vec<PathBuf>,
    /// An extra argument for every kubelet under test (repeatable), e.g. --kubelet-arg=-v=0
    #[arg(long = "kubelet-arg", global = true, allow_hyphen_values = true)]
    pub kubelet_args: Vec<String>,
    /// A runtime to measure on; repeat it to compare runtimes, run in turn within each round
    /// [default: containerd]
    #[arg(long = "runtime", value_enum, global = true)]
    pub runtimes: Vec<RuntimeKind>,
    /// A CRI endpoint to use instead of starting a private containerd (unix:///path); the built-in
    /// runtime is always started by the bench
    #[arg(long, global = true)]
    pub runtime_endpoint: Option<String>,
    /// The binary whose `runtime` subcommand serves the built-in runtime [default:
    /// target/release/kubelet]
    #[arg(long, global = true)]
    pub builtin_binary: Option<PathBuf>,
    /// Pods in a burst, at density and in churn
    #[arg(short = 'n', long = "pods", default_value_t = 100, global = true)]
    pub pods: usize,
    /// Repeats of the single-pod start and of the reaction
    #[arg(short = 'k', long = "repeat", default_value_t = 10, global = true)]
    pub repeat: usize,
    /// Rounds: every subject (floor, each kubelet) runs once per round, in turn
    #[arg(long, default_value_t = 1, global = true)]
    pub rounds: usize,
    /// Seconds over which steady-state CPU and memory are sampled, at each pod count
    #[arg(long, default_value_t = 10, global = true)]
    pub window: u64,
    /// Write every sample and summary as JSON to this file
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Draw the start-latency distributions and CPU and memory against pod count (SVG)
    #[arg(long, global = true)]
    pub plot: Option<PathBuf>,
    /// The cgroup the kubelets and the floor put pods under (--cgroup-root); removed at the end
    #[arg(long, default_value = "/kubelet-rs-bench", global = true)]
    pub cgroup_root: String,
    /// The node name (--hostname-override); pods are named NAME-NODE
    #[arg(long, default_value = "kubelet-bench", global = true)]
    pub node_name: String,
    /// Seconds to wait for any one step before giving up
    #[arg(long, default_value_t = 300, global = true)]
    pub timeout: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(["kubelet-bench"].iter().chain(args)).unwrap()
    }

    #[test]
    fn containerd_alone_by_default() {
        let cli = parse(&["start"]);
        assert_eq!(cli.scenario, Scenario::Start);
        assert_eq!(cli.opts.runtimes(), [RuntimeKind::Containerd]);
        assert_eq!(cli.opts.builtin_binary, None);
    }

    #[test]
    fn runtimes_repeat_in_the_order_given_once_each() {
        let cli = parse(&[
            "start",
            "--runtime",
            "builtin",
            "--runtime=containerd",
            "--runtime",
            "builtin",
            "-n",
            "30",
        ]);
        assert_eq!(
            cli.opts.runtimes(),
            [RuntimeKind::Builtin, RuntimeKind::Containerd]
        );
        assert_eq!(cli.opts.pods, 30);
        let names: Vec<&str> = cli.opts.runtimes().iter().map(|r| r.name()).collect();
        assert_eq!(names, ["builtin", "containerd"]);
    }

    #[test]
    fn global_options_go_before_or_after_the_scenario() {
        let cli = parse(&["--runtime", "builtin", "--builtin-binary", "/k", "floor"]);
        assert_eq!(cli.scenario, Scenario::Floor);
        assert_eq!(cli.opts.runtimes(), [RuntimeKind::Builtin]);
        assert_eq!(cli.opts.builtin_binary, Some(PathBuf::from("/k")));
    }

    #[test]
    fn an_unknown_runtime_is_refused() {
        let err = Cli::try_parse_from(["kubelet-bench", "start", "--runtime", "crio"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
