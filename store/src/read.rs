//! The read side the HTTP API uses, behind one trait: the embedded store implements it,
//! and so does fleet mode's cluster backend, so the handlers do not know which serves them.

use std::sync::Arc;

use async_trait::async_trait;

use crate::address::Mailbox;
use crate::cluster::Cluster;
use crate::error::StoreError;
use crate::sink::MessageId;
use crate::store::Store;
use crate::view::{MessageRef, MessageSummary, MessageView};

/// Reading and deleting one mailbox's messages.
#[async_trait]
pub trait MailRead: Send + Sync + 'static {
    /// Messages of `mailbox`, newest first, older than `before` if given, at most `limit`
    /// (capped at the mailbox cap); expired messages are left out.
    async fn list(
        &self,
        mailbox: &Mailbox,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError>;

    /// Message `id` as `mailbox` shows it; `None` when it is not in that mailbox or expired.
    async fn get_for(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<Option<MessageView>, StoreError>;

    /// Deletes message `id` from `mailbox`; whether it was there.
    async fn delete_message(&self, mailbox: &Mailbox, id: MessageId) -> Result<bool, StoreError>;

    /// Deletes every message of `mailbox`; how many it showed.
    async fn delete_mailbox(&self, mailbox: &Mailbox) -> Result<usize, StoreError>;
}

#[async_trait]
impl MailRead for Store {
    async fn list(
        &self,
        mailbox: &Mailbox,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        Ok(Store::list(self, mailbox, before, limit))
    }

    async fn get_for(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        Ok(Store::get_for(self, mailbox, id))
    }

    async fn delete_message(&self, mailbox: &Mailbox, id: MessageId) -> Result<bool, StoreError> {
        Ok(Store::delete_message(self, mailbox, id))
    }

    async fn delete_mailbox(&self, mailbox: &Mailbox) -> Result<usize, StoreError> {
        Ok(Store::delete_mailbox(self, mailbox))
    }
}

/// The backend the HTTP API reads in force: the embedded store, or fleet mode's cluster.
/// Both answer [`MailRead`], and [`Reader::read_for`] reads one message in place.
#[derive(Clone)]
pub enum Reader {
    /// The embedded store.
    Local(Arc<Store>),
    /// Fleet mode's cluster.
    Fleet(Arc<Cluster>),
}

impl Reader {
    /// Runs `f` on message `id` as `mailbox` shows it, in place; `None` when the mailbox
    /// does not show it. The embedded store holds a shard's read lock while `f` runs.
    pub async fn read_for<R>(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
        f: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Result<Option<R>, StoreError> {
        match self {
            Self::Local(s) => Ok(s.read_for(mailbox, id, f)),
            Self::Fleet(c) => Ok(c.read_for(mailbox, id, f).await?),
        }
    }

    fn backend(&self) -> &dyn MailRead {
        match self {
            Self::Local(s) => s.as_ref(),
            Self::Fleet(c) => c.as_ref(),
        }
    }
}

#[async_trait]
impl MailRead for Reader {
    async fn list(
        &self,
        mailbox: &Mailbox,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        self.backend().list(mailbox, before, limit).await
    }

    async fn get_for(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        self.backend().get_for(mailbox, id).await
    }

    async fn delete_message(&self, mailbox: &Mailbox, id: MessageId) -> Result<bool, StoreError> {
        self.backend().delete_message(mailbox, id).await
    }

    async fn delete_mailbox(&self, mailbox: &Mailbox) -> Result<usize, StoreError> {
        self.backend().delete_mailbox(mailbox).await
    }
}
