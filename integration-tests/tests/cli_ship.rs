//! `bottlectl` as an installed tool: `--version`, `version` (with the
//! engines), shell completions, man pages, colour and progress output.
//!
//! Terminal behaviour is tested under a real pseudo-terminal made by
//! `script(1)` (util-linux/bsdutils, always present on Debian), so nothing
//! here is simulated. Engine checks run once per engine via `engine_tests!`.

use bottle_integration_tests::{engine_tests, TestEnv};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SUBCOMMANDS: &[&str] = &[
    "provision",
    "verify",
    "deprovision",
    "doctor",
    "config",
    "demo",
    "version",
    "completions",
    "man",
];

use bottle_integration_tests::{bottlectl_path, hermetic};

/// A hermetic environment: empty HOME/XDG config, no caller variables.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn base(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        hermetic(&mut cmd, self.path());
        cmd
    }

    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = self.base(bottlectl_path());
        cmd.args(args).envs(envs.iter().copied());
        cmd.output().expect("run bottlectl")
    }

    /// `bottlectl ARGS…` on a pseudo-terminal (stdin, stdout and stderr all
    /// on it); returns everything the terminal received.
    fn run_tty(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let mut line = shell_quote(bottlectl_path().to_str().expect("utf-8 path"));
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        let mut cmd = self.base(Path::new("script"));
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("TERM", "xterm")
            .env("SHELL", "/bin/sh")
            .envs(envs.iter().copied())
            .stdin(std::process::Stdio::null());
        let out = cmd.output().expect("run script(1) (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "script -c {line:?} failed ({:?}): {text}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn expect_code(out: &Output, want: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(want),
        "{what}: stdout {:?}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {:?}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

const ESC: char = '\u{1b}';

// ---- version ----------------------------------------------------------

#[test]
fn dash_dash_version_prints_the_version() {
    let s = Scratch::new();
    for flag in ["--version", "-V"] {
        let out = s.run(&[flag], &[]);
        expect_code(&out, 0, flag);
        assert_eq!(stdout(&out).trim(), format!("bottlectl {VERSION}"));
    }
}

#[test]
fn version_reports_an_engine_that_does_not_answer_and_still_exits_0() {
    let s = Scratch::new();
    let dead = format!("unix://{}/no-engine.sock", s.path().display());
    let envs = [
        ("DOCKER_HOST", dead.as_str()),
        ("CONTAINER_HOST", dead.as_str()),
    ];
    let out = s.run(&["--json", "version"], &envs);
    expect_code(&out, 0, "version --json with no engine");
    let v = json(&out);
    assert_eq!(v["name"], "bottlectl");
    assert_eq!(v["version"], VERSION);
    let engines = v["engines"].as_array().expect("engines array");
    let names: Vec<&str> = engines
        .iter()
        .map(|e| e["engine"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docker", "podman"]);
    for e in engines {
        assert_eq!(e["endpoint"], dead.as_str(), "{e}");
        assert!(e["version"].is_null(), "{e}");
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }

    let out = s.run(&["version"], &envs);
    expect_code(&out, 0, "version with no engine");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("bottlectl {VERSION}\n")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("docker") && l.contains("not answering")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("podman") && l.contains("not answering")),
        "{text}"
    );
}

/// `version` finds the engine through its usual variable and reports the
/// version the engine itself reports.
async fn check_version_lists_the_engine(env: &TestEnv) {
    let expected = env.rt().version().await.expect("engine version");
    let var = match env.engine().name() {
        "docker" => "DOCKER_HOST",
        "containerd" => "CONTAINERD_ADDRESS",
        _ => "CONTAINER_HOST",
    };
    let endpoint = env.endpoint().to_string();
    let s = Scratch::new();
    let out = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || {
            let out = s.run(&["--json", "version"], &[(var, endpoint.as_str())]);
            let human = s.run(&["version"], &[(var, endpoint.as_str())]);
            (out, human)
        }
    })
    .await
    .expect("join");
    let (out, human) = out;
    expect_code(&out, 0, "version --json");
    let v = json(&out);
    let entry = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["engine"] == env.engine().name())
        .cloned()
        .expect("the engine is listed");
    assert_eq!(entry["version"], expected.version.as_str(), "{entry}");
    assert_eq!(entry["endpoint"], endpoint.as_str(), "{entry}");
    assert_eq!(entry["endpoint_from"], var, "{entry}");

    expect_code(&human, 0, "version");
    let text = stdout(&human);
    let line = text
        .lines()
        .find(|l| l.starts_with(env.engine().name()))
        .unwrap_or_else(|| panic!("no {} line: {text}", env.engine().name()));
    assert!(line.contains(&expected.version), "{line}");
    assert!(line.contains(&endpoint), "{line}");
}

// ---- completions ------------------------------------------------------

fn completion(shell: &str) -> String {
    let out = Scratch::new().run(&["completions", shell], &[]);
    expect_code(&out, 0, shell);
    let text = stdout(&out);
    assert!(!text.trim().is_empty(), "{shell}: empty");
    text
}

#[test]
fn bash_completion_parses_and_completes_subcommands() {
    let s = Scratch::new();
    let script = s.path().join("bottlectl.bash");
    std::fs::write(&script, completion("bash")).unwrap();
    let out = s
        .base(Path::new("bash"))
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash -n: {}", stderr(&out));

    // Load it and ask it what follows `bottlectl ver`, as readline would.
    let probe = format!(
        r#"source {}
COMP_WORDS=(bottlectl ver); COMP_CWORD=1; COMP_LINE="bottlectl ver"; COMP_POINT=${{#COMP_LINE}}
_bottlectl bottlectl ver bottlectl
printf '%s\n' "${{COMPREPLY[@]}}""#,
        shell_quote(script.to_str().unwrap())
    );
    let out = s
        .base(Path::new("bash"))
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash: {}", stderr(&out));
    let mut words: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    words.sort();
    assert_eq!(words, ["verify", "version"], "stderr: {}", stderr(&out));
}

#[test]
fn zsh_fish_powershell_elvish_completions_name_every_subcommand() {
    let zsh = completion("zsh");
    assert!(zsh.starts_with("#compdef bottlectl"), "{zsh}");
    let fish = completion("fish");
    assert!(fish.contains("complete -c bottlectl"), "{fish}");
    let ps = completion("powershell");
    assert!(
        ps.contains("Register-ArgumentCompleter -Native -CommandName 'bottlectl'"),
        "{ps}"
    );
    let elvish = completion("elvish");
    for (shell, text) in [
        ("zsh", &zsh),
        ("fish", &fish),
        ("powershell", &ps),
        ("elvish", &elvish),
    ] {
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{shell} completion lacks `{sub}`");
        }
        for flag in ["--runtime", "--host", "--json", "--color"] {
            let bare = flag.trim_start_matches('-');
            assert!(
                text.contains(flag) || text.contains(&format!("-l {bare}")),
                "{shell} completion lacks `{flag}`"
            );
        }
    }
    // Block structure of the scripts we cannot run here.
    for (shell, text) in [("zsh", &zsh), ("powershell", &ps)] {
        assert_eq!(
            text.matches('{').count(),
            text.matches('}').count(),
            "{shell}: unbalanced braces"
        );
    }
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let out = Scratch::new().run(&["completions", "tcsh"], &[]);
    expect_code(&out, 2, "completions tcsh");
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("tcsh"), "{}", stderr(&out));
}

// ---- man --------------------------------------------------------------

/// roff requests clap_mangen emits; anything else means a broken page.
const ROFF_REQUESTS: &[&str] = &[
    "TH", "SH", "SS", "TP", "IP", "PP", "RS", "RE", "br", "ie", "el", "B", "I",
];

fn check_roff(page: &str, title: &str) {
    assert!(
        page.lines()
            .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
        "no .TH {title} 1: {page}"
    );
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION"] {
        assert!(
            page.lines().any(|l| l == format!(".SH {section}")),
            "{title}: no {section} section"
        );
    }
    for line in page.lines().filter(|l| l.starts_with('.')) {
        let request = line[1..].split_whitespace().next().unwrap_or("");
        assert!(
            ROFF_REQUESTS.contains(&request),
            "{title}: unexpected roff request in {line:?}"
        );
    }
    let rs = page.lines().filter(|l| l.starts_with(".RS")).count();
    let re = page.lines().filter(|l| l.starts_with(".RE")).count();
    assert_eq!(rs, re, "{title}: unbalanced .RS/.RE");
}

/// When groff is installed (Debian's man-db pulls in groff-base), render
/// with all warnings on: any warning fails.
fn groff_renders(s: &Scratch, file: &Path) -> Option<String> {
    let out = s
        .base(Path::new("groff"))
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(file)
        .output()
        .ok()?;
    assert!(out.status.success(), "groff: {}", stderr(&out));
    assert!(
        stderr(&out).trim().is_empty(),
        "groff warnings: {}",
        stderr(&out)
    );
    Some(stdout(&out))
}

#[test]
fn man_prints_a_well_formed_page() {
    let s = Scratch::new();
    let out = s.run(&["man"], &[]);
    expect_code(&out, 0, "man");
    let page = stdout(&out);
    check_roff(&page, "bottlectl");
    assert!(page.contains(&format!("bottlectl {VERSION}")), "version");
    assert!(page.lines().any(|l| l == ".SH OPTIONS"));
    assert!(page.lines().any(|l| l == ".SH SUBCOMMANDS"));
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("bottlectl\\-{}", sub.replace('-', "\\-"))),
            "man page lacks `{sub}`"
        );
    }
    assert!(page.contains("CLAUDE_BOTTLE_RUNTIME"), "env vars listed");
    let file = s.path().join("bottlectl.1");
    std::fs::write(&file, &page).unwrap();
    if let Some(text) = groff_renders(&s, &file) {
        assert!(text.contains("SYNOPSIS"), "{text}");
    }
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let s = Scratch::new();
    let dir = s.path().join("man1");
    let out = s.run(&["-q", "man", "--dir", dir.to_str().unwrap()], &[]);
    expect_code(&out, 0, "man --dir");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(stderr(&out).is_empty(), "-q: {}", stderr(&out));
    let top = std::fs::read_to_string(dir.join("bottlectl.1")).expect("bottlectl.1");
    check_roff(&top, "bottlectl");
    for sub in SUBCOMMANDS {
        let path = dir.join(format!("bottlectl-{sub}.1"));
        let page =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_roff(&page, &format!("bottlectl-{sub}"));
        if let Some(text) = groff_renders(&s, &path) {
            assert!(text.contains(sub), "{sub}: {text}");
        }
    }
    let provision = std::fs::read_to_string(dir.join("bottlectl-provision.1")).unwrap();
    assert!(
        provision.contains("manifest"),
        "provision page documents --manifest"
    );
}

// ---- colour -----------------------------------------------------------

#[test]
fn no_escape_codes_when_not_a_terminal() {
    let s = Scratch::new();
    let bad = s.path().join("missing.toml");
    let bad = bad.to_str().unwrap();
    for args in [
        vec!["--help"],
        vec!["-v", "config"],
        vec!["--config", bad, "config"],
        vec!["--runtime", "bogus", "config"],
    ] {
        let out = s.run(&args, &[]);
        let all = stdout(&out) + &stderr(&out);
        assert!(!all.is_empty(), "{args:?}: no output");
        assert!(!all.contains(ESC), "{args:?}: escape codes in {all:?}");
    }
}

#[test]
fn color_always_colours_help_errors_and_logs_even_when_piped() {
    let s = Scratch::new();
    let out = s.run(&["--color", "always", "--help"], &[]);
    expect_code(&out, 0, "--help");
    assert!(stdout(&out).contains(ESC), "help: {:?}", stdout(&out));

    let bad = s.path().join("missing.toml");
    let out = s.run(
        &[
            "--color=always",
            "--config",
            bad.to_str().unwrap(),
            "config",
        ],
        &[],
    );
    expect_code(&out, 2, "missing config file");
    let err = stderr(&out);
    assert!(err.starts_with(&format!("{ESC}[")), "error prefix: {err:?}");
    assert!(err.contains("error:"), "{err:?}");

    let out = s.run(&["--color", "always", "--runtime", "bogus", "config"], &[]);
    expect_code(&out, 2, "bad --runtime");
    assert!(stderr(&out).contains(ESC), "clap error: {:?}", stderr(&out));

    let out = s.run(&["--color", "always", "-v", "config"], &[]);
    expect_code(&out, 0, "config -v");
    assert!(stderr(&out).contains(ESC), "tracing: {:?}", stderr(&out));
    // Results on stdout stay plain: they are data.
    assert!(!stdout(&out).contains(ESC), "{:?}", stdout(&out));
}

#[test]
fn color_value_is_checked() {
    let out = Scratch::new().run(&["--color", "sometimes", "config"], &[]);
    expect_code(&out, 2, "--color sometimes");
    assert!(stderr(&out).contains("sometimes"), "{}", stderr(&out));
}

#[test]
fn on_a_terminal_auto_colours_unless_no_color_or_never() {
    let s = Scratch::new();
    let tty = s.run_tty(&["--help"], &[]);
    assert!(tty.contains("Usage"), "{tty}");
    assert!(tty.contains(ESC), "auto on a terminal: {tty:?}");

    let tty = s.run_tty(&["--help"], &[("NO_COLOR", "1")]);
    assert!(tty.contains("Usage"), "{tty}");
    assert!(!tty.contains(ESC), "NO_COLOR: {tty:?}");

    let tty = s.run_tty(&["--color", "never", "-v", "config"], &[]);
    assert!(tty.contains("settings loaded"), "{tty}");
    assert!(!tty.contains(ESC), "--color never: {tty:?}");

    // An explicit flag beats NO_COLOR.
    let tty = s.run_tty(&["--color", "always", "-v", "config"], &[("NO_COLOR", "1")]);
    assert!(tty.contains(ESC), "--color always with NO_COLOR: {tty:?}");
}

// ---- progress ---------------------------------------------------------

/// A socket that accepts connections and never answers: an engine that
/// hangs, so a probe lasts its whole timeout.
fn silent_socket(s: &Scratch) -> String {
    let path = s.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
    });
    format!("unix://{}", path.display())
}

/// A spinner needs a terminal and none of --json, -q, -v. `version` shows
/// one while it probes; both engines are pointed at a socket that never
/// answers (1 s timeout each), so the step is slow enough to draw and the
/// test does not depend on the engines.
#[test]
fn spinner_only_on_a_terminal_without_json_or_quiet() {
    let s = Scratch::new();
    let silent = silent_socket(&s);
    let envs = [
        ("DOCKER_HOST", silent.as_str()),
        ("CONTAINER_HOST", silent.as_str()),
        ("CLAUDE_BOTTLE_TIMEOUT", "1"),
    ];
    let tty = s.run_tty(&["version"], &envs);
    assert!(tty.contains("probing engines"), "spinner on a TTY: {tty:?}");
    assert!(tty.contains(&format!("bottlectl {VERSION}")), "{tty}");

    for flags in [
        vec!["--json", "version"],
        vec!["-q", "version"],
        vec!["-v", "version"],
    ] {
        let tty = s.run_tty(&flags, &envs);
        assert!(tty.contains(VERSION), "{flags:?}: {tty:?}");
        assert!(!tty.contains("probing engines"), "{flags:?}: {tty:?}");
    }

    let out = s.run(&["version"], &envs);
    expect_code(&out, 0, "version piped");
    assert!(
        !stderr(&out).contains("probing engines"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(ESC), "{:?}", stderr(&out));
}

/// The demo's slow steps (starting containers, provisioning) spin on a
/// terminal, and the spinner is gone with `-q`.
async fn check_demo_spins_on_a_terminal_only(env: &TestEnv) {
    let engine = env.engine().name().to_string();
    let endpoint = env.endpoint().to_string();
    let (tty, quiet) = tokio::task::spawn_blocking(move || {
        let s = Scratch::new();
        let base = ["--runtime", engine.as_str(), "--host", endpoint.as_str()];
        let tty = s.run_tty(&[&base[..], &["demo"]].concat(), &[]);
        let quiet = s.run_tty(&[&base[..], &["-q", "demo"]].concat(), &[]);
        (tty, quiet)
    })
    .await
    .expect("join");
    assert!(tty.contains("demo: ok"), "{tty}");
    // indicatif redraws the line in place: `\r` + erase-line after each frame.
    assert!(tty.contains("bottle: starting"), "spinner: {tty:?}");
    assert!(tty.contains(&format!("{ESC}[2K")), "erased: {tty:?}");
    assert!(!quiet.contains("starting"), "-q: {quiet:?}");
    assert!(!quiet.contains(ESC), "-q: {quiet:?}");
}

engine_tests!(
    check_version_lists_the_engine,
    check_demo_spins_on_a_terminal_only
);

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let s = Scratch::new();
    for args in [vec!["completions", "bash"], vec!["man"], vec!["config"]] {
        let mut child = s
            .base(bottlectl_path())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Close the read end before the child writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
