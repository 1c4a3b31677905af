//! The process's arguments, environment and working directory.

use crate::SpecError;
use k8s_cri::v1::ContainerConfig;
use oci_spec::image::Config as ImageConfig;

/// containerd's oci.WithDefaultPathEnv: the PATH a container gets when its image sets none.
pub(crate) const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Kubernetes' rule (moby's, as containerd's WithProcessArgs has it): a CRI command replaces the
/// image's Entrypoint and drops its Cmd; CRI args alone replace only the Cmd. An image
/// Entrypoint of exactly [""] means "no entrypoint".
pub(crate) fn args(
    container: &ContainerConfig,
    image: Option<&ImageConfig>,
) -> Result<Vec<String>, SpecError> {
    let mut command = container.command.clone();
    let mut args = container.args.clone();
    if command.is_empty() {
        if args.is_empty() {
            args = image.and_then(|c| c.cmd().clone()).unwrap_or_default();
        }
        let entrypoint = image
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default();
        if entrypoint != [""] {
            command = entrypoint;
        }
    }
    command.extend(args);
    if command.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(command)
}

/// PATH default, TERM for a tty, HOSTNAME, the image's env, then the CRI envs: later values of
/// the same key replace earlier ones in place; an entry without '=' unsets the key.
pub(crate) fn env(
    container: &ContainerConfig,
    image: Option<&ImageConfig>,
    hostname: &str,
) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH_ENV.to_string()];
    if container.tty {
        env.push("TERM=xterm".to_string());
    }
    merge_env(&mut env, [format!("HOSTNAME={hostname}")]);
    let image_env = image.and_then(|c| c.env().clone()).unwrap_or_default();
    let cri_env = container
        .envs
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value));
    merge_env(&mut env, image_env.into_iter().chain(cri_env));
    env
}

/// containerd's replaceOrAppendEnvValues.
pub(crate) fn merge_env(env: &mut Vec<String>, overrides: impl IntoIterator<Item = String>) {
    for value in overrides {
        let (key, set) = match value.split_once('=') {
            Some((k, _)) => (k.to_string(), true),
            None => (value.clone(), false),
        };
        let pos = env
            .iter()
            .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key);
        match (pos, set) {
            (Some(i), true) => env[i] = value,
            (None, true) => env.push(value),
            (Some(i), false) => {
                env.remove(i);
            }
            (None, false) => {}
        }
    }
}

/// CRI working_dir, else the image's WorkingDir, else /.
pub(crate) fn cwd(container: &ContainerConfig, image: Option<&ImageConfig>) -> String {
    if !container.working_dir.is_empty() {
        return container.working_dir.clone();
    }
    image
        .and_then(|c| c.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string())
}
