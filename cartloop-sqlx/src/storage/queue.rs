//! [`DispatchQueue`] on SQL: claims under a lease, fenced results, wake-ups.

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl<D: Dialect> DispatchQueue for SqlStorage<D> {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError> {
        let lease_until = lease_end(now, lease)?;
        let (rows, due_at) = if limit.hourly_cap.is_none() && D::CLAIM_DUE_AT.is_none() {
            // One statement that claims atomically on its own.
            let params = [
                now.into(),
                i64::from(limit.batch).into(),
                lease_until.into(),
            ];
            let rows = self
                .exec
                .write(D::CLAIM, &params)
                .await
                .map_err(storage_error)?;
            (rows, HashMap::new())
        } else {
            self.claim_in_transaction(now, lease_until, limit).await?
        };
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = rows::message::<D>(row, &MESSAGE)?;
            let due = match D::CLAIM_DUE_AT {
                Some(_) => due_at.get(&message.id.0).copied().ok_or_else(|| {
                    StorageError::other(format!("claimed message {} was not due", message.id))
                })?,
                None => rows::time::<D>(row, "due_at")?,
            };
            claimed.push((due, message));
        }
        claimed.sort_by_key(|(due_at, message)| (*due_at, message.id));
        Ok(claimed
            .into_iter()
            .map(|(_, message)| Claimed {
                token: ClaimToken {
                    message_id: message.id,
                    attempt: message.attempts,
                },
                message,
            })
            .collect())
    }

    async fn renew_leases(
        &self,
        tokens: &[ClaimToken],
        until: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        if tokens.is_empty() {
            return Ok(0);
        }
        let _turn = self.exec.write_turn().await;
        let mut conn = self.exec.connection().await?;
        let mut renewed = HashSet::new();
        for token in tokens {
            let params = [
                token.message_id.0.into(),
                i64::from(token.attempt).into(),
                until.into(),
            ];
            let rows = self
                .exec
                .noted(fetch::<D>(&mut conn, sql::RENEW_LEASE, &params).await)?;
            if !rows.is_empty() {
                renewed.insert(token.message_id);
            }
        }
        Ok(renewed.len() as u64)
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        match D::GROUP_MARK_SENT {
            Some(group_sql) => {
                let params = [
                    token.message_id.0.into(),
                    i64::from(token.attempt).into(),
                    at.into(),
                ];
                let row = self.exec.mark_sent_grouped(group_sql, &params).await?;
                Ok(row.is_some())
            }
            None => self.fenced(sql::MARK_SENT, token, &[at.into()]).await,
        }
    }

    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError> {
        let more = [at.into(), error.as_deref().into()];
        self.fenced(sql::RESCHEDULE, token, &more).await
    }

    async fn hold(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        waiting_for: Option<WaitingFor>,
    ) -> Result<bool, StorageError> {
        let more = [at.into(), waiting_for.map(WaitingFor::as_str).into()];
        self.fenced(sql::HOLD, token, &more).await
    }

    async fn reserve_send(
        &self,
        token: ClaimToken,
        now: DateTime<Utc>,
        cap: FrequencyCap,
    ) -> Result<Reservation, StorageError> {
        let since = now - cap.per();
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let reserved = async {
            let id = token.message_id.0;
            let fence = [id.into(), i64::from(token.attempt).into()];
            let rows = fetch::<D>(tx.conn(), sql::CLAIM_CLIENT, &fence).await?;
            let Some(row) = rows.first() else {
                return Ok(Reservation::Lost);
            };
            let client = rows::int::<D>(row, "client_id")?;
            if let Some(lock) = D::CLIENT_LOCK {
                fetch::<D>(tx.conn(), lock, &[client.into()]).await?;
            }
            let params = [client.into(), since.into(), id.into()];
            let mut sends = Vec::new();
            for row in fetch::<D>(tx.conn(), sql::RESERVED_SENDS, &params).await? {
                let at = rows::time::<D>(&row, "counted_at")?;
                if at > since {
                    sends.push(at);
                }
            }
            if sends.len() >= cap.count() as usize {
                return Ok(Reservation::Full(sends));
            }
            let params = [fence[0], fence[1], now.into()];
            let changed = fetch::<D>(tx.conn(), sql::RESERVE_SEND, &params).await?;
            Ok(if changed.is_empty() {
                Reservation::Lost
            } else {
                Reservation::Granted
            })
        }
        .await;
        self.exec.noted(tx.finish(reserved).await)
    }

    async fn keep_reservation(&self, token: ClaimToken) -> Result<bool, StorageError> {
        self.fenced(sql::KEEP_RESERVATION, token, &[]).await
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
        self.fenced(sql::MARK_FAILED, token, &[error.as_str().into()])
            .await
    }

    async fn mark_suppressed(
        &self,
        token: ClaimToken,
        reason: String,
    ) -> Result<bool, StorageError> {
        self.fenced(sql::MARK_SUPPRESSED, token, &[reason.as_str().into()])
            .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let row = self.exec.read_one(sql::NEXT_DUE, &[]).await?;
        let row = row.ok_or_else(|| StorageError::other("no next_due row"))?;
        let new_due = D::time(&row, "new_due")?;
        let lease_due = D::time(&row, "lease_due")?;
        Ok(new_due.into_iter().chain(lease_due).min())
    }

    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, StorageError> {
        let row = self.exec.read_one(sql::BACKLOG, &[now.into()]).await?;
        let row = row.ok_or_else(|| StorageError::other("no backlog row"))?;
        let oldest_new = D::time(&row, "oldest_new")?;
        let oldest_sending = D::time(&row, "oldest_sending")?;
        Ok(Backlog {
            waiting: count::<D>(&row, "new_count")? + count::<D>(&row, "sending_count")?,
            oldest_due: oldest_new.into_iter().chain(oldest_sending).min(),
        })
    }

    async fn watch_due(&self, on_due: DueCallback) -> Result<(), StorageError> {
        self.exec.due.add(on_due);
        D::listen_due(&self.exec.pool, &self.exec.due)
    }

    async fn contexts(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<ConversationContext>, StorageError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(context) = self.conversation(*id).await? {
                found.push(context);
            }
        }
        Ok(found)
    }
}
