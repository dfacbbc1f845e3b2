//! Digest throughput: verification must run at disk speed (≥ 1 GB/s per core with SHA-NI).

use berth_oci::Algorithm;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn digest(c: &mut Criterion) {
    let data: Vec<u8> = (0..(64u32 << 20))
        .map(|i| (i * 2_654_435_761) as u8)
        .collect();
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        g.bench_function(alg.as_str(), |b| b.iter(|| alg.digest(&data)));
    }
    g.finish();
}

criterion_group!(benches, digest);
criterion_main!(benches);
