//! What an S3 server supports, for `coop config check`.

use super::{runtime, Store, StoreError};
use object_store::path::Path as OPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

impl Store {
    /// Probes what the server supports and says what it lacks (for `coop config check`).
    /// Writes and removes two small objects under `probe/`.
    pub fn probe(&self) -> Result<Vec<String>, StoreError> {
        let mut notes = Vec::new();
        let name = format!("probe/{}", hex::encode(coop_formats::random_bytes::<8>()));
        let p = OPath::from(name.as_str());
        self.run("put", &name, || {
            self.inner.put(&p, PutPayload::from(b"a".to_vec()))
        })?;
        let second = runtime().block_on(self.inner.put_opts(
            &p,
            PutPayload::from(b"b".to_vec()),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        ));
        notes.push(match second {
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
                "create-only PUT: supported".to_string()
            }
            Err(object_store::Error::NotImplemented { .. }) | Err(object_store::Error::NotSupported { .. }) => {
                "create-only PUT: not supported (coop falls back to plain PUT; names are content hashes, so this is safe)".to_string()
            }
            Ok(_) => "create-only PUT: ignored, the object was overwritten (Garage does this; coop does not rely on it)".to_string(),
            Err(e) => format!("create-only PUT: unclear ({e})"),
        });
        let listed = self.list("probe")?.iter().any(|o| o.path == name);
        notes.push(if listed { "listing: complete and immediate".into() } else { "listing: a new object was not listed at once (eventual consistency: prune with --grace)".into() });
        self.delete(&name)?;
        notes.push(if self.exists(&name)? {
            "delete: the object is still there after delete".into()
        } else {
            "delete: ok".into()
        });
        notes.push("versioning and object lock: not needed (objects are immutable and content-addressed), not checked".into());
        Ok(notes)
    }
}
