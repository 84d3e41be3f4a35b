//! `kith service`, `kith completions`, `kith man` and `kith qr`, run as the
//! real binary: what they print, what they write, and their errors.
//!
//! The service tests never touch the machine's systemd: the user unit goes
//! under a temporary HOME / XDG_CONFIG_HOME, and system units are only
//! printed (`--dry-run`). Where `systemd-analyze` is installed (Debian's
//! `systemd` package), every printed unit must pass `systemd-analyze
//! verify` without a complaint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KITH: &str = env!("CARGO_BIN_EXE_kith");

/// A temporary HOME and XDG_CONFIG_HOME, so that a user unit lands in the
/// test's folder and nowhere else.
struct Home {
    temp: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            temp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.temp.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("config")
    }

    fn unit(&self) -> PathBuf {
        self.config().join("systemd/user/kith.service")
    }

    /// `kith ARGS` with HOME and XDG_CONFIG_HOME inside this folder.
    fn kith(&self, args: &[&str]) -> Output {
        Command::new(KITH)
            .args(args)
            .env("HOME", self.path().join("home"))
            .env("XDG_CONFIG_HOME", self.config())
            .env_remove("XDG_DATA_HOME")
            .env_remove("KITH_DIR")
            .env_remove("SUDO_USER")
            .output()
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        stderr(output),
        stdout(output)
    );
    stdout(output)
}

/// The one-sentence error of a command that must fail: its last line.
fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", stdout(output));
    let said = stderr(output);
    let error = said.lines().last().unwrap_or_default();
    assert!(error.starts_with("kith: "), "{said}");
    error.to_owned()
}

/// The binary's path as the unit must name it.
fn kith_binary() -> PathBuf {
    fs::canonicalize(KITH).unwrap()
}

/// Runs `systemd-analyze verify` on `unit`, saved as kith.service, and
/// requires it to pass with nothing to say about the unit (a setting it
/// cannot parse is only a warning, with exit code 0). Returns false, after
/// a message, where systemd-analyze is not installed; under `CI=true` that
/// fails the test instead.
fn verify(unit: &str) -> bool {
    let installed = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "systemd-analyze is not installed, and CI must check the unit with it \
             (Debian package systemd)"
        );
        eprintln!("not verified: systemd-analyze is not installed (apt-get install systemd)");
        return false;
    }
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("kith.service");
    fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let complaints: Vec<&str> = std::str::from_utf8(&output.stderr)
        .unwrap()
        .lines()
        .filter(|line| line.contains("kith.service"))
        .collect();
    assert!(
        output.status.success() && complaints.is_empty(),
        "systemd-analyze verify refused the unit:\n{}\n{}\n{unit}",
        stderr(&output),
        stdout(&output)
    );
    true
}

/// The value of `key=` in `unit`: exactly one line sets it.
fn setting<'a>(unit: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .collect();
    assert_eq!(values.len(), 1, "{key}= in\n{unit}");
    values[0]
}

fn assert_sandboxed(unit: &str) {
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        ),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(setting(unit, key), value, "{key}= in\n{unit}");
    }
}

#[test]
fn a_dry_run_prints_a_sandboxed_user_unit_that_systemd_accepts() {
    let home = Home::new();
    // A space: both the command line and ReadWritePaths must quote it.
    let data = home.path().join("my node");
    let data_text = data.to_str().unwrap();
    let output = home.kith(&[
        "--dir",
        data_text,
        "service",
        "install",
        "--user",
        "--dry-run",
    ]);
    let unit = succeeded(&output);
    assert_eq!(
        setting(&unit, "ExecStart"),
        format!("{} --dir \"{data_text}\" up", kith_binary().display()),
        "{unit}"
    );
    assert_eq!(setting(&unit, "ReadWritePaths"), format!("\"{data_text}\""));
    assert_sandboxed(&unit);
    assert_eq!(setting(&unit, "WantedBy"), "default.target");
    assert!(!unit.contains("\nUser="), "{unit}");
    assert!(
        stderr(&output).contains(&home.unit().display().to_string()),
        "{}",
        stderr(&output)
    );
    // A dry run changes nothing.
    assert!(!home.unit().exists());
    assert!(!data.exists());
    verify(&unit);
}

#[test]
fn a_dry_run_of_a_system_unit_names_the_user_and_starts_at_boot() {
    let home = Home::new();
    let data = home.path().join("data");
    let output = home.kith(&[
        "--dir",
        data.to_str().unwrap(),
        "service",
        "install",
        "--system",
        "--dry-run",
    ]);
    let unit = succeeded(&output);
    let user = Command::new("id").arg("-un").output().unwrap();
    assert_eq!(setting(&unit, "User"), stdout(&user).trim(), "{unit}");
    assert_eq!(setting(&unit, "WantedBy"), "multi-user.target");
    assert_eq!(setting(&unit, "After"), "network-online.target");
    assert_eq!(
        setting(&unit, "ExecStart"),
        format!("{} --dir {} up", kith_binary().display(), data.display())
    );
    assert_eq!(setting(&unit, "ReadWritePaths"), data.to_str().unwrap());
    assert_sandboxed(&unit);
    assert!(
        stderr(&output).contains("/etc/systemd/system/kith.service"),
        "{}",
        stderr(&output)
    );
    verify(&unit);
}

#[test]
fn a_system_unit_runs_as_the_user_run_as_names_and_an_unknown_one_is_refused() {
    let home = Home::new();
    let data = home.path().join("data");
    let dir = data.to_str().unwrap();
    // `daemon` is in every Debian user database (systemd warns about `nobody`).
    let unit = succeeded(&home.kith(&[
        "--dir",
        dir,
        "service",
        "install",
        "--system",
        "--run-as",
        "daemon",
        "--dry-run",
    ]));
    assert_eq!(setting(&unit, "User"), "daemon", "{unit}");
    verify(&unit);
    let output = home.kith(&[
        "--dir",
        dir,
        "service",
        "install",
        "--system",
        "--run-as",
        "no-such-user-here",
        "--dry-run",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("there is no user no-such-user-here (--run-as)"),
        "{}",
        stderr(&output)
    );
    // Only a system unit names a user.
    let output = home.kith(&[
        "service",
        "install",
        "--user",
        "--run-as",
        "daemon",
        "--dry-run",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("add --system"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_default_data_folder_and_a_relative_one_become_absolute_paths() {
    let home = Home::new();
    let unit = succeeded(&home.kith(&["service", "install", "--user", "--dry-run"]));
    let default = home.path().join("home/.local/share/kith");
    assert_eq!(setting(&unit, "ReadWritePaths"), default.to_str().unwrap());

    let output = Command::new(KITH)
        .args(["--dir", "rel", "service", "install", "--user", "--dry-run"])
        .current_dir(home.path())
        .env("XDG_CONFIG_HOME", home.config())
        .output()
        .unwrap();
    let unit = succeeded(&output);
    let relative = fs::canonicalize(home.path()).unwrap().join("rel");
    assert_eq!(
        setting(&unit, "ReadWritePaths"),
        relative.to_str().unwrap(),
        "{unit}"
    );
}

#[test]
fn install_writes_the_user_unit_once_and_uninstall_removes_it() {
    let home = Home::new();
    let data = home.path().join("node");
    let dir = data.to_str().unwrap();
    let printed =
        succeeded(&home.kith(&["--dir", dir, "service", "install", "--user", "--dry-run"]));

    let install = home.kith(&["--dir", dir, "service", "install", "--user"]);
    succeeded(&install);
    assert_eq!(fs::read_to_string(home.unit()).unwrap(), printed);
    let mode = fs::metadata(home.unit()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let said = stderr(&install);
    assert!(
        said.contains("systemctl --user daemon-reload && systemctl --user enable --now kith"),
        "{said}"
    );
    // The sandbox lets kith write only there, and systemd needs it to exist.
    let mode = fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    // The same unit again: nothing to do.
    let again = home.kith(&["--dir", dir, "service", "install", "--user"]);
    succeeded(&again);
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));

    // A different one (another data folder) only with --force.
    let other = home.path().join("other");
    let other_dir = other.to_str().unwrap();
    let refused = failed(&home.kith(&["--dir", other_dir, "service", "install", "--user"]));
    assert!(
        refused.contains("already exists and differs") && refused.contains("--force"),
        "{refused}"
    );
    assert_eq!(fs::read_to_string(home.unit()).unwrap(), printed);
    succeeded(&home.kith(&[
        "--dir", other_dir, "service", "install", "--user", "--force",
    ]));
    let replaced = fs::read_to_string(home.unit()).unwrap();
    assert_eq!(setting(&replaced, "ReadWritePaths"), other_dir);

    // A dry run of uninstall names the file and leaves it.
    let dry = home.kith(&["service", "uninstall", "--user", "--dry-run"]);
    assert_eq!(succeeded(&dry).trim(), home.unit().to_str().unwrap());
    assert!(home.unit().exists());

    // Enabled (as `systemctl --user enable` leaves it): disable first.
    let wants = home.config().join("systemd/user/default.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(home.unit(), wants.join("kith.service")).unwrap();
    let refused = failed(&home.kith(&["service", "uninstall", "--user"]));
    assert!(
        refused.contains("systemctl --user disable --now kith"),
        "{refused}"
    );
    assert!(home.unit().exists());
    fs::remove_file(wants.join("kith.service")).unwrap();

    let removed = home.kith(&["service", "uninstall", "--user"]);
    succeeded(&removed);
    assert!(!home.unit().exists());
    assert!(
        stderr(&removed).contains("systemctl --user daemon-reload"),
        "{}",
        stderr(&removed)
    );
    // The data folders stay.
    assert!(data.is_dir() && other.is_dir());

    let absent = home.kith(&["service", "uninstall", "--user"]);
    succeeded(&absent);
    assert!(
        stderr(&absent).contains("nothing to remove"),
        "{}",
        stderr(&absent)
    );
}

#[test]
fn without_xdg_config_home_the_user_unit_goes_under_home() {
    let home = Home::new();
    let data = home.path().join("node");
    let output = Command::new(KITH)
        .args([
            "--dir",
            data.to_str().unwrap(),
            "service",
            "install",
            "--user",
        ])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    succeeded(&output);
    assert!(
        home.path()
            .join(".config/systemd/user/kith.service")
            .is_file()
    );
}

#[test]
fn user_and_system_together_are_refused() {
    let home = Home::new();
    let output = home.kith(&["service", "install", "--user", "--system", "--dry-run"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn completions_are_printed_for_every_shell() {
    let home = Home::new();
    let bash = succeeded(&home.kith(&["completions", "bash"]));
    assert!(bash.contains("complete"), "{bash}");
    assert!(bash.contains("put"), "{bash}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = succeeded(&home.kith(&["completions", shell]));
        assert!(script.contains("put"), "{shell}: {script}");
    }
    let output = home.kith(&["completions", "tcsh"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("bash"), "{}", stderr(&output));
}

#[test]
fn man_prints_kith_1_and_writes_a_page_per_command() {
    let home = Home::new();
    let page = succeeded(&home.kith(&["man"]));
    let title = page
        .lines()
        .find(|line| line.starts_with('.') && !line.starts_with(".ie") && !line.starts_with(".el"))
        .unwrap();
    assert!(title.starts_with(".TH kith 1"), "{page}");
    assert!(page.contains("put"), "{page}");
    assert!(page.contains("service"), "{page}");

    let out = home.path().join("man1");
    succeeded(&home.kith(&["man", "--out-dir", out.to_str().unwrap()]));
    for name in [
        "kith.1",
        "kith-put.1",
        "kith-service-install.1",
        "kith-name-publish.1",
    ] {
        let text = fs::read_to_string(out.join(name)).unwrap();
        assert!(text.contains(".TH"), "{name}: {text}");
    }
}

#[test]
fn qr_prints_half_blocks_or_svg() {
    let home = Home::new();
    let cap = "kith:bafkexamplecapabilitytext0123456789";
    let code = succeeded(&home.kith(&["qr", cap]));
    assert!(
        code.contains('\u{2580}') || code.contains('\u{2584}'),
        "{code}"
    );
    // The quiet zone: the first line is all light modules.
    let first = code.lines().next().unwrap();
    assert!(first.chars().all(|c| c == '\u{2588}'), "{code}");
    let widths: Vec<usize> = code.lines().map(|line| line.chars().count()).collect();
    assert!(widths.iter().all(|width| *width == widths[0]), "{code}");

    let svg = succeeded(&home.kith(&["qr", "--svg", cap]));
    assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
}

#[test]
fn qr_refuses_empty_and_too_long_text() {
    let home = Home::new();
    let error = failed(&home.kith(&["qr", ""]));
    assert!(error.contains("empty"), "{error}");
    let long = "x".repeat(4000);
    let error = failed(&home.kith(&["qr", &long]));
    assert!(error.contains("too long for a QR code"), "{error}");
}
