//! The one error type of the runtime.
//!
//! Every fallible runtime operation returns `Result<_, RuntimeError>`; nothing in the runtime
//! panics on bad input. Each variant carries the name of the thing that was wrong (a file, a
//! directory, a projection, a caller-supplied source name) so that a message printed by the
//! driver is useful without a backtrace. This module only defines and formats errors: it does
//! no IO and prints nothing, because rendering belongs to the driver and the CLI.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug)]
pub enum RuntimeError {
    /// An operating-system IO call failed on `path`; `action` says what we were doing
    /// ("create directory", "write", "read", ...).
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The content of a file or another named source was malformed or not what was expected.
    /// `source` is the file name or caller-given source name, `message` says what was expected
    /// and what was found.
    Format { source: String, message: String },
    /// A caller passed arguments that cannot be honoured (sizes that do not match, a
    /// probability outside [0, 1], an index out of range). `context` names the operation or the
    /// projection.
    InvalidArgument { context: String, message: String },
    /// The network would not fit in the memory that is available.
    OutOfMemory {
        needed_bytes: u64,
        available_bytes: u64,
    },
}

impl RuntimeError {
    /// Builds an [`RuntimeError::Io`] error; a helper because the three fields are always
    /// supplied together at the call site.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// Builds a [`RuntimeError::Format`] error for the named source.
    pub fn format(source: impl Into<String>, message: impl Into<String>) -> Self {
        RuntimeError::Format {
            source: source.into(),
            message: message.into(),
        }
    }

    /// Builds a [`RuntimeError::InvalidArgument`] error for the named operation.
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        RuntimeError::InvalidArgument {
            context: context.into(),
            message: message.into(),
        }
    }
}

/// Formats a byte count in GiB with two decimals, the unit the memory message uses.
pub(crate) fn gib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1u64 << 30) as f64)
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Io {
                path,
                action,
                source,
            } => write!(f, "{}: cannot {action}: {source}", path.display()),
            RuntimeError::Format { source, message } => write!(f, "{source}: {message}"),
            RuntimeError::InvalidArgument { context, message } => write!(f, "{context}: {message}"),
            RuntimeError::OutOfMemory {
                needed_bytes,
                available_bytes,
            } => write!(
                f,
                "network needs ~{} GiB but only {} GiB is available",
                gib(*needed_bytes),
                gib(*available_bytes)
            ),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn messages_name_the_source() {
        let e = RuntimeError::format(
            "spikes.npy",
            "expected a 1-D array of int32/int64/float64, found shape (3, 4) of dtype '<c16'",
        );
        assert_eq!(
            e.to_string(),
            "spikes.npy: expected a 1-D array of int32/int64/float64, found shape (3, 4) of dtype '<c16'"
        );
        let e = RuntimeError::invalid("projection 'ee'", "p = 1.5 is outside [0, 1]");
        assert_eq!(e.to_string(), "projection 'ee': p = 1.5 is outside [0, 1]");
    }

    #[test]
    fn io_error_keeps_its_cause() {
        let e = RuntimeError::io(
            "/no/such/dir",
            "create directory",
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        );
        assert!(e
            .to_string()
            .starts_with("/no/such/dir: cannot create directory"));
        assert!(e.source().is_some());
    }

    #[test]
    fn memory_message_uses_gib() {
        let e = RuntimeError::OutOfMemory {
            needed_bytes: 3 << 30,
            available_bytes: 1 << 29,
        };
        assert_eq!(
            e.to_string(),
            "network needs ~3.00 GiB but only 0.50 GiB is available"
        );
    }
}
