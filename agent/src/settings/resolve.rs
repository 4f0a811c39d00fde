//! Resolution: agent.toml's raw values into [`Settings`], each mistake a line-numbered
//! [`ConfigProblem`] (`[site]`, `[[peer]]`, `[[witness]]` and the checks across jobs here;
//! jobs in `jobs.rs`, the cooperative's facts in `cooperative.rs`).

use super::*;

impl Settings {
    /// Parses and resolves a config. Every problem found is returned, with its line.
    pub fn resolve(text: &str) -> Result<Settings, Vec<ConfigProblem>> {
        let cfg = raw::parse(text).map_err(|p| vec![p])?;
        let mut p = Problems {
            text,
            list: Vec::new(),
        };
        fill_ins(text, &mut p);
        let site = resolve_site(&cfg.site, &mut p);
        let mut names = std::collections::HashSet::new();
        let jobs: Vec<Option<JobSettings>> = cfg
            .jobs
            .iter()
            .map(|j| {
                if !names.insert(j.name.get_ref().clone()) {
                    p.err(
                        j.name.span(),
                        format!("two jobs are named {:?}", j.name.get_ref()),
                    );
                }
                resolve_job(j, &mut p)
            })
            .collect();
        check_drills(&cfg.jobs, &jobs, &mut p);
        let peers: Vec<Option<PeerSettings>> =
            cfg.peers.iter().map(|x| resolve_peer(x, &mut p)).collect();
        let witnesses = resolve_witnesses(&cfg.witnesses, &mut p);
        let cooperative = cfg
            .cooperative
            .as_ref()
            .and_then(|c| resolve_cooperative(c, &mut p));
        if !p.list.is_empty() {
            return Err(p.list);
        }
        Ok(Settings {
            cooperative,
            site: site.expect("no problems"),
            peers: peers.into_iter().map(|x| x.expect("no problems")).collect(),
            jobs: jobs.into_iter().map(|x| x.expect("no problems")).collect(),
            witnesses,
        })
    }
}

pub(super) struct Problems<'t> {
    pub(super) text: &'t str,
    pub(super) list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    pub(super) fn err(&mut self, span: std::ops::Range<usize>, message: String) {
        self.list.push(ConfigProblem {
            line: Some(line_of(self.text, span.start)),
            message,
            warning: false,
        });
    }
}

fn resolve_site(s: &raw::Site, p: &mut Problems) -> Option<SiteSettings> {
    let key = match (&s.identity_file, &s.writer_key) {
        (None, None) => {
            p.list.push(ConfigProblem {
                line: None,
                message: "[site] needs identity_file or writer_key".into(),
                warning: false,
            });
            None
        }
        (Some(a), Some(_)) => {
            p.err(
                a.span(),
                "give identity_file or writer_key, not both".into(),
            );
            None
        }
        (Some(i), None) => Some(KeySource::Identity(i.get_ref().clone())),
        (None, Some(w)) => Some(KeySource::Writer(w.get_ref().clone())),
    };
    let jitter = match &s.jitter {
        Some(j) => match parse_duration(j.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                p.err(j.span(), format!("jitter: {e}"));
                None
            }
        },
        None => None,
    };
    let log_sync_interval = match &s.log_sync_interval {
        Some(v) => match parse_duration(v.get_ref()) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => d,
            Ok(_) => {
                p.err(
                    v.span(),
                    "log_sync_interval: give between 1s and 24h".to_string(),
                );
                DEFAULT_LOG_SYNC_INTERVAL
            }
            Err(e) => {
                p.err(v.span(), format!("log_sync_interval: {e}"));
                DEFAULT_LOG_SYNC_INTERVAL
            }
        },
        None => DEFAULT_LOG_SYNC_INTERVAL,
    };
    let cache_dir = s
        .cache_dir
        .clone()
        .or_else(crate::catalog::default_cache_dir)
        .unwrap_or_else(|| PathBuf::from("/var/cache/coop"));
    Some(SiteSettings {
        name: s.name.clone(),
        repo: s.repo.get_ref().clone(),
        s3: s.s3.clone(),
        key: key?,
        cache_dir,
        metrics_file: s.metrics_file.clone(),
        healthcheck_url: s.healthcheck_url.clone(),
        notify_command: s.notify_command.clone(),
        jitter,
        log_sync_interval,
    })
}

fn resolve_peer(x: &raw::Peer, p: &mut Problems) -> Option<PeerSettings> {
    let mut ok = true;
    let upload_limit = match &x.upload_limit {
        Some(v) => match parse_size(v.get_ref()) {
            Ok(n) => Some(n),
            Err(e) => {
                p.err(v.span(), format!("peer {:?}: upload_limit {e}", x.name));
                ok = false;
                None
            }
        },
        None => None,
    };
    let retry_max = match &x.retry_max {
        Some(v) => match parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                p.err(v.span(), format!("peer {:?}: retry_max {e}", x.name));
                ok = false;
                Duration::ZERO
            }
        },
        None => Duration::from_secs(1800),
    };
    ok.then(|| PeerSettings {
        name: x.name.clone(),
        repo: x.repo.get_ref().clone(),
        s3: x.s3.clone(),
        upload_limit,
        retry_max,
    })
}

/// A recipe's values still to be filled in (`coop recipe show` marks them).
fn fill_ins(text: &str, p: &mut Problems) {
    for (i, l) in text.lines().enumerate() {
        if let Some(at) = l.find("<FILL IN:") {
            let what = l[at..]
                .split('>')
                .next()
                .unwrap_or("")
                .trim_start_matches('<');
            p.list.push(ConfigProblem {
                line: Some(i + 1),
                message: format!("a value is still to be filled in: {what}"),
                warning: false,
            });
        }
    }
}

/// A drill names backup jobs of this config.
fn check_drills(raws: &[raw::Job], jobs: &[Option<JobSettings>], p: &mut Problems) {
    for (raw, job) in raws.iter().zip(jobs) {
        if let Some(JobSettings {
            action: JobAction::Drill { jobs: names, .. },
            ..
        }) = job
        {
            for n in names {
                let target = jobs.iter().flatten().find(|x| &x.name == n);
                if !matches!(
                    target,
                    Some(JobSettings {
                        action: JobAction::Backup,
                        ..
                    })
                ) {
                    p.err(
                        raw.name.span(),
                        format!(
                            "job {:?}: drill names {n:?}, which is no backup job here",
                            raw.name.get_ref()
                        ),
                    );
                }
            }
        }
    }
}

/// `[[witness]]`: the repositories this site witnesses.
fn resolve_witnesses(raws: &[raw::Witness], p: &mut Problems) -> Vec<WitnessSettings> {
    let mut witnesses = Vec::new();
    for w in raws {
        let admin_key = match &w.admin_key {
            Some(h) => match hex::decode(h.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                Some(k) => Some(k),
                None => {
                    p.err(
                        w.repo.span(),
                        "witness admin_key must be 64 hex characters".to_string(),
                    );
                    None
                }
            },
            None => None,
        };
        witnesses.push(WitnessSettings {
            repo: w.repo.get_ref().clone(),
            s3: w.s3.clone(),
            admin_key,
            copies: w
                .copies
                .iter()
                .map(|c| (c.repo.get_ref().clone(), c.s3.clone()))
                .collect(),
        });
    }
    witnesses
}
