//! Parses a 10,000-instruction Dockerfile (every instruction kind, flags,
//! continuations, JSON forms, heredocs) and reports throughput in bytes/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn big_dockerfile(n: usize) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.19\n");
    let mut i = 1; // the ARG above
    while i < n {
        let chunk = [
            format!("FROM --platform=$BUILDPLATFORM ${{BASE}} AS stage{i}"),
            "ENV A=1 B=\"two words\" C=three".to_string(),
            "RUN --mount=type=cache,target=/root/.cache \\\n    apk add --no-cache git curl \\\n    # a comment\n    && echo done".to_string(),
            "COPY --from=stage0 --chown=1000:1000 --chmod=755 /src /dst".to_string(),
            "CMD [\"/bin/server\", \"--port\", \"8080\"]".to_string(),
            "LABEL org.opencontainers.image.title=\"x\" version=1.0".to_string(),
            "RUN <<EOF\nset -e\necho hello\nEOF".to_string(),
            "HEALTHCHECK --interval=30s CMD curl -f http://localhost/ || exit 1".to_string(),
            "WORKDIR /app".to_string(),
            "EXPOSE 80/tcp 443".to_string(),
        ];
        for line in chunk {
            if i == n {
                break;
            }
            s.push_str(&line);
            s.push('\n');
            i += 1;
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let src = big_dockerfile(10_000);
    let (df, diags) = berth_dockerfile::parse(&src);
    assert_eq!(df.instructions.len(), 10_000);
    assert!(diags.is_empty(), "{diags:?}");
    // The fastest of a few runs: a number that other load on a shared
    // machine inflates the least.
    for _ in 0..10 {
        std::hint::black_box(berth_dockerfile::parse(std::hint::black_box(&src)));
    }
    let best = (0..30)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(berth_dockerfile::parse(std::hint::black_box(&src)));
            t.elapsed()
        })
        .min()
        .unwrap();
    eprintln!(
        "parse: 10,000 instructions, {} bytes: best of 30 runs {:.2} ms ({:.0} MiB/s)",
        src.len(),
        best.as_secs_f64() * 1e3,
        src.len() as f64 / best.as_secs_f64() / (1024.0 * 1024.0)
    );
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("10k_instructions", |b| {
        b.iter(|| berth_dockerfile::parse(std::hint::black_box(&src)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
