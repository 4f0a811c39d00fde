//! Who caused a log entry, in words: the admin person the registry (or, for whoever cannot
//! read it, the log) names, marked where that person does not count.

/// Who caused a log entry, for people to read: the admin the person signature names (from
/// `registry`), or the entry's actor name (a site, or an admin entry made before persons
/// existed). A person key the registry does not list is shown as such.
pub fn who(
    e: &coop_formats::tlog::Entry,
    registry: Option<&coop_formats::registry::Registry>,
) -> String {
    use coop_formats::tlog::PersonCheck;
    match e.person() {
        PersonCheck::Unsigned => e.actor_name.clone(),
        PersonCheck::Forged => format!("{} (FORGED person signature)", e.actor_name),
        PersonCheck::Signed(k) => match registry.map(|r| r.admin_by_key(&k)) {
            Some(Some(a)) => format!("admin {}", a.name),
            Some(None) => format!("admin with unregistered key {}", &hex::encode(k)[..8]),
            // Whoever cannot read the registry (a member) is told the key, not that it is
            // unregistered.
            None => format!("admin person {}", &hex::encode(k)[..8]),
        },
    }
}

/// [`who`] at entry `at` of an admin log whose persons are `persons`: marked when the person
/// who signed it does not count there (after the split: a retired admin, or a second key of
/// one, SPEC 24.11), so that `log show` does not present her as an admin who counts.
pub fn who_at(
    e: &coop_formats::tlog::Entry,
    registry: Option<&coop_formats::registry::Registry>,
    persons: Option<&crate::log::persons::Persons>,
    at: u64,
) -> String {
    use coop_formats::tlog::PersonCheck;
    // Without the registry (a member reading her log), the name the log gives the person.
    let w = match (e.person(), registry, persons) {
        (PersonCheck::Signed(k), None, Some(p)) => match p.names.get(&k) {
            // With the key: the log's names are whatever the admin who split, or proposed the
            // addition, wrote; the key is what the entry is signed with.
            Some(n) => format!("admin {n} (person {})", &hex::encode(k)[..8]),
            None => who(e, registry),
        },
        _ => who(e, registry),
    };
    match (e.person(), persons) {
        (coop_formats::tlog::PersonCheck::Signed(k), Some(p)) if !p.counts(&k, at) => {
            format!("{w} (does not count as an admin person here)")
        }
        _ => w,
    }
}
