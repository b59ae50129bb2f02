use std::collections::BTreeMap;

use super::*;
use crate::config::RelPath;
use crate::object::SecretBytes;

fn payload(files: &[(&str, &str, u32)]) -> Payload {
    Payload(
        files
            .iter()
            .map(|(p, v, m)| {
                (
                    RelPath::parse(p).expect("path"),
                    FileContent {
                        bytes: SecretBytes::new(Zeroizing::new(v.as_bytes().to_vec())),
                        mode: Mode(*m),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    )
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).expect("stat").mode() & 0o7777
}

fn versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_version_name(n))
        .collect();
    v.sort();
    v
}

#[test]
fn writes_the_kubelet_layout_and_swaps_versions() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("t");
    fs::create_dir(&dir).expect("mkdir");
    let opts = WriteOptions::default();
    let p1 = payload(&[("a", "one", 0o400), ("sub/b", "two", 0o400)]);
    assert!(write_dir(&dir, &p1, &opts).expect("write"));
    let data = fs::read_link(dir.join("..data")).expect("..data");
    let v1 = data.to_str().expect("utf8").to_owned();
    assert!(is_version_name(&v1), "{v1}");
    assert_eq!(
        fs::read_link(dir.join("a")).expect("a"),
        Path::new("..data/a")
    );
    assert_eq!(
        fs::read_link(dir.join("sub")).expect("sub"),
        Path::new("..data/sub")
    );
    assert_eq!(fs::read_to_string(dir.join("sub/b")).expect("b"), "two");
    assert_eq!(mode(&dir.join(&v1).join("a")), 0o400);
    assert_eq!(mode(&dir.join(&v1)), 0o700);
    assert_eq!(mode(&dir.join(&v1).join("sub")), 0o700);
    assert_eq!(mode(&dir), 0o700);

    assert!(
        !write_dir(&dir, &p1, &opts).expect("same"),
        "no change, no write"
    );
    assert_eq!(versions(&dir), vec![v1.clone()]);

    let p2 = payload(&[("a", "uno", 0o440), ("c", "tres", 0o400)]);
    assert!(write_dir(&dir, &p2, &opts).expect("write"));
    let v2 = fs::read_link(dir.join("..data")).expect("..data");
    assert_ne!(v2, Path::new(&v1));
    assert_eq!(versions(&dir).len(), 1, "the old version is removed");
    assert_eq!(fs::read_to_string(dir.join("a")).expect("a"), "uno");
    assert_eq!(fs::read_to_string(dir.join("c")).expect("c"), "tres");
    assert!(
        fs::symlink_metadata(dir.join("sub")).is_err(),
        "removed keys disappear"
    );
    assert_eq!(
        mode(&dir),
        0o750,
        "group-readable files open the directory to the group"
    );
    assert_eq!(mode(&dir.join(&v2).join("a")), 0o440);

    // Foreign files are left alone; an empty payload clears the volume.
    fs::write(dir.join("note.txt"), "mine").expect("write");
    assert!(write_dir(&dir, &Payload::default(), &opts).expect("clear"));
    let names: BTreeSet<String> = fs::read_dir(&dir)
        .expect("ls")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !is_version_name(n))
        .collect();
    assert_eq!(
        names,
        ["..data", "note.txt"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn a_version_left_by_a_crash_is_removed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_owned();
    let p = payload(&[("k", "v", 0o400)]);
    assert!(write_dir(&dir, &p, &WriteOptions::default()).expect("write"));
    let stale = dir.join("..2020_01_01_00_00_00.000000001");
    fs::create_dir(&stale).expect("mkdir");
    fs::write(stale.join("k"), "old value").expect("write");
    assert!(write_dir(&dir, &p, &WriteOptions::default()).expect("rewrite"));
    assert!(!stale.exists());
    assert_eq!(versions(&dir).len(), 1);
}

#[test]
fn mode_and_owner_changes_rewrite_and_repairs_happen() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_owned();
    let me = fs::metadata(&dir).expect("stat");
    let opts = WriteOptions {
        uid: Some(me.uid()),
        gid: Some(me.gid()),
        ..WriteOptions::default()
    };
    assert!(write_dir(&dir, &payload(&[("k", "v", 0o400)]), &opts).expect("write"));
    assert!(write_dir(&dir, &payload(&[("k", "v", 0o600)]), &opts).expect("mode change"));
    fs::remove_file(dir.join("k")).expect("rm link");
    assert!(write_dir(&dir, &payload(&[("k", "v", 0o600)]), &opts).expect("repair"));
    assert_eq!(fs::read_to_string(dir.join("k")).expect("k"), "v");
    // A file where a link should be is reported, not overwritten.
    fs::remove_file(dir.join("k")).expect("rm link");
    fs::write(dir.join("k"), "foreign").expect("write");
    let e = write_dir(&dir, &payload(&[("k", "w", 0o600)]), &opts).expect_err("foreign");
    assert!(e.to_string().contains("not a link the agent made"), "{e}");
    assert_eq!(fs::read_to_string(dir.join("k")).expect("k"), "foreign");
}

#[test]
fn single_files_are_replaced_by_rename_and_removed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let f = tmp.path().join("password");
    let opts = WriteOptions::default();
    let c = |v: &str, m: u32| FileContent {
        bytes: SecretBytes::new(Zeroizing::new(v.as_bytes().to_vec())),
        mode: Mode(m),
    };
    assert!(write_file(&f, Some(&c("one", 0o400)), &opts).expect("write"));
    assert!(!write_file(&f, Some(&c("one", 0o400)), &opts).expect("same"));
    let ino = fs::metadata(&f).expect("stat").ino();
    assert!(write_file(&f, Some(&c("two", 0o440)), &opts).expect("update"));
    assert_ne!(
        fs::metadata(&f).expect("stat").ino(),
        ino,
        "a new inode: renamed in"
    );
    assert_eq!(fs::read_to_string(&f).expect("read"), "two");
    assert_eq!(mode(&f), 0o440);
    assert_eq!(
        fs::read_dir(tmp.path()).expect("ls").count(),
        1,
        "no temporary left"
    );
    assert!(write_file(&f, None, &opts).expect("remove"));
    assert!(!f.exists());
    assert!(!write_file(&f, None, &opts).expect("already gone"));
}

#[test]
fn prepare_refuses_open_directories_and_disks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let open = tmp.path().join("open");
    fs::create_dir(&open).expect("mkdir");
    fs::set_permissions(&open, Permissions::from_mode(0o755)).expect("chmod");
    let relaxed = WriteOptions {
        allow_non_tmpfs: true,
        ..WriteOptions::default()
    };
    let e = prepare(&Target::Dir(open.clone()), Mode::DEFAULT, &relaxed).expect_err("0755");
    assert!(e.to_string().contains("--allow-world-readable"), "{e}");
    let lax = WriteOptions {
        allow_world_readable: true,
        ..relaxed
    };
    prepare(&Target::Dir(open), Mode::DEFAULT, &lax).expect("allowed");

    let fresh = tmp.path().join("a/b/fresh");
    prepare(&Target::Dir(fresh.clone()), Mode::DEFAULT, &relaxed).expect("created");
    assert_eq!(mode(&fresh), 0o700);

    let file = Target::File {
        path: tmp.path().join("f"),
        sub_path: RelPath::parse("k").expect("p"),
    };
    let e = prepare(&file, Mode(0o644), &relaxed).expect_err("world-readable file");
    assert!(e.to_string().contains("readable by every user"), "{e}");
    prepare(&file, Mode(0o640), &relaxed).expect("group is fine");

    // Memory filesystems pass without a flag; /dev/shm is a tmpfs on Linux.
    let shm = tempfile::tempdir_in("/dev/shm").expect("/dev/shm");
    assert_eq!(filesystem_of(shm.path()).expect("fs"), "tmpfs");
    let target = shm.path().join("t");
    prepare(
        &Target::Dir(target),
        Mode::DEFAULT,
        &WriteOptions::default(),
    )
    .expect("tmpfs");
}

#[test]
fn mountinfo_longest_prefix_and_escapes() {
    let info = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:27 / /run rw,nosuid - tmpfs tmpfs rw
31 30 0:28 / /run/my\\040dir rw - ramfs ramfs rw
32 22 0:29 / /runner rw - xfs /dev/vdb rw
33 30 0:30 / /run rw - overlay overlay rw
";
    let t = |p: &str| fs_type_in(info, Path::new(p));
    assert_eq!(t("/etc/x").as_deref(), Some("ext4"));
    assert_eq!(t("/run/my dir/x").as_deref(), Some("ramfs"));
    assert_eq!(
        t("/runner/x").as_deref(),
        Some("xfs"),
        "components, not string prefixes"
    );
    assert_eq!(
        t("/run/secrets").as_deref(),
        Some("overlay"),
        "the later over-mount wins"
    );
    assert!(is_memory("tmpfs") && is_memory("ramfs") && !is_memory("ext4"));
}
