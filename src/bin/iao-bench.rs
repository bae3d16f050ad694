//! iao-bench: the benchmark's own tools; `bench/run.sh` (`make bench`) drives them.
//!
//!   serve-fake   the in-process Keystone + Glance fake over HTTP, with a latency per request
//!   floor        memberships created by the project's own Glance client, as many at once as
//!                the operator makes (the floor no Kubernetes operator can beat on that Glance)
//!   create       ImageAccess objects created in a namespace, many at once (kubectl applies one
//!                after the other: for 10,000 objects it would be what is measured)
//!   watch-ready  waits until a namespace has N Ready objects; writes when each became Ready
//!   chart        an SVG of objects done over time, one line per tool
//!   proxy        a TCP proxy that delays every chunk by a latency each way: a cloud reached
//!                over a network, without slowing the API server as `tc` on loopback would
//!   stamp        times the lines of a tool's output that say an object is done
//!
//! A pairs file has one membership per line: `IMAGE_ID MEMBER_ID`. A timeline file has one
//! line per object done: seconds since the start, in order.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use image_access_operator::api::{CloudCredentialsRef, ImageAccess, ImageAccessSpec, Managed};
use image_access_operator::metrics::Metrics;
use image_access_operator::openstack::{ClientSettings, Cloud, OpenStack};
use image_access_operator::testing::fake_openstack::{FakeOpenStack, OWNER_PROJECT};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

#[derive(Parser)]
#[command(name = "iao-bench", about = "image-access-operator's benchmark tools")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Keystone + Glance fake until SIGTERM; writes OUT/clouds.yaml and OUT/images.
    ServeFake {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        #[arg(long, default_value_t = 100)]
        images: usize,
        #[arg(long, default_value_t = 1000)]
        member_quota: usize,
        /// Tag every image with this (each a build a second after the one before).
        #[arg(long)]
        tag: Option<String>,
        /// Keystone projects to serve, each tagged with --project-tag.
        #[arg(long, default_value_t = 0)]
        projects: usize,
        #[arg(long, default_value = "analytics")]
        project_tag: String,
    },
    /// Create the memberships of PAIRS with the project's Glance client; print the seconds.
    Floor {
        #[arg(long)]
        clouds: PathBuf,
        #[arg(long, default_value = "owner")]
        cloud: String,
        #[arg(long)]
        pairs: PathBuf,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long)]
        timeline: Option<PathBuf>,
    },
    /// Create one ImageAccess per pair in NAMESPACE; print the seconds.
    Create {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        pairs: PathBuf,
        #[arg(long, default_value = "openstack-credentials")]
        secret: String,
        #[arg(long, default_value = "owner")]
        cloud: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Wait until NAMESPACE has COUNT Ready objects; print the seconds since START (Unix time).
    WatchReady {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        start: f64,
        #[arg(long)]
        timeline: Option<PathBuf>,
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Copy stdin to nothing, writing the seconds since START (Unix time) of each line that
    /// contains MATCH to TIMELINE: one process times a tool's progress (not one per line).
    Stamp {
        #[arg(long = "match")]
        pattern: String,
        #[arg(long)]
        start: f64,
        #[arg(long)]
        timeline: PathBuf,
    },
    /// Forward LISTEN to TARGET, every chunk DELAY_MS later in each direction, until SIGTERM.
    Proxy {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        target: std::net::SocketAddr,
        #[arg(long, default_value_t = 20)]
        delay_ms: u64,
    },
    /// Draw timelines (LABEL=FILE ...) as an SVG.
    Chart {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        title: String,
        series: Vec<String>,
    },
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    match Args::parse().command {
        Command::ServeFake {
            out,
            latency_ms,
            images,
            member_quota,
            tag,
            projects,
            project_tag,
        } => {
            let served = Served {
                images,
                member_quota,
                tag,
                projects,
                project_tag,
            };
            serve_fake(out, latency_ms, served).await
        }
        Command::Floor {
            clouds,
            cloud,
            pairs,
            concurrency,
            timeline,
        } => floor(clouds, cloud, pairs, concurrency, timeline).await,
        Command::Create {
            namespace,
            pairs,
            secret,
            cloud,
            concurrency,
        } => create(namespace, pairs, secret, cloud, concurrency).await,
        Command::WatchReady {
            namespace,
            count,
            start,
            timeline,
            timeout,
        } => watch_ready(namespace, count, start, timeline, timeout).await,
        Command::Proxy {
            listen,
            target,
            delay_ms,
        } => proxy(listen, target, Duration::from_millis(delay_ms)).await,
        Command::Stamp {
            pattern,
            start,
            timeline,
        } => stamp(&pattern, start, &timeline),
        Command::Chart { out, title, series } => chart(out, title, series),
    }
}

async fn proxy(listen: std::net::SocketAddr, target: std::net::SocketAddr, delay: Duration) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("proxying {listen} to {target}, {} ms each way", delay.as_millis());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let client = match accepted {
                    Ok((client, _)) => client,
                    // Out of file descriptors, a connection reset before it was taken: this
                    // connection fails, the proxy goes on.
                    // (A moment's pause: out of descriptors, accept fails again at once.)
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                tokio::spawn(async move {
                    // A remote server's TCP handshake costs a round trip before the request can
                    // go (the servers here close every connection, so every request pays it).
                    tokio::time::sleep(delay * 2).await;
                    if let Ok(server) = tokio::net::TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            delayed_copy(client_read, server_write, delay),
                            delayed_copy(server_read, client_write, delay)
                        );
                    }
                });
            }
            _ = terminate.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (a latency, not a
/// bandwidth limit: chunks read meanwhile are on their way too).
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = from.read(&mut buffer).await {
            if read == 0
                || sender
                    .send((tokio::time::Instant::now() + delay, buffer[..read].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Seconds since the Unix epoch, as `date +%s.%N` says.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Times each line of stdin that contains `pattern` (one process for the whole output), and
/// keeps the output beside the timeline (`<timeline>.log`), so a failed run can be read.
/// Lines are bytes: output that is not UTF-8 is timed and kept, never the end of the run.
fn stamp(pattern: &str, start: f64, timeline: &PathBuf) -> Result<(), Failure> {
    use std::io::{BufRead, Write};
    let mut out = std::io::BufWriter::new(std::fs::File::create(timeline)?);
    let mut log = std::io::BufWriter::new(std::fs::File::create(timeline.with_extension("log"))?);
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    while input.read_until(b'\n', &mut line)? > 0 {
        if !pattern.is_empty() && line.windows(pattern.len()).any(|w| w == pattern.as_bytes()) {
            writeln!(out, "{:.3}", unix_now() - start)?;
        }
        log.write_all(&line)?;
        line.clear();
    }
    out.flush()?;
    log.flush()?;
    Ok(())
}

/// A UUID-shaped image ID for image `i` of the fake.
fn fake_image_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

/// What the fake serves.
struct Served {
    images: usize,
    member_quota: usize,
    tag: Option<String>,
    projects: usize,
    project_tag: String,
}

async fn serve_fake(out: PathBuf, latency_ms: u64, served: Served) -> Result<(), Failure> {
    let Served {
        images,
        member_quota,
        tag,
        projects,
        project_tag,
    } = served;
    let fake = FakeOpenStack::start().await;
    fake.set_member_quota(member_quota);
    let ids: Vec<String> = (0..images).map(fake_image_id).collect();
    for (i, id) in ids.iter().enumerate() {
        match &tag {
            Some(tag) => {
                let created = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(1_700_000_000 + i as i64);
                fake.add_build(id, "golden", &[tag], &created.to_string());
            }
            None => fake.add_image(id, OWNER_PROJECT, "shared"),
        }
    }
    for i in 0..projects {
        fake.add_project(&format!("project-{i:04}"), &format!("team-{i:04}"), &[&project_tag]);
    }
    fake.set_delay(Some(Duration::from_millis(latency_ms)));
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("clouds.yaml"), fake.clouds_yaml())?;
    std::fs::write(out.join("images"), ids.join("\n") + "\n")?;
    println!(
        "serving {images} images at {} with {latency_ms} ms per request",
        fake.auth_url()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn read_pairs(path: &PathBuf) -> Result<Vec<(String, String)>, Failure> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

fn write_timeline(path: Option<PathBuf>, mut times: Vec<f64>) -> Result<(), Failure> {
    times.sort_by(f64::total_cmp);
    if let Some(path) = path {
        let text: String = times.iter().map(|t| format!("{t:.3}\n")).collect();
        std::fs::write(path, text)?;
    }
    Ok(())
}

async fn floor(
    clouds: PathBuf,
    cloud: String,
    pairs: PathBuf,
    concurrency: usize,
    timeline: Option<PathBuf>,
) -> Result<(), Failure> {
    let cloud = Cloud::from_clouds_yaml(
        &std::fs::read_to_string(clouds)?,
        &cloud,
        &image_access_operator::openstack::NoFiles,
    )?;
    let openstack = OpenStack::new(
        ClientSettings {
            max_in_flight: concurrency,
            ..Default::default()
        },
        Arc::new(Metrics::default()),
    );
    let pairs = read_pairs(&pairs)?;
    // From before the login, as the operator's and the tools' times are.
    let started = Instant::now();
    let session = openstack.session(&cloud.credentials)?;
    let glance = session.glance(cloud.region_name.as_deref(), &cloud).await?;
    let times: Vec<f64> = futures::stream::iter(pairs)
        .map(|(image, member)| {
            let glance = glance.clone();
            async move {
                match glance.create_member(&image, &member).await {
                    Ok(_) => Ok(started.elapsed().as_secs_f64()),
                    Err(e) if e.http_kind() == Some(image_access_operator::openstack::HttpErrorKind::Conflict) => {
                        Ok(started.elapsed().as_secs_f64())
                    }
                    Err(e) => Err(e),
                }
            }
        })
        // The client's own limit keeps `concurrency` requests in flight.
        .buffer_unordered(concurrency * 4)
        .try_collect()
        .await?;
    println!("{:.3}", started.elapsed().as_secs_f64());
    write_timeline(timeline, times)
}

async fn create(
    namespace: String,
    pairs: PathBuf,
    secret: String,
    cloud: String,
    concurrency: usize,
) -> Result<(), Failure> {
    let client = kube::Client::try_default().await?;
    let api: Api<ImageAccess> = Api::namespaced(client, &namespace);
    let pairs = read_pairs(&pairs)?;
    let started = Instant::now();
    futures::stream::iter(pairs.into_iter().enumerate())
        .map(|(i, (image, member))| {
            let api = api.clone();
            let object = ImageAccess::new(
                &format!("ia-{i}"),
                ImageAccessSpec {
                    image_id: image,
                    image_ref: None,
                    member_id: member,
                    member_ref: None,
                    status: None,
                    region: None,
                    cloud_credentials_ref: CloudCredentialsRef {
                        secret_name: secret.clone(),
                        cloud_name: cloud.clone(),
                    },
                    deletion_policy: None,
                    resync_period: None,
                    on_create: None,
                    management_policy: None,
                },
            );
            async move { api.create(&PostParams::default(), &object).await.map(|_| ()) }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    println!("{:.3}", started.elapsed().as_secs_f64());
    Ok(())
}

fn is_ready(object: &ImageAccess) -> bool {
    object.condition("Ready").is_some_and(|c| c.status == "True")
        && object.status.as_ref().and_then(|s| s.observed_generation) == object.metadata.generation
}

async fn watch_ready(
    namespace: String,
    count: usize,
    start: f64,
    timeline: Option<PathBuf>,
    timeout: u64,
) -> Result<(), Failure> {
    let client = kube::Client::try_default().await?;
    let api: Api<ImageAccess> = Api::namespaced(client, &namespace);
    let since_start = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        now - start
    };
    let mut ready: HashMap<String, f64> = HashMap::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    let deadline = tokio::time::sleep(Duration::from_secs(timeout));
    tokio::pin!(deadline);
    while ready.len() < count {
        tokio::select! {
            () = &mut deadline => {
                return Err(format!("{} of {count} Ready after {timeout} s", ready.len()).into());
            }
            next = stream.try_next() => match next? {
                Some(object) if is_ready(&object) => {
                    ready.entry(object.metadata.name.clone().unwrap_or_default()).or_insert_with(since_start);
                }
                Some(_) => {}
                None => return Err("the watch ended".into()),
            }
        }
    }
    let last = ready.values().copied().fold(0.0, f64::max);
    println!("{last:.3}");
    write_timeline(timeline, ready.into_values().collect())
}

/// Objects done over time, one line per labelled timeline file.
fn chart(out: PathBuf, title: String, series: Vec<String>) -> Result<(), Failure> {
    let mut lines: BTreeMap<usize, (String, Vec<f64>)> = BTreeMap::new();
    for (i, spec) in series.iter().enumerate() {
        let (label, path) = spec.split_once('=').ok_or("a series is LABEL=FILE")?;
        let times: Vec<f64> = std::fs::read_to_string(path)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        lines.insert(i, (label.to_string(), times));
    }
    let max_t = lines
        .values()
        .flat_map(|(_, t)| t.iter().copied())
        .fold(1.0_f64, f64::max);
    let max_n = lines.values().map(|(_, t)| t.len()).max().unwrap_or(1).max(1);
    // The legend is as wide as its longest line: "LABEL (123.4 s)", ~6.6 px a character.
    let longest = lines.values().map(|(l, _)| l.chars().count() + 10).max().unwrap_or(0);
    let right = 50.0 + 6.6 * longest as f64;
    let (w, h, left, bottom, top) = (570.0 + right, 420.0, 70.0, 50.0, 40.0);
    let x = |t: f64| left + t / max_t * (w - left - right);
    let y = |n: f64| h - bottom - n / max_n as f64 * (h - bottom - top);
    let colors = ["#1b7f3b", "#5c3fa8", "#c0392b", "#555555", "#d68910"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"14\">{}</text>\n",
        escape(&title)
    );
    // Axes, with five ticks each.
    svg += &format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for k in 0..=5 {
        let t = max_t * f64::from(k) / 5.0;
        let n = max_n as f64 * f64::from(k) / 5.0;
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0} s</text>\n<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{n:.0}</text>\n<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eeeeee\"/>\n",
            x(t),
            h - bottom + 18.0,
            left - 6.0,
            y(n) + 4.0,
            y(n),
            w - right,
            y(n)
        );
    }
    svg += &format!(
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">seconds since the start</text>\n<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">memberships done</text>\n",
        (left + w - right) / 2.0,
        h - 10.0,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    for (i, (label, times)) in &lines {
        let color = colors[i % colors.len()];
        let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
        for (n, t) in times.iter().enumerate() {
            points += &format!(" {:.1},{:.1} {:.1},{:.1}", x(*t), y(n as f64), x(*t), y((n + 1) as f64));
        }
        svg += &format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>\n");
        let done = times.last().copied().unwrap_or(0.0);
        let ly = top + 20.0 + 22.0 * *i as f64;
        svg += &format!(
            "<line x1=\"{}\" y1=\"{ly:.1}\" x2=\"{}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\n<text x=\"{}\" y=\"{:.1}\">{} ({done:.1} s)</text>\n",
            w - right + 12.0,
            w - right + 34.0,
            w - right + 40.0,
            ly + 4.0,
            escape(label)
        );
    }
    svg += "</svg>\n";
    std::fs::write(out, svg)?;
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
