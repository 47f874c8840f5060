//! Compute backends: burn's `flex` CPU backend (native and wasm), and wgpu (WebGPU in the
//! browser, Vulkan natively) when the crate is built with the `wgpu` feature.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Where the networks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust CPU backend.
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

    /// Initialises the backend and returns its device.
    pub async fn device(self) -> Result<Device, BackendError> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            Backend::WebGpu => webgpu_device().await,
        }
    }
}

#[cfg(feature = "wgpu")]
async fn webgpu_device() -> Result<Device, BackendError> {
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| BackendError::Unavailable(e.to_string()))
}

#[cfg(not(feature = "wgpu"))]
async fn webgpu_device() -> Result<Device, BackendError> {
    Err(BackendError::Unavailable(
        "this build has no WebGPU support (built without the `wgpu` feature)".into(),
    ))
}

/// A backend could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend is missing or failed to initialise.
    #[error("WebGPU is unavailable: {0}")]
    Unavailable(String),
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
