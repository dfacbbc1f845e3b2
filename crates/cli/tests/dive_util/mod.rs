//! Helpers for the `berth dive` black-box tests: hand-written layer tars and
//! docker-archives, so every number the tests assert can be computed by hand.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

/// One tar entry.
pub enum Ent<'a> {
    Dir(&'a str),
    /// path, data, mode
    File(&'a str, &'a [u8], u32),
    Whiteout(&'a str),
}

pub fn layer_tar(entries: &[Ent<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        let (path, data, mode, kind): (&str, &[u8], u32, tar::EntryType) = match e {
            Ent::Dir(p) => (p, &[], 0o755, tar::EntryType::Directory),
            Ent::File(p, d, m) => (p, d, *m, tar::EntryType::Regular),
            Ent::Whiteout(p) => (p, &[], 0o644, tar::EntryType::Regular),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    berth_oci::Digest::sha256_of(data).hex().to_owned()
}

/// Writes a docker-archive (`docker save` layout) holding one image.
pub fn write_docker_archive(path: &Path, tag: &str, layers: &[Vec<u8>], commands: &[&str]) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let history: Vec<serde_json::Value> = commands
        .iter()
        .map(|c| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": c}))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": berth_oci::Platform::host().architecture,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", sha256_hex(l)))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layer_names,
    }]))
    .unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    // Layers first and the manifest last, as `docker save` writes them.
    for (name, data) in layer_names.iter().zip(layers) {
        add(name, data);
    }
    add(&config_name, &config);
    add("manifest.json", &manifest);
    b.finish().unwrap();
}

/// The four-layer image most tests use. By hand, from METRICS.md:
///
/// | layer | entries | size |
/// |---|---|---|
/// | 0 | etc/, etc/conf (1000), usr/, usr/lib/, usr/lib/big (5000), bin/app (2000, 0644) | 8000 |
/// | 1 | etc/, etc/conf (1000, identical) | 1000 |
/// | 2 | bin/app (2000, same data, 0755) | 2000 |
/// | 3 | usr/.wh.lib | 0 |
///
/// dive: /etc/conf 1000+1000 (min 1000), /bin/app 2000+2000 (min 2000),
/// /usr/lib/big 5000, /usr/lib (whiteout of a directory) 5000.
/// Efficiency 13000/16000 = 0.8125; wasted 2000+4000 = 6000; user size
/// 1000+2000+0 = 3000; user wasted 6000/3000 = 2.
///
/// berth: shipped 11000; waste = 1000 (duplicate) + 2000 (chmod-only) +
/// 5000 (deleted directory) = 8000; final 3000; efficiency 3/11; user
/// wasted 8000/3000.
pub fn four_layers() -> Vec<Vec<u8>> {
    let conf = vec![b'c'; 1000];
    let big = vec![b'b'; 5000];
    let app = vec![b'a'; 2000];
    vec![
        layer_tar(&[
            Ent::Dir("etc/"),
            Ent::File("etc/conf", &conf, 0o644),
            Ent::Dir("usr/"),
            Ent::Dir("usr/lib/"),
            Ent::File("usr/lib/big", &big, 0o644),
            Ent::File("bin/app", &app, 0o644),
        ]),
        layer_tar(&[Ent::Dir("etc/"), Ent::File("etc/conf", &conf, 0o644)]),
        layer_tar(&[Ent::File("bin/app", &app, 0o755)]),
        layer_tar(&[Ent::Whiteout("usr/.wh.lib")]),
    ]
}

pub const FOUR_COMMANDS: [&str; 4] = [
    "ADD rootfs.tar /",
    "COPY conf /etc/conf",
    "RUN chmod +x /bin/app",
    "RUN rm -rf /usr/lib",
];

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Writes an OCI archive holding one image named `name` (a full reference);
/// returns the manifest's digest. The manifest carries `annotations`.
pub fn write_oci_archive(
    path: &Path,
    name: &str,
    layers: &[Vec<u8>],
    annotations: serde_json::Value,
) -> String {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut put = |data: Vec<u8>| -> (String, usize) {
        let d = format!("sha256:{}", sha256_hex(&data));
        let n = data.len();
        blobs.push((d.clone(), data));
        (d, n)
    };
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (d, n) = put(l.clone());
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
        })
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": berth_oci::Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let (cd, cs) = put(config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layer_descs,
        "annotations": annotations,
    }))
    .unwrap();
    let (md, ms) = put(manifest);
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
        }],
    }))
    .unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for (d, data) in &blobs {
        add(
            &format!("blobs/sha256/{}", d.trim_start_matches("sha256:")),
            data,
        );
    }
    b.finish().unwrap();
    md
}
