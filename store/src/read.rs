//! The read side the HTTP API uses, behind one trait: the embedded store implements it,
//! and so does fleet mode's cluster backend, so the handlers do not know which serves them.

use async_trait::async_trait;

use crate::address::Mailbox;
use crate::error::StoreError;
use crate::sink::MessageId;
use crate::store::Store;
use crate::view::{MessageSummary, MessageView};

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
        if !self.contains(mailbox, id) {
            return Ok(None);
        }
        Ok(self.get(id))
    }

    async fn delete_message(&self, mailbox: &Mailbox, id: MessageId) -> Result<bool, StoreError> {
        Ok(Store::delete_message(self, mailbox, id))
    }

    async fn delete_mailbox(&self, mailbox: &Mailbox) -> Result<usize, StoreError> {
        Ok(Store::delete_mailbox(self, mailbox))
    }
}
