//! `berth pull`, `berth push`, `berth login`, `berth logout`: flags, the
//! password prompt and progress drawing. The work is in `berth-client`.

use std::collections::HashMap;
use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use berth_client::{BlobOutcome, Client, ClientOptions, Credential, Event, LoginStore};
use berth_oci::{Platform, Reference};
use clap::Args;

use super::util::{StoreArgs, human_size};

/// Options shared by every command that talks to a registry.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Allow plain HTTP (or HTTPS without certificate checks) to this
    /// registry (HOST or HOST:PORT); loopback registries always are. Also
    /// read from registries.toml in berth's config directory. As a URL
    /// (http://HOST:PORT, https://HOST) it also pins the scheme: no HTTPS
    /// attempt before http://, no HTTP fallback after https://.
    #[arg(long = "insecure-registry", value_name = "[SCHEME://]HOST[:PORT]")]
    insecure: Vec<String>,
}

impl NetArgs {
    pub(super) fn client(&self) -> anyhow::Result<Client> {
        client(&self.insecure)
    }
}

/// A registry client with the user's settings plus `insecure` registries.
pub(super) fn client(insecure: &[String]) -> anyhow::Result<Client> {
    Ok(Client::new(options(insecure)?)?)
}

/// The user's client settings plus `insecure` registries (URLs pin their scheme).
fn options(insecure: &[String]) -> anyhow::Result<ClientOptions> {
    let mut opts = ClientOptions::from_env()?;
    for i in insecure {
        opts.add_insecure(i)
            .with_context(|| format!("--insecure-registry {i}"))?;
    }
    Ok(opts)
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull (NAME[:TAG] or NAME@DIGEST).
    reference: String,
    /// Platform to select from a multi-platform image (default: the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<Platform>,
    /// Keep every platform of a multi-platform image (the name points at the index).
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Blobs downloaded at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    max_concurrent_downloads: usize,
    /// Print only the image's name.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Local image to push (a name, or an id with DEST).
    source: String,
    /// Where to push it (default: SOURCE's own name).
    dest: Option<String>,
    /// Upload blobs in chunks of this many bytes instead of one request each.
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<u64>,
    /// Blobs uploaded at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    max_concurrent_uploads: usize,
    /// Print only the pushed digest.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry (HOST[:PORT], or http://HOST[:PORT] / https://HOST[:PORT]
    /// to use that scheme only); default docker.io.
    server: Option<String>,
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry (HOST[:PORT], or http://HOST[:PORT] / https://HOST[:PORT]
    /// to use that scheme only); default docker.io.
    server: Option<String>,
}

/// Draws transfer progress on stderr: bars on a terminal, one line per
/// finished blob otherwise.
pub(super) struct Drawer {
    verb: &'static str,
    bars: Option<indicatif::MultiProgress>,
    active: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

fn short(d: &berth_oci::Digest) -> &str {
    d.short()
}

impl Drawer {
    pub(super) fn new(verb: &'static str, quiet: bool) -> Option<Arc<Drawer>> {
        if quiet {
            return None;
        }
        let bars = std::io::stderr().is_terminal().then(|| {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
        });
        Some(Arc::new(Drawer {
            verb,
            bars,
            active: Mutex::new(HashMap::new()),
        }))
    }

    pub(super) fn line(&self, text: String) {
        match &self.bars {
            Some(b) => {
                let _ = b.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn event(&self, e: &Event) {
        match e {
            Event::BlobStart { digest, size, .. } => {
                if let Some(b) = &self.bars {
                    let bar = b.add(indicatif::ProgressBar::new(*size));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(short(digest).to_owned());
                    bar.set_message(self.verb);
                    self.active.lock().unwrap().insert(digest.to_string(), bar);
                }
            }
            Event::BlobProgress { digest, done, .. } => {
                if self.bars.is_none() {
                    return;
                }
                if let Some(bar) = self.active.lock().unwrap().get(&digest.to_string()) {
                    bar.set_position(*done);
                }
            }
            Event::BlobResumed { digest, offset } => self.line(format!(
                "{}: resuming at byte {offset} (left by an interrupted pull)",
                short(digest)
            )),
            Event::BlobRetry {
                digest,
                resume_at,
                error,
            } => self.line(format!(
                "{}: retrying from byte {resume_at} after: {error}",
                short(digest)
            )),
            Event::BlobDone {
                digest,
                size,
                outcome,
            } => {
                if let Some(bar) = self.active.lock().unwrap().remove(&digest.to_string()) {
                    bar.finish_and_clear();
                    if let Some(b) = &self.bars {
                        b.remove(&bar);
                    }
                }
                let what = match outcome {
                    BlobOutcome::Downloaded => format!("Pull complete ({})", human_size(*size)),
                    BlobOutcome::AlreadyPresent => "Already exists".to_owned(),
                    BlobOutcome::Uploaded => format!("Pushed ({})", human_size(*size)),
                    BlobOutcome::Exists => "Layer already exists".to_owned(),
                    BlobOutcome::Mounted { from } => format!("Mounted from {from}"),
                };
                self.line(format!("{}: {what}", short(digest)));
            }
            Event::PlatformSelected { platform, digest } => {
                self.line(format!("{platform}: selected {digest}"));
            }
            Event::Resolved { .. } | Event::ManifestPushed { .. } => {}
        }
    }

    fn sink(self: &Arc<Drawer>) -> berth_client::ProgressSink {
        let me = self.clone();
        berth_client::ProgressSink(Arc::new(move |e: &Event| me.event(e)))
    }
}

pub(super) fn sink(d: &Option<Arc<Drawer>>) -> berth_client::ProgressSink {
    d.as_ref()
        .map_or_else(berth_client::ProgressSink::none, Drawer::sink)
}

pub fn pull(s: &StoreArgs, a: PullArgs) -> anyhow::Result<i32> {
    let reference = Reference::parse(&a.reference)?;
    let store = s.open()?;
    let client = a.net.client()?;
    let drawer = Drawer::new("Downloading", a.quiet);
    if let Some(d) = &drawer {
        let tag = reference.tag().unwrap_or("digest");
        d.line(format!("{tag}: Pulling from {}", reference.name()));
    }
    let opts = berth_client::PullOptions {
        platform: a.platform,
        all_platforms: a.all_platforms,
        concurrency: a.max_concurrent_downloads,
        progress: sink(&drawer),
    };
    let pulled = berth_client::pull_blocking(&client, &store, &reference, &opts)
        .with_context(|| format!("pulling {}", reference.familiar()))?;
    if let Some(d) = &drawer {
        d.line(format!("Digest: {}", pulled.resolved));
        d.line(format!(
            "Status: {} for {}",
            if pulled.blobs_downloaded == 0 {
                "Image is up to date"
            } else {
                "Downloaded newer image"
            },
            reference.familiar()
        ));
    }
    println!("{reference}");
    Ok(0)
}

pub fn push(s: &StoreArgs, a: PushArgs) -> anyhow::Result<i32> {
    let store = s.open()?;
    let image = store
        .find(&a.source)
        .with_context(|| format!("finding {}", a.source))?;
    let dest = match &a.dest {
        Some(d) => Reference::parse(d)?,
        None => Reference::parse(&a.source)
            .with_context(|| format!("{} is not a name; give a destination", a.source))?,
    };
    let client = a.net.client()?;
    let drawer = Drawer::new("Uploading", a.quiet);
    if let Some(d) = &drawer {
        d.line(format!("The push refers to repository [{}]", dest.name()));
    }
    let opts = berth_client::PushOptions {
        concurrency: a.max_concurrent_uploads,
        chunk_size: a.chunk_size,
        progress: sink(&drawer),
    };
    let pushed = berth_client::push_blocking(&client, &store, &image, &dest, &opts)
        .with_context(|| format!("pushing {}", dest.familiar()))?;
    if a.quiet {
        println!("{}", pushed.digest);
    } else {
        println!(
            "{}: digest: {} size: {}",
            dest.tag().unwrap_or("digest"),
            pushed.digest,
            pushed.size
        );
    }
    Ok(0)
}

/// The registry a login command names: `docker.io` by default, URLs and
/// Docker Hub's aliases reduced to the reference domain.
fn registry_name(server: Option<&str>) -> String {
    berth_client::credentials::normalize_key(server.unwrap_or("docker.io"))
}

fn prompt(label: &str, echo: bool) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{label}: ")?;
    err.flush()?;
    let stdin = std::io::stdin();
    let saved = if echo {
        None
    } else {
        let old = rustix::termios::tcgetattr(&stdin).context("reading terminal settings")?;
        let mut quiet = old.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
            .context("turning off echo")?;
        Some(old)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(old) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &old);
        writeln!(err)?;
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub fn login(a: LoginArgs) -> anyhow::Result<i32> {
    // `berth login http://host:port` talks plain HTTP at once;
    // `https://host` never falls back to HTTP.
    let mut opts = options(&a.net.insecure)?;
    let registry = opts.add_registry(a.server.as_deref().unwrap_or("docker.io"))?;
    let interactive = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => prompt("Username", true)?,
        None => bail!("a user name is needed (-u USER)"),
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .read_to_string(&mut p)
            .context("reading the password from stdin")?;
        p.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if interactive {
        prompt("Password", false)?
    } else {
        bail!("no password: use --password-stdin (or -p)")
    };
    if username.is_empty() || password.is_empty() {
        bail!("user name and password must not be empty");
    }
    let client = Client::new(opts)?;
    client.set_credential(&registry, Some(Credential::basic(&username, &password)));
    berth_client::block_on(client.login(&registry))
        .with_context(|| format!("logging in to {registry}"))?;
    let store = LoginStore::default_location();
    store.store(&registry, &username, &password)?;
    eprintln!("Credentials saved in {}", store.path().display());
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<i32> {
    let registry = registry_name(a.server.as_deref());
    if LoginStore::default_location().erase(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}
