//! Datasets that travel with a study: a walk-forward spec names uploaded files by SHA-256
//! (`data = "sha256:<hex>/<name>"`); the node fetches each one chunk by chunk from the
//! scheduler over its QUIC connection, checks the hash, and keeps it in its cache folder
//! under the hash, so every later trial of any study that uses the same file reads it locally.
use mlt_protocol::messages::{AssignMsg, DatasetChunkMsg};
use mlt_protocol::spec::{DataSource, DatasetRef, ObjectiveSpec};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The node's dataset cache: `DIR/<sha256>` per file.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir` (created when the first file arrives).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where a dataset lives once fetched.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Whether it is here.
    pub fn has(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    /// The datasets an assignment needs that are not cached yet.
    pub fn missing(&self, a: &AssignMsg) -> Vec<String> {
        let mut out: Vec<String> = refs(a)
            .iter()
            .filter(|r| !self.has(&r.sha256))
            .map(|r| r.sha256.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The assignment with its uploaded datasets replaced by their cached files.
    pub fn localise(&self, mut a: AssignMsg) -> AssignMsg {
        if let ObjectiveSpec::WalkForward(wf) = &mut a.objective {
            if let DataSource::Datasets { files, adjusted } = &wf.data {
                wf.data = DataSource::Files {
                    paths: files
                        .iter()
                        .map(|f| self.path(&f.sha256).display().to_string())
                        .collect(),
                    adjusted: *adjusted,
                };
            }
        }
        a
    }
}

fn refs(a: &AssignMsg) -> &[DatasetRef] {
    match &a.objective {
        ObjectiveSpec::WalkForward(wf) => match &wf.data {
            DataSource::Datasets { files, .. } => files,
            _ => &[],
        },
        _ => &[],
    }
}

/// One dataset being fetched.
pub struct Fetch {
    /// SHA-256.
    pub sha256: String,
    /// Bytes written so far (the offset of the next chunk to ask for).
    pub received: u64,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    hasher: Sha256,
}

/// What a chunk did to a fetch.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Ask for the chunk at this offset next.
    Next(u64),
    /// The file is complete, verified and in the cache.
    Done,
}

impl Fetch {
    /// Starts fetching `sha256` into the cache.
    pub fn new(cache: &Cache, sha256: &str) -> Self {
        Self {
            sha256: sha256.to_string(),
            received: 0,
            tmp: cache
                .dir
                .join(format!(".{sha256}.{}.part", std::process::id())),
            file: None,
            hasher: Sha256::new(),
        }
    }

    /// Takes the next chunk; an error fails every trial waiting for the file.
    pub fn chunk(&mut self, cache: &Cache, c: &DatasetChunkMsg) -> Result<Progress, String> {
        if c.total == 0 {
            return Err(format!(
                "the scheduler does not hold dataset sha256:{}",
                self.sha256
            ));
        }
        if c.offset != self.received
            || c.bytes.is_empty()
            || c.offset + c.bytes.len() as u64 > c.total
        {
            return Err(format!(
                "dataset sha256:{}: chunk at {} ({} bytes of {}) does not follow the {} bytes received",
                self.sha256,
                c.offset,
                c.bytes.len(),
                c.total,
                self.received
            ));
        }
        let io = |e: std::io::Error| format!("writing {}: {e}", self.tmp.display());
        if self.file.is_none() {
            std::fs::create_dir_all(&cache.dir).map_err(io)?;
            self.file = Some(std::fs::File::create(&self.tmp).map_err(io)?);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(&c.bytes).map_err(io)?;
        self.hasher.update(&c.bytes);
        self.received += c.bytes.len() as u64;
        if self.received < c.total {
            return Ok(Progress::Next(self.received));
        }
        f.sync_all().map_err(io)?;
        self.file = None;
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if digest != self.sha256 {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(format!(
                "dataset sha256:{} arrived with contents that hash to {digest}",
                self.sha256
            ));
        }
        std::fs::rename(&self.tmp, cache.path(&self.sha256)).map_err(io)?;
        Ok(Progress::Done)
    }

    /// Removes a partial file.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The SHA-256 of a file, read in chunks, and its size.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(sha: &str, total: u64, offset: u64, bytes: &[u8]) -> DatasetChunkMsg {
        DatasetChunkMsg {
            sha256: sha.into(),
            total,
            offset,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn a_fetch_is_verified_and_lands_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"));
        let data = b"Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,100\n";
        let sha = hex::encode(Sha256::digest(data));
        let mut f = Fetch::new(&cache, &sha);
        assert_eq!(
            f.chunk(&cache, &chunk(&sha, data.len() as u64, 0, &data[..10])),
            Ok(Progress::Next(10))
        );
        // Out of order: refused.
        assert!(f
            .chunk(&cache, &chunk(&sha, data.len() as u64, 20, &data[20..]))
            .is_err());
        assert_eq!(
            f.chunk(&cache, &chunk(&sha, data.len() as u64, 10, &data[10..])),
            Ok(Progress::Done)
        );
        assert!(cache.has(&sha));
        assert_eq!(std::fs::read(cache.path(&sha)).unwrap(), data);
        assert_eq!(
            sha256_file(&cache.path(&sha)).unwrap(),
            (sha.clone(), data.len() as u64)
        );

        // Contents that do not match their hash never reach the cache.
        let other = "0".repeat(64);
        let mut f = Fetch::new(&cache, &other);
        let e = f
            .chunk(&cache, &chunk(&other, data.len() as u64, 0, data))
            .unwrap_err();
        assert!(e.contains("hash to"), "{e}");
        assert!(!cache.has(&other));
        assert_eq!(std::fs::read_dir(&cache.dir).unwrap().count(), 1);
        // A scheduler without the file says so with total 0.
        let mut f = Fetch::new(&cache, &other);
        assert!(f
            .chunk(&cache, &chunk(&other, 0, 0, b""))
            .unwrap_err()
            .contains("does not hold"));
    }
}
