//! What a node offers: CPU slots and GPUs.
use mlt_protocol::ids::SlotId;
use mlt_protocol::messages::SlotInfo;

/// GPUs to use: the given list, else `CUDA_VISIBLE_DEVICES`, else what `nvidia-smi -L` lists.
pub fn detect_gpus(given: Option<&[u32]>) -> Vec<u32> {
    if let Some(g) = given {
        return g.to_vec();
    }
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return parse_gpu_list(&v).unwrap_or_default();
    }
    match std::process::Command::new("nvidia-smi").arg("-L").output() {
        Ok(out) if out.status.success() => {
            let n = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("GPU "))
                .count();
            (0..n as u32).collect()
        }
        _ => Vec::new(),
    }
}

/// Parses `0,1,3` (empty = none).
pub fn parse_gpu_list(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<u32>()
                .map_err(|_| format!("`{x}` is not a GPU index (expected e.g. 0,1,3)"))
        })
        .collect()
}

/// The slots: `slots` of them (0 = one per core). With GPUs, one GPU per slot for the first
/// slots; the CPU cores are shared out evenly.
pub fn make_slots(slots: u32, gpus: &[u32]) -> Vec<SlotInfo> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let n = if slots == 0 { cores } else { slots };
    let cpus = (cores / n).max(1);
    (0..n)
        .map(|i| SlotInfo {
            slot: SlotId(i),
            cpus,
            gpus: gpus.get(i as usize).map(|g| vec![*g]).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_lists_and_slots() {
        assert_eq!(parse_gpu_list("0, 2,3"), Ok(vec![0, 2, 3]));
        assert_eq!(parse_gpu_list(""), Ok(vec![]));
        assert!(parse_gpu_list("a").is_err());
        let s = make_slots(3, &[4, 5]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].gpus, vec![4]);
        assert_eq!(s[1].gpus, vec![5]);
        assert!(s[2].gpus.is_empty());
        assert!(s.iter().all(|x| x.cpus >= 1));
        assert_eq!(detect_gpus(Some(&[7])), vec![7]);
    }
}
