//! A receipt riding on a draft: the spool fires it once the draft is
//! committed. A cage gate waits for it before it unlocks, so no asset leaves
//! without the durable record of why; a draft the spool could not keep is
//! dropped with its receipt unfired, which the waiter sees as "not recorded".

use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[derive(Clone)]
pub struct Receipt(Arc<Mutex<Option<oneshot::Sender<()>>>>);

impl Receipt {
    /// A receipt, and what hears that it fired (an error: it never will).
    pub fn new() -> (Receipt, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Receipt(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// The draft is committed.
    pub fn fire(&self) {
        let sender = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

/// A receipt does not make two events different.
impl PartialEq for Receipt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receipt")
    }
}
