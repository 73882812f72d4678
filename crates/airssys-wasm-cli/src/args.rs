//! Parsers for command-line values, in wasmtime's habits. Sizes and durations
//! are parsed by the library (`airssys_wasm::units`), as the manifest needs them too.

use std::path::PathBuf;

/// `HOST` or `HOST::GUEST`.
pub fn parse_dir(s: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match s.split_once("::") {
        Some((h, g)) => (h, g),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("invalid --dir {s:?}: expected HOST or HOST::GUEST"));
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

/// `NAME=VALUE` or `NAME`.
pub fn parse_env(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("invalid --env {s:?}: empty name")),
        Some((n, v)) => Ok((n.to_string(), Some(v.to_string()))),
        None if s.is_empty() => Err("invalid --env: empty name".to_string()),
        None => Ok((s.to_string(), None)),
    }
}

/// `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid {s:?}: expected KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_envs_and_config() {
        assert_eq!(
            parse_dir("/tmp/x::/data").unwrap(),
            (PathBuf::from("/tmp/x"), "/data".into())
        );
        assert_eq!(
            parse_dir("data").unwrap(),
            (PathBuf::from("data"), "data".into())
        );
        assert!(parse_dir("::/x").is_err());
        assert_eq!(parse_env("A=1").unwrap(), ("A".into(), Some("1".into())));
        assert_eq!(parse_env("HOME").unwrap(), ("HOME".into(), None));
        assert_eq!(
            parse_key_value("k=v=w").unwrap(),
            ("k".into(), "v=w".into())
        );
        assert!(parse_key_value("novalue").is_err());
    }
}
