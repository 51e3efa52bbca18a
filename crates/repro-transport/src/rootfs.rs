//! `rootfs:FILE` bare rootfs tarballs as one-layer images.
//!
//! The file is the one layer blob, byte for byte: its digest is the sha256 of the file and its
//! media type follows the compression found by magic bytes (never by file name):
//!
//! | content    | layer media type                                   |
//! |------------|----------------------------------------------------|
//! | plain tar  | `application/vnd.oci.image.layer.v1.tar`           |
//! | gzip       | `application/vnd.oci.image.layer.v1.tar+gzip`      |
//! | zstd       | `application/vnd.oci.image.layer.v1.tar+zstd`      |
//! | xz         | `application/vnd.oci.image.layer.v1.tar+xz` (*)    |
//!
//! (*) The OCI image spec defines no xz layer type; [`OCI_LAYER_XZ`] is our own spelling,
//! chosen to follow the spec's `+<compression>` pattern. Registries and runtimes will not
//! unpack such a layer; it exists so that an xz rootfs can be compared with other images.
//!
//! The diff_id (sha256 of the uncompressed tar) is computed at [`RootfsSource::open`] in one
//! streaming pass that also hashes the file; nothing is held in memory. The config holds only
//! what the caller chose and what the file determines (`architecture`, `os`, `variant`,
//! `rootfs`): no creation time, no history, nothing from the host. Config and manifest are
//! canonical JSON, so one file always gives one manifest digest.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{
    Arch, Descriptor, DigestAlgorithm, ImageConfigurationBuilder, ImageManifestBuilder, MediaType,
    Os, RootFsBuilder,
};
use repro_oci::digest::Hasher;
use repro_oci::image::parse_top_level;
use repro_oci::media::{self, looks_like_tar};
use repro_oci::{Blob, Compression, Digest, Expect, Platform, TopLevel, VerifyingReader};

use crate::{ImageSource, TransportError};

/// Media type we give an xz-compressed layer. Not defined by the OCI image spec (see the
/// module documentation).
pub const OCI_LAYER_XZ: &str = "application/vnd.oci.image.layer.v1.tar+xz";

/// Read buffer for hashing passes.
pub(crate) const BUF_SIZE: usize = 256 * 1024;

/// A `rootfs:FILE` image: one layer (the file as is), a synthesized config and manifest.
#[derive(Debug)]
pub struct RootfsSource {
    path: PathBuf,
    file: Arc<File>,
    compression: Compression,
    layer_media_type: &'static str,
    layer_digest: Digest,
    layer_size: u64,
    diff_id: Digest,
    uncompressed_size: u64,
    config: Blob,
    top: TopLevel,
}

impl RootfsSource {
    /// Open a rootfs tarball, hashing it (and its decompressed stream) once. `platform` is
    /// written into the synthesized config; nothing is taken from the host.
    pub fn open(path: &Path, platform: &Platform) -> Result<Self, TransportError> {
        let input = format!("rootfs:{}", path.display());
        let file = Arc::new(File::open(path).map_err(io_error(path))?);
        let meta = file.metadata().map_err(io_error(path))?;
        if !meta.is_file() {
            return Err(invalid(&input, "not a regular file"));
        }
        let mut magic = [0u8; 6];
        let n = read_at_most(&file, &mut magic, 0).map_err(io_error(path))?;
        if n == 0 {
            return Err(invalid(&input, "empty file, not a tar archive"));
        }
        let compression = Compression::detect(&magic[..n]);
        let layer_media_type = match compression {
            Compression::None => media::OCI_LAYER,
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
            Compression::Xz => OCI_LAYER_XZ,
            Compression::Bzip2 => {
                return Err(invalid(
                    &input,
                    "bzip2-compressed; only plain tar, gzip, zstd and xz are supported",
                ));
            }
        };

        let hashed = hash_layer_at(
            &file,
            0,
            meta.len(),
            compression,
            &DigestAlgorithm::Sha256,
            false,
        )
        .map_err(|e| match e {
            LayerHashError::Io(e) => invalid(&input, format!("reading: {e}")),
            LayerHashError::NotTar => invalid(
                &input,
                match compression {
                    Compression::None => {
                        "neither a tar archive (no ustar magic) nor gzip, zstd or xz data"
                            .to_string()
                    }
                    c => {
                        format!("{}-compressed data that is not a tar archive", c.as_str())
                    }
                },
            ),
            LayerHashError::Decompress(e) => invalid(
                &input,
                format!("corrupt {} stream: {e}", compression.as_str()),
            ),
        })?;
        if hashed.stored_size != meta.len() {
            return Err(invalid(&input, "file changed size while it was read"));
        }

        let build_err = |e: oci_spec::OciSpecError| invalid(&input, format!("synthesizing: {e}"));
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(vec![hashed.diff_id.to_string()])
            .build()
            .map_err(build_err)?;
        let mut config = ImageConfigurationBuilder::default()
            .architecture(Arch::from(platform.architecture.as_str()))
            .os(Os::from(platform.os.as_str()))
            .rootfs(rootfs);
        if let Some(v) = &platform.variant {
            config = config.variant(v.clone());
        }
        let config = config.build().map_err(build_err)?;
        let config = Blob::new(canonical(&config, &input)?);

        let layer = Descriptor::new(
            MediaType::from(layer_media_type),
            hashed.stored_size,
            hashed.stored_digest.clone(),
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config.size(),
                config.digest.clone(),
            ))
            .layers(vec![layer])
            .build()
            .map_err(build_err)?;
        let manifest = canonical(&manifest, &input)?;
        let top = parse_top_level(manifest, Some(media::OCI_MANIFEST), &input)?;

        Ok(RootfsSource {
            path: path.to_path_buf(),
            file,
            compression,
            layer_media_type,
            layer_digest: hashed.stored_digest,
            layer_size: hashed.stored_size,
            diff_id: hashed.diff_id,
            uncompressed_size: hashed.uncompressed_size,
            config,
            top,
        })
    }

    /// The compression found by magic bytes.
    pub fn compression(&self) -> Compression {
        self.compression
    }
    /// The layer's media type (see the module documentation for xz).
    pub fn layer_media_type(&self) -> &'static str {
        self.layer_media_type
    }
    /// sha256 of the file, the layer digest.
    pub fn layer_digest(&self) -> &Digest {
        &self.layer_digest
    }
    /// Size of the file, the layer size.
    pub fn layer_size(&self) -> u64 {
        self.layer_size
    }
    /// sha256 of the uncompressed tar.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }
    /// Size of the uncompressed tar.
    pub fn uncompressed_size(&self) -> u64 {
        self.uncompressed_size
    }
    /// The synthesized config, exact bytes.
    pub fn config(&self) -> &Blob {
        &self.config
    }
    /// The synthesized manifest, exact bytes.
    pub fn manifest_blob(&self) -> &Blob {
        self.top.raw()
    }
}

impl ImageSource for RootfsSource {
    fn describe(&self) -> String {
        format!("rootfs:{}", self.path.display())
    }

    fn top_level(&mut self) -> Result<TopLevel, TransportError> {
        Ok(self.top.clone())
    }

    fn manifest(&mut self, desc: &Descriptor) -> Result<TopLevel, TransportError> {
        single_manifest(&self.top, desc, &self.describe())
    }

    fn blob(
        &mut self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Box<dyn Read + Send>, TransportError> {
        let input = self.describe();
        if *digest == self.config.digest {
            check_size(&input, digest, size, self.config.size())?;
            return Ok(Box::new(VerifyingReader::new(
                Cursor::new(self.config.bytes.clone()),
                Expect {
                    digest: digest.clone(),
                    size: Some(self.config.size()),
                },
                format!("config {digest} of {input}"),
            )));
        }
        if *digest == self.layer_digest {
            check_size(&input, digest, size, self.layer_size)?;
            return Ok(Box::new(VerifyingReader::new(
                RangeReader::new(self.file.clone(), 0, self.layer_size),
                Expect {
                    digest: digest.clone(),
                    size: Some(self.layer_size),
                },
                format!("layer {digest} of {input}"),
            )));
        }
        Err(TransportError::NotFound {
            input,
            what: format!("blob {digest}"),
        })
    }
}

/// The image's only manifest, when `desc` names it.
pub(crate) fn single_manifest(
    top: &TopLevel,
    desc: &Descriptor,
    input: &str,
) -> Result<TopLevel, TransportError> {
    let raw = top.raw();
    if desc.digest() == &raw.digest && desc.size() == raw.size() {
        Ok(top.clone())
    } else {
        Err(TransportError::NotFound {
            input: input.to_string(),
            what: format!(
                "manifest {} ({} bytes); the image has only {} ({} bytes)",
                desc.digest(),
                desc.size(),
                raw.digest,
                raw.size()
            ),
        })
    }
}

/// A caller-given size that disagrees with what we know is an error up front.
pub(crate) fn check_size(
    input: &str,
    digest: &Digest,
    want: Option<u64>,
    have: u64,
) -> Result<(), TransportError> {
    match want {
        Some(w) if w != have => Err(invalid(
            input,
            format!("blob {digest}: requested with size {w}, but it is {have} bytes"),
        )),
        _ => Ok(()),
    }
}

fn canonical<T: serde::Serialize>(v: &T, input: &str) -> Result<Vec<u8>, TransportError> {
    repro_store::canonical_json(v).map_err(|e| invalid(input, format!("serializing: {e}")))
}

pub(crate) fn invalid(input: &str, reason: impl Into<String>) -> TransportError {
    TransportError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> TransportError + '_ {
    move |source| TransportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read up to `buf.len()` bytes at `offset`; fewer only at end of file.
pub(crate) fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A byte range of a file read with positional reads, so several readers can share one
/// handle without fighting over a file offset. A file that ends before the range does is an
/// `UnexpectedEof` error, never a short successful read.
pub(crate) struct RangeReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl RangeReader {
    pub(crate) fn new(file: Arc<File>, offset: u64, len: u64) -> Self {
        RangeReader {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ended {left} bytes early (changed while being read?)"),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A decompressing reader for `compression` over `r`. Multi-member gzip and multi-stream xz
/// are read to the end, as the command-line tools do; zstd reads all frames.
pub(crate) fn decompressor<'a>(
    compression: Compression,
    r: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
        Compression::Bzip2 => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "bzip2 compression is not supported",
            ));
        }
    })
}

/// A reader that hashes and counts what passes through.
pub(crate) struct TeeHasher<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> TeeHasher<R> {
    pub(crate) fn new(inner: R, alg: &DigestAlgorithm) -> Self {
        TeeHasher {
            inner,
            hasher: Hasher::new(alg),
            count: 0,
        }
    }
    /// Read the rest of the stream, then return its digest and length.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for TeeHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// What one pass over a stored layer found.
pub(crate) struct LayerHashes {
    /// sha256 of the stored bytes.
    pub stored_digest: Digest,
    pub stored_size: u64,
    /// Digest of the uncompressed stream, with the algorithm asked for.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

pub(crate) enum LayerHashError {
    Io(io::Error),
    Decompress(io::Error),
    /// The uncompressed stream does not start with a tar header.
    NotTar,
}

/// Hash a stored layer (`len` bytes of `file` from `offset`) and its uncompressed stream in
/// one pass, checking that the uncompressed stream starts like a tar archive: a ustar header,
/// or with `allow_empty`, a zero block (an empty archive, as Docker writes for layers that
/// change nothing).
pub(crate) fn hash_layer_at(
    file: &Arc<File>,
    offset: u64,
    len: u64,
    compression: Compression,
    diff_id_alg: &DigestAlgorithm,
    allow_empty: bool,
) -> Result<LayerHashes, LayerHashError> {
    let mut stored = TeeHasher::new(
        RangeReader::new(file.clone(), offset, len),
        &DigestAlgorithm::Sha256,
    );
    let (diff_id, uncompressed_size) = {
        let mut plain = decompressor(compression, &mut stored).map_err(LayerHashError::Io)?;
        let mut hasher = Hasher::new(diff_id_alg);
        let mut buf = vec![0u8; BUF_SIZE];
        // The first block must be a tar header.
        let mut first = 0;
        while first < 512 {
            match plain.read(&mut buf[first..512]) {
                Ok(0) => break,
                Ok(n) => first += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(e, compression)),
            }
        }
        let empty_archive = allow_empty && first == 512 && buf[..512].iter().all(|&b| b == 0);
        if !looks_like_tar(&buf[..first]) && !empty_archive {
            return Err(LayerHashError::NotTar);
        }
        hasher.update(&buf[..first]);
        let mut total = first as u64;
        loop {
            match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(e, compression)),
            }
        }
        (hasher.finish(), total)
    };
    let (stored_digest, stored_size) = stored.finish().map_err(LayerHashError::Io)?;
    Ok(LayerHashes {
        stored_digest,
        stored_size,
        diff_id,
        uncompressed_size,
    })
}

fn classify(e: io::Error, compression: Compression) -> LayerHashError {
    // With a decoder in between, errors (also a file ending early) are named as errors of the
    // compressed stream, whose messages say what went wrong.
    if compression == Compression::None {
        LayerHashError::Io(e)
    } else {
        LayerHashError::Decompress(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in [
            ("etc/os-release", &b"NAME=test\n"[..]),
            ("hello", b"world\n"),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
            Compression::Xz => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Bzip2 => unreachable!(),
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn read_blob(s: &mut RootfsSource, d: &Digest) -> Vec<u8> {
        let mut v = Vec::new();
        s.blob(d, None).unwrap().read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn same_tar_in_four_compressions() {
        let dir = tempfile::tempdir().unwrap();
        let tar = sample_tar();
        let tar_digest = repro_oci::digest::sha256_of(&tar);
        let mut layer_digests = Vec::new();
        // File names deliberately lie: the magic bytes decide.
        for (c, mt) in [
            (Compression::None, media::OCI_LAYER),
            (Compression::Gzip, media::OCI_LAYER_GZIP),
            (Compression::Zstd, media::OCI_LAYER_ZSTD),
            (Compression::Xz, OCI_LAYER_XZ),
        ] {
            let bytes = compress(c, &tar);
            let p = write(dir.path(), &format!("rootfs-{}.tar.gz", c.as_str()), &bytes);
            let mut s = RootfsSource::open(&p, &Platform::default()).unwrap();
            assert_eq!(s.compression(), c);
            assert_eq!(s.layer_media_type(), mt);
            assert_eq!(s.diff_id(), &tar_digest);
            assert_eq!(s.uncompressed_size(), tar.len() as u64);
            assert_eq!(s.layer_size(), bytes.len() as u64);
            assert_eq!(s.layer_digest(), &repro_oci::digest::sha256_of(&bytes));
            let TopLevel::Manifest(m) = s.top_level().unwrap() else {
                panic!("rootfs gives a manifest")
            };
            assert_eq!(m.manifest.layers()[0].media_type().to_string(), mt);
            let ld = s.layer_digest().clone();
            assert_eq!(read_blob(&mut s, &ld), bytes);
            let cd = m.manifest.config().digest().clone();
            let config = read_blob(&mut s, &cd);
            let config = repro_oci::image::parse_config(config, "t").unwrap();
            assert_eq!(
                config.config.rootfs().diff_ids(),
                &vec![tar_digest.to_string()]
            );
            layer_digests.push(ld);
        }
        layer_digests.sort_by_key(|d| d.to_string());
        layer_digests.dedup();
        assert_eq!(layer_digests.len(), 4);
    }

    #[test]
    fn manifest_is_deterministic_and_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "r", &compress(Compression::Gzip, &sample_tar()));
        let arm: Platform = "linux/arm64/v8".parse().unwrap();
        let a = RootfsSource::open(&p, &arm).unwrap();
        let b = RootfsSource::open(&p, &arm).unwrap();
        assert_eq!(a.manifest_blob(), b.manifest_blob());
        assert_eq!(a.config(), b.config());
        let config = String::from_utf8(a.config().bytes.clone()).unwrap();
        assert_eq!(
            config,
            format!(
                r#"{{"architecture":"arm64","os":"linux","rootfs":{{"diff_ids":["{}"],"type":"layers"}},"variant":"v8"}}"#,
                a.diff_id()
            )
        );
        let manifest = String::from_utf8(a.manifest_blob().bytes.clone()).unwrap();
        assert_eq!(
            manifest,
            format!(
                concat!(
                    r#"{{"config":{{"digest":"{}","mediaType":"application/vnd.oci.image.config.v1+json","size":{}}},"#,
                    r#""layers":[{{"digest":"{}","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{}}}],"#,
                    r#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
                ),
                a.config().digest,
                a.config().size(),
                a.layer_digest(),
                a.layer_size()
            )
        );
        let amd = RootfsSource::open(&p, &Platform::default()).unwrap();
        assert_ne!(amd.manifest_blob(), a.manifest_blob());
        assert!(!String::from_utf8_lossy(&amd.config().bytes).contains("variant"));
    }

    #[test]
    fn refuses_what_is_not_a_tar() {
        let dir = tempfile::tempdir().unwrap();
        let text = write(
            dir.path(),
            "rootfs.tar",
            b"just some text, not an archive\n",
        );
        let err = RootfsSource::open(&text, &Platform::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "rootfs:{}: neither a tar archive (no ustar magic) nor gzip, zstd or xz data",
                text.display()
            )
        );
        let gz = write(
            dir.path(),
            "rootfs.tar.gz",
            &compress(Compression::Gzip, &[b'x'; 2000]),
        );
        let err = RootfsSource::open(&gz, &Platform::default()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("gzip-compressed data that is not a tar archive"),
            "{err}"
        );
        let empty = write(dir.path(), "empty", b"");
        let err = RootfsSource::open(&empty, &Platform::default()).unwrap_err();
        assert!(err.to_string().contains("empty file"), "{err}");
        // An empty tar archive is no rootfs (and zeros are no tar).
        let zeros = write(dir.path(), "zeros", &[0; 10240]);
        let err = RootfsSource::open(&zeros, &Platform::default()).unwrap_err();
        assert!(err.to_string().contains("neither a tar archive"), "{err}");
        let bz = write(dir.path(), "bz", b"BZh91AY&SY");
        let err = RootfsSource::open(&bz, &Platform::default()).unwrap_err();
        assert!(err.to_string().contains("bzip2"), "{err}");
        let mut truncated = compress(Compression::Gzip, &sample_tar());
        truncated.truncate(truncated.len() / 2);
        let t = write(dir.path(), "trunc", &truncated);
        let err = RootfsSource::open(&t, &Platform::default()).unwrap_err();
        assert!(err.to_string().contains(&t.display().to_string()), "{err}");
        let missing = dir.path().join("missing");
        assert!(matches!(
            RootfsSource::open(&missing, &Platform::default()),
            Err(TransportError::Io { .. })
        ));
    }

    #[test]
    fn unknown_blob_and_wrong_size_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "r", &sample_tar());
        let mut s = RootfsSource::open(&p, &Platform::default()).unwrap();
        let other = repro_oci::digest::sha256_of(b"other");
        assert!(matches!(
            s.blob(&other, None),
            Err(TransportError::NotFound { .. })
        ));
        let ld = s.layer_digest().clone();
        let err = s.blob(&ld, Some(1)).err().unwrap();
        assert!(err.to_string().contains("requested with size 1"), "{err}");
        let desc = Descriptor::new(MediaType::ImageManifest, 3, other);
        assert!(matches!(
            s.manifest(&desc),
            Err(TransportError::NotFound { .. })
        ));
    }

    #[test]
    fn changed_file_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let tar = sample_tar();
        let p = write(dir.path(), "r", &tar);
        let mut s = RootfsSource::open(&p, &Platform::default()).unwrap();
        let mut changed = tar.clone();
        changed[600] ^= 1;
        std::fs::write(&p, &changed).unwrap();
        let ld = s.layer_digest().clone();
        let mut v = Vec::new();
        let err = s.blob(&ld, None).unwrap().read_to_end(&mut v).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("digest mismatch"), "{err}");
    }
}
