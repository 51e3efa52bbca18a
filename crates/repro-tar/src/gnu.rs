//! GNU tar 1.34's POSIX (pax) archive, as the archlinux-docker recipe writes the rootfs:
//!
//! ```text
//! tar --numeric-owner --xattrs --acls --mtime=@$SDE --clamp-mtime --sort=name \
//!     --pax-option=delete=atime,delete=ctime --exclude-from=exclude -C DIR -c . -f out.tar
//! ```
//!
//! What GNU tar does there, learnt from its output (see the tests against the real tool):
//! - members are named `./…` (directories with a trailing `/`, the root is `./`), depth
//!   first, each directory's entries in byte order; excluded names are not descended into;
//! - ustar header: mode `st_mode & 07777`, uid/gid, size, mtime as zero-padded octal with a
//!   NUL, `ustar\0` `00`, no user/group names (numeric owner), devmajor/devminor `0000000`
//!   (the device numbers for devices), the name's first 100 bytes (never split into the
//!   prefix field), the link target's first 100 bytes;
//! - an extended header (`x`, named `<dir>/PaxHeaders/<base>`, mode 0644, uid/gid 0, the
//!   `--mtime` value as its mtime, name cut at 100 bytes) precedes a member only when a
//!   record is needed, in this order: `linkpath` (target > 100 bytes), `path` (name > 100
//!   bytes or not ASCII), `uid`/`gid` (> 07777777), `size` (> 077777777777), `mtime`
//!   (fractional seconds, or too large), `SCHILY.acl.access`/`.default`, then every
//!   `SCHILY.xattr.*` in the order the filesystem lists them (`system.posix_acl_*` too);
//! - a regular file or symlink with more than one link is archived once; later names are
//!   type `1` entries (size 0, no extended records) linking to the first name (fifos and
//!   devices are archived again under each name);
//! - sockets are skipped ("socket ignored");
//! - the end: two zero blocks, then zeros to a multiple of the 10240-byte record.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::header::{self, max_octal, pax_record, put_octal, put_str};
use crate::walk::{self, Kind, Node, Timestamp};
use crate::{Error, Exclude, acl};

/// GNU tar's default record: blocking factor 20.
pub const RECORD: u64 = 10240;

/// How member mtimes are set (`--mtime`, `--clamp-mtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtimePolicy {
    /// The files' own mtimes (no `--mtime`).
    File,
    /// `--mtime=@T`: every member gets T.
    Force(i64),
    /// `--mtime=@T --clamp-mtime`: members newer than T get T.
    Clamp(i64),
}

/// The flags of the tar command that matter for the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GnuOptions {
    pub mtime: MtimePolicy,
    /// `--exclude-from`.
    pub exclude: Exclude,
    /// `--xattrs`: `SCHILY.xattr.*` records.
    pub xattrs: bool,
    /// `--acls`: `SCHILY.acl.*` records (user and group names from the host's databases,
    /// as GNU tar's libacl call does).
    pub acls: bool,
    /// Whose view of the owners the archive records.
    pub owners: Owners,
}

pub use crate::walk::Owners;

impl GnuOptions {
    /// The recipe's command: `--numeric-owner --xattrs --acls --mtime=@SDE --clamp-mtime
    /// --sort=name --pax-option=delete=atime,delete=ctime --exclude-from=EXCLUDE`.
    pub fn recipe(source_date_epoch: i64, exclude: Exclude) -> Self {
        GnuOptions {
            mtime: MtimePolicy::Clamp(source_date_epoch),
            exclude,
            xattrs: true,
            acls: true,
            owners: Owners::Disk,
        }
    }

    /// [`GnuOptions::recipe`] with the owners a fresh fakeroot session reports (every
    /// uid/gid 0): the recipe's tar, run by `fakeroot` over a tree that pacman's own
    /// (earlier, other) fakeroot session installed.
    pub fn recipe_in_fakeroot(source_date_epoch: i64, exclude: Exclude) -> Self {
        GnuOptions {
            owners: Owners::FreshFakeroot,
            ..GnuOptions::recipe(source_date_epoch, exclude)
        }
    }
}

/// One planned member.
#[derive(Clone, Debug)]
struct Member {
    node: Node,
    /// `./rel` (with `/` for directories; `./` for the root).
    name: Vec<u8>,
    /// Target of a hard link to an earlier member.
    hardlink: Option<Vec<u8>>,
    /// The extended header's records; empty when none is written.
    records: Vec<u8>,
    /// The extended header's name.
    xname: Vec<u8>,
    /// The mtime seconds of the ustar header.
    mtime: i64,
}

impl Member {
    fn data_len(&self) -> u64 {
        match (&self.node.kind, &self.hardlink) {
            (Kind::File { size }, None) => *size,
            _ => 0,
        }
    }

    fn archived_len(&self) -> u64 {
        let mut n = crate::BLOCK + header::padded(self.data_len());
        if !self.records.is_empty() {
            n += crate::BLOCK + header::padded(self.records.len() as u64);
        }
        n
    }
}

/// A planned archive: every member's metadata and extended records, and the exact size.
/// Writing it streams the file contents.
#[derive(Clone, Debug)]
pub struct GnuArchive {
    members: Vec<Member>,
    xheader_mtime: Option<i64>,
    size: u64,
}

/// Walk `root` and plan the archive `tar OPTIONS -C root -c .` would write.
pub fn plan(root: &Path, options: &GnuOptions) -> Result<GnuArchive, Error> {
    let exclude = &options.exclude;
    let skip = |rel: &[u8]| {
        let mut name = b"./".to_vec();
        name.extend_from_slice(rel);
        exclude.is_excluded(&name)
    };
    let mut nodes = walk::walk(root, &skip)?;
    for n in &mut nodes {
        options.owners.apply(n);
    }
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut members = Vec::with_capacity(nodes.len());
    for node in nodes {
        if node.kind == Kind::Socket {
            continue;
        }
        let orig = if node.rel.is_empty() {
            b".".to_vec()
        } else {
            [b"./".as_slice(), &node.rel].concat()
        };
        let mut name = orig.clone();
        if node.kind == Kind::Dir {
            name.push(b'/');
        }
        let mut hardlink = None;
        // GNU tar links only regular files and symlinks; other names of a fifo or device
        // are archived as fifos and devices again.
        let linkable = matches!(node.kind, Kind::File { .. } | Kind::Symlink { .. });
        if linkable && node.nlink > 1 {
            match links.get(&(node.dev, node.ino)) {
                Some(first) => hardlink = Some(first.clone()),
                None => {
                    links.insert((node.dev, node.ino), name.clone());
                }
            }
        }
        members.push(member(node, name, &orig, hardlink, options)?);
    }
    let xheader_mtime = match options.mtime {
        MtimePolicy::File => None,
        MtimePolicy::Force(t) | MtimePolicy::Clamp(t) => Some(t),
    };
    let body: u64 = members.iter().map(Member::archived_len).sum();
    let size = (body + 2 * crate::BLOCK).div_ceil(RECORD) * RECORD;
    Ok(GnuArchive {
        members,
        xheader_mtime,
        size,
    })
}

fn member(
    node: Node,
    name: Vec<u8>,
    orig: &[u8],
    hardlink: Option<Vec<u8>>,
    options: &GnuOptions,
) -> Result<Member, Error> {
    let mut records = Vec::new();
    let link: Option<&[u8]> = match (&node.kind, &hardlink) {
        (_, Some(target)) => Some(target),
        (Kind::Symlink { target }, None) => Some(target),
        _ => None,
    };
    if let Some(link) = link
        && link.len() > 100
    {
        pax_record(&mut records, b"linkpath", link);
    }
    if name.len() > 100 || !name.is_ascii() {
        pax_record(&mut records, b"path", &name);
    }
    if node.uid > max_octal(8) {
        pax_record(&mut records, b"uid", node.uid.to_string().as_bytes());
    }
    if node.gid > max_octal(8) {
        pax_record(&mut records, b"gid", node.gid.to_string().as_bytes());
    }
    if let (Kind::File { size }, None) = (&node.kind, &hardlink)
        && *size > max_octal(12)
    {
        pax_record(&mut records, b"size", size.to_string().as_bytes());
    }
    let t = match options.mtime {
        MtimePolicy::File => node.mtime,
        MtimePolicy::Force(t) => Timestamp::new(t, 0),
        MtimePolicy::Clamp(t) => node.mtime.min(Timestamp::new(t, 0)),
    };
    if t.sec < 0 {
        return Err(Error::unsupported(
            &node.path,
            format!(
                "mtime {} is before 1970: not representable as GNU tar writes it",
                t.sec
            ),
        ));
    }
    let too_big = t.sec as u64 > max_octal(12);
    if too_big || t.nsec != 0 {
        pax_record(&mut records, b"mtime", time_value(t).as_bytes());
    }
    let mtime = if too_big { 0 } else { t.sec };
    // Links carry no attributes of their own: GNU tar stores them with the first name.
    if hardlink.is_none() && (options.acls || options.xattrs) {
        let names = walk::xattr_names(&node.path)?;
        if options.acls && !matches!(node.kind, Kind::Symlink { .. }) {
            acl_records(&node, &names, &mut records)?;
        }
        if options.xattrs {
            for xname in &names {
                if let Some(value) = walk::xattr_value(&node.path, xname)? {
                    let key = [b"SCHILY.xattr.".as_slice(), xname].concat();
                    pax_record(&mut records, &key, &value);
                }
            }
        }
    }
    Ok(Member {
        xname: xheader_name(orig),
        node,
        name,
        hardlink,
        records,
        mtime,
    })
}

fn acl_records(node: &Node, names: &[Vec<u8>], records: &mut Vec<u8>) -> Result<(), Error> {
    let is_dir = node.kind == Kind::Dir;
    let has = |n: &[u8]| names.iter().any(|x| x == n);
    let access = has(b"system.posix_acl_access");
    let default = is_dir && has(b"system.posix_acl_default");
    if !access && !default {
        return Ok(());
    }
    let read = |xname: &[u8]| -> Result<Option<Vec<acl::AclEntry>>, Error> {
        match walk::xattr_value(&node.path, xname)? {
            None => Ok(None),
            Some(v) => acl::parse_xattr(&v)
                .map(Some)
                .map_err(|e| Error::unsupported(&node.path, e.to_string())),
        }
    };
    let access_acl = match read(b"system.posix_acl_access")? {
        Some(a) => a,
        None => acl::from_mode(node.mode),
    };
    pax_record(
        records,
        b"SCHILY.acl.access",
        &acl::to_text(&access_acl, &acl::host_name),
    );
    if is_dir {
        // A directory with only an access ACL still gets an (empty) default record.
        let text = match read(b"system.posix_acl_default")? {
            Some(d) => acl::to_text(&d, &acl::host_name),
            None => Vec::new(),
        };
        pax_record(records, b"SCHILY.acl.default", &text);
    }
    Ok(())
}

/// A pax time: seconds, and a fraction without trailing zeros when there is one.
fn time_value(t: Timestamp) -> String {
    if t.nsec == 0 {
        return t.sec.to_string();
    }
    let frac = format!("{:09}", t.nsec);
    format!("{}.{}", t.sec, frac.trim_end_matches('0'))
}

/// `%d/PaxHeaders/%f` of the member's name without trailing slash (`.` for the root).
fn xheader_name(orig: &[u8]) -> Vec<u8> {
    let (dir, base) = match orig.iter().rposition(|&b| b == b'/') {
        Some(i) => (&orig[..i], &orig[i + 1..]),
        None => (b".".as_slice(), orig),
    };
    [dir, b"/PaxHeaders/", base].concat()
}

impl GnuArchive {
    /// The archive's exact size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The number of members (extended headers not counted).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member names in archive order (`./`, `./bin`, `./boot/`, …).
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.members.iter().map(|m| m.name.as_slice())
    }

    /// Stream the archive into `out`, reading each file as it goes. Returns the bytes
    /// written, which always equal [`GnuArchive::size`] (a file that changed size is an
    /// error).
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> Result<u64, Error> {
        let mut stream = header::Stream::new(out, "the tar stream");
        for m in &self.members {
            if !m.records.is_empty() {
                stream.extended(&self.xheader(m), &m.records)?;
            }
            stream.member(&self.header(m)?, &m.node.path, m.data_len())?;
        }
        // the end-of-archive blocks and the record padding
        stream.zeros(self.size.saturating_sub(stream.written()))?;
        stream.finish(self.size)
    }

    fn xheader(&self, m: &Member) -> [u8; 512] {
        let mut b = [0u8; 512];
        put_str(&mut b[header::NAME], &m.xname);
        put_octal(&mut b[header::MODE], 0o644);
        put_octal(&mut b[header::UID], 0);
        put_octal(&mut b[header::GID], 0);
        put_octal(&mut b[header::SIZE], m.records.len() as u64);
        let t = self.xheader_mtime.unwrap_or(m.node.mtime.sec);
        put_octal(
            &mut b[header::MTIME],
            t.clamp(0, max_octal(12) as i64) as u64,
        );
        b[header::TYPEFLAG] = b'x';
        header::put_magic(&mut b);
        header::finish(&mut b);
        b
    }

    fn header(&self, m: &Member) -> Result<[u8; 512], Error> {
        let n = &m.node;
        let mut b = [0u8; 512];
        put_str(&mut b[header::NAME], &m.name);
        put_octal(&mut b[header::MODE], u64::from(n.mode & 0o7777));
        put_octal(
            &mut b[header::UID],
            if n.uid > max_octal(8) { 0 } else { n.uid },
        );
        put_octal(
            &mut b[header::GID],
            if n.gid > max_octal(8) { 0 } else { n.gid },
        );
        let size = m.data_len();
        put_octal(
            &mut b[header::SIZE],
            if size > max_octal(12) { 0 } else { size },
        );
        put_octal(&mut b[header::MTIME], m.mtime as u64);
        let (flag, major, minor) = match (&n.kind, &m.hardlink) {
            (_, Some(_)) => (b'1', 0, 0),
            (Kind::File { .. }, None) => (b'0', 0, 0),
            (Kind::Symlink { .. }, None) => (b'2', 0, 0),
            (Kind::Char { major, minor }, None) => (b'3', *major, *minor),
            (Kind::Block { major, minor }, None) => (b'4', *major, *minor),
            (Kind::Dir, None) => (b'5', 0, 0),
            (Kind::Fifo, None) => (b'6', 0, 0),
            (Kind::Socket, None) => unreachable!("sockets are not planned"),
        };
        b[header::TYPEFLAG] = flag;
        match (&n.kind, &m.hardlink) {
            (_, Some(target)) => put_str(&mut b[header::LINKNAME], target),
            (Kind::Symlink { target }, None) => put_str(&mut b[header::LINKNAME], target),
            _ => {}
        }
        header::put_magic(&mut b);
        if major > max_octal(8) || minor > max_octal(8) {
            return Err(Error::unsupported(
                &n.path,
                format!("device {major},{minor} does not fit a ustar header"),
            ));
        }
        put_octal(&mut b[header::DEVMAJOR], major);
        put_octal(&mut b[header::DEVMINOR], minor);
        header::finish(&mut b);
        Ok(b)
    }
}

/// Copy exactly `len` bytes of the file at `path` (not following a symlink put there since
/// planning); fewer is an error.
/// Plan and write in one go: `tar OPTIONS -C root -c . -f -` into `out`.
pub fn write(root: &Path, options: &GnuOptions, out: &mut dyn Write) -> Result<u64, Error> {
    plan(root, options)?.write_to(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xheader_names() {
        assert_eq!(xheader_name(b"."), b"./PaxHeaders/.");
        assert_eq!(xheader_name(b"./a"), b"./PaxHeaders/a");
        assert_eq!(xheader_name(b"./a/b/c"), b"./a/b/PaxHeaders/c");
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            time_value(Timestamp::new(1500000000, 500_000_000)),
            "1500000000.5"
        );
        assert_eq!(
            time_value(Timestamp::new(1500000000, 250_000_000)),
            "1500000000.25"
        );
        assert_eq!(time_value(Timestamp::new(7, 1)), "7.000000001");
        assert_eq!(time_value(Timestamp::new(7, 0)), "7");
    }

    fn file_node(size: u64, uid: u64, mtime: Timestamp) -> Node {
        Node {
            rel: b"big".to_vec(),
            path: std::path::PathBuf::from("/nonexistent/big"),
            kind: Kind::File { size },
            mode: 0o644,
            uid,
            gid: 0,
            mtime,
            dev: 0,
            ino: 0,
            nlink: 1,
        }
    }

    /// Headers of members too large for ustar fields, as GNU tar 1.34 writes them
    /// (checked by hand against `truncate -s 9G big; chown 3000000 …; tar … | head -c`).
    #[test]
    fn big_values_go_to_pax_records() {
        let options = GnuOptions {
            mtime: MtimePolicy::File,
            exclude: Exclude::none(),
            xattrs: false,
            acls: false,
            owners: Owners::Disk,
        };
        let node = file_node(9_663_676_416, 3_000_000, Timestamp::new(1000, 0));
        let m = member(node, b"./big".to_vec(), b"./big", None, &options).unwrap();
        assert_eq!(m.records, b"15 uid=3000000\n19 size=9663676416\n");
        let archive = GnuArchive {
            members: vec![m.clone()],
            xheader_mtime: None,
            size: 0,
        };
        let h = archive.header(&m).unwrap();
        assert_eq!(&h[header::SIZE], b"00000000000\0");
        assert_eq!(&h[header::UID], b"0000000\0");
        assert_eq!(&h[header::MTIME], b"00000001750\0");
        let x = archive.xheader(&m);
        assert_eq!(&x[..15], b"./PaxHeaders/bi");
        assert_eq!(&x[header::SIZE], b"00000000042\0");
        assert_eq!(&x[header::MTIME], b"00000001750\0");
        assert_eq!(x[header::TYPEFLAG], b'x');
        // The planned length: x header + records block, header, data rounded to blocks.
        assert_eq!(m.archived_len(), 512 + 512 + 512 + 9_663_676_416);

        let node = file_node(1, 0, Timestamp::new(9_000_000_000, 0));
        let m = member(node, b"./big".to_vec(), b"./big", None, &options).unwrap();
        assert_eq!(m.records, b"20 mtime=9000000000\n");
        assert_eq!(m.mtime, 0);
    }

    #[test]
    fn clamp_and_force() {
        let mut options = GnuOptions::recipe(2000, Exclude::none());
        options.xattrs = false;
        options.acls = false;
        let newer = file_node(1, 0, Timestamp::new(3000, 7));
        let m = member(newer, b"./f".to_vec(), b"./f", None, &options).unwrap();
        assert_eq!((m.mtime, m.records.as_slice()), (2000, b"".as_slice()));
        let older = file_node(1, 0, Timestamp::new(1000, 7));
        let m = member(older.clone(), b"./f".to_vec(), b"./f", None, &options).unwrap();
        assert_eq!(
            (m.mtime, m.records.as_slice()),
            (1000, b"24 mtime=1000.000000007\n".as_slice())
        );
        options.mtime = MtimePolicy::Force(2000);
        let m = member(older, b"./f".to_vec(), b"./f", None, &options).unwrap();
        assert_eq!((m.mtime, m.records.as_slice()), (2000, b"".as_slice()));
    }
}
