//! A failing job's notification hook (`notify_command`): run with `sh -c`, the job, its
//! caretaker and what went wrong in the environment, so that one command (a mail, a chat
//! message, a webhook call with curl) reaches the caretaker of whichever job failed.

use crate::settings::Caretaker;

/// What a notification tells.
pub struct Notice<'a> {
    pub site: &'a str,
    pub job: &'a str,
    pub caretaker: Option<&'a Caretaker>,
    pub message: &'a str,
}

/// Runs `command` for `n`: `COOP_SITE`, `COOP_JOB`, `COOP_CARETAKER` ("Name <contact>"),
/// `COOP_CARETAKER_NAME`, `COOP_CARETAKER_CONTACT` (empty without a caretaker) and
/// `COOP_MESSAGE` are set; its output goes to standard error (the log). A hook that fails is
/// returned as a warning, never a reason to change the job's result.
pub fn run(command: &str, n: &Notice<'_>) -> Result<(), String> {
    use std::os::fd::AsFd;
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    let (name, contact, whole) = match n.caretaker {
        Some(c) => (c.name.clone(), c.contact.clone(), c.to_string()),
        None => Default::default(),
    };
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("COOP_SITE", n.site)
        .env("COOP_JOB", n.job)
        .env("COOP_CARETAKER", whole)
        .env("COOP_CARETAKER_NAME", name)
        .env("COOP_CARETAKER_CONTACT", contact)
        .env("COOP_MESSAGE", n.message)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("notify_command `{command}` failed ({s})")),
        Err(e) => Err(format!("notify_command `{command}` could not start: {e}")),
    }
}
