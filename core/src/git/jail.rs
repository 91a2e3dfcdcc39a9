//! The jail every git process runs in where the machine has bubblewrap (`bwrap`): a mount
//! namespace that holds only what the one call needs, so git, and anything git starts (a
//! filter, a textconv, an alias, ssh), cannot read or write outside it, whatever a
//! repository or a tampered config makes it do.
//!
//! A jail sees, at the same paths as outside (so the paths in argv and in the environment
//! mean the same thing inside):
//! - git's own files, read-only: `/usr` (the git binary, its libexec, shared libraries, sh,
//!   ssh, CA certificates under `/usr/share`), the `/bin`, `/lib`… links or directories,
//!   git's install prefix when it lives elsewhere, and an `/etc` of its own holding only what
//!   TLS, name resolution, the dynamic loader and ssh read (never `/etc/ssl/private`,
//!   `/etc/shadow` or ssh host keys), with one-line `passwd` and `group` (ssh needs the user
//!   to exist);
//! - the controlled HOME of [`super::home`] read-only (its `.ssh/`, where ssh records known
//!   hosts, read-write);
//! - the call's working directory, read-write, and the paths its [`Sees`] names;
//! - a private `/tmp`, a minimal `/dev`, and a `/proc` of its own PID namespace.
//!
//! PID, IPC and UTS namespaces are its own (it cannot see or signal the worker's other
//! processes), it is a session of its own (no terminal), it dies with the runner
//! (`--die-with-parent`) and holds no capabilities. The network is shared: git must fetch
//! and push. The environment is the runner's scrubbed one, not the worker's.
//!
//! The jail is in the runner, not behind [`SandboxProvider`](crate::sandbox::SandboxProvider):
//! it is a property of how a git process starts, and every git process starts in the runner,
//! while the provider only makes and removes directories and knows nothing of mirrors, HOME
//! or scratch directories that calls also need.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use gitfleet_contract::JobError;

use super::config::GitConfig;

/// What one git call may see of the file system when it runs jailed, besides git's own files
/// and HOME (read-only) and its working directory (read-write, always). The default is
/// nothing more. Unjailed, git sees what the worker sees and this is not used.
///
/// A path named in both lists is writable. A path that does not exist is left out (git
/// then fails as it would on a missing path), except the working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sees {
    /// Readable, not writable: a mirror a sandbox borrows objects from, another store named
    /// in `GIT_ALTERNATE_OBJECT_DIRECTORIES`, a template directory.
    pub read_only: Vec<PathBuf>,
    /// Readable and writable: a `GIT_DIR`, `GIT_OBJECT_DIRECTORY` or `GIT_INDEX_FILE`'s
    /// directory outside the working directory.
    pub read_write: Vec<PathBuf>,
}

impl Sees {
    /// Also `path`, read-only.
    pub fn and_read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only.push(path.into());
        self
    }

    /// Also `path`, read-write.
    pub fn and_read_write(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_write.push(path.into());
        self
    }

    /// Everything `other` sees, too.
    pub fn and(mut self, other: Sees) -> Self {
        self.read_only.extend(other.read_only);
        self.read_write.extend(other.read_write);
        self
    }
}

/// Top-level directories that hold software, bound read-only (or recreated as the same
/// symlinks, on a merged-/usr system).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What git and its helpers read from `/etc`, where present: TLS trust (certificates and
/// OpenSSL's config, never `/etc/ssl/private`), name resolution, the dynamic loader's cache,
/// and ssh's client config (never its host keys). Copied into the jail's own `/etc` when
/// the runner starts: one mount per call, where a bind of each costs a mount apiece (about
/// 5 ms a process here, see BENCHMARKS.md).
const ETC_COPIED: &[&str] = &[
    "ssl/certs",
    "ssl/openssl.cnf",
    "pki/ca-trust",
    "pki/tls/certs",
    "pki/tls/cert.pem",
    "pki/tls/openssl.cnf",
    "crypto-policies",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "ld.so.cache",
    "ssh/ssh_config",
    "ssh/ssh_config.d",
];

/// Bound live over the copy instead: it may change while the worker runs.
const ETC_LIVE: &str = "/etc/resolv.conf";

/// A bubblewrap jail, set up once by the runner (see the module docs).
#[derive(Debug)]
pub(super) struct Jail {
    bwrap: PathBuf,
    /// The git binary, absolute (it is run by path inside the jail).
    git: PathBuf,
    /// The arguments every call starts with: namespaces, /dev, /proc, /tmp, git's own
    /// files.
    fixed: Vec<OsString>,
    /// HOME read-only and its `.ssh` read-write: mounted after a call's own paths, so HOME
    /// stays read-only even inside a directory a call may write.
    home: Vec<Mount>,
}

/// One bind mount of a call.
#[derive(Debug, Clone)]
struct Mount {
    path: PathBuf,
    write: bool,
    /// Fail (rather than leave it out) when the path does not exist.
    required: bool,
}

impl Jail {
    /// Finds bwrap and git and works out what every jail holds. The runner checks that it
    /// works by running `git --version` in it.
    pub(super) async fn new(config: &GitConfig) -> Result<Self, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let bwrap = find_program(&config.bwrap_bin, &path).ok_or_else(|| {
            format!(
                "bubblewrap ({}) is not found on PATH",
                config.bwrap_bin.display()
            )
        })?;
        let git = find_program(&config.git_bin, &path)
            .ok_or_else(|| format!("git ({}) is not found on PATH", config.git_bin.display()))?;
        let git = std::fs::canonicalize(&git)
            .map_err(|e| format!("cannot resolve the git binary {}: {e}", git.display()))?;
        let etc = write_etc(&config.home).await?;

        let mut fixed: Vec<OsString> = [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "gitfleet",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
        ]
        .map(OsString::from)
        .to_vec();
        let mut bound: Vec<PathBuf> = Vec::new();
        for dir in SYSTEM_DIRS {
            let dir = Path::new(dir);
            match std::fs::symlink_metadata(dir) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = std::fs::read_link(dir)
                        .map_err(|e| format!("cannot read the link {}: {e}", dir.display()))?;
                    push_all(
                        &mut fixed,
                        ["--symlink".as_ref(), target.as_os_str(), dir.as_os_str()],
                    );
                }
                Ok(meta) if meta.is_dir() => {
                    push_all(
                        &mut fixed,
                        ["--ro-bind".as_ref(), dir.as_os_str(), dir.as_os_str()],
                    );
                    bound.push(dir.to_path_buf());
                }
                _ => {}
            }
        }
        // git installed outside /usr (e.g. /opt/git/bin/git): its whole install prefix.
        if !bound.iter().any(|dir| git.starts_with(dir)) {
            let not_root = |p: &&Path| p.parent().is_some();
            let prefix = git
                .parent()
                .and_then(Path::parent)
                .filter(not_root)
                .or_else(|| git.parent().filter(not_root))
                .unwrap_or(&git);
            push_all(
                &mut fixed,
                ["--ro-bind".as_ref(), prefix.as_os_str(), prefix.as_os_str()],
            );
        }
        push_all(
            &mut fixed,
            ["--ro-bind".as_ref(), etc.as_os_str(), "/etc".as_ref()],
        );
        push_all(
            &mut fixed,
            [
                "--ro-bind-try".as_ref(),
                ETC_LIVE.as_ref(),
                ETC_LIVE.as_ref(),
            ],
        );

        let home = vec![
            Mount {
                path: config.home.clone(),
                write: false,
                required: true,
            },
            Mount {
                path: config.home.join(".ssh"),
                write: true,
                required: false,
            },
        ];
        Ok(Self {
            bwrap,
            git,
            fixed,
            home,
        })
    }

    pub(super) fn bwrap(&self) -> &Path {
        &self.bwrap
    }

    /// `bwrap <what this call sees> -- <git>`, in `cwd`; the runner adds git's arguments
    /// and environment.
    pub(super) fn command(
        &self,
        cwd: &Path,
        sees: &Sees,
    ) -> Result<tokio::process::Command, JobError> {
        let mut mounts: Vec<Mount> = Vec::new();
        let extra = |path: &PathBuf, write: bool| Mount {
            path: path.clone(),
            write,
            required: false,
        };
        // Later mounts of one path win: read-only, then writable, then HOME.
        mounts.extend(sees.read_only.iter().map(|p| extra(p, false)));
        mounts.push(Mount {
            path: cwd.to_path_buf(),
            write: true,
            required: true,
        });
        mounts.extend(sees.read_write.iter().map(|p| extra(p, true)));
        mounts.extend(self.home.iter().cloned());
        for mount in &mounts {
            check_mount(mount)?;
        }
        // Parents before children, so a directory inside another is mounted over it (a
        // mirror read-only, its `objects/` writable); the sort is stable.
        mounts.sort_by_key(|m| depth(&m.path));

        let mut command = tokio::process::Command::new(&self.bwrap);
        command.args(&self.fixed);
        for mount in &mounts {
            let flag = match (mount.write, mount.required) {
                (true, true) => "--bind",
                (true, false) => "--bind-try",
                (false, true) => "--ro-bind",
                (false, false) => "--ro-bind-try",
            };
            command.arg(flag).arg(&mount.path).arg(&mount.path);
        }
        command.arg("--chdir").arg(cwd).arg("--").arg(&self.git);
        Ok(command)
    }
}

/// A call's paths must be absolute, and nothing may make the whole file system writable.
fn check_mount(mount: &Mount) -> Result<(), JobError> {
    if !mount.path.is_absolute() {
        return Err(JobError::internal(format!(
            "git jail: {} is not an absolute path",
            mount.path.display()
        )));
    }
    if mount.write && mount.path.parent().is_none() {
        return Err(JobError::internal(
            "git jail: refusing to let a git call write to /",
        ));
    }
    Ok(())
}

fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

fn push_all<'a>(args: &mut Vec<OsString>, items: impl IntoIterator<Item = &'a OsStr>) {
    args.extend(items.into_iter().map(OsStr::to_os_string));
}

/// `program` as the kernel would run it: a path with a slash as it is, a bare name from
/// the first directory of `path` that has it as an executable file.
fn find_program(program: &Path, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return runnable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|p| runnable(p))
}

/// Writes the jail's `/etc` under HOME: copies of [`ETC_COPIED`] (symlinks inside them
/// kept as links), an empty stand-in for [`ETC_LIVE`] to bind over, and one-line `passwd`
/// and `group` naming the worker's user (ssh refuses to run for a user that does not
/// exist). Built beside and renamed into place, so it is whole; a version of its own per
/// runner (a HOME may be shared). Returns its path.
async fn write_etc(home: &Path) -> Result<PathBuf, String> {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let jail = home.join(".jail");
        let id = ulid::Ulid::new();
        let tmp = jail.join(format!("etc.tmp-{id}"));
        let done = jail.join(format!("etc-{id}"));
        let built = build_etc(&home, &tmp).and_then(|()| std::fs::rename(&tmp, &done));
        match built {
            Ok(()) => Ok(done),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(format!(
                    "cannot write the jail's /etc in {}: {e}",
                    jail.display()
                ))
            }
        }
    })
    .await
    .map_err(|e| format!("writing the jail's /etc panicked: {e}"))?
}

fn build_etc(home: &Path, etc: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(etc)?;
    for entry in ETC_COPIED {
        copy_entry(&Path::new("/etc").join(entry), &etc.join(entry), true)?;
    }
    std::fs::write(etc.join("resolv.conf"), "")?;
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    // The passwd format has no escapes: a HOME it cannot hold is written as `/`.
    let home_field = home
        .to_str()
        .filter(|h| !h.contains([':', '\n']))
        .unwrap_or("/");
    std::fs::write(
        etc.join("passwd"),
        format!("gitfleet:x:{uid}:{gid}:gitfleet:{home_field}:/bin/sh\n"),
    )?;
    std::fs::write(etc.join("group"), format!("gitfleet:x:{gid}:\n"))
}

/// Copies `src` to `dst`: a file's content, a directory whole, a symlink inside a directory
/// as the same link (`top`: the entry itself is followed, as the host's `/etc` may link
/// it elsewhere). What is missing, or not readable by the worker, is left out.
fn copy_entry(src: &Path, dst: &Path, top: bool) -> std::io::Result<()> {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    let meta = if top {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    };
    let meta = match meta {
        Ok(meta) => meta,
        Err(e) if matches!(e.kind(), NotFound | PermissionDenied) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let copied = if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)
    } else if meta.is_dir() {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let name = entry?.file_name();
            copy_entry(&src.join(&name), &dst.join(&name), false)?;
        }
        Ok(())
    } else if meta.is_file() {
        std::fs::copy(src, dst).map(|_| ())
    } else {
        Ok(())
    };
    match copied {
        Err(e) if e.kind() == PermissionDenied => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_by_their_own_path() {
        let sh = find_program(Path::new("sh"), OsStr::new("/nonexistent:/usr/bin:/bin"));
        assert!(sh.is_some_and(|p| p.is_absolute()));
        assert_eq!(
            find_program(Path::new("/bin/sh"), OsStr::new("")),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_program(
                Path::new("no-such-program-gitfleet"),
                OsStr::new("/usr/bin")
            ),
            None
        );
        // A relative PATH entry is never searched.
        assert_eq!(find_program(Path::new("sh"), OsStr::new("bin:.")), None);
    }

    #[test]
    fn a_call_may_never_write_to_the_root_or_name_a_relative_path() {
        let mount = |path: &str, write| Mount {
            path: path.into(),
            write,
            required: false,
        };
        assert!(check_mount(&mount("/", true)).is_err());
        assert!(check_mount(&mount("work", false)).is_err());
        assert!(check_mount(&mount("/", false)).is_ok());
        assert!(check_mount(&mount("/srv/sandboxes/sb-1", true)).is_ok());
    }

    #[test]
    fn parents_are_mounted_before_children() {
        assert!(depth(Path::new("/a/b.git")) < depth(Path::new("/a/b.git/objects")));
        assert_eq!(depth(Path::new("/")), 0);
    }
}
