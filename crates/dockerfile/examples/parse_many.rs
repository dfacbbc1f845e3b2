//! Parses FILE N times (for profiling): `cargo run --release --example parse_many FILE N`.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: parse_many FILE [N]");
    let n: usize = args.next().map_or(100, |s| s.parse().expect("N"));
    let src = std::fs::read_to_string(path).expect("read");
    let t = std::time::Instant::now();
    let mut count = 0;
    for _ in 0..n {
        count += berth_dockerfile::parse(std::hint::black_box(&src))
            .0
            .instructions
            .len();
    }
    let per = t.elapsed() / n as u32;
    println!("{count} instructions, {per:?} per parse");
}
