//! The kubelet's configuration: upstream flags and the KubeletConfiguration file
//! (kubelet.config.k8s.io/v1beta1), merged with upstream precedence and defaults into one
//! resolved [`KubeletConfig`].
//!
//! Every upstream v1.32 flag and config field is recognised. Those kubelet-rs does not
//! implement yet are refused (flags) or ignored with a warning (file fields) when they are
//! given a value other than their upstream default, never dropped silently.

mod build;
mod cli;
mod config_file;
mod error;
mod file_table;
mod flag_table;
mod help;
mod host;
mod kubelet_config;
mod paths;
mod resolve;
mod settings;
mod units;
mod value;
mod version;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use kubelet_config::{AuthorizationMode, CgroupDriver, KubeletConfig, LogFormat, TaintSpec};
pub use version::KUBERNETES_VERSION;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the kubelet with this configuration.
    Run(Box<KubeletConfig>),
    /// Print this help text and exit successfully.
    Help(String),
    /// Print this version text and exit successfully.
    Version(String),
}

/// Parses the command line (without argv[0]), reads the --config file if given, and
/// resolves the configuration with upstream precedence: flags over the file over defaults.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, ConfigError> {
    resolve::run(args, &host::RealHost)
}
