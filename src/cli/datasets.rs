//! The data files a walk-forward spec names travel with the study: each is hashed (SHA-256),
//! uploaded to the scheduler unless it already holds that content, and the submitted spec
//! names it by hash (`data = "sha256:<hex>/<name>"`), so nodes need no shared filesystem.
use super::target::Target;
use anyhow::{bail, Context};
use mlt_protocol::messages::{FromClient, PutDatasetMsg, ToClient, DATASET_CHUNK};
use mlt_protocol::records::DatasetInfo;
use mlt_protocol::spec::{DataSource, DatasetRef, ObjectiveSpec, Spec};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A local file a spec names.
pub struct LocalFile {
    /// Where it is.
    pub path: PathBuf,
    /// How the spec will name it.
    pub dataset: DatasetRef,
    /// Size in bytes.
    pub bytes: u64,
}

/// The files of a walk-forward spec's `data` (relative paths from the spec's folder), hashed.
/// Empty for other objectives and for synthetic data.
pub fn local_files(spec: &Spec, spec_path: &Path) -> anyhow::Result<Vec<LocalFile>> {
    let ObjectiveSpec::WalkForward(wf) = &spec.objective else {
        return Ok(Vec::new());
    };
    let DataSource::Files { paths, .. } = &wf.data else {
        return Ok(Vec::new());
    };
    let dir = spec_path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in paths {
        let path = dir.join(p);
        let (sha256, bytes) = mlt_node::datasets::sha256_file(&path)
            .with_context(|| format!("objective.data: reading {}", path.display()))?;
        if bytes == 0 {
            bail!("objective.data: {} is empty", path.display());
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().replace('/', "_"))
            .unwrap_or_default();
        out.push(LocalFile {
            path,
            dataset: DatasetRef { sha256, name },
            bytes,
        });
    }
    Ok(out)
}

/// The spec text naming `files` by hash.
pub fn with_refs(text: &str, source: &str, files: &[LocalFile]) -> anyhow::Result<String> {
    if files.is_empty() {
        return Ok(text.to_string());
    }
    let refs: Vec<String> = files.iter().map(|f| f.dataset.to_spec()).collect();
    super::set_data(text, source, &refs).map_err(|e| anyhow::anyhow!(e))
}

/// Reads `f` chunk by chunk, calling `put` with (offset, bytes).
fn chunks(
    f: &LocalFile,
    mut put: impl FnMut(u64, Vec<u8>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::open(&f.path).with_context(|| format!("reading {}", f.path.display()))?;
    let mut offset = 0u64;
    while offset < f.bytes {
        let len = (f.bytes - offset).min(DATASET_CHUNK as u64) as usize;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)
            .with_context(|| format!("{} changed while it was uploaded", f.path.display()))?;
        put(offset, buf)?;
        offset += len as u64;
    }
    Ok(())
}

/// Uploads `f` to a scheduler unless it holds the same content already; returns whether
/// it was sent.
pub async fn upload(t: &mut Target, f: &LocalFile) -> anyhow::Result<bool> {
    let have = t
        .request(FromClient::HasDataset(f.dataset.sha256.clone()))
        .await?;
    if matches!(have, ToClient::Dataset(Some(_))) {
        return Ok(false);
    }
    // Read chunk by chunk as it is sent: a large file is never whole in memory.
    let mut file =
        std::fs::File::open(&f.path).with_context(|| format!("reading {}", f.path.display()))?;
    let mut offset = 0u64;
    let show = f.bytes > 8 * DATASET_CHUNK as u64;
    while offset < f.bytes {
        let len = (f.bytes - offset).min(DATASET_CHUNK as u64) as usize;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)
            .with_context(|| format!("{} changed while it was uploaded", f.path.display()))?;
        let reply = t
            .request(FromClient::PutDataset(PutDatasetMsg {
                sha256: f.dataset.sha256.clone(),
                name: f.dataset.name.clone(),
                total: f.bytes,
                offset,
                bytes: buf,
            }))
            .await?;
        offset += len as u64;
        match reply {
            ToClient::DatasetProgress(n) if n == offset && offset < f.bytes => {
                if show {
                    eprint!(
                        "\ruploading {}: {} of {} MiB",
                        f.dataset.name,
                        offset >> 20,
                        f.bytes >> 20
                    );
                }
            }
            ToClient::Dataset(Some(info))
                if offset == f.bytes && info.sha256 == f.dataset.sha256 =>
            {
                if show {
                    eprintln!("\ruploaded {} ({} MiB)", f.dataset.name, f.bytes >> 20);
                }
            }
            other => bail!(
                "unexpected answer to an upload of {}: {other:?}",
                f.dataset.name
            ),
        }
    }
    Ok(true)
}

/// Stores `f` straight into a scheduler's store (`run`, whose scheduler is in this process).
pub fn store_local(store: &mlt_scheduler::store::Store, f: &LocalFile) -> anyhow::Result<()> {
    if store.dataset(&f.dataset.sha256)?.is_some() {
        return Ok(());
    }
    let sha = &f.dataset.sha256;
    let staging = format!("{sha}@local");
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    chunks(f, |offset, bytes| {
        sha2::Digest::update(&mut hasher, &bytes);
        store.put_chunk(&staging, offset / DATASET_CHUNK as u64, &bytes)?;
        Ok(())
    })?;
    if hex::encode(sha2::Digest::finalize(hasher)) != *sha {
        store.finish_upload(&staging, None)?;
        bail!("{} changed while it was stored", f.path.display());
    }
    store.finish_upload(
        &staging,
        Some(&DatasetInfo {
            sha256: sha.clone(),
            name: f.dataset.name.clone(),
            bytes: f.bytes,
        }),
    )?;
    Ok(())
}
