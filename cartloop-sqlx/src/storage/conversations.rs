//! [`Conversations`] on SQL: conversations, their pages and lists, messages.

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl<D: Dialect> Conversations for SqlStorage<D> {
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError> {
        let params = [id.0.into()];
        let group = D::GROUP_CONVERSATION;
        self.exec
            .read_one_grouped(ReadKind::Conversation, group, sql::CONVERSATION, &params)
            .await?
            .as_ref()
            .map(rows::context::<D>)
            .transpose()
    }

    async fn conversation_page(
        &self,
        id: ConversationId,
        page: Page,
    ) -> Result<Option<(ConversationContext, Vec<Message>)>, StorageError> {
        let before = page.before.map_or(i64::MAX, |before| before.0);
        let params = [id.0.into(), before.into(), i64::from(page.limit).into()];
        let group = D::GROUP_CONVERSATION_PAGE;
        let kind = ReadKind::ConversationPage;
        let row = self
            .exec
            .read_one_grouped(kind, group, D::CONVERSATION_PAGE, &params)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let context = rows::context::<D>(&row)?;
        Ok(Some((context, D::page(&row)?)))
    }

    async fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let rows = match D::SNAPSHOT_LOCK {
            None => self.exec.read(sql::SNAPSHOT, &[]).await?,
            Some(lock) => {
                let mut tx = Tx::<D>::begin(&self.exec.pool, "BEGIN")
                    .await
                    .map_err(storage_error)?;
                let rows = async {
                    fetch::<D>(tx.conn(), lock, &[]).await?;
                    fetch::<D>(tx.conn(), sql::SNAPSHOT, &[]).await
                }
                .await;
                self.exec.noted(tx.finish(rows).await)?
            }
        };
        let row = rows
            .first()
            .ok_or_else(|| StorageError::other("no snapshot row"))?;
        Ok(Snapshot {
            max_message: MessageId(rows::int::<D>(row, "max_message")?),
            max_conversation: ConversationId(rows::int::<D>(row, "max_conversation")?),
        })
    }

    async fn list_conversations(
        &self,
        filter: ConversationFilter,
        snapshot: Snapshot,
        after: Option<ActivityKey>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StorageError> {
        let (after_activity, after_id) =
            after.map_or((i64::MAX, i64::MAX), |a| (a.activity, a.conversation.0));
        let status = filter.status.map(ConversationStatus::as_str);
        let store = filter.store_id.map(|id| id.0);
        let operator = filter.operator_id.map(|id| id.0);
        let limit = i64::from(limit);
        let snapshot = [snapshot.max_message.0, snapshot.max_conversation.0];
        // The newest messages usually name a whole page; reading them costs the page, not
        // the whole list.
        let recent = [
            snapshot[0].into(),
            snapshot[1].into(),
            status.into(),
            store.into(),
            operator.into(),
            after_activity.into(),
            (limit * RECENT_PER_ROW).into(),
            limit.into(),
        ];
        let mut rows = self
            .exec
            .read(sql::LIST_RECENT_CONVERSATIONS, &recent)
            .await?;
        if rows.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            let mut all = recent;
            all[6] = after_id.into();
            rows = self.exec.read(sql::LIST_CONVERSATIONS, &all).await?;
        }
        rows.iter()
            .map(|row| {
                let context = rows::context::<D>(row)?;
                let last_chat = match D::int(row, LAST_CHAT.id)? {
                    Some(_) => Some(rows::message::<D>(row, &LAST_CHAT)?),
                    None => None,
                };
                Ok(ConversationSummary {
                    key: ActivityKey {
                        activity: rows::int::<D>(row, "activity")?,
                        conversation: context.conversation.id,
                    },
                    client_time_zone: context.client_time_zone(),
                    client_name: context.client.name,
                    conversation: context.conversation,
                    last_chat,
                    pending_count: count::<D>(row, "pending")?,
                })
            })
            .collect()
    }

    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<Conversation, StorageError> {
        let params = [
            new.store_id.0.into(),
            new.operator_id.0.into(),
            new.client_id.0.into(),
            new.discount_code.as_deref().into(),
        ];
        let rows = match self.exec.write(sql::INSERT_CONVERSATION, &params).await {
            Ok(rows) => rows,
            Err(e) if violation(&e) == Some(ErrorKind::ForeignKeyViolation) => {
                let references = [
                    ("store", format!("store {}", new.store_id)),
                    ("operator", format!("operator {}", new.operator_id)),
                    (
                        "client",
                        format!("client {} of store {}", new.client_id, new.store_id),
                    ),
                ];
                let sql = sql::CONVERSATION_REFERENCES;
                return Err(self.missing(sql, &params[..3], &references).await);
            }
            Err(e) => return Err(storage_error(e)),
        };
        Ok(Conversation {
            id: ConversationId(inserted_id::<D>(&rows)?),
            store_id: new.store_id,
            operator_id: new.operator_id,
            client_id: new.client_id,
            status: ConversationStatus::Open,
            discount_code: new.discount_code,
        })
    }

    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<bool, StorageError> {
        let params = [id.0.into(), status.as_str().into()];
        self.changed(sql::SET_CONVERSATION_STATUS, &params).await
    }

    async fn reassign_conversation(
        &self,
        id: ConversationId,
        operator: UserId,
    ) -> Result<bool, StorageError> {
        self.changed(
            sql::REASSIGN_CONVERSATION,
            &[id.0.into(), operator.0.into()],
        )
        .await
    }

    async fn insert_message(&self, new: NewMessage) -> Result<Inserted, StorageError> {
        let params = [
            new.conversation_id.0.into(),
            new.author_id.0.into(),
            new.payload.as_str().into(),
            new.status.as_str().into(),
            new.created_at.into(),
            new.send_at.into(),
            new.idempotency_key.as_deref().into(),
            new.not_before.into(),
            new.last_received.into(),
            new.waiting_for.map(WaitingFor::as_str).into(),
        ];
        let inserted = match D::GROUP_INSERT {
            Some(group_sql) => {
                let inserted = self.exec.insert_grouped(group_sql, &params).await;
                match &inserted {
                    Ok(Some(_)) => self.exec.fault.stored(),
                    Ok(None) => {}
                    Err(e) => self.exec.fault.note_sqlx(e),
                }
                inserted
            }
            None => (self.exec.write(sql::INSERT_MESSAGE, &params).await)
                .map(|rows| rows.into_iter().next()),
        };
        let inserted = match inserted {
            Ok(row) => row,
            Err(e) if violation(&e) == Some(ErrorKind::ForeignKeyViolation) => {
                let references = [
                    (
                        "conversation",
                        format!("conversation {}", new.conversation_id),
                    ),
                    ("author", format!("user {}", new.author_id)),
                ];
                let sql = sql::MESSAGE_REFERENCES;
                return Err(self.missing(sql, &params[..2], &references).await);
            }
            Err(e) => return Err(storage_error(e)),
        };
        if let Some(row) = inserted {
            let message = rows::message::<D>(&row, &MESSAGE)?;
            if message.status == MessageStatus::New {
                self.exec.made_due();
            }
            return Ok(Inserted {
                message,
                created: true,
            });
        }
        // The author's key was taken. A racing insert of the same key waited for the other
        // to commit before doing nothing (or they were serialized), so this read sees it.
        let params = [
            new.author_id.0.into(),
            new.idempotency_key.as_deref().into(),
        ];
        let row = self.exec.read_one(sql::MESSAGE_BY_KEY, &params).await?;
        let row = row.ok_or_else(|| StorageError::other("idempotency key taken by no message"))?;
        Ok(Inserted {
            message: rows::message::<D>(&row, &MESSAGE)?,
            created: false,
        })
    }

    async fn delivery_facts(
        &self,
        id: ConversationId,
        client: UserId,
        since: DateTime<Utc>,
    ) -> Result<DeliveryFacts, StorageError> {
        let params = [client.0.into(), since.into(), (-1_i64).into()];
        let sends = self.exec.read(sql::RESERVED_SENDS, &params).await?;
        let recent_sends = sends
            .iter()
            .map(|row| rows::time::<D>(row, "counted_at"))
            .collect::<Result<_, _>>()?;
        let row = self
            .exec
            .read_one(sql::LAST_RECEIVED, &[id.0.into()])
            .await?;
        let last_received = match row {
            Some(row) => D::time(&row, "last_received")?,
            None => None,
        };
        Ok(DeliveryFacts {
            recent_sends,
            last_received,
        })
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError> {
        let row = self
            .exec
            .read_one(sql::MESSAGE_BY_ID, &[id.0.into()])
            .await?;
        row.as_ref()
            .map(|row| rows::message::<D>(row, &MESSAGE))
            .transpose()
    }

    async fn cancel_message(&self, id: MessageId) -> Result<Transition, StorageError> {
        let changed = self
            .exec
            .write_one(sql::CANCEL_MESSAGE, &[id.0.into()])
            .await?;
        self.message_after(changed, id).await
    }

    async fn retry_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Transition, StorageError> {
        let changed = self
            .exec
            .write_one(sql::RETRY_MESSAGE, &[id.0.into(), at.into()])
            .await?;
        let transition = self.message_after(changed, id).await?;
        if matches!(transition, Transition::Done(_)) {
            self.exec.made_due();
        }
        Ok(transition)
    }
}
