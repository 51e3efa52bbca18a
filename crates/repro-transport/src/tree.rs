//! An image's merged rootfs, built from any [`ImageSource`]: each layer blob is streamed
//! through [`decompress`] into [`Applier::apply_layer`], never held whole.

use std::io;

use oci_spec::image::ImageManifest;
use repro_oci::image::select_platform;
use repro_oci::{ManifestDoc, Platform, TopLevel};
use repro_rootfs::{Applier, Tree};

use crate::{ImageSource, TransportError, decompress};

/// The manifest the source's reference names: itself, or from an index the entry for
/// `platform` (attestations are never chosen).
pub fn resolve_manifest(
    src: &mut dyn ImageSource,
    platform: &Platform,
) -> Result<ManifestDoc, TransportError> {
    let top = src.top_level()?;
    manifest_of(src, &top, platform)
}

/// The manifest `top` stands for: itself, or from an index the entry for `platform`
/// (attestations are never chosen).
pub fn manifest_of(
    src: &mut dyn ImageSource,
    top: &TopLevel,
    platform: &Platform,
) -> Result<ManifestDoc, TransportError> {
    match top {
        TopLevel::Manifest(m) => Ok(m.clone()),
        TopLevel::Index(idx) => {
            let chosen = select_platform(&idx.index, platform, &src.describe())?.clone();
            match src.manifest(&chosen)? {
                TopLevel::Manifest(m) => Ok(m),
                TopLevel::Index(_) => Err(TransportError::Invalid {
                    input: src.describe(),
                    reason: format!("platform entry {} is itself an index", chosen.digest()),
                }),
            }
        }
    }
}

/// Apply the manifest's layers, bottom first, with `applier` (which may capture contents).
///
/// Each blob is verified against its digest and size: after the tar's end, the rest of the
/// compressed stream is read (not decompressed) so that the source's check runs.
pub fn build_tree(
    src: &mut dyn ImageSource,
    manifest: &ImageManifest,
    mut applier: Applier,
) -> Result<Tree, TransportError> {
    for (i, layer) in manifest.layers().iter().enumerate() {
        let what = format!("{} layer {i} ({})", src.describe(), layer.digest());
        let mut blob = src.blob(layer.digest(), Some(layer.size()))?;
        apply_blob(&mut applier, &mut blob, &what)?;
    }
    Ok(applier.finish())
}

/// Apply one (possibly compressed) layer blob with `applier`, then read the rest of the
/// compressed stream (not decompressed) so that a verifying source checks digest and size.
/// `what` names the layer in errors.
pub fn apply_blob(
    applier: &mut Applier,
    blob: &mut dyn io::Read,
    what: &str,
) -> Result<(), TransportError> {
    {
        let tar = decompress(&mut *blob, what)?;
        applier
            .apply_layer(tar)
            .map_err(|source| TransportError::Rootfs {
                input: what.to_string(),
                source,
            })?;
    }
    io::copy(blob, &mut io::sink()).map_err(|e| TransportError::Invalid {
        input: what.to_string(),
        reason: e.to_string(),
    })?;
    Ok(())
}
