//! POSIX ACLs as GNU tar 1.34 archives them with `--acls`: the text libacl's
//! `acl_to_text(acl, NULL)` gives (one `tag:qualifier:perms` line each, names looked up
//! in the host's user and group databases, numbers where there is none) in
//! `SCHILY.acl.access` / `SCHILY.acl.default` records. The text is built here from the
//! `system.posix_acl_*` xattrs, in the kernel's entry order (which libacl keeps).

use std::ffi::CStr;

const USER_OBJ: u16 = 0x01;
pub(crate) const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
pub(crate) const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// Why an ACL xattr value could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("ACL xattr of {0} bytes is not a version-2 POSIX ACL")]
    Malformed(usize),
    #[error("ACL entry with unknown tag {0:#x}")]
    UnknownTag(u16),
}

/// One entry of a POSIX ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclEntry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// Decode a `system.posix_acl_access`/`_default` xattr value (little-endian version 2).
pub fn parse_xattr(value: &[u8]) -> Result<Vec<AclEntry>, AclError> {
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) || value[..4] != 2u32.to_le_bytes() {
        return Err(AclError::Malformed(value.len()));
    }
    value[4..]
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            if ![USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER].contains(&tag) {
                return Err(AclError::UnknownTag(tag));
            }
            Ok(AclEntry {
                tag,
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
        })
        .collect()
}

/// The three-entry ACL a file mode stands for (what `acl_get_file` returns without an
/// access ACL xattr).
pub fn from_mode(mode: u32) -> Vec<AclEntry> {
    let perm = |shift: u32| ((mode >> shift) & 7) as u16;
    vec![
        AclEntry {
            tag: USER_OBJ,
            perm: perm(6),
            id: u32::MAX,
        },
        AclEntry {
            tag: GROUP_OBJ,
            perm: perm(3),
            id: u32::MAX,
        },
        AclEntry {
            tag: OTHER,
            perm: perm(0),
            id: u32::MAX,
        },
    ]
}

/// `acl_to_text(acl, NULL)`: a line per entry, each ending in a newline.
pub fn to_text(entries: &[AclEntry], names: &dyn Fn(u16, u32) -> Option<String>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (tag, qualifier) = match e.tag {
            USER_OBJ => ("user", String::new()),
            USER => (
                "user",
                names(USER, e.id).unwrap_or_else(|| e.id.to_string()),
            ),
            GROUP_OBJ => ("group", String::new()),
            GROUP => (
                "group",
                names(GROUP, e.id).unwrap_or_else(|| e.id.to_string()),
            ),
            MASK => ("mask", String::new()),
            _ => ("other", String::new()),
        };
        out.extend_from_slice(tag.as_bytes());
        out.push(b':');
        out.extend_from_slice(qualifier.as_bytes());
        out.push(b':');
        for (bit, c) in [(4, b'r'), (2, b'w'), (1, b'x')] {
            out.push(if e.perm & bit != 0 { c } else { b'-' });
        }
        out.push(b'\n');
    }
    out
}

/// Look a user (`tag` USER) or group id up in the host's databases, as libacl does.
pub fn host_name(tag: u16, id: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        let result: *mut libc::c_void;
        // SAFETY: the out-structs live on this frame, buf has buf.len() bytes, and the
        // returned name points into buf, copied before buf is touched again.
        let (rc, name) = unsafe {
            if tag == USER {
                let mut pw: libc::passwd = std::mem::zeroed();
                let mut res: *mut libc::passwd = std::ptr::null_mut();
                let rc =
                    libc::getpwuid_r(id, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res);
                result = res.cast();
                (
                    rc,
                    if res.is_null() {
                        None
                    } else {
                        Some(CStr::from_ptr(pw.pw_name))
                    },
                )
            } else {
                let mut gr: libc::group = std::mem::zeroed();
                let mut res: *mut libc::group = std::ptr::null_mut();
                let rc =
                    libc::getgrgid_r(id, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut res);
                result = res.cast();
                (
                    rc,
                    if res.is_null() {
                        None
                    } else {
                        Some(CStr::from_ptr(gr.gr_name))
                    },
                )
            }
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        return name.map(|n| n.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_as_acl_to_text() {
        // setfacl -m u:1000:rwx,g:1001:rw,m:r on a 0644 file, as the kernel stores it.
        let raw = [
            2u8, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 2, 0, 7, 0, 0xe8, 3, 0, 0, 4, 0, 4, 0,
            255, 255, 255, 255, 8, 0, 6, 0, 0xe9, 3, 0, 0, 0x10, 0, 4, 0, 255, 255, 255, 255, 0x20,
            0, 4, 0, 255, 255, 255, 255,
        ];
        let acl = parse_xattr(&raw).unwrap();
        let names = |tag: u16, id: u32| (tag == USER && id == 1000).then(|| "alice".to_string());
        assert_eq!(
            String::from_utf8(to_text(&acl, &names)).unwrap(),
            "user::rw-\nuser:alice:rwx\ngroup::r--\ngroup:1001:rw-\nmask::r--\nother::r--\n"
        );
        assert_eq!(
            to_text(&from_mode(0o755), &names),
            b"user::rwx\ngroup::r-x\nother::r-x\n"
        );
        assert_eq!(parse_xattr(&raw[..7]), Err(AclError::Malformed(7)));
    }
}
