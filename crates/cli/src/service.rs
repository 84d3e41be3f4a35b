//! `kith service install|uninstall`: a systemd unit that runs `kith up`.
//!
//! The unit points at the running binary (its absolute path) and the data
//! folder (`--dir`, `KITH_DIR` or the default), sandboxed so that kith can
//! write its data folder and nothing else. A user unit by default, a system
//! unit with `--system` (or as root). This module never runs `systemctl`: it
//! prints the commands to run next.

use std::io::Write as _;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kith_node::{ConfigFile, DataDir};

use crate::cli::{ServiceArgs, ServiceCommand};

/// The unit's file name, and so the service's name (`systemctl … kith`).
const UNIT_NAME: &str = "kith.service";
/// Where system units written by an administrator go.
const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";

/// Which systemd instance runs the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The user's own `systemd --user`; starts at login (or at boot with
    /// lingering).
    User,
    /// The system manager; starts at boot, as `User=`.
    System,
}

impl Scope {
    /// `systemctl` with the flag this scope needs, for the printed commands.
    fn systemctl(self) -> &'static str {
        match self {
            Self::User => "systemctl --user",
            Self::System => "systemctl",
        }
    }

    fn wanted_by(self) -> &'static str {
        match self {
            Self::User => "default.target",
            Self::System => "multi-user.target",
        }
    }
}

/// Everything a unit is made from.
#[derive(Debug)]
struct UnitSpec {
    scope: Scope,
    /// The absolute path of the `kith` binary.
    exe: PathBuf,
    /// The absolute path of the data folder.
    data_dir: PathBuf,
    /// `User=` of a system unit.
    user: Option<String>,
    /// Further folders kith writes (an inbox outside the data folder).
    extra_writable: Vec<PathBuf>,
}

/// `kith service install|uninstall`. `dir` is `--dir`/`KITH_DIR` if given.
pub(crate) fn run(dir: Option<PathBuf>, command: ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Install(args) => install(dir, &args),
        ServiceCommand::Uninstall(args) => uninstall(&args),
    }
}

fn scope_of(args: &ServiceArgs) -> Scope {
    if args.system {
        Scope::System
    } else if args.user || !nix::unistd::geteuid().is_root() {
        Scope::User
    } else {
        Scope::System
    }
}

/// The folder the unit goes into.
fn unit_dir(scope: Scope) -> anyhow::Result<PathBuf> {
    match scope {
        Scope::System => Ok(PathBuf::from(SYSTEM_UNIT_DIR)),
        Scope::User => {
            let config = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
                Some(path) if path.is_absolute() => path,
                _ => match std::env::var_os("HOME").map(PathBuf::from) {
                    Some(home) if home.is_absolute() => home.join(".config"),
                    _ => bail!(
                        "cannot find your configuration folder for a user unit: neither \
                         XDG_CONFIG_HOME nor HOME is set to an absolute path"
                    ),
                },
            };
            Ok(config.join("systemd").join("user"))
        }
    }
}

/// The user a system unit runs as, and that user's home: `--run-as`, else
/// the one who ran `sudo`, else whoever runs this.
fn invoking_user(run_as: Option<&str>) -> anyhow::Result<nix::unistd::User> {
    if let Some(name) = run_as {
        return nix::unistd::User::from_name(name)
            .with_context(|| format!("cannot look up the user {name} (--run-as)"))?
            .with_context(|| format!("there is no user {name} (--run-as)"));
    }
    if nix::unistd::geteuid().is_root()
        && let Ok(name) = std::env::var("SUDO_USER")
        && !name.is_empty()
        && name != "root"
    {
        return nix::unistd::User::from_name(&name)
            .with_context(|| format!("cannot look up the user {name} (from SUDO_USER)"))?
            .with_context(|| format!("there is no user {name} (from SUDO_USER)"));
    }
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .with_context(|| format!("cannot look up the user with uid {uid}"))?
        .with_context(|| format!("there is no user with uid {uid} in the user database"))
}

/// Works out the unit for this invocation.
fn spec(dir: Option<PathBuf>, scope: Scope, run_as: Option<&str>) -> anyhow::Result<UnitSpec> {
    let exe = std::env::current_exe().context("cannot find the path of this kith binary")?;
    let user = match scope {
        Scope::System => Some(invoking_user(run_as)?),
        Scope::User => None,
    };
    let data_dir = match dir {
        Some(dir) => dir,
        // `sudo kith service install --system` runs with root's HOME; the
        // service runs as the invoking user, so their default folder it is.
        None => match &user {
            Some(user) if !user.uid.is_root() && nix::unistd::geteuid().is_root() => {
                user.dir.join(".local/share/kith")
            }
            _ => DataDir::default_location()?.root().to_path_buf(),
        },
    };
    let data_dir = std::path::absolute(&data_dir)
        .with_context(|| format!("cannot make {} an absolute path", data_dir.display()))?;
    let data_dir = resolve_links(data_dir);
    let mut extra_writable = Vec::new();
    if let Ok(config) = ConfigFile::load(&data_dir)
        && let Some(inbox) = config.inbox
        && inbox.is_absolute()
        && !inbox.starts_with(&data_dir)
    {
        extra_writable.push(inbox);
    }
    Ok(UnitSpec {
        scope,
        exe,
        data_dir,
        user: user.map(|user| user.name),
        extra_writable,
    })
}

/// `path` (absolute) with symbolic links resolved in the part of it that
/// exists, so that the unit names the folder the same before and after
/// `install` creates it, as the kernel sees it.
fn resolve_links(path: PathBuf) -> PathBuf {
    for base in path.ancestors() {
        if let Ok(real) = std::fs::canonicalize(base)
            && let Ok(rest) = path.strip_prefix(base)
        {
            return if rest.as_os_str().is_empty() {
                real
            } else {
                real.join(rest)
            };
        }
    }
    path
}

/// The path as UTF-8 text without control characters, which a unit file
/// cannot carry.
fn unit_text<'a>(what: &str, path: &'a Path) -> anyhow::Result<&'a str> {
    let text = path.to_str().with_context(|| {
        format!(
            "{what} {} is not valid UTF-8, which a systemd unit cannot name",
            path.display()
        )
    })?;
    if text.chars().any(char::is_control) {
        bail!("{what} {text:?} contains a control character, which a systemd unit cannot name");
    }
    Ok(text)
}

/// Quotes one word of a unit setting by systemd's rules: `%` is a
/// specifier (`%%` is a percent sign); a word with anything but plain
/// characters goes in double quotes, in which `\` and `"` are escaped; in a
/// command line `$` starts a variable (`$$` is a dollar sign).
fn quote(word: &str, command_line: bool) -> String {
    let mut escaped = String::with_capacity(word.len() + 2);
    for c in word.chars() {
        match c {
            '%' => escaped.push_str("%%"),
            '$' if command_line => escaped.push_str("$$"),
            '\\' | '"' => {
                escaped.push('\\');
                escaped.push(c);
            }
            _ => escaped.push(c),
        }
    }
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "/._-+:@,=%$~".contains(c));
    if plain {
        escaped
    } else {
        format!("\"{escaped}\"")
    }
}

/// The unit file's text.
fn render(spec: &UnitSpec) -> anyhow::Result<String> {
    let exe = unit_text("the kith binary's path", &spec.exe)?;
    let data = unit_text("the data folder", &spec.data_dir)?;
    let mut writable = vec![quote(data, false)];
    for path in &spec.extra_writable {
        // '-': systemd ignores it if it does not exist (yet).
        let text = unit_text("the inbox folder", path)?;
        writable.push(quote(&format!("-{text}"), false));
    }
    let systemctl = spec.scope.systemctl();
    let mut unit = format!(
        "# Written by `kith service install`: runs `kith up` for the data folder\n\
         # {data}\n\
         # Run `kith service install` again after moving the kith binary or the\n\
         # data folder. `{systemctl} reload kith` re-reads config.toml.\n\
         \n\
         [Unit]\n\
         Description=kith node (decentralized internet)\n"
    );
    if spec.scope == Scope::System {
        // A user manager has no network-online.target.
        unit.push_str("Wants=network-online.target\nAfter=network-online.target\n");
    }
    unit.push_str("\n[Service]\nType=simple\n");
    if let Some(user) = &spec.user {
        unit.push_str(&format!("User={}\n", quote(user, false)));
    }
    unit.push_str(&format!(
        "ExecStart={} --dir {} up\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         KillSignal=SIGTERM\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         \n\
         # Sandboxing: the system and home are read-only except the data folder.\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         ReadWritePaths={}\n\
         PrivateTmp=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         # AF_NETLINK: kith watches the network interfaces (mDNS, addresses).\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n\
         \n\
         [Install]\n\
         WantedBy={}\n",
        quote(exe, true),
        quote(data, true),
        writable.join(" "),
        spec.scope.wanted_by(),
    ));
    Ok(unit)
}

fn install(dir: Option<PathBuf>, args: &ServiceArgs) -> anyhow::Result<()> {
    let scope = scope_of(args);
    if args.run_as.is_some() && matches!(scope, Scope::User) {
        bail!("--run-as names the user of a system unit: add --system (a user unit runs as you)");
    }
    let spec = spec(dir, scope, args.run_as.as_deref())?;
    let unit = render(&spec)?;
    let path = unit_dir(scope)?.join(UNIT_NAME);
    let exe = spec.exe.to_string_lossy();
    if exe.contains("/target/debug/") || exe.contains("/target/release/") {
        eprintln!(
            "note: the unit runs kith from a build folder ({exe}); `cargo install --path \
             crates/cli` and running its `kith service install` gives a path that stays"
        );
    }
    if args.dry_run {
        print_stdout(&unit)?;
        eprintln!(
            "(dry run: this is what would be written to {})",
            path.display()
        );
        if !spec.data_dir.exists() {
            eprintln!(
                "(the data folder {} does not exist yet; install would create it)",
                spec.data_dir.display()
            );
        }
        return Ok(());
    }
    match std::fs::read(&path) {
        Ok(existing) if existing == unit.as_bytes() => {
            eprintln!("{} is already installed and up to date", path.display());
            print_next_steps(scope);
            return Ok(());
        }
        Ok(_) if !args.force => bail!(
            "{} already exists and differs from the unit this would write (another binary \
             or data folder?); `kith service install --dry-run` shows the new one, --force \
             replaces it",
            path.display()
        ),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(explain(error, scope))
                .with_context(|| format!("cannot read {}", path.display()));
        }
    }
    if scope == Scope::System {
        // Before the data folder is made: a refusal leaves nothing behind.
        let folder = path.parent().context("a unit path has a folder")?;
        if !folder.is_dir() {
            bail!(
                "{} does not exist: is systemd this machine's init system?",
                folder.display()
            );
        }
        if let Err(errno) = nix::unistd::access(folder, nix::unistd::AccessFlags::W_OK) {
            return Err(explain(std::io::Error::from(errno), scope))
                .with_context(|| format!("cannot write {}", path.display()));
        }
    }
    prepare_data_dir(&spec)?;
    write_unit(&path, &unit, scope)?;
    eprintln!("wrote {}", path.display());
    print_next_steps(scope);
    Ok(())
}

/// Creates the data folder if missing (mode 0700), owned by the service's
/// user: the sandbox lets kith write there and nowhere else, and systemd
/// refuses to start a unit whose ReadWritePaths does not exist.
fn prepare_data_dir(spec: &UnitSpec) -> anyhow::Result<()> {
    let owner = match &spec.user {
        Some(name) if nix::unistd::geteuid().is_root() => nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .filter(|user| !user.uid.is_root()),
        _ => None,
    };
    let missing: Vec<&Path> = spec
        .data_dir
        .ancestors()
        .take_while(|path| !path.exists())
        .collect();
    for folder in missing.into_iter().rev() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(folder)
            .with_context(|| format!("cannot create the data folder {}", folder.display()))?;
        if let Some(owner) = &owner {
            std::os::unix::fs::chown(folder, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
                .with_context(|| format!("cannot give {} to {}", folder.display(), owner.name))?;
        }
    }
    if let (Some(name), Ok(metadata)) = (&spec.user, std::fs::metadata(&spec.data_dir))
        && let Ok(Some(user)) = nix::unistd::User::from_name(name)
        && metadata.uid() != user.uid.as_raw()
    {
        eprintln!(
            "warning: the service runs as {name}, but the data folder {} belongs to uid {}; \
             kith will not be able to write it",
            spec.data_dir.display(),
            metadata.uid()
        );
    }
    Ok(())
}

/// Writes the unit through a temporary file renamed into place, mode 0644.
fn write_unit(path: &Path, unit: &str, scope: Scope) -> anyhow::Result<()> {
    let folder = path.parent().context("a unit path has a folder")?;
    match scope {
        Scope::User => std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?,
        Scope::System if !folder.is_dir() => bail!(
            "{} does not exist: is systemd this machine's init system?",
            folder.display()
        ),
        Scope::System => {}
    }
    let temporary = folder.join(format!(".{UNIT_NAME}.kith-new"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temporary)
        .and_then(|mut file| {
            // Whatever the umask: systemd and the user may read it.
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            file.write_all(unit.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(explain(error, scope))
            .with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Adds what to do to a permission error on a system unit.
fn explain(error: std::io::Error, scope: Scope) -> anyhow::Error {
    if scope == Scope::System && error.kind() == std::io::ErrorKind::PermissionDenied {
        anyhow::anyhow!(
            "{error}; a system unit needs root: run `sudo kith service …`, or use a user \
             unit (--user) instead"
        )
    } else {
        error.into()
    }
}

fn print_next_steps(scope: Scope) {
    let systemctl = scope.systemctl();
    eprintln!(
        "to start kith now and at every {}, run:",
        match scope {
            Scope::User => "login",
            Scope::System => "boot",
        }
    );
    eprintln!("  {systemctl} daemon-reload && {systemctl} enable --now kith");
    match scope {
        Scope::User => {
            eprintln!("to keep it running while you are logged out: loginctl enable-linger");
            eprintln!("its log: journalctl --user -u kith -f");
        }
        Scope::System => eprintln!("its log: journalctl -u kith -f"),
    }
}

fn uninstall(args: &ServiceArgs) -> anyhow::Result<()> {
    let scope = scope_of(args);
    let unit_dir = unit_dir(scope)?;
    let path = unit_dir.join(UNIT_NAME);
    let systemctl = scope.systemctl();
    if std::fs::symlink_metadata(&path).is_err() {
        eprintln!(
            "there is no kith unit at {}: nothing to remove",
            path.display()
        );
        return Ok(());
    }
    let enabled = unit_dir
        .join(format!("{}.wants", scope.wanted_by()))
        .join(UNIT_NAME);
    let is_enabled = std::fs::symlink_metadata(&enabled).is_ok();
    if args.dry_run {
        print_stdout(&format!("{}\n", path.display()))?;
        eprintln!("(dry run: this file would be removed)");
        if is_enabled {
            eprintln!("the service is enabled: run `{systemctl} disable --now kith` first");
        }
        return Ok(());
    }
    if is_enabled && !args.force {
        bail!(
            "the kith service is enabled ({} exists): run `{systemctl} disable --now kith` \
             first, then this again (or --force to remove the unit anyway)",
            enabled.display()
        );
    }
    std::fs::remove_file(&path)
        .map_err(|error| explain(error, scope))
        .with_context(|| format!("cannot remove {}", path.display()))?;
    eprintln!("removed {} (the data folder is kept)", path.display());
    eprintln!("now run: {systemctl} daemon-reload");
    Ok(())
}

/// Writes `text` to stdout; a closed pipe ends the program quietly.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => Err(anyhow::Error::from(error).context("cannot write to stdout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_systemd_rules() {
        assert_eq!(quote("/usr/bin/kith", true), "/usr/bin/kith");
        assert_eq!(quote("/home/me/my data", true), "\"/home/me/my data\"");
        assert_eq!(quote("/a\"b\\c", false), "\"/a\\\"b\\\\c\"");
        assert_eq!(quote("/100%", false), "/100%%");
        assert_eq!(quote("/cost$", true), "/cost$$");
        assert_eq!(quote("/cost$", false), "/cost$");
        assert_eq!(quote("", false), "\"\"");
    }

    #[test]
    fn a_system_unit_names_its_user_and_target() {
        let unit = render(&UnitSpec {
            scope: Scope::System,
            exe: "/usr/local/bin/kith".into(),
            data_dir: "/home/me/kith data".into(),
            user: Some("me".into()),
            extra_writable: vec!["/srv/inbox".into()],
        })
        .unwrap();
        assert!(unit.contains("\nUser=me\n"), "{unit}");
        assert!(unit.contains("\nWantedBy=multi-user.target\n"), "{unit}");
        assert!(
            unit.contains("\nExecStart=/usr/local/bin/kith --dir \"/home/me/kith data\" up\n"),
            "{unit}"
        );
        assert!(
            unit.contains("\nReadWritePaths=\"/home/me/kith data\" -/srv/inbox\n"),
            "{unit}"
        );
    }

    #[test]
    fn control_characters_are_refused() {
        let error = render(&UnitSpec {
            scope: Scope::User,
            exe: "/usr/local/bin/kith".into(),
            data_dir: "/home/me/a\nb".into(),
            user: None,
            extra_writable: Vec::new(),
        })
        .unwrap_err();
        assert!(error.to_string().contains("control character"), "{error}");
    }
}
