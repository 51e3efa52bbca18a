//! The tar-entry model: what one entry of a layer (or one node of a merged tree) says about
//! a file, and the field-by-field comparison of two of them.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine as _;
use repro_oci::Digest;
use repro_oci::digest::{DigestAlgorithm, Hasher};
use repro_rootfs::{Kind, Node, TreePath};

use crate::{Difference, Level, Options};

/// Longer paths than Linux's PATH_MAX cannot be created by any runtime.
const MAX_PATH: usize = 4096;

/// Pax keys whose values are compared as the header fields they stand for (or as xattrs),
/// not as pax records: a writer may put a value in the header or in a record.
const PROJECTED_PAX: &[&str] = &[
    "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime",
];

/// An entry's metadata. From a tar entry every field is set; from a merged tree node the
/// tar-only fields (`raw_name`, `format`, `pax`) are empty and `mode` is `& 0o7777`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Normalised path (no `./`, no trailing `/`, `.` for the root).
    pub path: Vec<u8>,
    /// The name as the archive spells it.
    pub raw_name: Option<Vec<u8>>,
    /// `ustar`, `gnu` or `v7` (header magic), `+pax` when a pax header precedes it.
    pub format: Option<String>,
    pub kind: Kind,
    /// The header's mode as written (type bits included if the writer put them there).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Option<String>,
    pub gname: Option<String>,
    pub size: u64,
    pub sha256: Option<Digest>,
    /// Symlink target as written; hardlink target normalised.
    pub link: Option<String>,
    /// Values base64.
    pub xattrs: BTreeMap<String, String>,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub device: Option<(u32, u32)>,
    /// Pax records other than xattrs and the projected ones (e.g. `atime`, `ctime`).
    pub pax: BTreeMap<String, String>,
}

impl Meta {
    pub fn from_node(path: &TreePath, n: &Node) -> Self {
        Meta {
            path: path.as_bytes().to_vec(),
            raw_name: None,
            format: None,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            uname: n.uname.clone(),
            gname: n.gname.clone(),
            size: n.size,
            sha256: n.sha256.clone(),
            link: n.link_target.clone(),
            xattrs: n.xattrs.clone(),
            mtime: n.mtime,
            mtime_nsec: n.mtime_nsec,
            device: n.device,
            pax: BTreeMap::new(),
        }
    }
}

/// Normalise an entry name: relative, no `.` components, no trailing slash; `..` and NUL
/// are refused (the caller names the entry and the input).
pub fn normalize(name: &[u8]) -> Result<Vec<u8>, String> {
    if name.contains(&0) {
        return Err("NUL byte in name".into());
    }
    if name.len() > MAX_PATH {
        return Err(format!("name longer than {MAX_PATH} bytes"));
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("\"..\" component".into()),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return Ok(b".".to_vec());
    }
    Ok(out.join(&b'/'))
}

/// Read one tar entry: its metadata and, for regular files, the sha256 of the content
/// (streamed); the content itself is returned when it is at most `keep_max` bytes.
pub fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    keep_max: u64,
) -> Result<(Meta, Option<Vec<u8>>), String> {
    let raw_name = entry.path_bytes().into_owned();
    let path = normalize(&raw_name)?;
    let h = entry.header().clone();
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            Kind::File
        }
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => Kind::Symlink,
        tar::EntryType::Link => Kind::Hardlink,
        tar::EntryType::Char => Kind::Char,
        tar::EntryType::Block => Kind::Block,
        tar::EntryType::Fifo => Kind::Fifo,
        other => return Err(format!("unsupported entry type {other:?}")),
    };
    let mut format = if h.as_gnu().is_some() {
        "gnu".to_string()
    } else if h.as_ustar().is_some() {
        "ustar".to_string()
    } else {
        "v7".to_string()
    };
    let mut xattrs = BTreeMap::new();
    let mut pax = BTreeMap::new();
    let mut mtime = h.mtime().map_err(|e| format!("mtime: {e}"))? as i64;
    let mut mtime_nsec = 0;
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| format!("pax header: {e}"))?
    {
        format.push_str("+pax");
        let b64 = base64::engine::general_purpose::STANDARD;
        for ext in exts {
            let ext = ext.map_err(|e| format!("pax record: {e}"))?;
            let key = ext.key().map_err(|_| "pax key is not UTF-8".to_string())?;
            let value = String::from_utf8_lossy(ext.value_bytes()).into_owned();
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.insert(name.to_string(), b64.encode(ext.value_bytes()));
            } else if let Some(name) = key.strip_prefix("LIBARCHIVE.xattr.") {
                // libarchive writes the value base64-encoded already.
                xattrs.insert(name.to_string(), value);
            } else if key == "mtime" {
                let (secs, frac) = value.split_once('.').unwrap_or((&value, ""));
                mtime = secs.parse().map_err(|_| format!("pax mtime {value:?}"))?;
                let digits: String = frac.chars().take(9).collect();
                mtime_nsec = if digits.is_empty() {
                    0
                } else {
                    format!("{digits:0<9}")
                        .parse()
                        .map_err(|_| format!("pax mtime {value:?}"))?
                };
            } else if !PROJECTED_PAX.contains(&key) {
                pax.insert(key.to_string(), value);
            }
        }
    }
    let mode = h.mode().map_err(|e| format!("mode: {e}"))?;
    let uid = h.uid().map_err(|e| format!("uid: {e}"))?;
    let gid = h.gid().map_err(|e| format!("gid: {e}"))?;
    let name_field = |v: Result<Option<&str>, _>| {
        v.ok()
            .flatten()
            .filter(|s: &&str| !s.is_empty())
            .map(str::to_string)
    };
    let uname = name_field(h.username());
    let gname = name_field(h.groupname());
    let device = match kind {
        Kind::Char | Kind::Block => Some((
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        )),
        _ => None,
    };
    let link_raw = entry.link_name_bytes().map(|l| l.into_owned());
    let mut kept = None;
    let (size, sha256, link) = match kind {
        Kind::File => {
            let declared = entry.size();
            let mut keep: Option<Vec<u8>> =
                (declared <= keep_max).then(|| Vec::with_capacity(declared as usize));
            let mut hasher = Hasher::new(&DigestAlgorithm::Sha256);
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading content: {e}")),
                };
                hasher.update(&buf[..n]);
                if let Some(k) = keep.as_mut() {
                    // Sparse entries may expand past the header's size: stop keeping then.
                    if (k.len() + n) as u64 > keep_max {
                        keep = None;
                    } else {
                        k.extend_from_slice(&buf[..n]);
                    }
                }
                size += n as u64;
            }
            if size != declared {
                return Err(format!(
                    "truncated: the header declares {declared} bytes, the layer ends after {size}"
                ));
            }
            kept = keep;
            (size, Some(hasher.finish()), None)
        }
        Kind::Hardlink => {
            let raw = link_raw.ok_or("hardlink without a target")?;
            let target = normalize(&raw).map_err(|r| format!("link target: {r}"))?;
            (0, None, Some(String::from_utf8_lossy(&target).into_owned()))
        }
        Kind::Symlink => {
            let raw = link_raw.ok_or("symlink without a target")?;
            if raw.contains(&0) {
                return Err("NUL byte in symlink target".into());
            }
            (0, None, Some(String::from_utf8_lossy(&raw).into_owned()))
        }
        _ => (0, None, None),
    };
    Ok((
        Meta {
            path,
            raw_name: Some(raw_name),
            format: Some(format),
            kind,
            mode,
            uid,
            gid,
            uname,
            gname,
            size,
            sha256,
            link,
            xattrs,
            mtime,
            mtime_nsec,
            device,
            pax,
        },
        kept,
    ))
}

pub(crate) fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Hardlink => "hardlink",
        Kind::Char => "char",
        Kind::Block => "block",
        Kind::Fifo => "fifo",
    }
}

fn mtime_str(secs: i64, nsec: u32) -> String {
    if nsec == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{nsec:09}")
    }
}

/// Field names, in the order they are compared (the JSON schema lists them):
/// `entry` (present/absent, value = type), `type`, `name`, `format`, `mode`, `uid`, `gid`,
/// `uname`, `gname`, `size`, `sha256`, `link`, `device`, `xattr NAME`, `pax NAME`, `mtime`.
///
/// Appends the differences between `a` and `b` (the same path in two layers or trees) to
/// `out`. Either may be `None`: the entry exists on one side only.
pub fn compare_meta(
    a: Option<&Meta>,
    b: Option<&Meta>,
    layer: Option<usize>,
    opts: &Options,
    out: &mut Vec<Difference>,
) {
    let path = match (a, b) {
        (Some(m), _) | (None, Some(m)) => m.path.clone(),
        (None, None) => return,
    };
    let mut push = |field: &str, x: Option<String>, y: Option<String>| {
        if x != y {
            out.push(
                Difference::new(Level::File, field, x, y)
                    .in_layer(layer)
                    .at_path(&path),
            );
        }
    };
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (a, b) => {
            // Whether the archive lists the root directory is a property of how the tar was
            // written (`tar -C dir .` does, many writers do not).
            if opts.ignore_tar_format && path == b"." {
                return;
            }
            push(
                "entry",
                a.map(|m| kind_str(m.kind).to_string()),
                b.map(|m| kind_str(m.kind).to_string()),
            );
            return;
        }
    };
    let s = |v: &dyn ToString| Some(v.to_string());
    push("type", s(&kind_str(a.kind)), s(&kind_str(b.kind)));
    if !opts.ignore_tar_format {
        let name = |m: &Meta| {
            m.raw_name
                .as_ref()
                .map(|n| String::from_utf8_lossy(n).into())
        };
        push("name", name(a), name(b));
        push("format", a.format.clone(), b.format.clone());
    }
    let mask = if opts.ignore_file_mode_redundant_bits {
        0o7777
    } else {
        u32::MAX
    };
    push(
        "mode",
        Some(format!("{:04o}", a.mode & mask)),
        Some(format!("{:04o}", b.mode & mask)),
    );
    push("uid", s(&a.uid), s(&b.uid));
    push("gid", s(&a.gid), s(&b.gid));
    push("uname", a.uname.clone(), b.uname.clone());
    push("gname", a.gname.clone(), b.gname.clone());
    push("size", s(&a.size), s(&b.size));
    push(
        "sha256",
        a.sha256.as_ref().map(|d| d.to_string()),
        b.sha256.as_ref().map(|d| d.to_string()),
    );
    push("link", a.link.clone(), b.link.clone());
    let dev = |m: &Meta| m.device.map(|(x, y)| format!("{x},{y}"));
    push("device", dev(a), dev(b));
    let keys: std::collections::BTreeSet<&String> =
        a.xattrs.keys().chain(b.xattrs.keys()).collect();
    for k in keys {
        push(
            &format!("xattr {k}"),
            a.xattrs.get(k).cloned(),
            b.xattrs.get(k).cloned(),
        );
    }
    let keys: std::collections::BTreeSet<&String> = a.pax.keys().chain(b.pax.keys()).collect();
    for k in keys {
        let is_time = k == "atime" || k == "ctime";
        if (is_time && opts.ignore_timestamps) || (!is_time && opts.ignore_tar_format) {
            continue;
        }
        push(
            &format!("pax {k}"),
            a.pax.get(k).cloned(),
            b.pax.get(k).cloned(),
        );
    }
    if !opts.ignore_timestamps {
        push(
            "mtime",
            Some(mtime_str(a.mtime, a.mtime_nsec)),
            Some(mtime_str(b.mtime, b.mtime_nsec)),
        );
    }
}
