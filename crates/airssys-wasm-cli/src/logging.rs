//! Log lines on stderr: the guests' and the host's, as text or JSON.

/// The format of log lines on stderr.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// Logs go to stderr: guests' lines (`airssys_wasm::guest`) at info and
/// above, the host's warnings, and — on a terminal only — the progress of long
/// compiles. `RUST_LOG` overrides the filter.
pub(crate) fn init_logging(format: LogFormat) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let default = if terminal {
        "warn,airssys_wasm::guest=info,airssys_wasm::compile=info"
    } else {
        "warn,airssys_wasm::guest=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(terminal && !no_color).init(),
    }
}
