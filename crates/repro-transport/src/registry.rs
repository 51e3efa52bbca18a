//! `docker://` sources, read through the local content store: what was fetched once is
//! served from the cache; tag resolutions are logged.

use std::io::Read;
use std::sync::Arc;

use oci_spec::image::Descriptor;
use repro_oci::digest::Expect;
use repro_oci::image::parse_top_level;
use repro_oci::{Digest, DockerRef, TopLevel};
use repro_registry::Client;
use repro_store::{Store, TagLog};

use crate::{ImageSource, TransportError};

pub struct RegistrySource {
    client: Arc<Client>,
    reference: DockerRef,
    cache: Option<Store>,
    tag_log: Option<TagLog>,
    /// Notes for the user (e.g. a tag that no longer points at the pinned digest).
    warnings: Vec<String>,
    /// Where the top-level document came from ("registry" or "cache").
    pub top_level_from: &'static str,
}

impl RegistrySource {
    pub fn new(
        client: Arc<Client>,
        reference: DockerRef,
        cache: Option<Store>,
        tag_log: Option<TagLog>,
    ) -> Self {
        RegistrySource {
            client,
            reference,
            cache,
            tag_log,
            warnings: Vec::new(),
            top_level_from: "registry",
        }
    }

    pub fn reference(&self) -> &DockerRef {
        &self.reference
    }

    /// Fetch a manifest by digest, from the cache when it has it.
    fn manifest_bytes(
        &mut self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(Vec<u8>, Option<String>, bool), TransportError> {
        let expect = Expect {
            digest: digest.clone(),
            size,
        };
        if let Some(store) = &self.cache
            && let Some(bytes) = store.read_small(&expect)?
        {
            return Ok((bytes, None, true));
        }
        let m = self.client.get_manifest(&self.reference, digest.as_ref())?;
        if let Some(s) = size
            && s != m.bytes.len() as u64
        {
            return Err(TransportError::Invalid {
                input: format!("docker://{}@{digest}", self.reference.name()),
                reason: format!("manifest is {} bytes, descriptor says {s}", m.bytes.len()),
            });
        }
        if let Some(store) = &self.cache {
            store.put_bytes(&m.bytes)?;
        }
        Ok((m.bytes, m.content_type, false))
    }
}

impl ImageSource for RegistrySource {
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn top_level(&mut self) -> Result<TopLevel, TransportError> {
        let what = self.describe();
        if let Some(digest) = self.reference.digest.clone() {
            let (bytes, ct, cached) = self.manifest_bytes(&digest, None)?;
            self.top_level_from = if cached { "cache" } else { "registry" };
            // Tag and digest together: the digest wins; the tag is checked and a moved
            // tag reported, since pinning by digest is the point of giving one.
            if let Some(tag) = self.reference.tag.clone() {
                match self.client.head_manifest(&self.reference, &tag) {
                    Ok(Some(now)) if now != digest => self.warnings.push(format!(
                        "tag {tag} of {} now points to {now}, not {digest}; using {digest}",
                        self.reference.name()
                    )),
                    Ok(_) => {}
                    Err(e) => self
                        .warnings
                        .push(format!("could not check tag {tag}: {e}")),
                }
            }
            return Ok(parse_top_level(bytes, ct.as_deref(), &what)?);
        }
        let tag = self.reference.tag_or_latest().to_string();
        let m = self.client.get_manifest(&self.reference, &tag)?;
        self.top_level_from = "registry";
        let top = parse_top_level(m.bytes.clone(), m.content_type.as_deref(), &what)?;
        if let Some(store) = &self.cache {
            store.put_bytes(&m.bytes)?;
        }
        if let Some(log) = &self.tag_log {
            let mt = top.kind().media_type();
            log.record(
                &self.reference.registry,
                &self.reference.repository,
                &tag,
                m.digest.as_ref(),
                mt,
            )?;
        }
        Ok(top)
    }

    fn manifest(&mut self, desc: &Descriptor) -> Result<TopLevel, TransportError> {
        let (bytes, ct, _) = self.manifest_bytes(desc.digest(), Some(desc.size()))?;
        let what = format!("docker://{}@{}", self.reference.name(), desc.digest());
        let ct = ct.or_else(|| Some(desc.media_type().to_string()));
        Ok(parse_top_level(bytes, ct.as_deref(), &what)?)
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
        if let Some(store) = &self.cache
            && let Some(r) = store.open(&expect)?
        {
            return Ok(Box::new(r));
        }
        let (_, body) = self.client.get_blob(&self.reference, digest)?;
        let what = format!("blob {digest} from {}", self.reference.name());
        match &self.cache {
            Some(store) => Ok(Box::new(store.tee(&expect, body, &what)?)),
            None => Ok(Box::new(repro_oci::VerifyingReader::new(
                body, expect, what,
            ))),
        }
    }
}
