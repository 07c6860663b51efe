//! The one place that chooses where tensors live. Flex (burn's CPU backend) is always compiled in;
//! the `cuda` and `wgpu` cargo features add GPU devices. Training wraps the device with autodiff.

use burn::tensor::Device;

/// Names accepted by [`select`], for `--help` and error messages.
pub fn known_devices() -> Vec<&'static str> {
    let mut v = vec!["cpu", "flex"];
    if cfg!(feature = "cuda") {
        v.push("cuda[:N]");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    v
}

/// The device named `name` (`cpu`/`flex`, `cuda`, `cuda:1`, `wgpu`), without autodiff.
pub fn select(name: &str) -> anyhow::Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => {
            let i: usize = i.parse().map_err(|_| anyhow::anyhow!("device `{name}`: `{i}` is not a device index"))?;
            (k, i)
        }
        None => (name, 0),
    };
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            let _ = index;
            Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
        }
        _ => {
            let _ = index;
            anyhow::bail!("device `{name}` is not available in this build (available: {})", known_devices().join(", "))
        }
    }
}

/// The device named `name`, with automatic differentiation enabled (for training).
pub fn select_autodiff(name: &str) -> anyhow::Result<Device> {
    Ok(select(name)?.autodiff())
}
