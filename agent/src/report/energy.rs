//! Energy: each run's CPU time and energy from the history, per job, month and site, and the
//! stored-bytes series over time.

use super::*;

pub(super) fn energy_report(s: &Settings, h: &History, opts: &Options) -> Result<EnergyReport> {
    let runs = h.runs_between(opts.since, opts.until)?;
    let watts = s.cpu_watts();
    let mut by_job: BTreeMap<String, (usize, f64, Option<f64>, bool, bool)> = BTreeMap::new();
    let mut by_month: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut per_run = Vec::new();
    let (mut cpu, mut measured, mut estimated) = (0.0, 0.0, 0.0);
    let mut unknown = false;
    let mut without = 0;
    for r in &runs {
        let Some(e) = &r.energy else {
            without += 1;
            continue;
        };
        let joules = match (e.joules, e.method) {
            (Some(j), _) => Some(j),
            (None, _) => watts.map(|w| e.cpu_seconds * w),
        };
        let wh = joules.map(|j| j / 3600.0);
        cpu += e.cpu_seconds;
        let month = crate::unix_rfc3339(r.started)[..7].to_string();
        let slot = by_month.entry(month).or_default();
        match (e.method, wh) {
            (EnergyMethod::Measured, Some(w)) => {
                measured += w;
                slot.0 += w;
            }
            (EnergyMethod::Estimate, Some(w)) => {
                estimated += w;
                slot.1 += w;
            }
            (_, None) => unknown = true,
        }
        let j = by_job
            .entry(r.job.clone())
            .or_insert((0, 0.0, Some(0.0), false, false));
        j.0 += 1;
        j.1 += e.cpu_seconds;
        j.2 = match (j.2, wh) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        match e.method {
            EnergyMethod::Measured => j.3 = true,
            EnergyMethod::Estimate => j.4 = true,
        }
        per_run.push(RunEnergyReport {
            job: r.job.clone(),
            started: crate::unix_rfc3339(r.started),
            status: r.status.clone(),
            cpu_seconds: round(e.cpu_seconds, 3),
            wh: wh.map(|w| round(w, 6)),
            method: e.method,
        });
    }
    let label = |m: bool, e: bool| match (m, e) {
        (true, false) => "measured",
        (false, true) => "estimate",
        (true, true) => "mixed",
        (false, false) => "none",
    };
    let any_measured = per_run.iter().any(|r| r.method == EnergyMethod::Measured);
    let any_estimate = per_run.iter().any(|r| r.method == EnergyMethod::Estimate);
    let sites = sites(s);
    Ok(EnergyReport {
        site: s.site.name.clone(),
        method: label(any_measured, any_estimate),
        runs: runs.len(),
        runs_without_energy: without,
        cpu_seconds: round(cpu, 3),
        wh: (!unknown).then(|| round(measured + estimated, 6)),
        measured_wh: round(measured, 6),
        estimated_wh: round(estimated, 6),
        cpu_watts: watts,
        by_job: by_job
            .into_iter()
            .map(|(job, (n, c, wh, m, e))| JobEnergy {
                job,
                runs: n,
                cpu_seconds: round(c, 3),
                wh: wh.map(|w| round(w, 6)),
                method: label(m, e),
            })
            .collect(),
        by_month: by_month
            .into_iter()
            .map(|(month, (m, e))| MonthEnergy {
                month,
                measured_wh: round(m, 6),
                estimated_wh: round(e, 6),
            })
            .collect(),
        per_run,
        sites,
    })
}

/// The sites whose electricity the report names: this site first (its runs are what was
/// recorded), then its peers and the cooperative's other sites.
fn sites(s: &Settings) -> Vec<SiteEnergy> {
    let facts = s
        .cooperative
        .as_ref()
        .map(|c| c.sites.as_slice())
        .unwrap_or_default();
    let mut sites: Vec<SiteEnergy> = std::iter::once(s.site.name.clone())
        .chain(s.peers.iter().map(|p| p.name.clone()))
        .chain(facts.iter().map(|f| f.name.clone()))
        .fold(Vec::<String>::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        })
        .into_iter()
        .map(|n| {
            let f = s.site_facts(&n);
            SiteEnergy {
                recorded_here: n == s.site.name,
                site: n,
                energy_source: f.and_then(|f| f.energy_source.clone()),
                renewable: f.and_then(|f| f.renewable),
            }
        })
        .collect();
    sites.sort_by(|a, b| (!a.recorded_here, &a.site).cmp(&(!b.recorded_here, &b.site)));
    sites
}

/// Stored bytes over time from the history: the total and, with `--member`, that member's.
pub(super) fn stored_over_time(
    t: &super::tenants::Tenants,
    history: Option<&History>,
    opts: &Options,
    pack_bytes: u64,
) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    if let Some(h) = history {
        let samples = h.usage_samples(opts.until)?;
        out.push(series("total", &samples, opts, |_| true, pack_bytes));
        if let Some(m) = &opts.member {
            let tenant = format!("member/{m}");
            let now = t.usage_of(&tenant).map(|u| u.stored_bytes).unwrap_or(0);
            out.push(series(&tenant, &samples, opts, |t| t == tenant, now));
        }
    }
    Ok(out)
}

/// A step line: each tenant's stored bytes are its last sample; the line starts at `since`
/// with what was known then and ends at `until` with `now` (the store as it is).
pub(super) fn series(
    name: &str,
    samples: &[(i64, String, u64)],
    opts: &Options,
    want: impl Fn(&str) -> bool,
    now: u64,
) -> Series {
    let mut current: BTreeMap<&str, u64> = BTreeMap::new();
    let mut points: Vec<Point> = Vec::new();
    let mut started = false;
    let point = |t: i64, bytes: u64| Point {
        time: crate::unix_rfc3339(t),
        unix: t,
        bytes,
    };
    for (t, tenant, bytes) in samples.iter().filter(|(_, tenant, _)| want(tenant)) {
        if *t >= opts.since && !started {
            started = true;
            if !current.is_empty() {
                points.push(point(opts.since, current.values().sum()));
            }
        }
        current.insert(tenant.as_str(), *bytes);
        if *t >= opts.since {
            let total = current.values().sum();
            match points.last_mut() {
                Some(p) if p.unix == *t => p.bytes = total,
                _ => points.push(point(*t, total)),
            }
        }
    }
    if !started && !current.is_empty() {
        points.push(point(opts.since, current.values().sum()));
    }
    if !points.is_empty() && points.last().is_some_and(|p| p.unix < opts.until) {
        points.push(point(opts.until, now));
    }
    Series {
        name: name.to_string(),
        points,
    }
}
