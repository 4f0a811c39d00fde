//! `[[job]]` resolved: sources, schedule, retention, members, caretaker, and what the job
//! does (a backup, a report archive or a restore drill).

use super::*;

pub(super) fn resolve_job(j: &raw::Job, p: &mut Problems) -> Option<JobSettings> {
    let name = j.name.get_ref().clone();
    let before = p.list.len();
    let cron = match parse_cron(j.schedule.get_ref()) {
        Ok(c) => Some(c),
        Err(e) => {
            p.err(j.schedule.span(), format!("job {name:?}: schedule {e}"));
            None
        }
    };
    let members = resolve_members(j, &name, p);
    check_member_sources(j, &name, p);
    let action = resolve_action(j, &name, p);
    check_sources(j, &name, matches!(action, Some(JobAction::Backup)), p);
    let caretaker = j
        .caretaker
        .as_ref()
        .and_then(|c| match Caretaker::parse(c.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                p.err(c.span(), format!("job {name:?}: {e}"));
                None
            }
        });
    let retention = j.retention.as_ref().map(|r| resolve_retention(r, &name, p));
    if p.list.len() > before {
        return None;
    }
    Some(JobSettings {
        name,
        schedule: j.schedule.get_ref().clone(),
        cron: cron?,
        paths: j.paths.clone(),
        commands: j.commands.clone(),
        command_dirs: j.command_dirs.clone(),
        paths_from_command: j.paths_from_command.clone(),
        exclude: j.exclude.clone(),
        one_file_system: j.one_file_system,
        ignore_cachedir_tag_below: j.ignore_cachedir_tag_below.clone(),
        tenant: j.tenant.clone(),
        tags: j.tags.clone(),
        before: j.before.clone(),
        after: j.after.clone(),
        healthcheck_url: j.healthcheck_url.clone(),
        caretaker,
        notify_command: j.notify_command.clone(),
        retention,
        members,
        sql: j
            .sql
            .iter()
            .map(|q| SqlSource {
                database: q.database.clone(),
                query: q.query.clone(),
                filename: q.filename.clone(),
                psql_args: q.psql_args.clone(),
            })
            .collect(),
        action: action?,
    })
}

/// A job's `report` or `drill` table (at most one), else a backup.
fn resolve_action(j: &raw::Job, name: &str, p: &mut Problems) -> Option<JobAction> {
    match (&j.report, &j.drill) {
        (Some(r), Some(_)) => {
            p.err(
                r.span(),
                format!("job {name:?}: give `report` or `drill`, not both"),
            );
            None
        }
        (Some(r), None) => {
            let span = r.span();
            let r = r.get_ref();
            if !r.dir.is_absolute() {
                p.err(
                    span,
                    format!(
                        "job {name:?}: report dir {} is not absolute",
                        r.dir.display()
                    ),
                );
                return None;
            }
            let since = match r.since.as_deref().map(parse_duration).transpose() {
                Ok(d) => d.unwrap_or(Duration::from_secs(92 * 86_400)),
                Err(e) => {
                    p.err(span, format!("job {name:?}: report since {e}"));
                    return None;
                }
            };
            Some(JobAction::Report {
                dir: r.dir.clone(),
                since,
                setup: r.setup,
            })
        }
        (None, Some(d)) => {
            let sample = d.get_ref().sample.unwrap_or(20);
            if sample == 0 {
                p.err(
                    d.span(),
                    format!("job {name:?}: drill sample must be at least 1"),
                );
                return None;
            }
            Some(JobAction::Drill {
                jobs: d.get_ref().jobs.clone(),
                sample,
            })
        }
        (None, None) => Some(JobAction::Backup),
    }
}

/// `members`: "all" or a list of names.
fn resolve_members(j: &raw::Job, name: &str, p: &mut Problems) -> Option<Members> {
    match &j.members {
        None => None,
        Some(m) => match m.get_ref() {
            raw::MemberSelect::All(s) if s == "all" => Some(Members::All),
            raw::MemberSelect::All(_) => {
                p.err(
                    m.span(),
                    format!("job {name:?}: members must be \"all\" or a list of names"),
                );
                None
            }
            raw::MemberSelect::Names(n) => Some(Members::Names(n.clone())),
        },
    }
}

/// `{member}` and `sql` need `members`.
fn check_member_sources(j: &raw::Job, name: &str, p: &mut Problems) {
    let uses_member = j
        .paths
        .iter()
        .any(|x| x.to_string_lossy().contains("{member}"))
        || j.commands
            .iter()
            .any(|c| c.command.contains("{member}") || c.filename.contains("{member}"))
        || j.command_dirs
            .iter()
            .any(|c| c.command.contains("{member}"))
        || j.paths_from_command.iter().any(|c| c.contains("{member}"));
    if j.members.is_none() && (!j.sql.is_empty() || uses_member) {
        p.err(
            j.name.span(),
            format!("job {name:?} uses {{member}} or sql but has no `members`"),
        );
    }
}

/// A backup backs up something and a report or drill nothing; the sources' paths and
/// patterns are valid.
fn check_sources(j: &raw::Job, name: &str, backs_up: bool, p: &mut Problems) {
    if !backs_up
        && (!j.paths.is_empty()
            || !j.commands.is_empty()
            || !j.sql.is_empty()
            || !j.command_dirs.is_empty()
            || j.members.is_some()
            || j.retention.is_some())
    {
        p.err(
            j.name.span(),
            format!(
                "job {name:?} writes a report or runs a drill: it backs up nothing (no paths, \
             commands, sql, members or retention)"
            ),
        );
    }
    if backs_up
        && j.paths.is_empty()
        && j.commands.is_empty()
        && j.sql.is_empty()
        && j.command_dirs.is_empty()
        && j.paths_from_command.is_empty()
    {
        p.err(
            j.name.span(),
            format!("job {name:?} has no paths and no commands"),
        );
    }
    for b in &j.ignore_cachedir_tag_below {
        if !b.is_absolute() {
            p.err(
                j.name.span(),
                format!(
                    "job {name:?}: ignore_cachedir_tag_below: {} is not an absolute path",
                    b.display()
                ),
            );
        }
    }
    if let Err(e) = crate::patterns::Patterns::new(&j.exclude) {
        p.err(j.name.span(), format!("job {name:?}: {e}"));
    }
}

/// `retention`: a policy with at least one keep rule.
fn resolve_retention(
    r: &toml::Spanned<raw::Retention>,
    name: &str,
    p: &mut Problems,
) -> RetentionSettings {
    let span = r.span();
    let r = r.get_ref();
    let within = match r.keep_within.as_deref().map(parse_duration).transpose() {
        Ok(w) => w,
        Err(e) => {
            p.err(span.clone(), format!("job {name:?}: keep_within {e}"));
            None
        }
    };
    let policy = crate::forget::Policy {
        last: r.keep_last,
        hourly: r.keep_hourly,
        daily: r.keep_daily,
        weekly: r.keep_weekly,
        monthly: r.keep_monthly,
        yearly: r.keep_yearly,
        within,
        tags: r.keep_tags.clone(),
    };
    if policy.is_empty() {
        p.err(
            span,
            format!("job {name:?}: retention has no keep rule (it would remove every snapshot)"),
        );
    }
    RetentionSettings {
        policy,
        prune: r.prune,
    }
}
