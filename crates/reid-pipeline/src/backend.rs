//! Starting a compute backend: burn's `flex` CPU backend (native and wasm), and wgpu (WebGPU in
//! the browser, Vulkan natively) when the crate is built with the `wgpu` feature.

use burn::tensor::Device;
pub use reid_core::Backend;

/// Initialises `backend` and returns its device.
pub async fn device(backend: Backend) -> Result<Device, BackendError> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        Backend::WebGpu => webgpu_device().await,
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
    fn the_cpu_backend_always_starts() {
        assert!(pollster::block_on(device(Backend::Cpu)).is_ok());
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn webgpu_without_the_feature_is_a_clear_error() {
        let err = pollster::block_on(device(Backend::WebGpu)).unwrap_err();
        assert!(err.to_string().contains("without the `wgpu` feature"));
    }
}
