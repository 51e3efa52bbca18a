//! `oci:DIR[:ref]` image layouts.
//!
//! The source side reads `index.json` of the layout and picks one entry: by its
//! `org.opencontainers.image.ref.name` annotation when a ref is given, else the only entry
//! (as skopeo does). Every blob it hands out is verified against digest and size while it is
//! read. The destination side is [`repro_store::Store`] itself (blobs go in with
//! `Store::put`) plus [`write_oci_ref`], which names the top-level document in `index.json`.

use std::io::Read;
use std::path::Path;

use oci_spec::image::{Descriptor, MediaType};
use repro_oci::image::{ImageError, parse_top_level};
use repro_oci::media::MAX_MANIFEST_BYTES;
use repro_oci::{Blob, Digest, Expect, ManifestKind, TopLevel};
use repro_store::{Store, ref_name_of};

use crate::rootfs::invalid;
use crate::{ImageSource, TransportError};

/// An image in an OCI image layout.
#[derive(Debug)]
pub struct OciSource {
    store: Store,
    input: String,
    entry: Descriptor,
}

impl OciSource {
    /// Open the layout at `dir` and choose the `index.json` entry named `reference` (or the
    /// only entry when `reference` is `None`). Nothing is read beyond `oci-layout` and
    /// `index.json` until asked.
    pub fn open(dir: &Path, reference: Option<&str>) -> Result<Self, TransportError> {
        let input = match reference {
            Some(r) => format!("oci:{}:{r}", dir.display()),
            None => format!("oci:{}", dir.display()),
        };
        let store = Store::open_existing(dir)?;
        let index = store.read_index()?;
        let entries = index.manifests();
        let names = || {
            let names: Vec<String> = entries
                .iter()
                .map(|d| match ref_name_of(d) {
                    Some(n) => format!("{n:?}"),
                    None => format!("unnamed {}", d.digest()),
                })
                .collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let entry = match reference {
            Some(r) => {
                let found: Vec<&Descriptor> = entries
                    .iter()
                    .filter(|d| ref_name_of(d) == Some(r))
                    .collect();
                match found.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        return Err(TransportError::NotFound {
                            input,
                            what: format!("ref {r:?} in index.json (refs: {})", names()),
                        });
                    }
                    many => {
                        return Err(invalid(
                            &input,
                            format!("index.json has {} entries named {r:?}", many.len()),
                        ));
                    }
                }
            }
            None => match entries.as_slice() {
                [one] => one.clone(),
                [] => return Err(invalid(&input, "index.json lists no images")),
                many => {
                    return Err(invalid(
                        &input,
                        format!(
                            "index.json lists {} images; choose one with oci:DIR:REF (refs: {})",
                            many.len(),
                            names()
                        ),
                    ));
                }
            },
        };
        Ok(OciSource {
            store,
            input,
            entry,
        })
    }

    /// The chosen `index.json` entry.
    pub fn entry(&self) -> &Descriptor {
        &self.entry
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Read and verify the document `desc` points at, and check that it is what the
    /// descriptor says it is (an index or a manifest of the descriptor's media type).
    fn read_document(&self, desc: &Descriptor) -> Result<TopLevel, TransportError> {
        let what = format!("{} {}", self.input, desc.digest());
        if desc.size() > MAX_MANIFEST_BYTES {
            return Err(ImageError::TooLarge {
                what,
                size: desc.size(),
            }
            .into());
        }
        let media_type = desc.media_type().to_string();
        let Some(claimed) = ManifestKind::from_media_type(&media_type) else {
            return Err(invalid(
                &what,
                format!("descriptor media type {media_type:?} is not an index or manifest type"),
            ));
        };
        let expect = Expect {
            digest: desc.digest().clone(),
            size: Some(desc.size()),
        };
        let bytes = self
            .store
            .read_small(&expect)?
            .ok_or_else(|| TransportError::NotFound {
                input: self.input.clone(),
                what: format!("blob {}", desc.digest()),
            })?;
        let doc = parse_top_level(bytes, Some(&media_type), &what)?;
        let kind = match &doc {
            TopLevel::Index(i) => i.kind,
            TopLevel::Manifest(m) => m.kind,
        };
        if kind != claimed {
            return Err(invalid(
                &what,
                format!(
                    "descriptor says {}, the document is {}",
                    claimed.media_type(),
                    kind.media_type()
                ),
            ));
        }
        Ok(doc)
    }
}

impl ImageSource for OciSource {
    fn describe(&self) -> String {
        self.input.clone()
    }

    fn top_level(&mut self) -> Result<TopLevel, TransportError> {
        let entry = self.entry.clone();
        self.read_document(&entry)
    }

    fn manifest(&mut self, desc: &Descriptor) -> Result<TopLevel, TransportError> {
        self.read_document(desc)
    }

    fn blob(
        &mut self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Box<dyn Read + Send>, TransportError> {
        let expect = Expect {
            digest: digest.clone(),
            size,
        };
        match self.store.open(&expect)? {
            Some(r) => Ok(Box::new(r)),
            None => Err(TransportError::NotFound {
                input: self.input.clone(),
                what: format!("blob {digest}"),
            }),
        }
    }
}

/// Name `top` (an index or manifest of `media_type`) in the layout's `index.json`, under
/// `ref_name` when given (replacing an entry of that name). The document itself is stored
/// first if it is not there yet; the blobs it points at must be stored by the caller.
pub fn write_oci_ref(
    store: &Store,
    top: &Blob,
    media_type: &str,
    ref_name: Option<&str>,
) -> Result<(), TransportError> {
    let input = format!("oci:{}", store.root().display());
    if ManifestKind::from_media_type(media_type).is_none() {
        return Err(invalid(
            &input,
            format!("{media_type:?} is not an index or manifest media type"),
        ));
    }
    if let Some(name) = ref_name
        && !valid_ref_name(name)
    {
        return Err(invalid(
            &input,
            format!(
                "invalid ref name {name:?} (letters and digits, joined by one of - . _ : @ + \
                 or by --, in components separated by /)"
            ),
        ));
    }
    let expect = Expect {
        digest: top.digest.clone(),
        size: Some(top.size()),
    };
    store.put(&expect, &top.bytes[..], "top-level document", &mut |_| {})?;
    let desc = Descriptor::new(MediaType::from(media_type), top.size(), top.digest.clone());
    store.add_to_index(desc, ref_name)?;
    Ok(())
}

/// The OCI image layout's grammar for `org.opencontainers.image.ref.name`:
/// `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `alphanum ::= [A-Za-z0-9]+`, `separator ::= [-._:@+] | "--"`.
pub fn valid_ref_name(name: &str) -> bool {
    name.split('/').all(|component| {
        let b = component.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut sep = String::new();
        for &c in b {
            if c.is_ascii_alphanumeric() {
                if !(sep.is_empty() || sep.len() == 1 || sep == "--") {
                    return false;
                }
                sep.clear();
            } else if b"-._:@+".contains(&c) {
                sep.push(c as char);
            } else {
                return false;
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use repro_oci::media;

    /// A layout with two manifests named v1 and v2, and their config and layer.
    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        manifests: Vec<Blob>,
        layer: Blob,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path()).unwrap();
        let layer = Blob::new(b"not really a layer".to_vec());
        store.put_bytes(&layer.bytes).unwrap();
        let mut manifests = Vec::new();
        for (i, name) in ["v1", "v2"].into_iter().enumerate() {
            let config = Blob::new(
                format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":{i}}}"#)
                    .into_bytes(),
            );
            store.put_bytes(&config.bytes).unwrap();
            let m = Blob::new(
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
                    media::OCI_MANIFEST,
                    media::OCI_CONFIG,
                    config.digest,
                    config.size(),
                    media::OCI_LAYER,
                    layer.digest,
                    layer.size()
                )
                .into_bytes(),
            );
            write_oci_ref(&store, &m, media::OCI_MANIFEST, Some(name)).unwrap();
            manifests.push(m);
        }
        store.finish();
        Fixture {
            dir,
            store,
            manifests,
            layer,
        }
    }

    fn raw(t: &TopLevel) -> &Blob {
        t.raw()
    }

    #[test]
    fn selects_by_ref_name() {
        let f = fixture();
        for (name, m) in ["v1", "v2"].iter().zip(&f.manifests) {
            let mut s = OciSource::open(f.dir.path(), Some(name)).unwrap();
            assert_eq!(raw(&s.top_level().unwrap()), m);
            assert_eq!(
                s.describe(),
                format!("oci:{}:{name}", f.dir.path().display())
            );
        }
        let err = OciSource::open(f.dir.path(), Some("v3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                r#"oci:{}:v3: ref "v3" in index.json (refs: "v1", "v2") not found"#,
                f.dir.path().display()
            )
        );
    }

    #[test]
    fn without_ref_needs_exactly_one_entry() {
        let f = fixture();
        let err = OciSource::open(f.dir.path(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                r#"oci:{}: index.json lists 2 images; choose one with oci:DIR:REF (refs: "v1", "v2")"#,
                f.dir.path().display()
            )
        );
        let one = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(one.path()).unwrap();
        let err = OciSource::open(one.path(), None).unwrap_err();
        assert!(
            err.to_string().ends_with("index.json lists no images"),
            "{err}"
        );
        write_oci_ref(&store, &f.manifests[0], media::OCI_MANIFEST, None).unwrap();
        let mut s = OciSource::open(one.path(), None).unwrap();
        assert!(ref_name_of(s.entry()).is_none());
        // The top-level document was stored by write_oci_ref; the rest was not.
        assert_eq!(raw(&s.top_level().unwrap()), &f.manifests[0]);
        assert!(matches!(
            s.blob(&f.layer.digest, Some(f.layer.size())),
            Err(TransportError::NotFound { .. })
        ));
    }

    #[test]
    fn blobs_are_verified() {
        let f = fixture();
        let mut s = OciSource::open(f.dir.path(), Some("v1")).unwrap();
        let mut v = Vec::new();
        s.blob(&f.layer.digest, Some(f.layer.size()))
            .unwrap()
            .read_to_end(&mut v)
            .unwrap();
        assert_eq!(v, f.layer.bytes);
        // Rot on disk is noticed while reading.
        let path = f.store.blob_path(&f.layer.digest).unwrap();
        std::fs::write(&path, b"not really a layeR").unwrap();
        let err = s
            .blob(&f.layer.digest, Some(f.layer.size()))
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        // So is a rotten manifest.
        let mpath = f.store.blob_path(&f.manifests[1].digest).unwrap();
        let mut bytes = f.manifests[1].bytes.clone();
        let last = bytes.len() - 2;
        bytes[last] = b' ';
        std::fs::write(&mpath, bytes).unwrap();
        let mut s2 = OciSource::open(f.dir.path(), Some("v2")).unwrap();
        let err = s2.top_level().unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
    }

    #[test]
    fn descriptor_and_document_must_agree() {
        let f = fixture();
        let mut s = OciSource::open(f.dir.path(), Some("v1")).unwrap();
        let as_index = Descriptor::new(
            MediaType::ImageIndex,
            f.manifests[0].size(),
            f.manifests[0].digest.clone(),
        );
        let err = s.manifest(&as_index).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "descriptor says application/vnd.oci.image.index.v1+json, the document is application/vnd.oci.image.manifest.v1+json"
            ),
            "{err}"
        );
        let as_layer = Descriptor::new(
            MediaType::ImageLayer,
            f.manifests[0].size(),
            f.manifests[0].digest.clone(),
        );
        assert!(
            s.manifest(&as_layer)
                .unwrap_err()
                .to_string()
                .contains("is not an index or manifest type")
        );
        let huge = Descriptor::new(
            MediaType::ImageManifest,
            MAX_MANIFEST_BYTES + 1,
            f.manifests[0].digest.clone(),
        );
        assert!(matches!(
            s.manifest(&huge),
            Err(TransportError::Image(ImageError::TooLarge { .. }))
        ));
    }

    #[test]
    fn write_oci_ref_replaces_by_name_and_validates() {
        let f = fixture();
        write_oci_ref(&f.store, &f.manifests[1], media::OCI_MANIFEST, Some("v1")).unwrap();
        let mut s = OciSource::open(f.dir.path(), Some("v1")).unwrap();
        assert_eq!(raw(&s.top_level().unwrap()), &f.manifests[1]);
        assert_eq!(f.store.read_index().unwrap().manifests().len(), 2);
        for bad in ["", "a//b", "-a", "a-", "a b", "a---b", "a..b", "ä"] {
            assert!(
                write_oci_ref(&f.store, &f.manifests[0], media::OCI_MANIFEST, Some(bad)).is_err(),
                "{bad:?}"
            );
        }
        for good in ["latest", "v1.0", "a--b", "example.com/x:1.0", "a@b+c_d"] {
            assert!(valid_ref_name(good), "{good}");
        }
        assert!(
            write_oci_ref(&f.store, &f.manifests[0], media::OCI_CONFIG, None)
                .unwrap_err()
                .to_string()
                .contains("not an index or manifest media type")
        );
    }

    #[test]
    fn not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            OciSource::open(dir.path(), None),
            Err(TransportError::Store(
                repro_store::StoreError::NotLayout { .. }
            ))
        ));
    }
}
