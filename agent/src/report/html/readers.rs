//! The "who can read" section: per tenant its readers (named keys), its writers and the
//! sites that store it without reading it.

use super::*;

pub(super) fn readers(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let _ = write!(
        p.out,
        "<section id=\"readers\"><h2>{}</h2><p>{}</p>",
        escape(t.who_can_read),
        escape(t.readers_intro)
    );
    for x in &r.readers {
        let title = match &x.member {
            Some(m) => format!("{} <strong>{}</strong>", escape(t.data_of), escape(m)),
            None if x.tenant == "coop" => escape(t.shared_data),
            None => format!("{} <code>{}</code>", escape(t.data_of), escape(&x.tenant)),
        };
        let _ = write!(
            p.out,
            "<article class=\"tenant\"><h3>{title}</h3><h4>{}</h4><ul>",
            escape(t.readers)
        );
        for rd in &x.readers {
            let kind = match rd.kind {
                "member" => t.kind_member.to_string(),
                "admin" => t.kind_admin.to_string(),
                "recovery-split" => match &x.recovery {
                    Some(rp) => i18n::fill(
                        t.kind_split,
                        &[
                            &rp.approvals.to_string(),
                            &rp.holders.len().to_string(),
                            &rp.holders.join(", "),
                        ],
                    ),
                    None => t.kind_key.to_string(),
                },
                _ => t.kind_key.to_string(),
            };
            let comment = rd
                .comment
                .as_ref()
                .map(|c| format!(" <em>{}</em>", escape(c)))
                .unwrap_or_default();
            let _ = write!(
                p.out,
                "<li>{}{comment} – {}</li>",
                key_html(&rd.fingerprint),
                escape(&kind)
            );
        }
        p.w("</ul>");
        let _ = write!(p.out, "<h4>{}</h4><ul>", escape(t.writers));
        for w in &x.writers {
            let text = if w == "admin" {
                t.admins.to_string()
            } else if let Some(n) = w.strip_suffix(" (own key)") {
                format!("{n} ({})", t.own_key)
            } else {
                w.clone()
            };
            let _ = write!(p.out, "<li>{}</li>", escape(&text));
        }
        p.w("</ul>");
        if !x.storage_sites.is_empty() {
            let _ = write!(p.out, "<h4>{}</h4><ul>", escape(t.storage_only));
            for s in &x.storage_sites {
                let _ = write!(p.out, "<li>{}</li>", escape(s));
            }
            p.w("</ul>");
        }
        p.w("</article>");
    }
    p.w("</section>\n");
}
