//! Unit tests over hand-built layer tars. Every expected number is computed
//! by hand from the definitions in `METRICS.md`; the comments show the sums.

use crate::analysis::{ImageLayers, LayerMeta, UserLayers, UserLayersFrom, analyze};
use crate::fs::{Status, WasteReason};
use crate::layer::LayerTree;

/// A tar entry for tests.
pub(crate) enum E<'a> {
    Dir(&'a str),
    File(&'a str, usize, u32, u64),
    Whiteout(&'a str),
    Hardlink(&'a str, &'a str),
    Symlink(&'a str, &'a str),
}

pub(crate) fn file(path: &str, size: usize) -> E<'_> {
    E::File(path, size, 0o644, 0)
}

pub(crate) fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, size, mode, uid) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_size(*size as u64);
                b.append_data(&mut h, p, &vec![b'x'; *size][..]).unwrap();
            }
            E::Whiteout(p) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::Hardlink(p, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub(crate) fn image(layers: &[Vec<E<'_>>]) -> ImageLayers {
    ImageLayers {
        name: "test".into(),
        layers: layers
            .iter()
            .map(|l| (LayerMeta::default(), LayerTree::read(&tar(l)[..]).unwrap()))
            .collect(),
        user_layers: UserLayers::all_but_first(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn duplicate_file_kept_copy_is_not_waste() {
    let a = analyze(image(&[
        vec![E::Dir("a/"), file("a/f", 100)],
        vec![E::Dir("a/"), file("a/f", 100)],
    ]));
    // dive: /a/f seen twice, Cumulative 200, Min 100.
    assert!(close(a.dive.efficiency, 100.0 / 200.0));
    assert_eq!(a.dive.wasted_bytes, 200);
    assert_eq!(a.dive.user_size_bytes, 100);
    assert!(close(a.dive.user_wasted_percent, 2.0));
    assert_eq!(a.dive.inefficiencies.len(), 1);
    assert_eq!(a.dive.inefficiencies[0].path, "/a/f");
    assert_eq!(a.dive.inefficiencies[0].count, 2);
    // berth: 200 shipped, the copy in layer 1 ships, layer 0's is waste.
    assert_eq!(a.berth.total_bytes, 200);
    assert_eq!(a.berth.wasted_bytes, 100);
    assert_eq!(a.berth.final_bytes, 100);
    assert_eq!(a.berth.duplicate_bytes, 100);
    assert!(close(a.berth.efficiency, 0.5));
    assert_eq!(a.berth.user_bytes, 100);
    assert_eq!(a.berth.user_wasted_bytes, 100);
    assert!(close(a.berth.user_wasted_percent, 1.0));
    assert_eq!(a.waste.len(), 1);
    assert_eq!(a.waste[0].reason, WasteReason::Duplicate);
    assert_eq!((a.waste[0].layer, a.waste[0].by_layer), (Some(0), 1));
}

#[test]
fn file_deleted_later() {
    let a = analyze(image(&[
        vec![E::Dir("a/"), file("a/f", 100), file("b", 50)],
        vec![E::Whiteout("a/.wh.f")],
    ]));
    // dive: /a/f = 100 + 0 (whiteout of a file), Min 0; /b = 50.
    // Efficiency (0 + 50) / (100 + 50); wasted 100; user size 0.
    assert!(close(a.dive.efficiency, 50.0 / 150.0));
    assert_eq!(a.dive.wasted_bytes, 100);
    assert_eq!(a.dive.user_size_bytes, 0);
    assert!(a.dive.user_wasted_percent.is_infinite());
    // berth: the 100 deleted bytes are waste.
    assert_eq!(a.berth.wasted_bytes, 100);
    assert_eq!(a.berth.deleted_bytes, 100);
    assert_eq!(a.berth.final_bytes, 50);
    assert!(close(a.berth.efficiency, 50.0 / 150.0));
    assert!(a.berth.user_wasted_percent.is_infinite());
    assert_eq!(a.waste[0].reason, WasteReason::DeletedFile);
    assert!(a.final_tree.find("/a/f").is_none());
    assert!(a.final_tree.find("/b").is_some());
}

#[test]
fn directory_deleted_later_is_waste_for_berth_only() {
    let a = analyze(image(&[
        vec![
            E::Dir("d/"),
            file("d/x", 30),
            file("d/y", 70),
            E::Dir("d/sub/"),
            file("d/sub/z", 20),
            file("keep", 10),
            // Listed without its parent directory: dive's stacked tree does
            // not know /e is a directory.
            file("e/f", 40),
        ],
        vec![E::Whiteout(".wh.d"), E::Whiteout(".wh.e")],
    ]));
    // dive leaves: /d/x 30, /d/y 70, /d/sub/z 20, /keep 10, /e/f 40 (layer 0);
    // /d = subtree of /d = 0+30+70+0+20 = 120, /e = 0 (not a directory to dive)
    // (layer 1). Every path is seen once: no waste, efficiency 1.
    assert!(close(a.dive.efficiency, 1.0));
    assert_eq!(a.dive.wasted_bytes, 0);
    assert!(a.dive.user_wasted_percent.is_nan());
    // berth: 120 + 40 hidden by deleting directories.
    assert_eq!(a.berth.total_bytes, 170);
    assert_eq!(a.berth.wasted_bytes, 160);
    assert_eq!(a.berth.final_bytes, 10);
    assert!(close(a.berth.efficiency, 10.0 / 170.0));
    assert_eq!(a.waste[0].path, "/d");
    assert_eq!(a.waste[0].bytes, 120);
    assert_eq!(a.waste[0].files, 3);
    assert_eq!(a.waste[0].reason, WasteReason::DeletedDir);
    assert_eq!(a.waste[1].path, "/e");
    assert_eq!(a.waste[1].bytes, 40);
    assert_eq!(a.layers[1].changes.removed, 2);
    assert_eq!(a.layers[1].changes.hidden_bytes, 160);
}

#[test]
fn opaque_directory_hides_lower_content() {
    let a = analyze(image(&[
        vec![E::Dir("o/"), file("o/a", 5), file("o/b", 7)],
        vec![E::Dir("o/"), E::Whiteout("o/.wh..wh..opq"), file("o/c", 3)],
    ]));
    // dive drops the marker: leaves /o/a 5, /o/b 7, /o/c 3, each once.
    assert!(close(a.dive.efficiency, 1.0));
    assert_eq!(a.dive.wasted_bytes, 0);
    assert_eq!(a.dive.user_size_bytes, 3);
    assert!(close(a.dive.user_wasted_percent, 0.0));
    // berth: 5 + 7 hidden by the opaque directory.
    assert_eq!(a.berth.wasted_bytes, 12);
    assert_eq!(a.berth.final_bytes, 3);
    assert!(close(a.berth.efficiency, 3.0 / 15.0));
    assert!(close(a.berth.user_wasted_percent, 12.0 / 3.0));
    assert_eq!(a.waste[0].reason, WasteReason::OpaqueDir);
    assert_eq!((a.waste[0].path.as_str(), a.waste[0].files), ("/o", 2));
    let o = a.final_tree.find("/o").unwrap();
    let names: Vec<&str> = a.final_tree.node(o).children.keys().map(|k| &**k).collect();
    assert_eq!(names, ["c"]);
    // The view of layer 1 keeps the hidden files, marked removed.
    let v = a.view(1);
    assert_eq!(v.node(v.find("/o/a").unwrap()).status, Status::Removed);
    assert_eq!(v.node(v.find("/o/c").unwrap()).status, Status::Added);
    let o = v.find("/o").unwrap();
    assert_eq!(v.visible_size(o), 3, "removed children left out");
    assert_eq!(v.visible_size(v.find("/o/a").unwrap()), 5);
}

#[test]
fn chmod_and_chown_only_copies_are_called_out() {
    let a = analyze(image(&[
        vec![E::File("f", 100, 0o644, 0)],
        vec![E::File("f", 100, 0o755, 0)],
        vec![E::File("f", 100, 0o755, 1000)],
    ]));
    // dive: /f = 100 + 100 + 100, Min 100: efficiency 1/3, wasted 300,
    // user size 200, user wasted 1.5.
    assert!(close(a.dive.efficiency, 100.0 / 300.0));
    assert_eq!(a.dive.wasted_bytes, 300);
    assert!(close(a.dive.user_wasted_percent, 1.5));
    // berth: two earlier copies are waste, both metadata-only.
    assert_eq!(a.berth.wasted_bytes, 200);
    assert_eq!(a.berth.metadata_only_bytes, 200);
    assert!(close(a.berth.efficiency, 100.0 / 300.0));
    let mut items: Vec<_> = a
        .waste
        .iter()
        .map(|w| (w.layer, w.by_layer, w.change.unwrap()))
        .collect();
    items.sort_by_key(|i| i.1);
    assert!(items[0].2.mode && !items[0].2.owner && !items[0].2.content);
    assert!(!items[1].2.mode && items[1].2.owner && !items[1].2.content);
    assert_eq!((items[0].0, items[1].0), (Some(0), Some(1)));
    let v = a.view(1);
    let f = v.node(v.find("/f").unwrap());
    assert_eq!(f.status, Status::Modified);
    assert!(f.change.mode && !f.change.content);
}

#[test]
fn hardlinks_count_zero_and_keep_their_data() {
    let a = analyze(image(&[
        vec![
            E::Dir("bin/"),
            file("bin/a", 64),
            E::Hardlink("bin/b", "bin/a"),
        ],
        vec![E::Whiteout("bin/.wh.a")],
    ]));
    // dive: /bin/a = 64 + 0, Min 0; /bin/b = 0. Efficiency 0 / 64 = 0, wasted 64.
    assert_eq!(a.layers[0].size, 64);
    assert!(close(a.dive.efficiency, 0.0));
    assert_eq!(a.dive.wasted_bytes, 64);
    // berth: /bin/b still holds the data, so nothing is wasted.
    assert_eq!(a.berth.wasted_bytes, 0);
    assert_eq!(a.berth.final_bytes, 64);
    assert!(close(a.berth.efficiency, 1.0));

    // Without the surviving link the data is waste.
    let b = analyze(image(&[
        vec![
            E::Dir("bin/"),
            file("bin/a", 64),
            E::Hardlink("bin/b", "bin/a"),
        ],
        vec![E::Whiteout("bin/.wh.a"), E::Whiteout("bin/.wh.b")],
    ]));
    assert_eq!(b.berth.wasted_bytes, 64);
}

#[test]
fn replaced_content_symlinks_and_same_layer_duplicates() {
    let a = analyze(image(&[
        vec![file("f", 10), file("f", 20), E::Symlink("l", "f")],
        vec![file("f", 5), E::Symlink("l", "g")],
    ]));
    // dive: layer 0 size 10 + 20 = 30 (every entry counts), tree keeps the
    // last /f (20). /f = 20 + 5, Min 5; /l = 0 + 0.
    // Efficiency (5 + 0) / (25 + 0) = 0.2, wasted 25, user size 5.
    assert_eq!(a.dive.size_bytes, 35);
    assert!(close(a.dive.efficiency, 0.2));
    assert_eq!(a.dive.wasted_bytes, 25);
    assert!(close(a.dive.user_wasted_percent, 5.0));
    // berth: the first /f (10, same layer) and the second (20, replaced).
    assert_eq!(a.berth.total_bytes, 35);
    assert_eq!(a.berth.same_layer_bytes, 10);
    assert_eq!(a.berth.replaced_bytes, 20);
    assert_eq!(a.berth.final_bytes, 5);
    let v = a.view(1);
    let l = v.node(v.find("/l").unwrap());
    assert_eq!(l.status, Status::Modified);
    assert!(l.change.content, "a new link target is a content change");
}

#[test]
fn dive_abandons_a_layer_walk_at_a_dangling_whiteout() {
    let a = analyze(image(&[
        vec![file("a", 10)],
        // Sorted, ".wh.zzz" comes before "b": dive stops before counting /b.
        vec![E::Whiteout(".wh.zzz"), file("b", 5), file("a", 10)],
    ]));
    assert_eq!(a.dive.aborted_walks.len(), 1);
    assert_eq!(a.dive.aborted_walks[0].whiteout, "/zzz");
    // Only /a from layer 0 was counted: efficiency 1, nothing wasted.
    assert!(close(a.dive.efficiency, 1.0));
    assert_eq!(a.dive.wasted_bytes, 0);
    // berth counts the duplicate /a.
    assert_eq!(a.berth.wasted_bytes, 10);
}

#[test]
fn user_layers_from_base_annotations() {
    let mut img = image(&[
        vec![file("base1", 100)],
        vec![file("base2", 50), E::Whiteout(".wh.base1")],
        vec![file("app", 20), E::Whiteout(".wh.base2")],
    ]);
    img.user_layers = UserLayers {
        first: 2,
        from: UserLayersFrom::BaseAnnotations {
            name: Some("docker.io/library/base:1".into()),
            digest: "sha256:00".into(),
        },
    };
    let a = analyze(img);
    // Waste: base1 (100, hidden by layer 1, base) and base2 (50, by layer 2, user).
    assert_eq!(a.berth.wasted_bytes, 150);
    assert_eq!(a.berth.user_bytes, 20);
    assert_eq!(a.berth.user_wasted_bytes, 50);
    assert!(close(a.berth.user_wasted_percent, 2.5));
    assert!(!a.layers[1].user && a.layers[2].user);
    // dive still uses "all but the first": user size 50 + 20.
    assert_eq!(a.dive.user_size_bytes, 70);
}

#[test]
fn empty_image_is_fully_efficient() {
    let a = analyze(image(&[vec![]]));
    assert!(close(a.dive.efficiency, 1.0));
    assert!(close(a.berth.efficiency, 1.0));
    assert_eq!(a.berth.wasted_bytes, 0);
}

#[test]
fn final_bytes_match_the_final_tree() {
    let a = analyze(image(&[
        vec![E::Dir("a/"), file("a/1", 11), file("a/2", 22), file("x", 7)],
        vec![
            file("a/1", 13),
            E::Whiteout("a/.wh.2"),
            E::Dir("y/"),
            file("y/z", 5),
        ],
        vec![E::Whiteout(".wh.y"), file("x", 7)],
    ]));
    let tree_sum = a.final_tree.subtree_size(a.final_tree.root());
    assert_eq!(tree_sum, 13 + 7);
    assert_eq!(a.berth.final_bytes, tree_sum);
    assert_eq!(a.berth.total_bytes, 11 + 22 + 7 + 13 + 5 + 7);
}

#[test]
fn aggregated_view_marks_changes_since_the_first_layer() {
    let a = analyze(image(&[
        vec![E::Dir("d/"), file("d/x", 3), file("f", 1), file("g", 2)],
        vec![file("f", 5), E::Whiteout("d/.wh.x")],
        vec![file("n", 4)],
    ]));
    let v = a.aggregated_view(2);
    let st = |p: &str| v.node(v.find(p).unwrap()).status;
    assert_eq!(st("/n"), Status::Added);
    assert_eq!(st("/f"), Status::Modified);
    assert_eq!(st("/d/x"), Status::Removed);
    assert_eq!(st("/g"), Status::Unchanged);
    // Layer 0 against nothing: everything is new.
    let v0 = a.aggregated_view(0);
    assert_eq!(v0.node(v0.find("/g").unwrap()).status, Status::Added);
}

#[test]
fn cat_takes_the_last_copy_of_a_path_listed_twice() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    // One layer listing /f twice: 3 bytes, then 5.
    let mut b = tar::Builder::new(Vec::new());
    for data in [&b"one"[..], &b"three"[..]] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", data).unwrap();
    }
    let layer = b.into_inner().unwrap();
    // An OCI layout holding it.
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = berth_oci::Digest::sha256_of(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        (d.to_string(), data.len())
    };
    let (ld, ls) = put(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
    );
    let (cd, cs) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ls}}}]}}"#
    );
    let (md, ms) = put(manifest.as_bytes());
    let mut index = std::fs::File::create(dir.path().join("index.json")).unwrap();
    write!(
        index,
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{ms}}}]}}"#
    )
    .unwrap();
    let src = crate::source::Source::OciDir(dir.path().to_owned());
    let (info, layers) = crate::source::load(&src, None).unwrap();
    let a = analyze(layers);
    assert_eq!(a.berth.same_layer_bytes, 3);
    let mut out = Vec::new();
    crate::source::cat(&src, "/f", 0, &a.trees[0], &info, &mut out).unwrap();
    assert_eq!(out, b"three");
}

/// A remote image held in memory: blobs served through berth-oci's
/// verifying reader, as a registry-backed implementation must.
#[derive(Debug)]
struct MemoryRemote {
    manifest: berth_oci::ImageManifest,
    config: Vec<u8>,
    /// What is served for each layer digest (may differ from the truth).
    served: std::collections::HashMap<berth_oci::Digest, Vec<u8>>,
    base: Option<Vec<berth_oci::Digest>>,
}

impl crate::source::Remote for MemoryRemote {
    fn name(&self) -> String {
        "memory/image:1".into()
    }
    fn manifest(&self) -> &berth_oci::ImageManifest {
        &self.manifest
    }
    fn config(&self) -> &[u8] {
        &self.config
    }
    fn open(&self, desc: &berth_oci::Descriptor) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let bytes = &self.served[&desc.digest];
        Ok(Box::new(berth_oci::VerifyingReader::new(
            &bytes[..],
            desc.digest.clone(),
            Some(desc.size),
        )))
    }
    fn base_layers(
        &self,
        name: Option<&str>,
        _digest: &berth_oci::Digest,
    ) -> Option<Vec<berth_oci::Digest>> {
        assert_eq!(name, Some("example.com/base:1"));
        self.base.clone()
    }
}

/// Two uncompressed layers, the second padded with zeros after the tar's
/// end (as tar writers pad to whole records); returns the remote with
/// `corrupt_padding` flipping the last padding byte of what is served.
fn memory_remote(corrupt_padding: bool) -> MemoryRemote {
    use berth_oci::descriptor::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME};
    let l0 = tar(&[E::Dir("d/"), file("d/x", 30), file("keep", 5)]);
    let mut l1 = tar(&[E::Whiteout("d/.wh.x"), file("new", 7)]);
    l1.extend_from_slice(&[0u8; 10240]);
    let descs: Vec<berth_oci::Descriptor> = [&l0, &l1]
        .iter()
        .map(|l| {
            berth_oci::Descriptor::new(
                berth_oci::media_type::OCI_LAYER_TAR,
                berth_oci::Digest::sha256_of(l),
                l.len() as u64,
            )
        })
        .collect();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"base"},{"created_by":"RUN rm /d/x"}]}"#.to_vec();
    let mut served = std::collections::HashMap::new();
    served.insert(descs[0].digest.clone(), l0);
    let mut bad = l1.clone();
    if corrupt_padding {
        *bad.last_mut().unwrap() = 0xff;
    }
    served.insert(descs[1].digest.clone(), bad);
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(
        ANNOTATION_BASE_NAME.to_owned(),
        "example.com/base:1".to_owned(),
    );
    annotations.insert(
        ANNOTATION_BASE_DIGEST.to_owned(),
        berth_oci::Digest::sha256_of(b"base manifest").to_string(),
    );
    MemoryRemote {
        manifest: berth_oci::ImageManifest {
            schema_version: 2,
            media_type: Some(berth_oci::media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config: berth_oci::Descriptor::new(
                berth_oci::media_type::OCI_CONFIG,
                berth_oci::Digest::sha256_of(&config),
                config.len() as u64,
            ),
            layers: descs.clone(),
            subject: None,
            annotations,
        },
        config,
        served,
        base: Some(vec![descs[0].digest.clone()]),
    }
}

#[test]
fn remote_source_streams_layers_and_verifies_each_to_its_end() {
    let src = crate::source::Source::Remote(std::sync::Arc::new(memory_remote(false)));
    let (info, layers) = crate::source::load(&src, None).unwrap();
    assert_eq!(info.name, "memory/image:1");
    assert_eq!(info.layers[1].1.created_by, "RUN rm /d/x");
    let a = analyze(layers);
    assert_eq!(a.berth.deleted_bytes, 30);
    // The base annotations, answered by the remote, mark layer 1 as the user's.
    assert!(!a.layers[0].user && a.layers[1].user);
    let mut out = Vec::new();
    crate::source::cat(&src, "/new", 1, &a.trees[1], &info, &mut out).unwrap();
    assert_eq!(out, b"xxxxxxx");

    // The corrupt byte lies after the tar's end, where a tar reader stops:
    // only reading each blob to its end finds it.
    let src = crate::source::Source::Remote(std::sync::Arc::new(memory_remote(true)));
    let err = crate::source::load(&src, None).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("digest mismatch"), "{chain}");
    let err = crate::source::cat(&src, "/new", 1, &a.trees[1], &info, &mut Vec::new()).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("digest mismatch"), "{chain}");
}
