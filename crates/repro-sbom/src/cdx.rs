//! CycloneDX 1.6 JSON. Field order is fixed by the structs; every list is sorted.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{Model, NAMESPACE_BASE, SbomError, SubjectKind};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    tools: Tools,
    component: Component,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Tool>,
}

#[derive(Serialize)]
struct Tool {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'static str,
    version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<Supplier>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component>,
}

#[derive(Serialize)]
struct Supplier {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contact: Vec<Contact>,
}

#[derive(Serialize)]
struct Contact {
    name: String,
    email: String,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct License {
    expression: String,
}

#[derive(Serialize)]
struct ExternalReference {
    url: String,
    #[serde(rename = "type")]
    ty: &'static str,
}

#[derive(Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

fn prop(name: &'static str, value: impl Into<String>) -> Property {
    Property {
        name,
        value: value.into(),
    }
}

/// A deterministic `urn:uuid:` (UUIDv5 in the URL namespace) for a document key.
pub(crate) fn serial_number(key: &str) -> String {
    let u = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{NAMESPACE_BASE}/cyclonedx/{key}").as_bytes(),
    );
    format!("urn:uuid:{}", u.hyphenated())
}

pub(crate) fn render(m: &Model<'_>) -> Result<Vec<u8>, SbomError> {
    let s = m.subject;
    let root_ref = match (&s.purl, &s.kind, &s.manifest_digest) {
        (Some(p), _, _) => p.clone(),
        (None, SubjectKind::Image, Some(d)) => format!("image:{d}"),
        _ => format!("rootfs:{}", s.name),
    };
    // Package refs: the purl, made unique if a broken db lists a package twice.
    let mut seen = BTreeSet::new();
    let refs: Vec<String> = m
        .purls
        .iter()
        .zip(m.pkgs)
        .map(|(p, pkg)| {
            if seen.insert(p.clone()) {
                p.clone()
            } else {
                format!("{p}#{}", crate::short_hash(&pkg.dir))
            }
        })
        .collect();

    let file_component = |fi: usize| {
        let f = m.files[fi];
        let mut hashes = Vec::new();
        if let Some(h) = &f.sha1 {
            hashes.push(Hash {
                alg: "SHA-1",
                content: h.clone(),
            });
        }
        hashes.push(Hash {
            alg: "SHA-256",
            content: f.sha256.clone(),
        });
        Component {
            ty: "file",
            bom_ref: format!("file:{}", f.path),
            supplier: None,
            name: f.path.clone(),
            version: None,
            description: None,
            hashes,
            licenses: Vec::new(),
            purl: None,
            external_references: Vec::new(),
            properties: Vec::new(),
            components: Vec::new(),
        }
    };
    // A file owned by several packages is nested in the first (bom-refs are unique).
    let mut owned: Vec<Vec<usize>> = vec![Vec::new(); m.pkgs.len()];
    let mut unowned = Vec::new();
    for (fi, owners) in m.file_owners.iter().enumerate() {
        match owners.iter().min() {
            Some(&o) => owned[o].push(fi),
            None => unowned.push(fi),
        }
    }

    let mut components = Vec::new();
    for (i, p) in m.pkgs.iter().enumerate() {
        let mut properties = Vec::new();
        properties.push(prop(
            "repro-image:alpm:build-date",
            crate::time::format(p.build_date),
        ));
        for l in &p.licenses {
            properties.push(prop("repro-image:alpm:license", l.clone()));
        }
        if let Some((f, _)) = &m.package_file[i] {
            properties.push(prop("repro-image:alpm:package-file", f.clone()));
        }
        properties.push(prop("repro-image:alpm:packager", p.packager.clone()));
        for u in &m.deps[i].unresolved {
            properties.push(prop("repro-image:alpm:unresolved-depends", u.clone()));
        }
        components.push(Component {
            ty: "library",
            bom_ref: refs[i].clone(),
            supplier: crate::packager(&p.packager).map(|(name, email)| Supplier {
                contact: email
                    .map(|e| Contact {
                        name: name.clone(),
                        email: e,
                    })
                    .into_iter()
                    .collect(),
                name,
            }),
            name: p.name.clone(),
            version: Some(p.version.clone()),
            description: Some(p.description.clone()).filter(|d| !d.is_empty()),
            hashes: m.package_file[i]
                .iter()
                .map(|(_, h)| Hash {
                    alg: "SHA-256",
                    content: h.clone(),
                })
                .collect(),
            licenses: m.licenses.declared[i]
                .iter()
                .map(|e| License {
                    expression: e.clone(),
                })
                .collect(),
            purl: Some(m.purls[i].clone()),
            external_references: p
                .url
                .iter()
                .filter(|u| crate::url_ok(u))
                .map(|u| ExternalReference {
                    url: u.clone(),
                    ty: "website",
                })
                .collect(),
            properties,
            components: owned[i].iter().map(|&fi| file_component(fi)).collect(),
        });
    }
    components.extend(unowned.iter().map(|&fi| file_component(fi)));

    let mut dependencies: Vec<Dependency> = m
        .deps
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut on: Vec<String> = d.on.iter().map(|&j| refs[j].clone()).collect();
            on.sort();
            Dependency {
                reference: refs[i].clone(),
                depends_on: on,
            }
        })
        .collect();
    let mut all = refs.clone();
    all.sort();
    dependencies.push(Dependency {
        reference: root_ref.clone(),
        depends_on: all,
    });
    dependencies.sort_by(|a, b| a.reference.cmp(&b.reference));

    let mut root_props = Vec::new();
    if let Some(c) = &s.config_digest {
        root_props.push(prop("repro-image:config-digest", c.clone()));
    }
    if let Some(c) = &s.created {
        root_props.push(prop("repro-image:created", c.clone()));
    }
    if let Some(p) = &s.platform {
        root_props.push(prop("repro-image:platform", p.clone()));
    }
    let root = Component {
        ty: match s.kind {
            SubjectKind::Image => "container",
            SubjectKind::Rootfs => "operating-system",
        },
        bom_ref: root_ref,
        supplier: None,
        name: s.name.clone(),
        version: s.manifest_digest.clone(),
        description: None,
        hashes: s
            .manifest_digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .map(|h| Hash {
                alg: "SHA-256",
                content: h.to_string(),
            })
            .into_iter()
            .collect(),
        licenses: Vec::new(),
        purl: s.purl.clone(),
        external_references: Vec::new(),
        properties: root_props,
        components: Vec::new(),
    };
    let bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: serial_number(&m.key),
        version: 1,
        metadata: Metadata {
            timestamp: m.opts.created.map(crate::time::format),
            tools: Tools {
                components: vec![Tool {
                    ty: "application",
                    name: "repro-image",
                    version: m.opts.tool_version.clone(),
                }],
            },
            component: root,
            properties: m
                .notes
                .iter()
                .map(|n| prop("repro-image:inventory-error", n.clone()))
                .collect(),
        },
        components,
        dependencies,
    };
    Ok(serde_json::to_vec_pretty(&bom)?)
}
