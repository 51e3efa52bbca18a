//! SPDX 2.3 JSON. Field order is fixed by the structs; every list is sorted.

use serde::Serialize;
use sha1::{Digest as _, Sha1};

use crate::{Model, NAMESPACE_BASE, SbomError, SubjectKind};

const NOASSERTION: &str = "NOASSERTION";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    packages: Vec<Package<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<File>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<Extracted>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
    comment: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_file_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<String>,
    download_location: &'static str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    homepage: Option<&'a str>,
    license_concluded: &'static str,
    license_declared: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_comments: Option<String>,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    built_date: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationCode {
    package_verification_code_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    file_name: String,
    checksums: Vec<Checksum>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Extracted {
    license_id: String,
    extracted_text: String,
    name: String,
    comment: String,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

fn rel(a: &str, t: &'static str, b: &str) -> Relationship {
    Relationship {
        spdx_element_id: a.to_string(),
        relationship_type: t,
        related_spdx_element: b.to_string(),
    }
}

/// SPDX's package verification code: sha1 of the sorted files' sha1s, concatenated.
fn verification_code<'s>(sha1s: impl Iterator<Item = &'s str>) -> String {
    let mut v: Vec<&str> = sha1s.collect();
    v.sort_unstable();
    hex::encode(Sha1::digest(v.concat().as_bytes()))
}

/// `Person: Name (email)`, `Person: Name`, or none for an unknown packager.
pub(crate) fn supplier(packager: &str) -> Option<String> {
    let (name, email) = crate::packager(packager)?;
    Some(match email {
        Some(e) => format!("Person: {name} ({e})"),
        None => format!("Person: {name}"),
    })
}

pub(crate) fn render(m: &Model<'_>) -> Result<Vec<u8>, SbomError> {
    let s = m.subject;
    let created = match (m.opts.created, &s.created) {
        (Some(t), _) => t,
        (None, Some(c)) => {
            crate::time::parse_rfc3339(c).ok_or_else(|| SbomError::BadConfigCreated(c.clone()))?
        }
        (None, None) => return Err(SbomError::NoCreationTime(s.name.clone())),
    };
    for f in &m.files {
        if f.sha1.is_none() {
            return Err(SbomError::MissingSha1(f.path.clone()));
        }
    }
    let root_id = match s.kind {
        SubjectKind::Image => "SPDXRef-Image",
        SubjectKind::Rootfs => "SPDXRef-Rootfs",
    };
    let mut rels = vec![rel("SPDXRef-DOCUMENT", "DESCRIBES", root_id)];

    // The root.
    let mut comment = Vec::new();
    if let Some(p) = &s.platform {
        comment.push(format!("platform {p}"));
    }
    if let Some(c) = &s.config_digest {
        comment.push(format!("config {c}"));
    }
    if let Some(c) = &s.created {
        comment.push(format!("config created {c}"));
    }
    let root = Package {
        spdx_id: root_id.to_string(),
        name: &s.name,
        version_info: s.manifest_digest.as_deref(),
        package_file_name: None,
        supplier: None,
        download_location: NOASSERTION,
        files_analyzed: !m.files.is_empty(),
        package_verification_code: (!m.files.is_empty()).then(|| VerificationCode {
            package_verification_code_value: verification_code(
                m.files.iter().filter_map(|f| f.sha1.as_deref()),
            ),
        }),
        checksums: s
            .manifest_digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .map(|h| Checksum {
                algorithm: "SHA256",
                checksum_value: h.to_string(),
            })
            .into_iter()
            .collect(),
        homepage: None,
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        license_comments: None,
        copyright_text: NOASSERTION,
        description: None,
        comment: (!comment.is_empty()).then(|| comment.join("; ")),
        external_refs: s
            .purl
            .iter()
            .map(|p| ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: p.clone(),
            })
            .collect(),
        primary_package_purpose: Some(match s.kind {
            SubjectKind::Image => "CONTAINER",
            SubjectKind::Rootfs => "OPERATING-SYSTEM",
        }),
        built_date: None,
    };
    let mut packages = vec![root];

    // Files each package owns (indices into m.files).
    let mut owned: Vec<Vec<usize>> = vec![Vec::new(); m.pkgs.len()];
    for (fi, owners) in m.file_owners.iter().enumerate() {
        for &o in owners {
            owned[o].push(fi);
        }
        if owners.is_empty() {
            rels.push(rel(root_id, "CONTAINS", &m.file_ids[fi]));
        }
    }

    for (i, p) in m.pkgs.iter().enumerate() {
        let id = &m.spdx_ids[i];
        rels.push(rel(root_id, "CONTAINS", id));
        for &j in &m.deps[i].on {
            rels.push(rel(id, "DEPENDS_ON", &m.spdx_ids[j]));
        }
        for &fi in &owned[i] {
            rels.push(rel(id, "CONTAINS", &m.file_ids[fi]));
        }
        let declared = m.licenses.declared[i].clone();
        let license_comments = (!p.licenses.is_empty()
            && declared.as_deref() != Some(&p.licenses.join(" AND ")))
        .then(|| format!("pacman %LICENSE%: {}", p.licenses.join(", ")));
        let unresolved = &m.deps[i].unresolved;
        let comment = (!unresolved.is_empty()).then(|| {
            format!(
                "Dependencies no installed package has as its name or provides: {}",
                unresolved.join(", ")
            )
        });
        let pf = m.package_file[i].as_ref();
        packages.push(Package {
            spdx_id: id.clone(),
            name: &p.name,
            version_info: Some(&p.version),
            package_file_name: pf.map(|(f, _)| f.as_str()),
            supplier: Some(supplier(&p.packager).unwrap_or_else(|| NOASSERTION.into())),
            download_location: NOASSERTION,
            files_analyzed: !owned[i].is_empty(),
            package_verification_code: (!owned[i].is_empty()).then(|| VerificationCode {
                package_verification_code_value: verification_code(
                    owned[i]
                        .iter()
                        .filter_map(|&fi| m.files[fi].sha1.as_deref()),
                ),
            }),
            checksums: pf
                .map(|(_, h)| Checksum {
                    algorithm: "SHA256",
                    checksum_value: h.clone(),
                })
                .into_iter()
                .collect(),
            homepage: p.url.as_deref().filter(|u| crate::url_ok(u)),
            license_concluded: NOASSERTION,
            license_declared: declared.unwrap_or_else(|| NOASSERTION.into()),
            license_comments,
            copyright_text: NOASSERTION,
            description: Some(p.description.as_str()).filter(|d| !d.is_empty()),
            comment,
            external_refs: vec![ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: m.purls[i].clone(),
            }],
            primary_package_purpose: None,
            built_date: Some(crate::time::format(p.build_date)),
        });
    }

    let files = m
        .files
        .iter()
        .zip(&m.file_ids)
        .map(|(f, id)| File {
            spdx_id: id.clone(),
            file_name: format!("./{}", f.path),
            checksums: vec![
                Checksum {
                    algorithm: "SHA1",
                    checksum_value: f.sha1.clone().unwrap_or_default(),
                },
                Checksum {
                    algorithm: "SHA256",
                    checksum_value: f.sha256.clone(),
                },
            ],
        })
        .collect();

    let extracted = m
        .licenses
        .refs
        .iter()
        .map(|r| Extracted {
            license_id: r.id.clone(),
            extracted_text: if r.original == r.id {
                format!(
                    "The package database names this license {:?} as an SPDX license reference; \
                     its text is not part of the database.",
                    r.original
                )
            } else {
                format!(
                    "The package database names this license {:?} (pacman %LICENSE%); its text is \
                     not part of the database. Arch Linux packages install license texts under \
                     /usr/share/licenses/.",
                    r.original
                )
            },
            name: r.original.clone(),
            comment: format!("Used by: {}", r.packages.join(", ")),
        })
        .collect();

    rels.sort();
    rels.dedup();

    let mut doc_comment = format!(
        "Packages read from the pacman local database (var/lib/pacman/local) of {}.",
        s.name
    );
    if !m.notes.is_empty() {
        doc_comment.push_str(" Not readable, so not listed: ");
        doc_comment.push_str(&m.notes.join("; "));
    }
    let doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("repro-image SBOM of {}", s.name),
        document_namespace: format!("{NAMESPACE_BASE}/spdx/{}", m.key),
        creation_info: CreationInfo {
            created: crate::time::format(created),
            creators: vec![format!("Tool: repro-image-{}", m.opts.tool_version)],
            comment: "Deterministic: the same image and options give the same bytes.".into(),
        },
        comment: Some(doc_comment),
        packages,
        files,
        has_extracted_licensing_infos: extracted,
        relationships: rels,
    };
    let _ = m.inv;
    Ok(serde_json::to_vec_pretty(&doc)?)
}
