//! Names of the compute backends a user can choose between. Plain data: starting a backend is
//! `reid-pipeline`'s job; the browser's UI needs only the names.

use serde::{Deserialize, Serialize};

/// Where the networks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust CPU backend (`flex`; SIMD in wasm).
    Cpu,
    /// burn's wgpu backend: WebGPU in a browser, the native graphics API elsewhere.
    WebGpu,
}

impl Backend {
    /// Name shown to users.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Cpu => "CPU",
            Backend::WebGpu => "WebGPU",
        }
    }

    /// Parses `cpu` or `webgpu` (as in the app's `?backend=` parameter).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "cpu" => Some(Backend::Cpu),
            "webgpu" | "gpu" | "wgpu" => Some(Backend::WebGpu),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse_case_insensitively() {
        assert_eq!(Backend::parse("CPU"), Some(Backend::Cpu));
        assert_eq!(Backend::parse("webgpu"), Some(Backend::WebGpu));
        assert_eq!(Backend::parse("tpu"), None);
    }
}
