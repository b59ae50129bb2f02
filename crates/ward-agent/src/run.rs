//! `ward run`: read Secrets once and start a command with their values as environment
//! variables, set only in that child, with a warning that says how environments leak.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use http::Method;
use tokio::signal::unix::{SignalKind, signal};

use crate::RunArgs;
use crate::agent::exit_code;
use crate::connect::{Connector, Environment};
use crate::error::AgentError;
use crate::notify::Signal;
use crate::object::{Kind, Namespace, ObjectName, ObjectRef, ObjectState, SecretBytes};

/// Runs `ward run`; see [`crate::run_with_secrets`].
pub(crate) async fn run(args: RunArgs, env: &dyn Environment) -> Result<i32, AgentError> {
    let specs = args
        .secrets
        .iter()
        .map(|s| SecretSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| AgentError::config("command line", "--secret", m))?;
    let connector = Connector::from_args(&args.connect, env)?;
    let namespace = match &args.namespace {
        Some(n) => Namespace::parse(n),
        None => Ok(connector
            .namespace
            .clone()
            .unwrap_or_else(Namespace::default_namespace)),
    }
    .map_err(|e| AgentError::config("command line", "--namespace", e))?;
    let client = connector.client()?;

    let mut fetched: BTreeMap<ObjectName, std::sync::Arc<crate::object::ObjectData>> =
        BTreeMap::new();
    for spec in &specs {
        if fetched.contains_key(&spec.name) {
            continue;
        }
        let object = ObjectRef {
            kind: Kind::Secret,
            namespace: namespace.clone(),
            name: spec.name.clone(),
        };
        let sync = |message: String| AgentError::Sync {
            object: object.to_string(),
            message,
        };
        let obj = client
            .json(Method::GET, &object.path(), None)
            .await
            .map_err(|e| sync(e.to_string()))?;
        match ObjectState::decode(Kind::Secret, &obj) {
            ObjectState::Present(data) => {
                fetched.insert(spec.name.clone(), data);
            }
            ObjectState::Unusable(reason) => return Err(sync(reason)),
            ObjectState::Absent => return Err(sync("does not exist".into())),
        }
    }

    // Variable -> (value, where it came from, for conflict messages).
    let mut vars: BTreeMap<String, (SecretBytes, String)> = BTreeMap::new();
    for spec in &specs {
        let data = &fetched[&spec.name];
        let picked: Vec<(String, String)> = match &spec.key {
            Some(key) => {
                if !data.keys.contains_key(key) {
                    return Err(AgentError::Sync {
                        object: format!("secret {}/{}", namespace.as_str(), spec.name.as_str()),
                        message: format!("has no key {key:?}"),
                    });
                }
                vec![(key.clone(), spec.var.clone().unwrap_or_else(|| key.clone()))]
            }
            None => data.keys.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, var) in picked {
            let from = format!("{}/{key}", spec.name.as_str());
            if !is_variable_name(&var) {
                return Err(AgentError::config(
                    "command line",
                    "--secret",
                    format!(
                        "key {from} is not a valid variable name; name one with \
                         --secret {from}=VARIABLE"
                    ),
                ));
            }
            let value = data.keys[&key].clone();
            if value.expose_secret().contains(&0) {
                return Err(AgentError::config(
                    "command line",
                    "--secret",
                    format!("{from} holds a NUL byte, which an environment variable cannot"),
                ));
            }
            if let Some((_, other)) = vars.get(&var) {
                return Err(AgentError::config(
                    "command line",
                    "--secret",
                    format!("variable {var} would come from both {other} and {from}"),
                ));
            }
            vars.insert(var, (value, from));
        }
    }

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| AgentError::config("command line", "CMD", "is empty"))?;
    let program_name = program.to_string_lossy().into_owned();
    tracing::warn!(
        program = %program_name,
        variables = %vars.keys().cloned().collect::<Vec<_>>().join(","),
        "ward run: secret values go into the environment of the command. Environments leak: \
         other processes of the same user can read /proc/PID/environ, every child process \
         inherits them, and crash reports, debug dumps and `env` in a support session capture \
         them. Prefer `ward agent`, which writes files that update without a restart"
    );
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest).kill_on_drop(true);
    for (var, (value, _)) in &vars {
        // The child's environment is a copy the process cannot zeroize; that is the leak the
        // warning above describes.
        cmd.env(var, OsString::from_vec(value.expose_secret().to_vec()));
    }
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let mut child = cmd.spawn().map_err(|source| AgentError::ChildSpawn {
        program: program_name.clone(),
        source,
    })?;
    drop(vars);
    loop {
        let forward = tokio::select! {
            status = child.wait() => return Ok(exit_code(status)),
            _ = term.recv() => Signal::TERM,
            _ = int.recv() => Signal::INT,
        };
        if let Some(pid) = child.id()
            && let Err(e) = forward.send(pid).await
        {
            tracing::warn!("cannot forward {forward}: {e}");
        }
    }
}

/// `NAME`, `NAME/KEY` or `NAME/KEY=VAR`.
#[derive(Debug)]
struct SecretSpec {
    name: ObjectName,
    key: Option<String>,
    var: Option<String>,
}

impl SecretSpec {
    fn parse(s: &str) -> Result<Self, String> {
        let (name, rest) = match s.split_once('/') {
            Some((n, r)) => (n, Some(r)),
            None => (s, None),
        };
        let name = ObjectName::parse(name)?;
        let (key, var) = match rest {
            None => (None, None),
            Some(r) => match r.split_once('=') {
                Some((k, v)) => (Some(k), Some(v)),
                None => (Some(r), None),
            },
        };
        let key = key
            .map(|k| {
                let errs = ward_api::validation::config_map_key(k);
                if errs.is_empty() {
                    Ok(k.to_owned())
                } else {
                    Err(format!("{s:?}: key {k:?}: {}", errs.join("; ")))
                }
            })
            .transpose()?;
        if let Some(v) = var
            && !is_variable_name(v)
        {
            return Err(format!(
                "{s:?}: {v:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        Ok(SecretSpec {
            name,
            key,
            var: var.map(str::to_owned),
        })
    }
}

fn is_variable_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_secret_specs() {
        let s = SecretSpec::parse("db").expect("name");
        assert_eq!((s.name.as_str(), s.key, s.var), ("db", None, None));
        let s = SecretSpec::parse("db/password").expect("key");
        assert_eq!(s.key.as_deref(), Some("password"));
        let s = SecretSpec::parse("db/pass.word=DB_PASSWORD").expect("var");
        assert_eq!(
            (s.key.as_deref(), s.var.as_deref()),
            (Some("pass.word"), Some("DB_PASSWORD"))
        );
        assert!(SecretSpec::parse("db/password=1X").is_err());
        assert!(SecretSpec::parse("Bad_Name/x").is_err());
        assert!(SecretSpec::parse("db/..x").is_err());
        assert!(is_variable_name("_A1") && !is_variable_name("a-b") && !is_variable_name(""));
    }
}
