//! Test support for repro-image (use as a dev-dependency only).
//!
//! * [`Registry`]: Debian's real `docker-registry` on 127.0.0.1 (anonymous or basic auth).
//! * [`TokenProxy`]: a Docker-Hub-style bearer-token front for a [`Registry`].
//! * [`EvilServer`]: a programmable fake registry for adversarial tests.
//! * [`TestImage`] / [`MultiPlatformImage`]: deterministic OCI image layouts.
//! * [`skopeo()`] and friends: drive `/usr/bin/skopeo` against those servers.
//! * [`http`]: a tiny blocking HTTP/1.1 client for raw assertions.
//! * [`FakeRebuilderd`]: a rebuilderd API v1 subset with as many signed records as asked.
//!
//! Everything panics with a clear message when the environment is broken (missing binary,
//! registry that does not start): these are test fixtures. External programs needed (see
//! `.ci/run`): `docker-registry`, `skopeo`, `apache2-utils` (htpasswd).

pub mod bench;
pub mod evil;
pub mod http;
pub mod image;
pub mod rebuilderd;
pub mod registry;
pub mod skopeo;
pub mod token_proxy;
mod util;

pub use evil::{Behavior, EvilServer, RecordedRequest};
pub use image::{
    Compression, Descriptor, Entry, ImageOptions, LayerSpec, LayerStats, MultiPlatformImage,
    TestImage,
};
pub use rebuilderd::{FakeRebuilderd, FakeRecord};
pub use registry::Registry;
pub use skopeo::{
    skopeo, skopeo_copy_layout_to, skopeo_copy_to_registry, skopeo_inspect_raw, try_skopeo,
};
pub use token_proxy::{ProxiedRequest, TokenProxy, TokenProxyConfig, TokenRequest};
pub use util::{free_port, gzip, samples, sha256_digest, tar_of};
