//! The report's data model: what `gather` fills and the page, the text and the JSON show.

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    /// RFC 3339.
    pub generated: String,
    pub period: Period,
    pub language: Language,
    /// `Some`: member-specific parts cover this member only.
    pub member: Option<String>,
    pub repository: RepositoryInfo,
    pub cooperative: Option<CooperativeInfo>,
    /// Cooperative-wide figures (also with `--member`).
    pub totals: Totals,
    pub members: Vec<MemberReport>,
    /// Tenants that are not members' (the services' backups, removed members).
    pub shared: Vec<SharedTenant>,
    pub sites: Vec<SiteReport>,
    pub costs: Option<Costs>,
    pub energy: Option<EnergyReport>,
    /// The jobs of the site whose config the report was made with, and their caretakers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caretakers: Vec<JobCaretaker>,
    /// Who can read what, per tenant.
    pub readers: Vec<TenantReaders>,
    /// The sites that may write (sign snapshots in) every tenant.
    pub writers: Vec<Writer>,
    pub accesses: Option<Accesses>,
    /// Stored bytes over time (from the agent's samples after each job run).
    pub stored_over_time: Vec<Series>,
    /// Sections the report could not fill, and the config keys that would fill them.
    pub missing: Vec<Missing>,
    pub warnings: Vec<String>,
    /// Whether stored data failed verification (a rollback, a damaged log): the CLI exits 6.
    pub integrity_problem: bool,
    /// When the next report is due (a scheduled report job sets it), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<String>,
}

/// A job and who looks after it.
#[derive(Debug, Clone, Serialize)]
pub struct JobCaretaker {
    pub job: String,
    /// "Name <contact>"; `None`: the job names none.
    pub caretaker: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub since: String,
    pub until: String,
    pub days: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryInfo {
    pub id: String,
    pub location: String,
    /// The site whose config the report was made with.
    pub site: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Active members.
    pub members: usize,
    /// Every pack in the store, every tenant.
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CooperativeInfo {
    pub name: String,
    pub legal_form: Option<String>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub name: String,
    pub tenant: String,
    /// Bytes of packs in the store (after dedup, compression and encryption), as `coop usage`.
    pub stored_bytes: u64,
    /// Size of the newest snapshot's files (`None`: the caller cannot read the tenant).
    pub logical_bytes: Option<u64>,
    /// `None`: the caller cannot tell (a writer key sees snapshot objects, not what they hold).
    pub snapshots: Option<usize>,
    /// The newest snapshot's time; `None` with `snapshots` 0: never, otherwise unknown ("?").
    pub last_backup: Option<String>,
    pub quota: Option<u64>,
    pub quota_used_percent: Option<f64>,
    /// Every peer holds a replica of the whole repository, so of this member's data.
    pub replicas: Vec<Replica>,
    pub cost: Option<Share>,
}

/// A last backup as the renderers show it: its time, `never` (no snapshot at all), or `?`.
pub fn last_backup_text(
    last: Option<&str>,
    snapshots: Option<usize>,
    time: impl Fn(&str) -> String,
    never: &str,
) -> String {
    match (last, snapshots) {
        (Some(t), _) => time(t),
        (None, Some(0)) => never.to_string(),
        (None, _) => "?".to_string(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Replica {
    pub site: String,
    /// The last successful replication to it (RFC 3339).
    pub last_ok: Option<String>,
    /// What it lacked after the last attempt (the whole repository; `None`: unknown).
    pub lag_objects: Option<u64>,
    pub lag_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SharedTenant {
    pub tenant: String,
    pub stored_bytes: u64,
    pub logical_bytes: Option<u64>,
    pub snapshots: Option<usize>,
    /// As [`MemberReport::last_backup`].
    pub last_backup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteRole {
    /// The site whose repository this is.
    ThisSite,
    /// A peer: holds an encrypted replica.
    Replica,
    /// A site of the cooperative that holds nothing of this repository.
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    pub name: String,
    pub role: SiteRole,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub energy_source: Option<String>,
    pub renewable: Option<bool>,
    /// Bytes of this repository the site stores (all objects). For replicas: this site's
    /// bytes less what the replica lacked at the last replication.
    pub stored_bytes: Option<u64>,
    pub stored_is_estimate: bool,
    /// Per month, in the cooperative's currency.
    pub monthly_costs: Option<f64>,
    pub cost_items: Vec<CostItem>,
    pub last_replicated: Option<String>,
    /// Whether the site's agent holds a key that reads data: this site with an identity;
    /// replicas hold no key of this repository.
    pub can_read: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostItem {
    pub item: String,
    pub amount: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Costs {
    pub currency: String,
    /// Every configured site's monthly costs.
    pub monthly_total: f64,
    pub fixed_share_percent: f64,
    /// Split equally among the members.
    pub fixed_part: f64,
    /// Split by stored GB-month.
    pub usage_part: f64,
    /// Every pack in the store (every tenant).
    pub stored_bytes: u64,
    /// Of which the active members' tenants.
    pub member_bytes: u64,
    /// Of which the rest (services, removed members): split equally among the members.
    pub shared_bytes: u64,
    /// usage_part / stored GB (`None` when nothing is stored).
    pub price_per_gb_month: Option<f64>,
    pub member_count: usize,
    /// The sum of every member's share (equals `monthly_total` when there are members).
    pub shares_total: f64,
    /// What no member carries (all of it when there are no members).
    pub unallocated: f64,
    /// The members' shares (only the member reported on, with `--member`).
    pub shares: Vec<Share>,
    /// Groups, each one cost line with its members' parts (with `--member`, only the groups
    /// that member pays for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupCost>,
    pub balance: Option<f64>,
    pub balance_date: Option<String>,
    /// balance / monthly_total.
    pub runway_months: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Share {
    pub member: String,
    /// fixed_part / members.
    pub fixed: f64,
    /// price × the member's stored GB.
    pub usage: f64,
    /// price × shared GB / members.
    pub shared: f64,
    /// The three together, to the cent; the members' totals add up to the costs exactly.
    pub monthly: f64,
    /// The same with the member's stored bytes at their quota.
    pub at_quota: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnergyReport {
    /// The site whose jobs these are (energy is recorded where jobs run).
    pub site: String,
    /// "measured", "estimate", "mixed", or "none" (no run recorded energy).
    pub method: &'static str,
    pub runs: usize,
    /// Runs recorded before energy was (counted in `runs`, not in the figures).
    pub runs_without_energy: usize,
    pub cpu_seconds: f64,
    /// Watt-hours (`None` when estimates lack a wattage).
    pub wh: Option<f64>,
    pub measured_wh: f64,
    pub estimated_wh: f64,
    /// Watts per busy core used for estimates (`cpu_watts`).
    pub cpu_watts: Option<f64>,
    pub by_job: Vec<JobEnergy>,
    pub by_month: Vec<MonthEnergy>,
    pub per_run: Vec<RunEnergyReport>,
    /// Each site's electricity, from the config.
    pub sites: Vec<SiteEnergy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobEnergy {
    pub job: String,
    pub runs: usize,
    pub cpu_seconds: f64,
    pub wh: Option<f64>,
    pub method: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthEnergy {
    /// YYYY-MM (UTC).
    pub month: String,
    pub measured_wh: f64,
    pub estimated_wh: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunEnergyReport {
    pub job: String,
    pub started: String,
    pub status: String,
    pub cpu_seconds: f64,
    pub wh: Option<f64>,
    pub method: EnergyMethod,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteEnergy {
    pub site: String,
    pub energy_source: Option<String>,
    pub renewable: Option<bool>,
    /// Whether this report's figures are this site's (the others record their own).
    pub recorded_here: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantReaders {
    pub tenant: String,
    pub member: Option<String>,
    /// "keyring" (opened: exact) or "registry" (the recipients the keyring is wrapped to).
    pub source: &'static str,
    pub readers: Vec<Reader>,
    /// For member tenants after `coop recovery init`: K of N admins together.
    pub recovery: Option<RecoveryPolicy>,
    /// Who may add snapshots: the sites of the writer list, the admins, the member.
    pub writers: Vec<String>,
    /// Sites holding encrypted replicas, without a key to read them.
    pub storage_sites: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reader {
    /// The recipient exactly as in the keyring.
    pub recipient: String,
    /// "member", "admin" (a key that reads alone), "recovery-split" (K of N together) or
    /// "key" (any other recipient).
    pub kind: &'static str,
    /// `SHA256:…` for SSH keys (as `ssh-keygen -l`), the key itself for age keys.
    pub fingerprint: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPolicy {
    /// Shares a recovery needs: the admin who asks and `approvals` others.
    pub threshold: u8,
    /// Approvals by admins other than the one who asks.
    pub approvals: u8,
    pub holders: Vec<String>,
    pub description: String,
}

/// A group as one cost line: what its payer pays for its members.
#[derive(Debug, Clone, Serialize)]
pub struct GroupCost {
    pub group: String,
    pub payer: String,
    pub quota: Option<u64>,
    pub stored_bytes: u64,
    /// The sum of the members' monthly shares.
    pub monthly: f64,
    /// Each member's part: (member, stored bytes, monthly share), the payer first.
    pub members: Vec<(String, u64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Writer {
    pub name: String,
    /// The signing key, hex (first 16 digits).
    pub key: String,
    pub kind: &'static str,
    pub added: Option<String>,
    pub revoked: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accesses {
    /// No problem found in any log.
    pub verified: bool,
    pub problems: Vec<String>,
    pub quorum: u32,
    pub logs: Vec<LogState>,
    pub members: Vec<MemberAccesses>,
    /// Break-glass reads of the service tenant (`restore --break-glass`: logged, not waited
    /// for the witnesses), shown to every member whatever `--member` says.
    pub break_glass: Vec<AccessEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogState {
    pub actor: String,
    pub entries: u64,
    /// The largest size carrying the quorum of cosignatures.
    pub witnessed_size: Option<u64>,
    pub cosigned_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberAccesses {
    pub member: String,
    pub total: usize,
    pub by_reason: BTreeMap<String, usize>,
    pub entries: Vec<AccessEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessEntry {
    pub time: String,
    pub event: String,
    pub reason: Option<String>,
    pub actor_name: String,
    /// The caretaker who asked for the access, if the entry names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    pub witnessed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// "total", or a member's tenant.
    pub name: String,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub time: String,
    #[serde(skip)]
    pub unix: i64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub section: &'static str,
    /// The agent.toml keys (or options) that would fill it.
    pub keys: Vec<&'static str>,
    pub note: &'static str,
}

/// Every tenant the caller knows, with what it is.
pub(super) struct Known {
    pub(super) keys: TenantKeys,
    /// Opened from its keyring (so its recipients are exact).
    pub(super) ring: Option<coop_formats::keyring::Keyring>,
}
