//! Telling the application that its files changed: `--on-change CMD`, `--signal PID:SIGNAL`, and
//! the signal sent to a supervised command.
//!
//! Signals are sent with the shell's `kill` builtin (`sh -c 'kill -s SIG PID'`), which keeps the
//! crate free of `unsafe` and of a libc binding.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A signal, by its Linux name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signal {
    name: &'static str,
}

impl Signal {
    pub(crate) const TERM: Signal = Signal { name: "TERM" };
    pub(crate) const INT: Signal = Signal { name: "INT" };

    /// Sends the signal to `pid`. `Err` holds kill's complaint.
    pub(crate) async fn send(self, pid: u32) -> Result<(), String> {
        let out = tokio::process::Command::new("sh")
            .args([
                "-c",
                "kill -s \"$1\" \"$2\"",
                "sh",
                self.name,
                &pid.to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name)
    }
}

impl FromStr for Signal {
    type Err = String;

    /// `HUP`, `SIGHUP`, `sighup` or `1`.
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        let found = match bare.parse::<i32>() {
            Ok(n) => SIGNALS.iter().find(|(_, v)| *v == n),
            Err(_) => SIGNALS.iter().find(|(name, _)| *name == bare),
        };
        found.map(|(name, _)| Signal { name }).ok_or_else(|| {
            format!("{s:?} is not a signal; use a name such as HUP, USR1, USR2, TERM or a number")
        })
    }
}

/// `--signal PID:SIGNAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidSignal {
    pub(crate) pid: u32,
    pub(crate) signal: Signal,
}

impl FromStr for PidSignal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (pid, sig) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected PID:SIGNAL, e.g. 1234:HUP"))?;
        let pid = pid
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| *p > 1)
            .ok_or_else(|| format!("{pid:?} is not a process id (an integer above 1)"))?;
        Ok(PidSignal {
            pid,
            signal: sig.parse()?,
        })
    }
}

/// Runs `--on-change CMD` with `sh -c`, with `WARD_CHANGED` holding the changed targets, one
/// per line. `Ok` holds the exit status; the command's output goes to the agent's own.
pub(crate) async fn run_on_change(
    command: &str,
    changed: &[PathBuf],
) -> Result<std::process::ExitStatus, std::io::Error> {
    let list: Vec<OsString> = changed.iter().map(|p| p.clone().into_os_string()).collect();
    let joined = list.join(std::ffi::OsStr::new("\n"));
    tokio::process::Command::new("sh")
        .args(["-c", command])
        .env("WARD_CHANGED", joined)
        .stdin(std::process::Stdio::null())
        .status()
        .await
}

/// Linux signal numbers (x86-64, arm64, riscv: the generic table).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signals_and_pid_signal_pairs() {
        assert_eq!("hup".parse::<Signal>(), Ok(Signal { name: "HUP" }));
        assert_eq!("SIGTERM".parse::<Signal>(), Ok(Signal::TERM));
        assert_eq!("10".parse::<Signal>(), Ok(Signal { name: "USR1" }));
        assert!("SIGFOO".parse::<Signal>().is_err());
        assert_eq!(
            "1234:USR1".parse::<PidSignal>(),
            Ok(PidSignal {
                pid: 1234,
                signal: "USR1".parse().expect("usr1")
            })
        );
        assert!("1:HUP".parse::<PidSignal>().is_err(), "init is refused");
        assert!("x:HUP".parse::<PidSignal>().is_err());
        assert!("1234".parse::<PidSignal>().is_err());
        assert_eq!(Signal::INT.to_string(), "SIGINT");
    }
}
