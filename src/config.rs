//! cluster.toml: the raw file (unknown keys refused) validated into settings. The defaults are
//! the commented template itself, embedded, so the two cannot drift.
use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The commented default configuration.
pub const DEFAULT_TOML: &str = include_str!("../cluster.toml");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterToml {
    #[serde(default)]
    scheduler: SchedulerToml,
    #[serde(default)]
    node: NodeToml,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulerToml {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    advertise: Option<String>,
    heartbeat_ms: Option<u64>,
    lease_ms: Option<u64>,
    max_frame_bytes: Option<u64>,
    max_spec_bytes: Option<u64>,
    durable: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeToml {
    slots: Option<u32>,
    gpus: Option<Vec<u32>>,
    name: Option<String>,
    reconnect_max_ms: Option<u64>,
    drain_timeout_s: Option<u64>,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub advertise: Option<String>,
    pub heartbeat_ms: u64,
    pub lease_ms: u64,
    pub max_frame_bytes: usize,
    pub max_spec_bytes: usize,
    pub durable: bool,
    pub slots: u32,
    pub gpus: Option<Vec<u32>>,
    pub name: Option<String>,
    pub reconnect_max_ms: u64,
    pub drain_timeout_s: u64,
}

fn parse(text: &str, file: &str) -> anyhow::Result<ClusterToml> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => anyhow::anyhow!("{file}:{l}: {}", e.message().trim()),
            None => anyhow::anyhow!("{file}: {}", e.message().trim()),
        }
    })
}

impl ClusterConfig {
    /// Defaults, overlaid with `file` when given.
    pub fn load(file: Option<&Path>) -> anyhow::Result<ClusterConfig> {
        let defaults = parse(DEFAULT_TOML, "built-in cluster.toml")?;
        let user = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                parse(&text, &p.display().to_string())?
            }
            None => ClusterToml::default(),
        };
        let (d, u) = (defaults, user);
        let name = file.map_or("built-in cluster.toml".to_string(), |p| {
            p.display().to_string()
        });
        let listen_s = u
            .scheduler
            .listen
            .or(d.scheduler.listen)
            .expect("default listen");
        let listen = listen_s.parse().with_context(|| {
            format!(
                "{name}: `scheduler.listen` = {listen_s:?} is not an address such as 0.0.0.0:7340"
            )
        })?;
        let spec_set = u.scheduler.max_spec_bytes.is_some();
        let mut cfg = ClusterConfig {
            listen,
            data_dir: u
                .scheduler
                .data_dir
                .or(d.scheduler.data_dir)
                .expect("default data_dir"),
            advertise: u.scheduler.advertise.or(d.scheduler.advertise),
            heartbeat_ms: u
                .scheduler
                .heartbeat_ms
                .or(d.scheduler.heartbeat_ms)
                .expect("default"),
            lease_ms: u
                .scheduler
                .lease_ms
                .or(d.scheduler.lease_ms)
                .expect("default"),
            max_frame_bytes: u
                .scheduler
                .max_frame_bytes
                .or(d.scheduler.max_frame_bytes)
                .expect("default") as usize,
            max_spec_bytes: u
                .scheduler
                .max_spec_bytes
                .or(d.scheduler.max_spec_bytes)
                .expect("default") as usize,
            durable: u
                .scheduler
                .durable
                .or(d.scheduler.durable)
                .expect("default"),
            slots: u.node.slots.or(d.node.slots).expect("default"),
            gpus: u.node.gpus.or(d.node.gpus),
            name: u.node.name.or(d.node.name),
            reconnect_max_ms: u
                .node
                .reconnect_max_ms
                .or(d.node.reconnect_max_ms)
                .expect("default"),
            drain_timeout_s: u
                .node
                .drain_timeout_s
                .or(d.node.drain_timeout_s)
                .expect("default"),
        };
        if cfg.heartbeat_ms < 10 {
            bail!("{name}: `scheduler.heartbeat_ms` must be at least 10");
        }
        if cfg.lease_ms < 2 * cfg.heartbeat_ms {
            bail!(
                "{name}: `scheduler.lease_ms` ({}) must be at least twice `heartbeat_ms` ({})",
                cfg.lease_ms,
                cfg.heartbeat_ms
            );
        }
        if cfg.max_frame_bytes < 1024 || cfg.max_frame_bytes > u32::MAX as usize {
            bail!("{name}: `scheduler.max_frame_bytes` must be between 1024 and 4294967295");
        }
        if !spec_set {
            // The default follows a smaller frame limit (a spec travels in one frame).
            cfg.max_spec_bytes = cfg.max_spec_bytes.min(cfg.max_frame_bytes);
        }
        if cfg.max_spec_bytes < 1024 || cfg.max_spec_bytes > cfg.max_frame_bytes {
            bail!(
                "{name}: `scheduler.max_spec_bytes` must be between 1024 and `max_frame_bytes` ({})",
                cfg.max_frame_bytes
            );
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_the_default_and_bad_keys_name_their_line() {
        let c = ClusterConfig::load(None).unwrap();
        assert_eq!(c.listen.port(), 7340);
        assert_eq!(c.lease_ms, 10000);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[scheduler]\nlease_ms = 3000\n\n[node]\nslotz = 3\n").unwrap();
        let e = ClusterConfig::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("c.toml:5") && e.contains("slotz"), "{e}");
        std::fs::write(&p, "[scheduler]\nheartbeat_ms = 2000\nlease_ms = 3000\n").unwrap();
        assert!(ClusterConfig::load(Some(&p))
            .unwrap_err()
            .to_string()
            .contains("twice"));
        // The spec limit: 1 MiB by default, never above the frame limit.
        assert_eq!(c.max_spec_bytes, 1 << 20);
        std::fs::write(&p, "[scheduler]\nmax_frame_bytes = 65536\n").unwrap();
        assert_eq!(ClusterConfig::load(Some(&p)).unwrap().max_spec_bytes, 65536);
        std::fs::write(
            &p,
            "[scheduler]\nmax_frame_bytes = 65536\nmax_spec_bytes = 131072\n",
        )
        .unwrap();
        let e = ClusterConfig::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("max_spec_bytes"), "{e}");
    }
}
