pub mod backup;
pub mod diff;
pub mod dump;
pub mod init;
pub mod key;
pub mod ls;
pub mod restore;
pub mod snapshots;
