//! The report page's words and number formats, in English and German (`[cooperative]
//! language`). Templates take `{0}`, `{1}`, … ([`fill`]).

use crate::settings::Language;

/// Every string the page shows.
pub struct Strings {
    pub lang: &'static str,
    pub title: &'static str,
    pub period: &'static str,
    pub to: &'static str,
    pub generated: &'static str,
    pub for_member: &'static str,
    pub repository: &'static str,
    pub contents: &'static str,
    pub glance: &'static str,
    pub members: &'static str,
    pub member: &'static str,
    pub stored: &'static str,
    pub stored_hint: &'static str,
    pub logical: &'static str,
    pub snapshots: &'static str,
    pub last_backup: &'static str,
    pub quota: &'static str,
    pub quota_used: &'static str,
    pub no_quota: &'static str,
    pub replicas: &'static str,
    pub up_to_date: &'static str,
    pub behind: &'static str,
    pub never: &'static str,
    pub unknown: &'static str,
    pub shared_services: &'static str,
    pub stored_per_member: &'static str,
    pub sites: &'static str,
    pub site: &'static str,
    pub role: &'static str,
    pub role_this: &'static str,
    pub role_replica: &'static str,
    pub role_other: &'static str,
    pub provider: &'static str,
    pub location: &'static str,
    pub energy_source: &'static str,
    pub renewable: &'static str,
    pub not_renewable: &'static str,
    pub can_read: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub last_replicated: &'static str,
    pub estimated_from_lag: &'static str,
    pub stored_per_site: &'static str,
    pub costs: &'static str,
    pub monthly_costs: &'static str,
    pub item: &'static str,
    pub per_month: &'static str,
    pub total: &'static str,
    pub cost_model: &'static str,
    /// {0} percent, {1} members.
    pub model_fixed: &'static str,
    pub model_usage: &'static str,
    pub model_shared: &'static str,
    pub price_per_gb: &'static str,
    pub share: &'static str,
    pub fixed_part: &'static str,
    pub usage_part: &'static str,
    pub shared_part: &'static str,
    pub at_quota: &'static str,
    pub shares_add_up: &'static str,
    pub group: &'static str,
    pub next_due: &'static str,
    pub asked_by: &'static str,
    pub group_payer: &'static str,
    pub group_parts: &'static str,
    pub unallocated: &'static str,
    pub runway: &'static str,
    /// {0} balance, {1} months.
    pub runway_text: &'static str,
    pub as_of: &'static str,
    pub months: &'static str,
    pub energy: &'static str,
    pub measured: &'static str,
    pub estimate: &'static str,
    pub mixed: &'static str,
    pub none: &'static str,
    /// {0} site.
    pub energy_note: &'static str,
    /// {0} watts.
    pub estimate_note: &'static str,
    pub energy_per_month: &'static str,
    pub job: &'static str,
    pub runs: &'static str,
    pub cpu_time: &'static str,
    pub method: &'static str,
    pub electricity: &'static str,
    pub recorded_elsewhere: &'static str,
    pub who_can_read: &'static str,
    pub readers_intro: &'static str,
    pub data_of: &'static str,
    pub shared_data: &'static str,
    pub readers: &'static str,
    pub writers: &'static str,
    pub storage_only: &'static str,
    pub caretakers: &'static str,
    pub caretakers_intro: &'static str,
    pub kind_member: &'static str,
    pub kind_admin: &'static str,
    /// {0} K, {1} N, {2} names.
    pub kind_split: &'static str,
    pub kind_key: &'static str,
    pub own_key: &'static str,
    pub admins: &'static str,
    pub accesses: &'static str,
    pub accesses_intro: &'static str,
    pub no_access: &'static str,
    pub break_glass: &'static str,
    pub break_glass_intro: &'static str,
    pub when: &'static str,
    pub what: &'static str,
    pub who: &'static str,
    pub reason: &'static str,
    pub witnessed: &'static str,
    pub not_witnessed: &'static str,
    pub log_ok: &'static str,
    pub log_problems: &'static str,
    /// {0} quorum.
    pub quorum: &'static str,
    pub stored_over_time: &'static str,
    pub no_history: &'static str,
    pub missing: &'static str,
    pub missing_intro: &'static str,
    pub warnings: &'static str,
    pub how: &'static str,
    pub footer: &'static str,
    pub none_yet: &'static str,
}

pub const EN: Strings = Strings {
    lang: "en",
    title: "Transparency report",
    period: "Period",
    to: "to",
    generated: "Generated",
    for_member: "For member",
    repository: "Repository",
    contents: "Contents",
    glance: "At a glance",
    members: "Members",
    member: "Member",
    stored: "Stored",
    stored_hint: "after deduplication, compression and encryption",
    logical: "Original size",
    snapshots: "Backups",
    last_backup: "Last backup",
    quota: "Quota",
    quota_used: "used",
    no_quota: "none",
    replicas: "Replicas",
    up_to_date: "up to date",
    behind: "behind by",
    never: "never",
    unknown: "unknown",
    shared_services: "Shared services",
    stored_per_member: "Stored per member",
    sites: "Sites",
    site: "Site",
    role: "Holds",
    role_this: "this repository",
    role_replica: "an encrypted replica",
    role_other: "no data of this repository",
    provider: "Provider",
    location: "Location",
    energy_source: "Electricity",
    renewable: "renewable",
    not_renewable: "not renewable",
    can_read: "Can read data",
    yes: "yes",
    no: "no",
    last_replicated: "Last replicated",
    estimated_from_lag: "estimated from the replication lag",
    stored_per_site: "Stored per site",
    costs: "Costs",
    monthly_costs: "Monthly costs",
    item: "Item",
    per_month: "per month",
    total: "Total",
    cost_model: "How costs are shared",
    model_fixed: "{0} % of the costs is split equally among the {1} members.",
    model_usage: "The rest is divided by stored gigabytes: whoever stores more pays more, and the price per GB falls as the cooperative stores more.",
    model_shared: "The shared services' backups are priced the same and split equally among the members.",
    price_per_gb: "Price per GB and month",
    share: "Share per month",
    fixed_part: "Fixed",
    usage_part: "By use",
    shared_part: "Shared services",
    at_quota: "At full quota",
    shares_add_up: "The members' shares add up to the sites' costs.",
    group: "Group",
    next_due: "Next report due",
    asked_by: "asked by",
    group_payer: "Paid by",
    group_parts: "Members' parts",
    unallocated: "Not carried by any member",
    runway: "Funding runway",
    runway_text: "The balance of {0} covers the running costs for {1} months.",
    as_of: "as of",
    months: "months",
    energy: "Energy",
    measured: "measured",
    estimate: "estimate",
    mixed: "partly measured, partly estimated",
    none: "none recorded",
    energy_note: "The energy of the backup jobs run at {0} in this period; every other site records its own.",
    estimate_note: "Measured with the processor's energy counters (RAPL) where they can be read, by the jobs' share of CPU time; elsewhere estimated from CPU time at {0} W per busy core.",
    energy_per_month: "Energy per month",
    job: "Job",
    runs: "Runs",
    cpu_time: "CPU time",
    method: "Method",
    electricity: "Electricity of each site",
    recorded_elsewhere: "recorded at that site",
    who_can_read: "Who can read what",
    readers_intro: "Backups are encrypted. Only the keys listed under “can read” open them; the other sites store encrypted copies they cannot read.",
    data_of: "Data of",
    shared_data: "Shared services' data",
    readers: "Can read",
    writers: "Can add backups",
    storage_only: "Store encrypted copies, cannot read",
    caretakers: "Caretakers",
    caretakers_intro: "Each backup job of this site, and the person who looks after it and is told when it fails.",
    kind_member: "member's own key",
    kind_admin: "admin key (reads alone)",
    kind_split: "recovery key of this member alone: one of {1} admins asks and {0} others approve ({2})",
    kind_key: "key",
    own_key: "own key",
    admins: "the admins",
    accesses: "Accesses to member data",
    accesses_intro: "Every time an admin restores, exports or reads a member's data, coop writes it into the append-only access log first; the other sites witness the log.",
    no_access: "No access in this period.",
    break_glass: "Break-glass reads of the service tenant",
    break_glass_intro: "After losing sites, an admin read the cooperative's own backups without waiting for the witnesses (disaster recovery). Each such read is logged and listed here for every member.",
    when: "When",
    what: "What",
    who: "Who",
    reason: "Reason",
    witnessed: "witnessed",
    not_witnessed: "not yet witnessed",
    log_ok: "Every access log verified: signatures, history and witnesses.",
    log_problems: "The access logs have problems:",
    quorum: "An access waits until {0} other site(s) have witnessed its log entry.",
    stored_over_time: "Stored over time",
    no_history: "No history yet.",
    missing: "Not in this report",
    missing_intro: "These parts need facts the configuration does not give yet:",
    warnings: "Warnings",
    how: "How each figure is computed: docs/TRANSPARENCY.md in coop's documentation.",
    footer: "Made by coop from the repository's own state.",
    none_yet: "none yet",
};

pub const DE: Strings = Strings {
    lang: "de",
    title: "Transparenzbericht",
    period: "Zeitraum",
    to: "bis",
    generated: "Erstellt",
    for_member: "Für das Mitglied",
    repository: "Repository",
    contents: "Inhalt",
    glance: "Auf einen Blick",
    members: "Mitglieder",
    member: "Mitglied",
    stored: "Gespeichert",
    stored_hint: "nach Deduplizierung, Kompression und Verschlüsselung",
    logical: "Originalgröße",
    snapshots: "Sicherungen",
    last_backup: "Letzte Sicherung",
    quota: "Kontingent",
    quota_used: "genutzt",
    no_quota: "keins",
    replicas: "Kopien",
    up_to_date: "aktuell",
    behind: "im Rückstand um",
    never: "nie",
    unknown: "unbekannt",
    shared_services: "Gemeinsame Dienste",
    stored_per_member: "Speicher pro Mitglied",
    sites: "Standorte",
    site: "Standort",
    role: "Hält",
    role_this: "dieses Repository",
    role_replica: "eine verschlüsselte Kopie",
    role_other: "keine Daten dieses Repositorys",
    provider: "Anbieter",
    location: "Ort",
    energy_source: "Strom",
    renewable: "erneuerbar",
    not_renewable: "nicht erneuerbar",
    can_read: "Kann Daten lesen",
    yes: "ja",
    no: "nein",
    last_replicated: "Zuletzt kopiert",
    estimated_from_lag: "geschätzt aus dem Kopierrückstand",
    stored_per_site: "Speicher pro Standort",
    costs: "Kosten",
    monthly_costs: "Monatliche Kosten",
    item: "Posten",
    per_month: "pro Monat",
    total: "Summe",
    cost_model: "Wie die Kosten geteilt werden",
    model_fixed: "{0} % der Kosten werden gleichmäßig auf die {1} Mitglieder verteilt.",
    model_usage: "Der Rest wird nach gespeicherten Gigabyte geteilt: Wer viel verbraucht, bezahlt auch viel, und der Preis pro GB sinkt, je mehr die Genossenschaft speichert.",
    model_shared: "Die Sicherungen der gemeinsamen Dienste kosten pro GB dasselbe und werden gleichmäßig auf die Mitglieder verteilt.",
    price_per_gb: "Preis pro GB und Monat",
    share: "Anteil pro Monat",
    fixed_part: "Fest",
    usage_part: "Nach Verbrauch",
    shared_part: "Gemeinsame Dienste",
    at_quota: "Bei vollem Kontingent",
    shares_add_up: "Die Anteile der Mitglieder ergeben zusammen die Kosten der Standorte.",
    group: "Gruppe",
    next_due: "Nächster Bericht fällig",
    asked_by: "auf Bitte von",
    group_payer: "Bezahlt von",
    group_parts: "Anteile der Mitglieder",
    unallocated: "Von keinem Mitglied getragen",
    runway: "Finanzielle Reichweite",
    runway_text: "Der Kontostand von {0} deckt die laufenden Kosten für {1} Monate.",
    as_of: "Stand",
    months: "Monate",
    energy: "Energie",
    measured: "gemessen",
    estimate: "geschätzt",
    mixed: "teils gemessen, teils geschätzt",
    none: "nichts aufgezeichnet",
    energy_note: "Der Energiebedarf der Sicherungsaufträge am Standort {0} in diesem Zeitraum; jeder andere Standort zeichnet seinen eigenen auf.",
    estimate_note: "Gemessen mit den Energiezählern des Prozessors (RAPL), wo sie lesbar sind, nach dem Anteil der Aufträge an der Rechenzeit; sonst geschätzt aus der Rechenzeit mit {0} W pro ausgelastetem Kern.",
    energy_per_month: "Energie pro Monat",
    job: "Auftrag",
    runs: "Läufe",
    cpu_time: "Rechenzeit",
    method: "Methode",
    electricity: "Strom der Standorte",
    recorded_elsewhere: "dort aufgezeichnet",
    who_can_read: "Wer was lesen kann",
    readers_intro: "Die Sicherungen sind verschlüsselt. Nur die unter „können lesen“ genannten Schlüssel öffnen sie; die anderen Standorte speichern verschlüsselte Kopien, die sie nicht lesen können.",
    data_of: "Daten von",
    shared_data: "Daten der gemeinsamen Dienste",
    readers: "Können lesen",
    writers: "Können Sicherungen hinzufügen",
    storage_only: "Speichern verschlüsselte Kopien, können nicht lesen",
    caretakers: "Kümmerer",
    caretakers_intro: "Jede Sicherung dieses Standorts und wer sich um sie kümmert und benachrichtigt wird, wenn sie fehlschlägt.",
    kind_member: "eigener Schlüssel des Mitglieds",
    kind_admin: "Admin-Schlüssel (liest allein)",
    kind_split: "eigener Wiederherstellungsschlüssel: einer von {1} Admins fragt an, {0} weitere stimmen zu ({2})",
    kind_key: "Schlüssel",
    own_key: "eigener Schlüssel",
    admins: "die Admins",
    accesses: "Zugriffe auf Mitgliederdaten",
    accesses_intro: "Jedes Mal, wenn ein Admin Daten eines Mitglieds wiederherstellt, exportiert oder liest, schreibt coop das zuerst in das nur erweiterbare Zugriffsprotokoll; die anderen Standorte bezeugen es.",
    no_access: "Kein Zugriff in diesem Zeitraum.",
    break_glass: "Notfall-Lesezugriffe auf den Dienst-Mandanten",
    break_glass_intro: "Nach dem Verlust von Standorten hat eine Administratorin die eigenen Sicherungen der Genossenschaft gelesen, ohne auf die Zeugen zu warten (Notfallwiederherstellung). Jeder solche Zugriff wird protokolliert und hier für alle Mitglieder aufgeführt.",
    when: "Wann",
    what: "Was",
    who: "Wer",
    reason: "Grund",
    witnessed: "bezeugt",
    not_witnessed: "noch nicht bezeugt",
    log_ok: "Alle Zugriffsprotokolle geprüft: Signaturen, Verlauf und Zeugen.",
    log_problems: "Die Zugriffsprotokolle haben Probleme:",
    quorum: "Ein Zugriff wartet, bis {0} andere(r) Standort(e) seinen Protokolleintrag bezeugt haben.",
    stored_over_time: "Speicher im Zeitverlauf",
    no_history: "Noch kein Verlauf.",
    missing: "Nicht in diesem Bericht",
    missing_intro: "Für diese Teile fehlen noch Angaben in der Konfiguration:",
    warnings: "Warnungen",
    how: "Wie jede Zahl berechnet wird: docs/TRANSPARENCY.md in der Dokumentation von coop.",
    footer: "Von coop aus dem Zustand des Repositorys erstellt.",
    none_yet: "noch keine",
};

pub fn strings(lang: Language) -> &'static Strings {
    match lang {
        Language::En => &EN,
        Language::De => &DE,
    }
}

/// Replaces `{0}`, `{1}`, … with the arguments.
pub fn fill(template: &str, args: &[&str]) -> String {
    let mut out = template.to_string();
    for (i, a) in args.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), a);
    }
    out
}

/// A section's title for the "not in this report" list.
pub fn section(lang: Language, id: &str) -> &'static str {
    let s = strings(lang);
    match id {
        "cooperative" => match lang {
            Language::En => "The cooperative",
            Language::De => "Die Genossenschaft",
        },
        "sites" => s.sites,
        "costs" => s.costs,
        "runway" => s.runway,
        "energy" => s.energy,
        "replicas" => s.replicas,
        "history" => s.stored_over_time,
        "accesses" => s.accesses,
        _ => match lang {
            Language::En => "Configuration",
            Language::De => "Konfiguration",
        },
    }
}

/// An access log event, in words.
pub fn event(lang: Language, e: &str) -> String {
    let t = match (lang, e) {
        (Language::En, "restore") => "restore",
        (Language::En, "export") => "export",
        (Language::En, "dump") => "read one file",
        (Language::En, "recovery") => "k-of-n recovery",
        (Language::En, "recovery-request") => "recovery requested",
        (Language::En, "recovery-release") => "recovery share released",
        (Language::De, "restore") => "Wiederherstellung",
        (Language::De, "export") => "Export",
        (Language::De, "dump") => "eine Datei gelesen",
        (Language::De, "recovery") => "k-von-n-Wiederherstellung",
        (Language::De, "recovery-request") => "Wiederherstellung beantragt",
        (Language::De, "recovery-release") => "Teilschlüssel freigegeben",
        _ => e,
    };
    t.to_string()
}

/// A reason given for an access, in words.
pub fn reason(lang: Language, r: &str) -> String {
    let t = match (lang, r) {
        (Language::En, "member-request") => "at the member's request",
        (Language::En, "incident-response") => "incident response",
        (Language::En, "disaster-recovery") => "disaster recovery",
        (Language::En, "legal-request") => "legal request",
        (Language::En, "maintenance") => "maintenance",
        (Language::De, "member-request") => "auf Wunsch des Mitglieds",
        (Language::De, "incident-response") => "Störungsbehebung",
        (Language::De, "disaster-recovery") => "Katastrophenfall",
        (Language::De, "legal-request") => "rechtliche Anfrage",
        (Language::De, "maintenance") => "Wartung",
        _ => r,
    };
    t.to_string()
}

/// A number with `decimals` digits and grouped thousands: 1,234.5 or 1.234,5.
pub fn number(lang: Language, v: f64, decimals: usize) -> String {
    let (group, point) = match lang {
        Language::En => (',', '.'),
        Language::De => ('.', ','),
    };
    if !v.is_finite() {
        return "–".into();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(c);
    }
    let neg = v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let mut out = if neg {
        format!("−{grouped}")
    } else {
        grouped
    };
    if let Some(f) = frac {
        out.push(point);
        out.push_str(&f);
    }
    out
}

/// An amount of money: "1,234.56 EUR" / "1.234,56 EUR".
pub fn money(lang: Language, v: f64, currency: &str) -> String {
    format!("{}\u{a0}{currency}", number(lang, v, 2))
}

/// Bytes in decimal units (the cost model is per GB = 10^9 bytes).
pub fn bytes(lang: Language, n: u64) -> String {
    const U: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let d = if i == 0 {
        0
    } else if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{}\u{a0}{}", number(lang, v, d), U[i])
}

/// Energy: Wh below 1 kWh, else kWh.
pub fn energy(lang: Language, wh: f64) -> String {
    if wh >= 1000.0 {
        format!("{}\u{a0}kWh", number(lang, wh / 1000.0, 2))
    } else if wh >= 10.0 {
        format!("{}\u{a0}Wh", number(lang, wh, 1))
    } else if wh >= 0.01 || wh <= 0.0 {
        format!("{}\u{a0}Wh", number(lang, wh, 2))
    } else {
        // Small figures (a test, a tiny job) keep three significant digits.
        let digits = (-wh.log10()).ceil() as usize + 2;
        format!("{}\u{a0}Wh", number(lang, wh, digits.min(9)))
    }
}

/// Seconds as "12.3 s", "4.5 min", "2.1 h".
pub fn duration(lang: Language, secs: f64) -> String {
    if secs >= 3600.0 {
        format!("{}\u{a0}h", number(lang, secs / 3600.0, 1))
    } else if secs >= 120.0 {
        format!("{}\u{a0}min", number(lang, secs / 60.0, 1))
    } else {
        format!("{}\u{a0}s", number(lang, secs, 1))
    }
}

/// The date of an RFC 3339 time (UTC): 2026-03-31.
pub fn date(t: &str) -> String {
    t.get(..10).unwrap_or(t).to_string()
}

/// Date and time (UTC) of an RFC 3339 time: 2026-03-31 03:00 UTC.
pub fn date_time(t: &str) -> String {
    match (t.get(..10), t.get(11..16)) {
        (Some(d), Some(h)) => format!("{d} {h} UTC"),
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_both_languages() {
        assert_eq!(number(Language::En, 1234567.891, 2), "1,234,567.89");
        assert_eq!(number(Language::De, 1234567.891, 2), "1.234.567,89");
        assert_eq!(number(Language::De, -0.001, 2), "0,00");
        assert_eq!(number(Language::En, -12.5, 1), "−12.5");
        assert_eq!(money(Language::De, 12.3, "EUR"), "12,30\u{a0}EUR");
        assert_eq!(bytes(Language::En, 1_500_000_000), "1.50\u{a0}GB");
        assert_eq!(bytes(Language::De, 999), "999\u{a0}B");
        assert_eq!(energy(Language::En, 2500.0), "2.50\u{a0}kWh");
        assert_eq!(energy(Language::En, 0.000856), "0.000856\u{a0}Wh");
        assert_eq!(energy(Language::De, 3.456), "3,46\u{a0}Wh");
        assert_eq!(fill("{0} of {1}", &["2", "3"]), "2 of 3");
    }
}
