//! The containers/storage dialect against the real podman 4.3 (Debian's): a tree with the
//! header edge cases goes into an image the way the world's recipe does it (`ADD` of a GNU
//! tarball into a stage, `COPY --from` it into `scratch`, `--timestamp SDE`), and the COPY
//! layer podman commits must equal the writer's layer of the same tree, byte for byte.
//! Needs root (vfs storage, device nodes, owners).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same_tar, require_root, run, sh};
use repro_tar::gostorage::{self, GoOptions};

const SDE: i64 = 1_793_664_000;

/// podman with a private vfs storage under a tempdir, removed on drop.
struct Podman {
    dir: tempfile::TempDir,
    runroot: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::tempdir().unwrap();
        // podman refuses a runroot path longer than 50 characters: keep it short.
        let runroot = tempfile::Builder::new()
            .prefix("rt-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        Podman { dir, runroot }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot.path())
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--tmpdir")
            .arg(self.dir.path().join("tmp"))
            .env("TMPDIR", self.dir.path().join("tmp"));
        c
    }

    /// Build `context` with `--timestamp`, copy the image into an oci: layout with
    /// uncompressed layers, and return the layers' bytes.
    fn layers(&self, context: &Path, timestamp: i64) -> Vec<Vec<u8>> {
        run(self
            .cmd()
            .args([
                "build",
                "--isolation",
                "chroot",
                "--network",
                "host",
                "--pull=never",
                "--format",
                "oci",
            ])
            .arg("--timestamp")
            .arg(timestamp.to_string())
            .args(["-t", "localhost/repro-tar-test:1"])
            .arg(context));
        let layout = self.dir.path().join("oci");
        let src = format!(
            "containers-storage:[vfs@{}+{}]localhost/repro-tar-test:1",
            self.root().display(),
            self.runroot.path().display()
        );
        run(Command::new("skopeo")
            .env("TMPDIR", self.dir.path().join("tmp"))
            .args(["copy", "-q", "--dest-oci-accept-uncompressed-layers", &src])
            .arg(format!("oci:{}:t", layout.display())));
        let json = |p: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
        };
        let blob = |d: &str| {
            layout
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap())
        };
        let index = json(layout.join("index.json"));
        let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| std::fs::read(blob(l["digest"].as_str().unwrap())).unwrap())
            .collect()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // vfs layers are plain directories, but podman's own cleanup comes first.
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
    }
}

#[test]
fn copy_layer_of_an_edge_case_tree_equals_podmans() {
    require_root("building images with podman");
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let context = work.path().join("context");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&context).unwrap();
    sh(
        r#"
        p=$(printf 'p%.0s' $(seq 1 60)); q=$(printf 'q%.0s' $(seq 1 60))
        mkdir -p "a/$p/$q"; echo y > "a/$p/$q/file"                       # USTAR prefix split
        a100=$(printf 'a%.0s' $(seq 1 100)); mkdir -p "e/$a100"; echo z > "e/$a100/long-100.txt"
        echo l > "$(printf 'L%.0s' $(seq 1 120))"                           # PAX path
        echo u > 'héllo'; mkdir 'dïr'; echo v > 'dïr/ü-日本語.txt'          # non-ASCII
        ln -s 'tärget' ulink; ln -s "$(printf 'T%.0s' $(seq 1 120))" longlink
        ln -s "$(printf 'S%.0s' $(seq 1 100))" link100
        echo h > h1; ln h1 h2; mkdir d; ln h1 d/h3
        mkfifo fifo; mknod cdev c 1 3; mknod bdev b 8 1
        echo s > suid; chmod 4755 suid; echo g > sgid; chmod 2755 sgid
        mkdir sticky; chmod 1777 sticky; mkdir ro; echo r > ro/f; chmod 555 ro; mkdir empty
        echo b > bigid; chown 3000000:4000000 bigid; echo o > owned; chown 1000:1001 owned
        echo x > xa; setfattr -n user.foo -v bar xa; setcap cap_net_raw+ep xa; setfattr -n trusted.t -v 1 xa
        head -c 511 /dev/urandom > s511; head -c 513 /dev/urandom > s513; : > zero
        find . -exec touch -h -d @1600000000 {} +
        "#,
        &tree,
    );
    run(Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--sort=name",
            "-C",
        ])
        .arg(&tree)
        .args(["-cf"])
        .arg(context.join("rootfs.tar"))
        .arg("."));
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch AS verify\nADD rootfs.tar /rootfs/\n\nFROM scratch\nCOPY --from=verify /rootfs/ /\n",
    )
    .unwrap();
    let expected = Podman::new().layers(&context, SDE).remove(0);
    let layer = gostorage::plan_tree(
        &tree,
        &GoOptions {
            timestamp: Some(SDE),
            ..Default::default()
        },
    )
    .unwrap();
    let mut ours = Vec::new();
    layer.write_to(&mut ours).unwrap();
    assert_same_tar(
        &expected,
        &ours,
        "podman's COPY layer of the edge-case tree",
    );
}

/// A `RUN` that deletes, adds and modifies, on the world's rootfs: podman's `ADD` layer
/// and `RUN` layer (with whiteouts) against the writer's, the RUN layer made from the
/// changes the same commands make in a chroot.
#[test]
fn run_layer_with_deletions_equals_podmans() {
    require_root("building images with podman");
    let world = repro_world::World::up();
    let rootfs = Path::new(world.get("WORLD_ROOTFS_REPRO_TAR"));
    let step = "rm /etc/issue && rm -r /home/alice && mkdir /newdir && echo hi > /newdir/f && chmod 600 /etc/fstab";
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(rootfs, context.join("rootfs.tar")).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nADD rootfs.tar /\nRUN {step}\n"),
    )
    .unwrap();
    let expected = Podman::new().layers(&context, SDE);
    assert_eq!(expected.len(), 2);

    let tree = work.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
            "--same-owner",
            "-xpf",
        ])
        .arg(rootfs)
        .arg("-C")
        .arg(&tree));
    let options = GoOptions {
        timestamp: Some(SDE),
        ..Default::default()
    };
    let mut ours = Vec::new();
    gostorage::plan_tree(&tree, &options)
        .unwrap()
        .write_to(&mut ours)
        .unwrap();
    assert_same_tar(
        &expected[0],
        &ours,
        "podman's ADD layer of the world's rootfs",
    );

    let before = gostorage::Snapshot::take(&tree).unwrap();
    // What podman's chroot isolation leaves in the tree, then the step itself.
    sh(
        "mkdir -m 0755 dev proc sys
         install -m 0755 /dev/null etc/hostname
         install -m 0755 /dev/null etc/resolv.conf",
        &tree,
    );
    run(Command::new("chroot")
        .arg(&tree)
        .args(["/bin/sh", "-c", step])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ));
    let changes = before.changes(&tree).unwrap();
    let mut ours = Vec::new();
    gostorage::plan_changes(&tree, &changes, &options)
        .unwrap()
        .write_to(&mut ours)
        .unwrap();
    assert_same_tar(&expected[1], &ours, "podman's RUN layer with whiteouts");
}
