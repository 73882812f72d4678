//! Sizes and durations written the way people write limits: `64MiB`, `250ms`.
//! Used by the manifest, the host policy and the CLI, with the serde and TOML
//! helpers they share (a parse error names the file, line and column).

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::Error;

/// Parses a size: `64MiB`, `1GiB`, `512KiB`, `64M` (binary), `64MB` (decimal) or plain bytes.
///
/// # Errors
///
/// A message naming the text when it is not a size.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected e.g. 64MiB, 1GiB or a number of bytes")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (use KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Parses a duration: `250ms`, `5s`, `2m`, `1h`, `100us`; a plain number is seconds.
///
/// # Errors
///
/// A message naming the text when it is not a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 250ms or 5s"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {other:?} (use ms, s, m)"
            ))
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}: too long"))
}

/// Lower-case hex of `bytes`.
/// `s` cut to at most `max` bytes on a character boundary; a cut string ends
/// with `…(N bytes)`, N its original length, so a reader knows it was cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…({} bytes)", &s[..cut], s.len())
}

/// Guest text made safe for one host log line: control characters (newlines,
/// carriage returns, escape sequences) are written as escapes, so a guest can
/// never start a line of its own or move the terminal's cursor.
pub(crate) fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_absurd_duration_is_an_error_not_a_panic() {
        let e = super::parse_duration("99999999999999999999").unwrap_err();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn truncate_cuts_on_a_char_boundary_and_says_the_length() {
        assert_eq!(super::truncate("short", 8), "short");
        assert_eq!(super::truncate("ééé", 3), "é…(6 bytes)");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            super::escape_controls("a\nINFO host: b\x1b[2J"),
            "a\\nINFO host: b\\u{1b}[2J"
        );
        assert!(matches!(
            super::escape_controls("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3TiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}

/// A size: a number of bytes, or a string such as `64MiB`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// A duration: a string such as `250ms`, `5s`, `2m`.
#[derive(Deserialize, JsonSchema)]
#[serde(transparent)]
#[allow(dead_code)]
pub(crate) struct DurationValue(String);

pub(crate) fn de_opt_size<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    match SizeValue::deserialize(d)? {
        SizeValue::Bytes(n) => Ok(Some(n)),
        SizeValue::Text(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses TOML into `T`; an error names `path`, the line and the column.
pub(crate) fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> crate::error::Result<T> {
    toml::from_str(text).map_err(|e| {
        let mut what = e.message().trim().to_string();
        if let Some(span) = e.span() {
            // toml says "duplicate key" without naming it: the span does.
            let key = text.get(span.clone()).unwrap_or("").trim();
            let key = key.split(['=', '\n']).next().unwrap_or("").trim();
            if what == "duplicate key" && !key.is_empty() {
                what = format!("duplicate key `{}`", truncate(key, 80));
            }
        }
        let message = match e.span() {
            Some(span) => at(text, span.start, &what),
            None => what,
        };
        Error::Manifest {
            path: path.to_path_buf(),
            message,
        }
    })
}

/// `line L, column C: message` for byte `offset` of `text`.
pub(crate) fn at(text: &str, offset: usize, message: &str) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("line {line}, column {column}: {message}")
}
