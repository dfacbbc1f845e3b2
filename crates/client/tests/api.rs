//! The library entry points other crates call (the build engine pulls a
//! missing `FROM` image with [`berth_client::pull_blocking`]), against a
//! registry nobody here wrote: Debian's `docker-registry` (CNCF
//! distribution 2.8) on 127.0.0.1. The CLI tests (`crates/cli/tests/
//! client_transfer.rs`) cover the commands, auth and broken registries.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_client::progress::BlobOutcome;
use berth_client::{Client, ClientOptions, Event, ProgressSink, PullOptions, PushOptions};
use berth_image::ImageStore;
use berth_image::import::{ImportOptions, import};
use berth_oci::Reference;

struct Distribution {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn distribution() -> Distribution {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is installed (apt-get install docker-registry)");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut b = [0u8; 5];
            if s.read_exact(&mut b).is_ok() && &b == b"HTTP/" {
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "docker-registry exited"
        );
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Distribution {
        child,
        addr,
        _dir: dir,
    }
}

/// A store holding a one-layer image of about 1.5 MB of varied bytes.
fn store_with_image(name: &Reference) -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut x: u32 = 7;
        for i in 0..3 {
            let data: Vec<u8> = (0..500_000)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("file{i}"), &data[..])
                .unwrap();
        }
        b.finish().unwrap();
    }
    import(
        &store,
        &tar_bytes[..],
        Some(name),
        &ImportOptions::default(),
    )
    .unwrap();
    (dir, store)
}

fn recorder() -> (ProgressSink, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    (
        ProgressSink(Arc::new(move |e: &Event| {
            e2.lock().unwrap().push(e.clone())
        })),
        events,
    )
}

fn outcomes(events: &Mutex<Vec<Event>>) -> Vec<BlobOutcome> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BlobDone { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn push_blocking_then_pull_blocking_as_the_build_engine_would() {
    let reg = distribution();
    let local = Reference::parse("base:1").unwrap();
    let (_src_dir, src) = store_with_image(&local);
    let image = src.find("base:1").unwrap();
    let resolved = src.resolve(&image, None).unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let remote = Reference::parse(&format!("{}/lib/base:1", reg.addr)).unwrap();

    // Chunked (the layer is about 1.5 MB: several PATCH requests).
    let (progress, events) = recorder();
    let pushed = berth_client::push_blocking(
        &client,
        &src,
        &image,
        &remote,
        &PushOptions {
            chunk_size: Some(300_000),
            progress,
            ..PushOptions::default()
        },
    )
    .unwrap();
    assert_eq!(pushed.digest, image.descriptor.digest);
    assert_eq!((pushed.uploaded, pushed.existing), (2, 0));
    assert_eq!(
        outcomes(&events),
        [BlobOutcome::Uploaded, BlobOutcome::Uploaded]
    );

    // What a FROM would do with a store that lacks the image.
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = ImageStore::open(dst_dir.path()).unwrap();
    let (progress, events) = recorder();
    let pulled = berth_client::pull_blocking(
        &client,
        &dst,
        &remote,
        &PullOptions {
            progress,
            ..PullOptions::default()
        },
    )
    .unwrap();
    assert_eq!(pulled.resolved, image.descriptor.digest);
    assert_eq!(&pulled.image_id, resolved.id());
    assert_eq!(pulled.blobs_downloaded, 2);
    assert_eq!(
        outcomes(&events),
        [BlobOutcome::Downloaded, BlobOutcome::Downloaded]
    );
    let rec = dst.find(&remote.to_string()).unwrap();
    assert_eq!(rec.descriptor.digest, image.descriptor.digest);
    assert!(dst.check().unwrap().is_ok());

    // Again: nothing to download.
    let again =
        berth_client::pull_blocking(&client, &dst, &remote, &PullOptions::default()).unwrap();
    assert_eq!((again.blobs_downloaded, again.blobs_present), (0, 2));

    // A tag that does not exist: a NotFound error, nothing tagged.
    let missing = Reference::parse(&format!("{}/lib/base:nope", reg.addr)).unwrap();
    let err =
        berth_client::pull_blocking(&client, &dst, &missing, &PullOptions::default()).unwrap_err();
    assert!(
        matches!(err, berth_client::Error::NotFound { .. }),
        "{err:?}"
    );
    assert!(dst.find(&missing.to_string()).is_err());
}
