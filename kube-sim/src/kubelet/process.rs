//! Local processes: containers (and hooks) whose image is `local` or `local/...` really
//! run here, in their own process group, with the container's env and a private
//! working directory. Their stdout/stderr become the container's log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::logs::LogBuffer;

/// Whether an image runs as a local process rather than the built-in app.
pub fn is_local_image(image: &str) -> bool {
    image == "local" || image.starts_with("local/") || image.starts_with("local:")
}

/// What to run, already resolved against the pod (env, mounts, working directory).
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

impl ProcessSpec {
    /// `command` replaces the (empty) entrypoint of a `local` image and `args` follow it;
    /// with no command, `args` is the whole argv.
    pub fn from_container(
        command: &[String],
        args: &[String],
        env: Vec<(String, String)>,
        cwd: &Path,
    ) -> Result<Self, String> {
        let argv: Vec<String> = command.iter().chain(args.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(
                "no command specified: a `local` image has no entrypoint, so set command or args"
                    .into(),
            );
        }
        Ok(ProcessSpec {
            argv,
            env,
            cwd: cwd.to_path_buf(),
        })
    }
}

/// A started process; the child itself is owned by the task that waits for it.
#[derive(Debug, Clone, Copy)]
pub struct ProcessGroup {
    pgid: i32,
}

impl ProcessGroup {
    /// Sends `signal` to the whole process group (the container's process tree).
    pub fn signal(&self, signal: Signal) {
        // ESRCH (already gone) is the normal case after an exit.
        let _ = killpg(Pid::from_raw(self.pgid), signal);
    }
}

/// Starts `spec`, piping its output into `logs`.
pub fn spawn(spec: &ProcessSpec, logs: Arc<LogBuffer>) -> std::io::Result<(Child, ProcessGroup)> {
    std::fs::create_dir_all(&spec.cwd)?;
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, logs.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, logs));
    }
    Ok((child, ProcessGroup { pgid }))
}

async fn pump(stream: impl AsyncRead + Unpin, logs: Arc<LogBuffer>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push(line);
    }
}

/// The exit code as a container runtime reports it (128 + signal for a killed process).
pub fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
        Err(_) => 128 + 9,
    }
}

/// Replaces each mount path in `text` by its directory on disk, where it stands as a
/// whole path component (`/workspace` in `cd /workspace/src`, not in `/workspaces`).
pub fn substitute_mounts(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = text.to_string();
    for (mount, dir) in mounts {
        if mount.is_empty() || mount == "/" {
            continue;
        }
        let replacement = dir.to_string_lossy();
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(pos) = rest.find(mount.as_str()) {
            let after = &rest[pos + mount.len()..];
            let boundary = after
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'));
            let before_ok = rest[..pos].chars().last().is_none_or(|c| {
                !(c.is_alphanumeric() || c == '/' || c == '-' || c == '_' || c == '.')
            });
            result.push_str(&rest[..pos]);
            if boundary && before_ok {
                result.push_str(&replacement);
            } else {
                result.push_str(mount);
            }
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_replaced_as_whole_components() {
        let mounts = vec![("/workspace".to_string(), PathBuf::from("/tmp/p/volumes/ws"))];
        assert_eq!(
            substitute_mounts("/workspace", &mounts),
            "/tmp/p/volumes/ws"
        );
        assert_eq!(
            substitute_mounts("cd /workspace/src && ls", &mounts),
            "cd /tmp/p/volumes/ws/src && ls"
        );
        assert_eq!(substitute_mounts("/workspaces/x", &mounts), "/workspaces/x");
        assert_eq!(substitute_mounts("/a/workspace", &mounts), "/a/workspace");
        assert_eq!(
            substitute_mounts("'/workspace'", &mounts),
            "'/tmp/p/volumes/ws'"
        );
    }

    #[test]
    fn local_images_are_recognised() {
        assert!(is_local_image("local"));
        assert!(is_local_image("local/tools"));
        assert!(!is_local_image("node:20-alpine"));
        assert!(!is_local_image("localhost:5000/app"));
    }

    #[tokio::test]
    async fn a_process_runs_with_its_env_and_logs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let logs = Arc::new(LogBuffer::default());
        let spec = ProcessSpec::from_container(
            &["sh".into(), "-c".into()],
            &["echo hello $GREETING; pwd; exit 3".into()],
            vec![
                ("GREETING".into(), "world".into()),
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ],
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (mut child, _group) = spawn(&spec, logs.clone()).unwrap_or_else(|e| panic!("{e}"));
        let code = exit_code(child.wait().await);
        assert_eq!(code, 3);
        // Output is pumped by other tasks; give them a moment to drain the pipes.
        for _ in 0..100 {
            if logs.snapshot(&Default::default()).0.lines().count() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (text, _) = logs.snapshot(&Default::default());
        assert!(text.starts_with("hello world\n"), "{text}");
        assert!(
            text.contains(&dir.path().to_string_lossy().to_string()),
            "{text}"
        );
        assert!(ProcessSpec::from_container(&[], &[], vec![], dir.path()).is_err());
    }
}
