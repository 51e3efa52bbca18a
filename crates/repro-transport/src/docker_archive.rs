//! `docker-archive:FILE[:ref]` (docker save tarballs), read and written like skopeo does.
//!
//! # Reading
//!
//! [`DockerArchiveSource::open`] scans the tar once, recording where each member's data
//! starts, and afterwards reads members with positional reads of the file: nothing is
//! extracted and no layer is held in memory. `manifest.json` is authoritative, both in the
//! classic layout (`<id>/layer.tar`, `<hex>.json`) and in the layout of newer Docker
//! (`blobs/sha256/<hex>` members next to `index.json` and `oci-layout`, which are ignored).
//!
//! The image is presented exactly as containers/image (skopeo 1.9) presents it, so that
//! `skopeo inspect --raw docker-archive:FILE` and [`DockerArchiveSource::top_level`] give the
//! same bytes and hence the same manifest digest:
//!
//! - a Docker schema2 manifest, compact JSON with the keys in the order schemaVersion,
//!   mediaType, config, layers, and mediaType, size, digest in each descriptor;
//! - the config as stored in the archive, its digest the sha256 of those bytes;
//! - **every layer as its uncompressed tar**: digest = the config's diff_id, size = the
//!   uncompressed size, media type `application/vnd.docker.image.rootfs.diff.tar.gzip`
//!   whatever the stored compression (that is skopeo's choice, and the media type is not to be
//!   trusted: the blob stream is the *uncompressed* tar). [`DockerArchiveSource::blob`]
//!   decompresses stored gzip, zstd or xz layers on the fly.
//!
//! What is actually stored (compression by magic bytes, sha256 and size of the member) is
//! available from [`DockerArchiveSource::layers`]. At open every layer is read once, to learn
//! its uncompressed size and to check its diff_id, so a corrupt archive fails at open, naming
//! the member.
//!
//! References: `NAME:TAG` selects the `manifest.json` entry with that RepoTags item (compared
//! literally and after Docker's normalisation, so `busybox:1` finds
//! `docker.io/library/busybox:1`); `@N` selects entry N (0-based), as in skopeo's
//! `docker-archive:FILE:@N`. Without a reference the archive must hold exactly one image.
//!
//! Hostile archives are refused with the member named: absolute member paths, `..`
//! components, duplicated member names, links that leave the archive or point to links,
//! members that are not regular files, missing members, `manifest.json` that is not JSON,
//! layer counts that disagree with `rootfs.diff_ids`, layers whose content does not match
//! their diff_id.
//!
//! # Writing
//!
//! [`DockerArchiveWriter`] writes the archive skopeo's `docker-archive:` destination writes,
//! byte for byte for the same config, layers and tags: `<diff_id hex>.tar` per layer (stored
//! uncompressed), `<config hex>.json`, the legacy `<v1 id>/{layer.tar -> ../<hex>.tar,VERSION,json}`
//! entries, `manifest.json` and `repositories`, as USTAR entries with mtime 0, uid/gid 0,
//! mode 0444 (symlinks 0), no user or group names, in that fixed order. It writes to a temp
//! file next to the target and renames it into place at [`DockerArchiveWriter::finish`]; on
//! error or drop before that the temp file is removed. A tar header needs the member size
//! first, so [`DockerArchiveWriter::add_layer`] spools a layer of unknown size to an
//! anonymous temp file in the target's directory; [`DockerArchiveWriter::add_layer_sized`]
//! streams in one pass when the uncompressed size is known. Both verify the diff_id.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, DigestAlgorithm};
use repro_oci::digest::{parse_verifiable, sha256_of};
use repro_oci::image::{parse_config, parse_top_level};
use repro_oci::media::{self, looks_like_tar};
use repro_oci::{Blob, Compression, Digest, DockerRef, Expect, TopLevel, VerifyingReader};
use serde::Deserialize;

use crate::rootfs::{
    BUF_SIZE, LayerHashError, RangeReader, check_size, decompressor, hash_layer_at, invalid,
    io_error, read_at_most, single_manifest,
};
use crate::{ImageSource, TransportError};

const MANIFEST_JSON: &str = "manifest.json";
/// Largest `manifest.json` or config we read into memory.
const MAX_JSON_MEMBER: u64 = 16 * 1024 * 1024;

/// A member of the archive, by normalised name.
#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
    Other(String),
}

/// One entry of `manifest.json`, as `docker save` writes it.
#[derive(Debug, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A layer as stored in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLayer {
    /// The member holding the layer, after following a link.
    pub member: String,
    /// Compression of the member, by magic bytes.
    pub compression: Compression,
    /// sha256 of the member's bytes.
    pub stored_digest: Digest,
    pub stored_size: u64,
    /// Digest of the uncompressed tar (checked against the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub size: u64,
    offset: u64,
}

/// An image in a `docker save` tarball.
#[derive(Debug)]
pub struct DockerArchiveSource {
    input: String,
    file: Arc<File>,
    repo_tags: Vec<String>,
    config: Blob,
    layers: Vec<ArchiveLayer>,
    top: TopLevel,
}

impl DockerArchiveSource {
    /// Open `path` and choose the image named by `reference` (see the module documentation).
    pub fn open(path: &Path, reference: Option<&str>) -> Result<Self, TransportError> {
        let input = match reference {
            Some(r) => format!("docker-archive:{}:{r}", path.display()),
            None => format!("docker-archive:{}", path.display()),
        };
        let file = Arc::new(File::open(path).map_err(io_error(path))?);
        let meta = file.metadata().map_err(io_error(path))?;
        if !meta.is_file() {
            return Err(invalid(&input, "not a regular file"));
        }
        let mut first = [0u8; 512];
        let n = read_at_most(&file, &mut first, 0).map_err(io_error(path))?;
        match Compression::detect(&first[..n]) {
            Compression::None => {}
            c => {
                return Err(invalid(
                    &input,
                    format!(
                        "the archive is {}-compressed; decompress it first (docker-archive: reads a plain tar)",
                        c.as_str()
                    ),
                ));
            }
        }
        if !looks_like_tar(&first[..n]) {
            return Err(invalid(&input, "not a tar archive (no ustar magic)"));
        }
        let members = scan(&file, &input)?;
        let archive = Archive {
            file: &file,
            members: &members,
            input: &input,
        };

        let (_, offset, size) = archive.resolve(MANIFEST_JSON, "")?;
        let bytes = archive.read_json_member(MANIFEST_JSON, offset, size)?;
        let items: Vec<ManifestItem> = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(
                &input,
                format!("member {MANIFEST_JSON:?} is not a docker save manifest: {e}"),
            )
        })?;
        let (index, item) = select(&items, reference, &input)?;
        let ctx = format!(" (manifest.json entry {index})");

        let (config_member, offset, size) = archive.resolve(&item.config, &ctx)?;
        let config_bytes = archive.read_json_member(&config_member, offset, size)?;
        let config = parse_config(
            config_bytes,
            &format!("{input}: config member {config_member:?}"),
        )?;
        let diff_ids = config.config.rootfs().diff_ids();
        if diff_ids.len() != item.layers.len() {
            return Err(invalid(
                &input,
                format!(
                    "manifest.json entry {index} lists {} layers, config member {config_member:?} has {} rootfs.diff_ids",
                    item.layers.len(),
                    diff_ids.len()
                ),
            ));
        }

        let mut layers: Vec<ArchiveLayer> = Vec::with_capacity(item.layers.len());
        let mut done: HashMap<String, usize> = HashMap::new();
        for (i, (name, diff_id)) in item.layers.iter().zip(diff_ids).enumerate() {
            let diff_id = parse_verifiable(diff_id).map_err(|e| {
                invalid(
                    &input,
                    format!("config member {config_member:?}: rootfs.diff_ids[{i}]: {e}"),
                )
            })?;
            let (member, offset, stored_size) = archive.resolve(
                name,
                &format!(" (layer {i} of manifest.json entry {index})"),
            )?;
            if let Some(&j) = done.get(&member) {
                let seen: &ArchiveLayer = &layers[j];
                if seen.diff_id != diff_id {
                    return Err(invalid(
                        &input,
                        format!(
                            "member {member:?} is used for two different diff_ids, {} and {diff_id}",
                            seen.diff_id
                        ),
                    ));
                }
                layers.push(seen.clone());
                continue;
            }
            let layer = archive.hash_layer(&member, offset, stored_size, diff_id, i)?;
            done.insert(member, layers.len());
            layers.push(layer);
        }

        let config_blob = config.raw;
        let manifest = skopeo_manifest(&config_blob, &layers);
        let top = parse_top_level(manifest, Some(media::DOCKER_MANIFEST), &input)?;
        Ok(DockerArchiveSource {
            repo_tags: item.repo_tags.clone().unwrap_or_default(),
            input,
            file,
            config: config_blob,
            layers,
            top,
        })
    }

    /// RepoTags of the chosen `manifest.json` entry, as written there.
    pub fn repo_tags(&self) -> &[String] {
        &self.repo_tags
    }
    /// The config, exact bytes from the archive.
    pub fn config(&self) -> &Blob {
        &self.config
    }
    /// The layers in image order, as stored (one per `manifest.json` Layers item).
    pub fn layers(&self) -> &[ArchiveLayer] {
        &self.layers
    }
    /// The synthesized manifest (skopeo's bytes).
    pub fn manifest_blob(&self) -> &Blob {
        self.top.raw()
    }
}

impl ImageSource for DockerArchiveSource {
    fn describe(&self) -> String {
        self.input.clone()
    }

    fn layers_are_uncompressed_tars(&self) -> bool {
        true
    }

    fn top_level(&mut self) -> Result<TopLevel, TransportError> {
        Ok(self.top.clone())
    }

    fn manifest(&mut self, desc: &Descriptor) -> Result<TopLevel, TransportError> {
        single_manifest(&self.top, desc, &self.input)
    }

    /// The config, or a layer's *uncompressed* tar (asked for by diff_id), verified while
    /// read.
    fn blob(
        &mut self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Box<dyn Read + Send>, TransportError> {
        if *digest == self.config.digest {
            check_size(&self.input, digest, size, self.config.size())?;
            return Ok(Box::new(VerifyingReader::new(
                Cursor::new(self.config.bytes.clone()),
                Expect {
                    digest: digest.clone(),
                    size: Some(self.config.size()),
                },
                format!("{}: config {digest}", self.input),
            )));
        }
        let Some(layer) = self.layers.iter().find(|l| l.diff_id == *digest) else {
            return Err(TransportError::NotFound {
                input: self.input.clone(),
                what: format!("blob {digest}"),
            });
        };
        check_size(&self.input, digest, size, layer.size)?;
        let stored = RangeReader::new(self.file.clone(), layer.offset, layer.stored_size);
        let plain = decompressor(layer.compression, stored)
            .map_err(|e| invalid(&self.input, format!("member {:?}: {e}", layer.member)))?;
        Ok(Box::new(VerifyingReader::new(
            plain,
            Expect {
                digest: digest.clone(),
                size: Some(layer.size),
            },
            format!("{}: layer {digest} (member {:?})", self.input, layer.member),
        )))
    }
}

/// The manifest containers/image synthesizes for a docker-archive image, byte for byte
/// (Go's `json.Marshal` of its `manifest.Schema2`).
fn skopeo_manifest(config: &Blob, layers: &[ArchiveLayer]) -> Vec<u8> {
    let descriptor = |media_type: &str, size: u64, digest: &Digest| {
        format!(r#"{{"mediaType":"{media_type}","size":{size},"digest":"{digest}"}}"#)
    };
    let layers: Vec<String> = layers
        .iter()
        .map(|l| descriptor(media::DOCKER_LAYER_GZIP, l.size, &l.diff_id))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
        media::DOCKER_MANIFEST,
        descriptor(media::DOCKER_CONFIG, config.size(), &config.digest),
        layers.join(",")
    )
    .into_bytes()
}

/// Choose the `manifest.json` entry for `reference`.
fn select<'a>(
    items: &'a [ManifestItem],
    reference: Option<&str>,
    input: &str,
) -> Result<(usize, &'a ManifestItem), TransportError> {
    let all_tags = || {
        let tags: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.repo_tags.as_deref() {
                Some(tags) if !tags.is_empty() => format!("@{i}: {}", tags.join(" ")),
                _ => format!("@{i}: untagged"),
            })
            .collect();
        tags.join(", ")
    };
    if items.is_empty() {
        return Err(invalid(input, "manifest.json lists no images"));
    }
    match reference {
        Some(r) if r.starts_with('@') => {
            let n: usize = r[1..]
                .parse()
                .map_err(|_| invalid(input, format!("{r:?} is not @N with N an image number")))?;
            items.get(n).map(|item| (n, item)).ok_or_else(|| {
                invalid(
                    input,
                    format!(
                        "no image @{n}: manifest.json lists {} (@0 to @{})",
                        items.len(),
                        items.len() - 1
                    ),
                )
            })
        }
        Some(r) => {
            let want = normalized_tag(r);
            let found: Vec<(usize, &ManifestItem)> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| {
                    item.repo_tags.iter().flatten().any(|t| {
                        t == r || (want.is_some() && normalized_tag(t).as_ref() == want.as_ref())
                    })
                })
                .collect();
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(TransportError::NotFound {
                    input: input.to_string(),
                    what: format!("image tagged {r:?} (images: {})", all_tags()),
                }),
                many => Err(invalid(
                    input,
                    format!("{} images are tagged {r:?}; choose one with @N", many.len()),
                )),
            }
        }
        None => match items {
            [one] => Ok((0, one)),
            many => Err(invalid(
                input,
                format!(
                    "the archive holds {} images; choose one with :NAME:TAG or :@N ({})",
                    many.len(),
                    all_tags()
                ),
            )),
        },
    }
}

/// `registry/repository:tag` as Docker normalises a RepoTags item; `None` for anything that
/// is not a tagged name.
fn normalized_tag(s: &str) -> Option<String> {
    let r = DockerRef::parse(s).ok()?;
    if r.digest.is_some() {
        return None;
    }
    Some(format!(
        "{}/{}:{}",
        r.registry,
        r.repository,
        r.tag_or_latest()
    ))
}

/// Normalise a member name: no absolute paths, no `..`; `.` components and repeated or
/// trailing slashes dropped.
fn normalize_member(name: &str) -> Result<String, String> {
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("path with a '..' component".into()),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Where a link points, resolved against the directory of the link; `None` if it leaves
/// the archive.
fn resolve_symlink(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Index the archive's members: name -> where the data is. Refuses hostile names and
/// duplicates.
fn scan(file: &File, input: &str) -> Result<BTreeMap<String, Member>, TransportError> {
    let mut archive = tar::Archive::new(file);
    let corrupt = |e: io::Error| invalid(input, format!("corrupt tar archive: {e}"));
    let mut members = BTreeMap::new();
    for entry in archive.entries_with_seek().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let raw = entry.path_bytes();
        let name = std::str::from_utf8(&raw).map_err(|_| {
            invalid(
                input,
                format!(
                    "member {:?}: name is not UTF-8",
                    String::from_utf8_lossy(&raw)
                ),
            )
        })?;
        let norm =
            normalize_member(name).map_err(|r| invalid(input, format!("member {name:?}: {r}")))?;
        let link = || -> Result<String, TransportError> {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| invalid(input, format!("member {name:?}: link without a target")))?;
            String::from_utf8(target.into_owned())
                .map_err(|_| invalid(input, format!("member {name:?}: link target is not UTF-8")))
        };
        let member = if kind.is_file() || kind.is_contiguous() {
            Member::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            }
        } else if kind.is_symlink() {
            Member::Symlink(link()?)
        } else if kind.is_hard_link() {
            Member::Hardlink(link()?)
        } else if kind.is_dir() {
            continue;
        } else if kind.is_gnu_sparse() {
            Member::Other("sparse file".into())
        } else {
            Member::Other(format!("{kind:?} entry"))
        };
        if norm.is_empty() {
            return Err(invalid(input, format!("member {name:?}: empty name")));
        }
        if members.insert(norm, member).is_some() {
            return Err(invalid(
                input,
                format!("member {name:?} appears more than once"),
            ));
        }
    }
    Ok(members)
}

/// The scanned archive, for resolving and reading members.
struct Archive<'a> {
    file: &'a Arc<File>,
    members: &'a BTreeMap<String, Member>,
    input: &'a str,
}

impl Archive<'_> {
    /// Find the regular file `name` refers to, following one link (as containers/image
    /// does). Returns the member's name, data offset and size. `ctx` says where the name
    /// came from, for messages.
    fn resolve(&self, name: &str, ctx: &str) -> Result<(String, u64, u64), TransportError> {
        let input = self.input;
        let norm = normalize_member(name)
            .map_err(|r| invalid(input, format!("member {name:?}{ctx}: {r}")))?;
        let not_found = |what: String| TransportError::NotFound {
            input: input.to_string(),
            what,
        };
        let target = match self.members.get(&norm) {
            None => return Err(not_found(format!("member {name:?}{ctx}"))),
            Some(Member::File { offset, size }) => return Ok((norm, *offset, *size)),
            Some(Member::Other(kind)) => {
                return Err(invalid(
                    input,
                    format!("member {name:?}{ctx} is a {kind}, not a regular file"),
                ));
            }
            Some(Member::Symlink(t)) => resolve_symlink(&norm, t).ok_or_else(|| {
                invalid(
                    input,
                    format!("member {name:?}{ctx}: symlink to {t:?} leaves the archive"),
                )
            })?,
            Some(Member::Hardlink(t)) => normalize_member(t)
                .map_err(|r| invalid(input, format!("member {name:?}{ctx}: link to {t:?}: {r}")))?,
        };
        match self.members.get(&target) {
            Some(Member::File { offset, size }) => Ok((target, *offset, *size)),
            Some(_) => Err(invalid(
                input,
                format!("member {name:?}{ctx} links to {target:?}, which is not a regular file"),
            )),
            None => Err(not_found(format!(
                "member {target:?} (target of link {name:?}{ctx})"
            ))),
        }
    }

    fn read_json_member(
        &self,
        name: &str,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, TransportError> {
        if size > MAX_JSON_MEMBER {
            return Err(invalid(
                self.input,
                format!("member {name:?}: {size} bytes is over the {MAX_JSON_MEMBER}-byte limit"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        RangeReader::new(self.file.clone(), offset, size)
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(self.input, format!("reading member {name:?}: {e}")))?;
        Ok(bytes)
    }

    /// Read a layer member once: compression, stored digest, uncompressed digest and size.
    fn hash_layer(
        &self,
        member: &str,
        offset: u64,
        stored_size: u64,
        diff_id: Digest,
        i: usize,
    ) -> Result<ArchiveLayer, TransportError> {
        let input = self.input;
        let mut magic = [0u8; 6];
        let n = read_at_most(self.file, &mut magic, offset)
            .map_err(|e| invalid(input, format!("reading member {member:?}: {e}")))?;
        let n = n.min(usize::try_from(stored_size).unwrap_or(usize::MAX));
        let compression = Compression::detect(&magic[..n]);
        if compression == Compression::Bzip2 {
            return Err(invalid(
                input,
                format!("layer member {member:?} is bzip2-compressed, which is not supported"),
            ));
        }
        let h = hash_layer_at(
            self.file,
            offset,
            stored_size,
            compression,
            diff_id.algorithm(),
            true,
        )
        .map_err(|e| {
            invalid(
                input,
                match e {
                    LayerHashError::Io(e) => format!("reading layer member {member:?}: {e}"),
                    LayerHashError::Decompress(e) => format!(
                        "layer member {member:?}: corrupt {} stream: {e}",
                        compression.as_str()
                    ),
                    LayerHashError::NotTar => {
                        format!("layer member {member:?} is not a tar archive")
                    }
                },
            )
        })?;
        if h.diff_id != diff_id {
            return Err(invalid(
                input,
                format!(
                    "layer member {member:?}: its uncompressed content has digest {}, but rootfs.diff_ids[{i}] is {diff_id}",
                    h.diff_id
                ),
            ));
        }
        Ok(ArchiveLayer {
            member: member.to_string(),
            compression,
            stored_digest: h.stored_digest,
            stored_size: h.stored_size,
            diff_id,
            size: h.uncompressed_size,
            offset,
        })
    }
}

/// Writes a `docker save` tarball the way skopeo's `docker-archive:` destination does (see
/// the module documentation). Add the layers in image order, the config (any time), then
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct DockerArchiveWriter {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    /// (name, tag), normalised as skopeo writes them.
    repo_tags: Vec<(String, String)>,
    config: Option<Blob>,
    layers: Vec<Digest>,
    done: bool,
}

impl DockerArchiveWriter {
    /// Start writing the archive `path`. `repo_tags` are Docker references with a tag and
    /// without a digest; they are written normalised (`x:1` as `docker.io/library/x:1`), as
    /// skopeo does.
    pub fn create(path: &Path, repo_tags: Vec<String>) -> Result<Self, TransportError> {
        let input = format!("docker-archive:{}", path.display());
        let mut tags: Vec<(String, String)> = Vec::new();
        for t in &repo_tags {
            let r = DockerRef::parse(t).map_err(|e| invalid(&input, e.to_string()))?;
            let (None, Some(tag)) = (&r.digest, &r.tag) else {
                return Err(invalid(
                    &input,
                    format!("repo tag {t:?} must be NAME:TAG, without a digest"),
                ));
            };
            let entry = (r.name(), tag.clone());
            if !tags.contains(&entry) {
                tags.push(entry);
            }
        }
        let file_name = path
            .file_name()
            .ok_or_else(|| invalid(&input, "not a file name"))?
            .to_string_lossy()
            .into_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let pid = std::process::id();
        let (tmp, file) = (0u32..)
            .map(|n| dir.join(format!(".{file_name}.{pid}-{n}.tmp")))
            .find_map(
                |p| match OpenOptions::new().write(true).create_new(true).open(&p) {
                    Ok(f) => Some(Ok((p, f))),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(TransportError::Io { path: p, source: e })),
                },
            )
            .unwrap_or_else(|| Err(invalid(&input, "no free temp file name")))?;
        Ok(DockerArchiveWriter {
            target: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(BUF_SIZE, file)),
            repo_tags: tags,
            config: None,
            layers: Vec::new(),
            done: false,
        })
    }

    fn input(&self) -> String {
        format!("docker-archive:{}", self.target.display())
    }

    /// Record the config (written at [`finish`](Self::finish)); returns its digest.
    pub fn add_config(&mut self, bytes: &[u8]) -> Result<Digest, TransportError> {
        let input = self.input();
        if self.config.is_some() {
            return Err(invalid(&input, "config added twice"));
        }
        let doc = parse_config(bytes.to_vec(), &format!("{input}: config"))?;
        let digest = doc.raw.digest.clone();
        self.config = Some(doc.raw);
        Ok(digest)
    }

    /// Add one layer's uncompressed tar as member `<hex of diff_id>.tar`, when its size is
    /// not known in advance: the stream is spooled to an anonymous temp file next to the
    /// target (a tar header needs the size first), verified against `diff_id`, then copied
    /// into the archive. Use [`add_layer_sized`](Self::add_layer_sized) when the size is
    /// known, to write in one pass.
    pub fn add_layer(
        &mut self,
        diff_id: &Digest,
        mut uncompressed: impl Read,
    ) -> Result<(), TransportError> {
        let input = self.input();
        self.check_diff_id(diff_id)?;
        if self.layers.contains(diff_id) {
            self.layers.push(diff_id.clone());
            return Ok(());
        }
        let dir = self.tmp.parent().unwrap_or(Path::new(".")).to_path_buf();
        let spool = tempfile::tempfile_in(&dir).map_err(io_error(&dir));
        let spooled = spool.and_then(|mut spool| {
            let mut verifying = VerifyingReader::new(
                &mut uncompressed,
                Expect {
                    digest: diff_id.clone(),
                    size: None,
                },
                format!("layer {diff_id}"),
            );
            let size = copy_checked(&mut verifying, &mut spool, &input, &dir)?;
            spool.rewind().map_err(io_error(&dir))?;
            Ok((spool, size))
        });
        let result = spooled.and_then(|(spool, size)| {
            self.append_layer(
                diff_id,
                size,
                &mut BufReader::with_capacity(BUF_SIZE, spool),
            )
        });
        self.check(result)?;
        self.layers.push(diff_id.clone());
        Ok(())
    }

    /// Stream one layer's uncompressed tar, `size` bytes, into the archive as member
    /// `<hex of diff_id>.tar`. The content must hash to `diff_id` and be exactly `size` bytes,
    /// else the whole archive is abandoned (temp file removed). A layer already written is
    /// recorded again without reading `uncompressed`.
    pub fn add_layer_sized(
        &mut self,
        diff_id: &Digest,
        size: u64,
        uncompressed: &mut dyn Read,
    ) -> Result<(), TransportError> {
        self.check_diff_id(diff_id)?;
        if self.layers.contains(diff_id) {
            self.layers.push(diff_id.clone());
            return Ok(());
        }
        let result = self.append_layer(diff_id, size, uncompressed);
        self.check(result)?;
        self.layers.push(diff_id.clone());
        Ok(())
    }

    fn check_diff_id(&self, diff_id: &Digest) -> Result<(), TransportError> {
        if *diff_id.algorithm() != DigestAlgorithm::Sha256 {
            return Err(invalid(
                &self.input(),
                format!("diff_id {diff_id}: only sha256 diff_ids can be written"),
            ));
        }
        Ok(())
    }

    fn append_layer(
        &mut self,
        diff_id: &Digest,
        size: u64,
        uncompressed: &mut dyn Read,
    ) -> Result<(), TransportError> {
        let mut verifying = VerifyingReader::new(
            uncompressed,
            Expect {
                digest: diff_id.clone(),
                size: Some(size),
            },
            format!("layer {diff_id}"),
        );
        let name = format!("{}.tar", diff_id.digest());
        self.append(&name, size, &mut verifying)
    }

    /// Write the config, the legacy metadata, `manifest.json` and `repositories`, end the
    /// archive and rename it into place. The writer cannot be used afterwards; on error the
    /// archive is abandoned (temp file removed, target untouched).
    pub fn finish(&mut self) -> Result<(), TransportError> {
        let input = self.input();
        if self.done || self.out.is_none() {
            return Err(invalid(&input, "writer already finished or failed"));
        }
        let result = self.finish_inner(&input);
        self.check(result)
    }

    fn finish_inner(&mut self, input: &str) -> Result<(), TransportError> {
        let Some(config) = self.config.clone() else {
            return Err(invalid(input, "no config was added"));
        };
        let doc = parse_config(config.bytes.clone(), &format!("{input}: config"))?;
        let layer_ids: Vec<String> = self.layers.iter().map(|d| d.to_string()).collect();
        if doc.config.rootfs().diff_ids() != &layer_ids {
            return Err(invalid(
                input,
                format!(
                    "config rootfs.diff_ids [{}] differ from the layers written [{}]",
                    doc.config.rootfs().diff_ids().join(", "),
                    layer_ids.join(", ")
                ),
            ));
        }
        self.write_metadata(&config)?;
        let Some(out) = self.out.take() else {
            return Err(invalid(input, "writer already failed"));
        };
        let tmp = self.tmp.clone();
        let file = out
            .into_inner()
            .map_err(|e| io_error(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_error(&tmp))?;
        drop(file);
        fs::rename(&tmp, &self.target).map_err(io_error(&self.target))?;
        self.done = true;
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))?;
        }
        Ok(())
    }

    /// Abandon the archive on error (never after it was renamed into place).
    fn check(&mut self, result: Result<(), TransportError>) -> Result<(), TransportError> {
        if result.is_err() && !self.done {
            self.out = None;
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    fn write_metadata(&mut self, config: &Blob) -> Result<(), TransportError> {
        let config_name = format!("{}.json", config.digest.digest());
        self.append(&config_name, config.size(), &mut &config.bytes[..])?;

        // Legacy (docker < 1.10) metadata, computed as containers/image does: one directory
        // per layer named by an id chained from the layer digests, the top one carrying part
        // of the image config.
        let top_attrs = legacy_top_attributes(&config.bytes)
            .map_err(|e| invalid(&self.input(), format!("config: {e}")))?;
        let mut chain: Option<Digest> = None;
        let mut parent: Option<String> = None;
        let mut written: Vec<String> = Vec::new();
        let layers = self.layers.clone();
        for (i, layer) in layers.iter().enumerate() {
            chain = Some(match chain {
                None => layer.clone(),
                Some(c) => sha256_of(format!("{c} {layer}").as_bytes()),
            });
            let mut fields: BTreeMap<&str, String> = BTreeMap::new();
            if let Some(p) = &parent {
                fields.insert("parent", json_string(p));
            }
            if i + 1 == layers.len() {
                for (k, v) in &top_attrs {
                    fields.insert(*k, v.clone());
                }
            }
            let chain_id = chain.as_ref().map(|c| c.to_string()).unwrap_or_default();
            fields.insert("layer_id", json_string(&chain_id));
            let id = sha256_of(render_object(&fields).as_bytes())
                .digest()
                .to_string();
            fields.remove("layer_id");
            fields.insert("id", json_string(&id));
            if !written.contains(&id) {
                let link_target = format!("../{}.tar", layer.digest());
                self.append_symlink(&format!("{id}/layer.tar"), &link_target)?;
                self.append(&format!("{id}/VERSION"), 3, &mut &b"1.0"[..])?;
                let json = render_object(&fields);
                self.append(
                    &format!("{id}/json"),
                    json.len() as u64,
                    &mut json.as_bytes(),
                )?;
                written.push(id.clone());
            }
            parent = Some(id);
        }

        let repo_tags: Vec<String> = self
            .repo_tags
            .iter()
            .map(|(n, t)| format!("{n}:{t}"))
            .collect();
        let layer_names: Vec<String> = self
            .layers
            .iter()
            .map(|d| format!("{}.tar", d.digest()))
            .collect();
        let manifest = format!(
            r#"[{{"Config":{},"RepoTags":{},"Layers":{}}}]"#,
            json_string(&config_name),
            json_list(&repo_tags),
            json_list(&layer_names)
        );
        self.append(
            MANIFEST_JSON,
            manifest.len() as u64,
            &mut manifest.as_bytes(),
        )?;

        let mut repositories: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        if let Some(top) = &parent {
            for (name, tag) in &self.repo_tags {
                repositories
                    .entry(name)
                    .or_default()
                    .insert(tag, top.as_str());
            }
        }
        let repositories = serde_json::to_string(&repositories)
            .map_err(|e| invalid(&self.input(), format!("repositories: {e}")))?;
        self.append(
            "repositories",
            repositories.len() as u64,
            &mut repositories.as_bytes(),
        )?;

        // End of archive: two zero blocks, no padding to a record size (as Go writes it).
        let tmp = self.tmp.clone();
        self.out()?.write_all(&[0u8; 1024]).map_err(io_error(&tmp))
    }

    fn out(&mut self) -> Result<&mut BufWriter<File>, TransportError> {
        let input = self.input();
        self.out
            .as_mut()
            .ok_or_else(|| invalid(&input, "writer already failed"))
    }

    /// One regular member; `data` must deliver exactly `size` bytes.
    fn append(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<(), TransportError> {
        let input = self.input();
        let tmp = self.tmp.clone();
        let header = go_header(name, size, tar::EntryType::Regular, None)
            .map_err(|e| invalid(&input, format!("member {name:?}: {e}")))?;
        let out = self.out()?;
        out.write_all(header.as_bytes()).map_err(io_error(&tmp))?;
        let total = copy_checked(data, out, &input, &tmp)?;
        if total != size {
            return Err(invalid(
                &input,
                format!("member {name:?}: got {total} bytes, expected {size}"),
            ));
        }
        let pad = (512 - total % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize])
            .map_err(io_error(&tmp))
    }

    fn append_symlink(&mut self, name: &str, target: &str) -> Result<(), TransportError> {
        let input = self.input();
        let tmp = self.tmp.clone();
        let header = go_header(name, 0, tar::EntryType::Symlink, Some(target))
            .map_err(|e| invalid(&input, format!("member {name:?}: {e}")))?;
        self.out()?
            .write_all(header.as_bytes())
            .map_err(io_error(&tmp))
    }
}

/// Copy `data` to `out`; read errors name `input` (verification failures name the layer
/// themselves), write errors name `path`. Returns the byte count.
fn copy_checked(
    data: &mut dyn Read,
    out: &mut dyn Write,
    input: &str,
    path: &Path,
) -> Result<u64, TransportError> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(invalid(input, e.to_string())),
        };
        out.write_all(&buf[..n]).map_err(io_error(path))?;
        total += n as u64;
    }
}

impl Drop for DockerArchiveWriter {
    fn drop(&mut self) {
        if !self.done {
            self.out = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A USTAR header as Go's archive/tar writes it for containers/image: mode 0444 for files
/// and 0 for symlinks, uid/gid 0, mtime 0, empty user and group names, device numbers
/// written as zeros, and the checksum as six octal digits, NUL, space.
fn go_header(
    name: &str,
    size: u64,
    kind: tar::EntryType,
    link: Option<&str>,
) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_entry_type(kind);
    h.set_mode(if link.is_some() { 0 } else { 0o444 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(0);
    h.set_device_major(0)?;
    h.set_device_minor(0)?;
    if let Some(l) = link {
        h.set_link_name(l)?;
    }
    h.set_cksum();
    let sum = h.cksum()?;
    h.as_old_mut()
        .cksum
        .copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// The attributes of the image config that containers/image copies into the top legacy
/// layer's `json`, as compact JSON text (`null` when absent).
fn legacy_top_attributes(config: &[u8]) -> Result<Vec<(&'static str, String)>, serde_json::Error> {
    let map: BTreeMap<String, Box<serde_json::value::RawValue>> = serde_json::from_slice(config)?;
    Ok([
        "architecture",
        "config",
        "container",
        "container_config",
        "created",
        "docker_version",
        "os",
    ]
    .into_iter()
    .map(|k| {
        let v = map
            .get(k)
            .map(|raw| go_compact(raw.get()))
            .unwrap_or_else(|| "null".to_string());
        (k, v)
    })
    .collect())
}

/// Go's `json.Compact` with HTML escaping, which `json.Marshal` applies to a
/// `json.RawMessage`: whitespace outside strings dropped; `<`, `>`, `&`, U+2028 and U+2029
/// written as `\u` escapes.
fn go_compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if !in_string {
            match c {
                ' ' | '\t' | '\n' | '\r' => continue,
                '"' => in_string = true,
                _ => {}
            }
        } else if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = false;
        }
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON string as Go writes it (names, ids and digests: no characters Go escapes
/// differently from serde_json).
fn json_string(s: &str) -> String {
    go_compact(&serde_json::Value::from(s).to_string())
}

fn json_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
}

/// `{"k":v,...}` from keys in sorted order (Go sorts map keys) and JSON-text values.
fn render_object(fields: &BTreeMap<&str, String>) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_string(k)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use repro_testkit::{gzip, tar_of};

    /// A member for a hand-made archive; the name is written raw, so hostile names can be.
    enum M<'a> {
        File(&'a str, Vec<u8>),
        Symlink(&'a str, &'a str),
        Dir(&'a str),
    }

    fn archive(members: &[M]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in members {
            let mut h = tar::Header::new_ustar();
            let (name, body, kind) = match m {
                M::File(n, b) => (*n, b.clone(), tar::EntryType::Regular),
                M::Symlink(n, t) => {
                    h.set_link_name(t).unwrap();
                    (*n, Vec::new(), tar::EntryType::Symlink)
                }
                M::Dir(n) => (*n, Vec::new(), tar::EntryType::Directory),
            };
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(kind);
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(&body);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    struct Image {
        config: Vec<u8>,
        layers: Vec<Vec<u8>>,
        diff_ids: Vec<Digest>,
    }

    fn image() -> Image {
        let layers = vec![
            tar_of(&[("a.txt", b"hello\n")]),
            tar_of(&[("b.txt", b"world\n")]),
        ];
        let diff_ids: Vec<Digest> = layers.iter().map(|l| sha256_of(l)).collect();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["A=<b>&c"]}},"rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
            diff_ids[0], diff_ids[1]
        )
        .into_bytes();
        Image {
            config,
            layers,
            diff_ids,
        }
    }

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn classic(img: &Image, repo_tags: &str) -> Vec<u8> {
        let c = sha256_of(&img.config);
        let manifest = format!(
            r#"[{{"Config":"{}.json","RepoTags":{repo_tags},"Layers":["l1/layer.tar","l2/layer.tar"]}}]"#,
            c.digest()
        );
        archive(&[
            M::Dir("l1/"),
            M::File("l1/layer.tar", img.layers[0].clone()),
            M::Dir("l2/"),
            // The second layer stored gzip-compressed, reached through a symlink.
            M::Symlink("l2/layer.tar", "../l2.tar.gz"),
            M::File("l2.tar.gz", gzip(&img.layers[1])),
            M::File(&format!("{}.json", c.digest()), img.config.clone()),
            M::File("manifest.json", manifest.into_bytes()),
        ])
    }

    fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn reads_classic_layout_like_skopeo() {
        let img = image();
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(
            dir.path(),
            "a.tar",
            &classic(&img, r#"["example.com/x:1"]"#),
        );
        let mut s = DockerArchiveSource::open(&p, None).unwrap();
        assert_eq!(s.repo_tags(), ["example.com/x:1"]);
        assert_eq!(s.config().bytes, img.config);
        let layers = s.layers().to_vec();
        assert_eq!(layers[0].member, "l1/layer.tar");
        assert_eq!(layers[0].compression, Compression::None);
        assert_eq!(layers[1].member, "l2.tar.gz");
        assert_eq!(layers[1].compression, Compression::Gzip);
        assert_eq!(layers[1].stored_digest, sha256_of(&gzip(&img.layers[1])));
        let manifest = String::from_utf8(s.manifest_blob().bytes.clone()).unwrap();
        assert_eq!(
            manifest,
            format!(
                concat!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
                    r#""config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"#,
                    r#""layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}},"#,
                    r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}]}}"#
                ),
                img.config.len(),
                sha256_of(&img.config),
                img.layers[0].len(),
                img.diff_ids[0],
                img.layers[1].len(),
                img.diff_ids[1]
            )
        );
        for (l, d) in img.layers.iter().zip(&img.diff_ids) {
            assert_eq!(
                &read_all(&mut s.blob(d, Some(l.len() as u64)).unwrap()).unwrap(),
                l
            );
        }
        let cd = sha256_of(&img.config);
        assert_eq!(
            read_all(&mut s.blob(&cd, None).unwrap()).unwrap(),
            img.config
        );
        let TopLevel::Manifest(m) = s.top_level().unwrap() else {
            panic!()
        };
        let desc = Descriptor::new(
            oci_spec::image::MediaType::Other(media::DOCKER_MANIFEST.into()),
            m.raw.size(),
            m.raw.digest.clone(),
        );
        assert!(s.manifest(&desc).is_ok());
    }

    #[test]
    fn empty_layers_are_tars() {
        // Docker writes layers that change nothing as an empty archive: 1024 zero bytes.
        let empty = vec![0u8; 1024];
        let d = sha256_of(&empty);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
        );
        let c = sha256_of(config.as_bytes());
        let bytes = archive(&[
            M::File("e/layer.tar", empty.clone()),
            M::File(&format!("{}.json", c.digest()), config.into_bytes()),
            M::File(
                "manifest.json",
                format!(
                    r#"[{{"Config":"{}.json","RepoTags":null,"Layers":["e/layer.tar"]}}]"#,
                    c.digest()
                )
                .into_bytes(),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "a.tar", &bytes);
        let s = DockerArchiveSource::open(&p, None).unwrap();
        assert_eq!(s.layers()[0].diff_id, d);
        assert_eq!(s.layers()[0].size, 1024);
    }

    #[test]
    fn reads_oci_in_archive_layout() {
        let img = image();
        let c = sha256_of(&img.config);
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{}","RepoTags":null,"Layers":["blobs/sha256/{}","blobs/sha256/{}"]}}]"#,
            c.digest(),
            img.diff_ids[0].digest(),
            img.diff_ids[1].digest()
        );
        let bytes = archive(&[
            M::Dir("blobs/"),
            M::Dir("blobs/sha256/"),
            M::File(
                &format!("blobs/sha256/{}", img.diff_ids[0].digest()),
                img.layers[0].clone(),
            ),
            M::File(
                &format!("blobs/sha256/{}", img.diff_ids[1].digest()),
                img.layers[1].clone(),
            ),
            M::File(&format!("blobs/sha256/{}", c.digest()), img.config.clone()),
            M::File("index.json", b"{}".to_vec()),
            M::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            M::File("manifest.json", manifest.into_bytes()),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "a.tar", &bytes);
        let s = DockerArchiveSource::open(&p, None).unwrap();
        assert!(s.repo_tags().is_empty());
        assert_eq!(s.layers()[1].diff_id, img.diff_ids[1]);
        assert_eq!(s.config().digest, c);
    }

    #[test]
    fn selects_by_tag_and_index() {
        let img = image();
        let c = sha256_of(&img.config);
        let item = |tags: &str| {
            format!(
                r#"{{"Config":"{}.json","RepoTags":{tags},"Layers":["l1.tar","l2.tar"]}}"#,
                c.digest()
            )
        };
        let manifest = format!(
            "[{},{}]",
            item(r#"["docker.io/library/busybox:1","a/b:2"]"#),
            item(r#"["x:3"]"#)
        );
        let bytes = archive(&[
            M::File("l1.tar", img.layers[0].clone()),
            M::File("l2.tar", img.layers[1].clone()),
            M::File(&format!("{}.json", c.digest()), img.config.clone()),
            M::File("manifest.json", manifest.into_bytes()),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "a.tar", &bytes);
        for (r, tags) in [
            ("busybox:1", "docker.io/library/busybox:1"),
            ("a/b:2", "docker.io/library/busybox:1"),
            ("docker.io/library/x:3", "x:3"),
            ("@1", "x:3"),
            ("@0", "docker.io/library/busybox:1"),
        ] {
            let s = DockerArchiveSource::open(&p, Some(r)).unwrap();
            assert_eq!(s.repo_tags()[0], tags, "{r}");
        }
        let err = DockerArchiveSource::open(&p, None).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "the archive holds 2 images; choose one with :NAME:TAG or :@N (@0: docker.io/library/busybox:1 a/b:2, @1: x:3)"
            ),
            "{err}"
        );
        let err = DockerArchiveSource::open(&p, Some("@2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("no image @2: manifest.json lists 2 (@0 to @1)"),
            "{err}"
        );
        let err = DockerArchiveSource::open(&p, Some("busybox:2")).unwrap_err();
        assert!(matches!(err, TransportError::NotFound { .. }), "{err}");
    }

    fn open_err(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "a.tar", bytes);
        let err = DockerArchiveSource::open(&p, None).unwrap_err().to_string();
        let prefix = format!("docker-archive:{}: ", p.display());
        assert!(err.starts_with(&prefix), "{err}");
        err[prefix.len()..].to_string()
    }

    #[test]
    fn hostile_archives_are_refused_naming_the_member() {
        let img = image();
        let c = sha256_of(&img.config);
        let config_name = format!("{}.json", c.digest());
        let good_manifest =
            format!(r#"[{{"Config":"{config_name}","RepoTags":[],"Layers":["l1.tar","l2.tar"]}}]"#)
                .into_bytes();
        let with = |extra: Vec<M>, manifest: Vec<u8>| {
            let mut ms = vec![
                M::File("l1.tar", img.layers[0].clone()),
                M::File("l2.tar", img.layers[1].clone()),
                M::File(&config_name, img.config.clone()),
            ];
            ms.extend(extra);
            ms.push(M::File("manifest.json", manifest));
            archive(&ms)
        };
        let cases: Vec<(Vec<u8>, String)> = vec![
            (
                with(vec![M::File("../evil", b"x".to_vec())], good_manifest.clone()),
                r#"member "../evil": path with a '..' component"#.into(),
            ),
            (
                with(vec![M::File("a/../../evil", b"x".to_vec())], good_manifest.clone()),
                r#"member "a/../../evil": path with a '..' component"#.into(),
            ),
            (
                with(vec![M::File("/etc/passwd", b"x".to_vec())], good_manifest.clone()),
                r#"member "/etc/passwd": absolute path"#.into(),
            ),
            (
                with(vec![M::File("./l1.tar", b"x".to_vec())], good_manifest.clone()),
                r#"member "./l1.tar" appears more than once"#.into(),
            ),
            (
                with(vec![], b"[{not json".to_vec()),
                r#"member "manifest.json" is not a docker save manifest: key must be a string at line 1 column 3"#.into(),
            ),
            (
                with(
                    vec![],
                    format!(r#"[{{"Config":"{config_name}","Layers":["l1.tar","l3.tar"]}}]"#)
                        .into_bytes(),
                ),
                r#"member "l3.tar" (layer 1 of manifest.json entry 0) not found"#.into(),
            ),
            (
                with(
                    vec![],
                    format!(r#"[{{"Config":"{config_name}","Layers":["l1.tar","../l2.tar"]}}]"#)
                        .into_bytes(),
                ),
                r#"member "../l2.tar" (layer 1 of manifest.json entry 0): path with a '..' component"#
                    .into(),
            ),
            (
                with(
                    vec![M::Symlink("l3.tar", "../../etc/passwd")],
                    format!(r#"[{{"Config":"{config_name}","Layers":["l1.tar","l3.tar"]}}]"#)
                        .into_bytes(),
                ),
                r#"member "l3.tar" (layer 1 of manifest.json entry 0): symlink to "../../etc/passwd" leaves the archive"#
                    .into(),
            ),
            (
                with(
                    vec![M::Symlink("l3.tar", "l4.tar"), M::Symlink("l4.tar", "l2.tar")],
                    format!(r#"[{{"Config":"{config_name}","Layers":["l1.tar","l3.tar"]}}]"#)
                        .into_bytes(),
                ),
                r#"member "l3.tar" (layer 1 of manifest.json entry 0) links to "l4.tar", which is not a regular file"#
                    .into(),
            ),
            (
                with(
                    vec![],
                    format!(r#"[{{"Config":"{config_name}","Layers":["l2.tar","l1.tar"]}}]"#)
                        .into_bytes(),
                ),
                format!(
                    r#"layer member "l2.tar": its uncompressed content has digest {}, but rootfs.diff_ids[0] is {}"#,
                    img.diff_ids[1], img.diff_ids[0]
                ),
            ),
            (
                with(
                    vec![],
                    format!(r#"[{{"Config":"{config_name}","Layers":["l1.tar"]}}]"#).into_bytes(),
                ),
                format!(
                    r#"manifest.json entry 0 lists 1 layers, config member "{config_name}" has 2 rootfs.diff_ids"#
                ),
            ),
            (
                with(vec![], b"[]".to_vec()),
                "manifest.json lists no images".into(),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(open_err(&bytes), want);
        }
        assert_eq!(
            open_err(&gzip(&with(vec![], good_manifest.clone()))),
            "the archive is gzip-compressed; decompress it first (docker-archive: reads a plain tar)"
        );
        assert_eq!(
            open_err(b"plain text"),
            "not a tar archive (no ustar magic)"
        );
        let no_manifest = archive(&[M::File("l1.tar", img.layers[0].clone())]);
        assert_eq!(
            open_err(&no_manifest),
            r#"member "manifest.json" not found"#
        );
    }

    #[test]
    fn legacy_json_is_go_compatible() {
        assert_eq!(
            go_compact("{ \"a\" : [1, 2],\n \"b\": \"x <y> & z\u{2028}\" }"),
            r#"{"a":[1,2],"b":"x \u003cy\u003e \u0026 z\u2028"}"#
        );
        assert_eq!(go_compact(r#""a\"<""#), r#""a\"\u003c""#);
        let attrs = legacy_top_attributes(br#"{"os":"linux","config":{"Env":["A=1"]}}"#).unwrap();
        assert_eq!(
            attrs,
            vec![
                ("architecture", "null".to_string()),
                ("config", r#"{"Env":["A=1"]}"#.to_string()),
                ("container", "null".to_string()),
                ("container_config", "null".to_string()),
                ("created", "null".to_string()),
                ("docker_version", "null".to_string()),
                ("os", r#""linux""#.to_string()),
            ]
        );
    }

    fn write_archive(path: &Path, img: &Image, tags: Vec<String>) -> Result<(), TransportError> {
        let mut w = DockerArchiveWriter::create(path, tags)?;
        w.add_config(&img.config)?;
        for (l, d) in img.layers.iter().zip(&img.diff_ids) {
            w.add_layer_sized(d, l.len() as u64, &mut &l[..])?;
        }
        w.finish()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writer_round_trip_and_determinism() {
        let img = image();
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar");
        let b = dir.path().join("b.tar");
        write_archive(&a, &img, vec!["x:1".into(), "example.com/y/z:2".into()]).unwrap();
        write_archive(&b, &img, vec!["x:1".into(), "example.com/y/z:2".into()]).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        // Spooling layers of unknown size gives the same archive.
        let c = dir.path().join("c.tar");
        let mut w = DockerArchiveWriter::create(&c, vec!["x:1".into(), "example.com/y/z:2".into()])
            .unwrap();
        for (l, d) in img.layers.iter().zip(&img.diff_ids) {
            w.add_layer(d, &l[..]).unwrap();
        }
        w.add_config(&img.config).unwrap();
        w.finish().unwrap();
        assert!(w.finish().is_err());
        drop(w);
        assert_eq!(fs::read(&a).unwrap(), fs::read(&c).unwrap());
        fs::remove_file(&c).unwrap();
        assert_eq!(listing(dir.path()), ["a.tar", "b.tar"]);

        let s = DockerArchiveSource::open(&a, Some("x:1")).unwrap();
        assert_eq!(
            s.repo_tags(),
            ["docker.io/library/x:1", "example.com/y/z:2"]
        );
        assert_eq!(s.config().bytes, img.config);
        assert_eq!(
            s.layers()
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>(),
            img.diff_ids
        );

        // Fixed member order, fixed metadata.
        let mut t = tar::Archive::new(fs::File::open(&a).unwrap());
        let mut names = Vec::new();
        for e in t.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.gid().unwrap(), 0);
            assert_eq!(h.username().unwrap(), Some(""));
            names.push(e.path().unwrap().display().to_string());
        }
        let hex = |d: &Digest| d.digest().to_string();
        assert_eq!(names[0], format!("{}.tar", hex(&img.diff_ids[0])));
        assert_eq!(names[1], format!("{}.tar", hex(&img.diff_ids[1])));
        assert_eq!(names[2], format!("{}.json", hex(&sha256_of(&img.config))));
        assert!(names[3].ends_with("/layer.tar") && names[4].ends_with("/VERSION"));
        assert_eq!(&names[names.len() - 2..], ["manifest.json", "repositories"]);
        let manifest = tar_member(&a, "manifest.json");
        assert_eq!(
            String::from_utf8(manifest).unwrap(),
            format!(
                r#"[{{"Config":"{}.json","RepoTags":["docker.io/library/x:1","example.com/y/z:2"],"Layers":["{}.tar","{}.tar"]}}]"#,
                hex(&sha256_of(&img.config)),
                hex(&img.diff_ids[0]),
                hex(&img.diff_ids[1])
            )
        );
        let repositories = String::from_utf8(tar_member(&a, "repositories")).unwrap();
        let top_id = names[names.len() - 3]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            repositories,
            format!(
                r#"{{"docker.io/library/x":{{"1":"{top_id}"}},"example.com/y/z":{{"2":"{top_id}"}}}}"#
            )
        );
        let top_json = String::from_utf8(tar_member(&a, &format!("{top_id}/json"))).unwrap();
        assert!(
            top_json.starts_with(
                r#"{"architecture":"amd64","config":{"Env":["A=\u003cb\u003e\u0026c"]},"container":null,"#
            ),
            "{top_json}"
        );
    }

    fn tar_member(archive: &Path, name: &str) -> Vec<u8> {
        let mut t = tar::Archive::new(fs::File::open(archive).unwrap());
        for e in t.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(name) {
                return read_all(&mut e).unwrap();
            }
        }
        panic!("no member {name}")
    }

    #[test]
    fn writer_refuses_bad_input_and_leaves_nothing() {
        let img = image();
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar");
        let input = format!("docker-archive:{}", a.display());

        // Content that does not match its diff_id.
        let mut w = DockerArchiveWriter::create(&a, vec![]).unwrap();
        let err = w
            .add_layer_sized(
                &img.diff_ids[0],
                img.layers[1].len() as u64,
                &mut &img.layers[1][..],
            )
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "{input}: layer {}: digest mismatch",
                img.diff_ids[0]
            )),
            "{err}"
        );
        assert!(listing(dir.path()).is_empty());
        assert!(
            w.add_layer_sized(&img.diff_ids[1], 1, &mut &b"x"[..])
                .is_err()
        );
        drop(w);

        let mut w = DockerArchiveWriter::create(&a, vec![]).unwrap();
        let err = w
            .add_layer(&img.diff_ids[0], &img.layers[1][..])
            .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        drop(w);
        assert!(listing(dir.path()).is_empty());

        // A size that is not the content's.
        let mut w = DockerArchiveWriter::create(&a, vec![]).unwrap();
        let err = w
            .add_layer_sized(&img.diff_ids[0], 10, &mut &img.layers[0][..])
            .unwrap_err();
        assert!(
            err.to_string().contains("more than the expected 10 bytes"),
            "{err}"
        );
        drop(w);

        // Config and layers that disagree.
        let mut w = DockerArchiveWriter::create(&a, vec![]).unwrap();
        w.add_layer_sized(
            &img.diff_ids[0],
            img.layers[0].len() as u64,
            &mut &img.layers[0][..],
        )
        .unwrap();
        w.add_config(&img.config).unwrap();
        let err = w.finish().unwrap_err();
        assert!(err.to_string().contains("config rootfs.diff_ids"), "{err}");
        assert!(listing(dir.path()).is_empty());

        // Dropped before finish.
        let mut w = DockerArchiveWriter::create(&a, vec![]).unwrap();
        w.add_layer_sized(
            &img.diff_ids[0],
            img.layers[0].len() as u64,
            &mut &img.layers[0][..],
        )
        .unwrap();
        drop(w);
        assert!(listing(dir.path()).is_empty());

        for bad in [
            "x",
            "x@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "X:1",
        ] {
            assert!(
                DockerArchiveWriter::create(&a, vec![bad.into()]).is_err(),
                "{bad}"
            );
        }
        let mut w = DockerArchiveWriter::create(&a, vec![]).unwrap();
        assert!(w.add_config(b"{not json").is_err());
        assert!(
            w.finish()
                .unwrap_err()
                .to_string()
                .ends_with("no config was added")
        );
        assert!(
            w.finish()
                .unwrap_err()
                .to_string()
                .ends_with("already finished or failed")
        );
        assert!(listing(dir.path()).is_empty());
    }
}
