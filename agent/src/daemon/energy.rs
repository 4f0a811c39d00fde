//! The energy of one job run, for the transparency report.
//!
//! Before and after a run the agent reads the processor's RAPL energy counters
//! (`/sys/class/powercap/intel-rapl:N/energy_uj`, one per package; AMD processors appear
//! there too) where they are readable, its own CPU time and that of the commands it ran
//! (`getrusage`, `RUSAGE_SELF` + `RUSAGE_CHILDREN`), and the whole machine's busy CPU time
//! (`/proc/stat`). The run is given the packages' energy in proportion to its share of the
//! machine's busy CPU time: **measured**. Where the counters cannot be read (a VM, a
//! Raspberry Pi, no root), the run's CPU-seconds times the configured watts per busy core
//! (`cpu_watts` of this site in `[[cooperative.site]]`): an **estimate**.
//!
//! In the daemon, runs that overlap (two jobs, or replication during a job) share one
//! process, so each is given the CPU time of both while they overlap.

use crate::history::{Energy, EnergyMethod};
use std::path::{Path, PathBuf};

/// Where Linux shows the RAPL zones.
pub const POWERCAP: &str = "/sys/class/powercap";

/// One RAPL package zone's counter.
#[derive(Debug, Clone)]
struct Counter {
    zone: PathBuf,
    micro_joules: u64,
    /// The counter wraps around at this value.
    range: u64,
}

#[derive(Debug, Clone)]
struct Reading {
    /// `None`: no readable RAPL package zone.
    rapl: Option<Vec<Counter>>,
    /// User + system seconds of this process and its waited-for children.
    own_cpu: f64,
    /// Busy CPU seconds of the whole machine, all cores.
    busy_cpu: Option<f64>,
}

/// Measures one run: [`Meter::start`] before, [`Meter::stop`] after.
pub struct Meter {
    powercap: PathBuf,
    start: Reading,
}

impl Meter {
    pub fn start() -> Self {
        Self::start_at(Path::new(POWERCAP))
    }

    /// With the powercap zones in another directory (tests).
    pub fn start_at(powercap: &Path) -> Self {
        Self {
            powercap: powercap.to_path_buf(),
            start: read(powercap),
        }
    }

    /// What the run used since [`Meter::start`]; `watts` per busy core for an estimate.
    pub fn stop(self, watts: Option<f64>) -> Energy {
        let end = read(&self.powercap);
        let own = (end.own_cpu - self.start.own_cpu).max(0.0);
        let busy = match (self.start.busy_cpu, end.busy_cpu) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        if let (Some(a), Some(b)) = (&self.start.rapl, &end.rapl) {
            if let Some(delta) = delta_micro_joules(a, b) {
                return Energy {
                    cpu_seconds: own,
                    joules: Some(attribute(delta, own, busy)),
                    method: EnergyMethod::Measured,
                };
            }
        }
        Energy {
            cpu_seconds: own,
            joules: watts.map(|w| own * w),
            method: EnergyMethod::Estimate,
        }
    }
}

/// The run's part of the packages' energy: its share of the machine's busy CPU time (all of
/// it when the machine's busy time is unknown or smaller, which rounding can make it).
pub fn attribute(delta_micro_joules: u64, own_cpu: f64, busy_cpu: Option<f64>) -> f64 {
    let share = match busy_cpu {
        Some(b) if b > 0.0 => (own_cpu / b).clamp(0.0, 1.0),
        _ => 1.0,
    };
    delta_micro_joules as f64 / 1e6 * share
}

/// The energy between two readings of the same zones, counters wrapping at their range.
fn delta_micro_joules(a: &[Counter], b: &[Counter]) -> Option<u64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let mut sum = 0u64;
    for (x, y) in a.iter().zip(b) {
        if x.zone != y.zone {
            return None;
        }
        sum += if y.micro_joules >= x.micro_joules {
            y.micro_joules - x.micro_joules
        } else {
            y.micro_joules + x.range.saturating_sub(x.micro_joules)
        };
    }
    Some(sum)
}

fn read(powercap: &Path) -> Reading {
    Reading {
        rapl: read_rapl(powercap),
        own_cpu: own_cpu(),
        busy_cpu: busy_cpu(),
    }
}

/// The package zones (`intel-rapl:N`; not their core/uncore sub-zones `intel-rapl:N:M`, not
/// the `psys` platform zone, which overlaps them, not the MMIO copy of package 0).
fn read_rapl(powercap: &Path) -> Option<Vec<Counter>> {
    let mut zones: Vec<PathBuf> = std::fs::read_dir(powercap)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix("intel-rapl:")
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|e| e.path())
        .filter(|p| {
            !std::fs::read_to_string(p.join("name"))
                .unwrap_or_default()
                .trim()
                .starts_with("psys")
        })
        .collect();
    zones.sort();
    if zones.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for z in zones {
        let micro_joules = std::fs::read_to_string(z.join("energy_uj"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let range = std::fs::read_to_string(z.join("max_energy_range_uj"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX);
        out.push(Counter {
            zone: z,
            micro_joules,
            range,
        });
    }
    Some(out)
}

fn own_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let secs = |who| {
        getrusage(who)
            .map(|u| {
                let t =
                    |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
                t(u.user_time()) + t(u.system_time())
            })
            .unwrap_or(0.0)
    };
    secs(UsageWho::RUSAGE_SELF) + secs(UsageWho::RUSAGE_CHILDREN)
}

/// user + nice + system + irq + softirq of the `cpu` line of /proc/stat, in seconds.
fn busy_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_busy(&stat, clock_ticks())
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map(|t| t as f64)
        .unwrap_or(100.0)
}

fn parse_busy(stat: &str, ticks: f64) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    if v.len() < 7 {
        return None;
    }
    Some((v[0] + v[1] + v[2] + v[5] + v[6]) as f64 / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(dir: &Path, name: &str, kind: &str, uj: u64) {
        let z = dir.join(name);
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), format!("{kind}\n")).unwrap();
        std::fs::write(z.join("energy_uj"), format!("{uj}\n")).unwrap();
        std::fs::write(z.join("max_energy_range_uj"), "1000000000\n").unwrap();
    }

    #[test]
    fn packages_are_read_and_sub_zones_ignored() {
        let d = tempfile::tempdir().unwrap();
        zone(d.path(), "intel-rapl:0", "package-0", 999_000_000);
        zone(d.path(), "intel-rapl:0:0", "core", 5);
        zone(d.path(), "intel-rapl:1", "psys", 7);
        zone(d.path(), "intel-rapl-mmio:0", "package-0", 9);
        let a = read_rapl(d.path()).unwrap();
        assert_eq!(a.len(), 1);
        // The counter wraps: 999 J → 2 J is 3 J.
        zone(d.path(), "intel-rapl:0", "package-0", 2_000_000);
        let b = read_rapl(d.path()).unwrap();
        assert_eq!(delta_micro_joules(&a, &b), Some(3_000_000));
        let m = Meter::start_at(d.path());
        let e = m.stop(Some(10.0));
        assert_eq!(e.method, EnergyMethod::Measured);
        assert_eq!(e.joules, Some(0.0));
    }

    #[test]
    fn without_counters_it_is_an_estimate() {
        let d = tempfile::tempdir().unwrap();
        let m = Meter::start_at(d.path());
        let x: u64 = (0..3_000_000u64).map(|i| i.wrapping_mul(i) % 7).sum();
        assert!(x > 0);
        let e = m.stop(Some(20.0));
        assert_eq!(e.method, EnergyMethod::Estimate);
        assert!((e.joules.unwrap() - e.cpu_seconds * 20.0).abs() < 1e-9);
        let e = Meter::start_at(d.path()).stop(None);
        assert_eq!((e.method, e.joules), (EnergyMethod::Estimate, None));
    }

    #[test]
    fn attribution_by_cpu_share() {
        assert_eq!(attribute(10_000_000, 1.0, Some(4.0)), 2.5);
        assert_eq!(attribute(10_000_000, 5.0, Some(4.0)), 10.0);
        assert_eq!(attribute(10_000_000, 1.0, None), 10.0);
        let stat = "cpu  100 20 30 1000 50 5 5 7 0 0\ncpu0 1 2 3\n";
        assert_eq!(parse_busy(stat, 100.0), Some(1.6));
    }
}
