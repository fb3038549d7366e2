//! What a command reports: one value that prints itself as text for people or as JSON for
//! scripts (its `Serialize` form), and names the GitHub Actions step outputs and job summary
//! it makes. The command line chooses among them in one place (`cli::report`); the values
//! live beside the operations that produce them.

use serde::Serialize;

pub trait Report: Serialize {
    /// Text mode, standard output: for people; `--quiet` drops it.
    fn text(&self) -> String {
        String::new()
    }

    /// Text mode, standard output, whatever `--quiet` says: the result itself, where the
    /// command prints it as cosign does (the verified payloads, the statements).
    fn result(&self) -> String {
        String::new()
    }

    /// Text mode, standard error: what was checked, for people; `--quiet` drops it.
    fn notes(&self) -> String {
        String::new()
    }

    /// GitHub Actions step outputs: `(name, value)`, each value one line.
    fn github_outputs(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// GitHub Actions job summary, Markdown.
    fn github_summary(&self) -> Option<String> {
        None
    }
}

/// A report whose JSON is built as a value (its keys sorted), with its text beside it: for
/// the small answers of `key`, `man` and the blob verbs.
pub struct Document {
    pub json: serde_json::Value,
    pub text: String,
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl Report for Document {
    fn text(&self) -> String {
        self.text.clone()
    }
}

/// `" (PLATFORM)"`, or nothing.
pub fn platform_suffix(platform: &Option<String>) -> String {
    platform
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default()
}
