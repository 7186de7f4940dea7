//! [`Directory`] on SQL: stores, operators, clients.

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl<D: Dialect> Directory for SqlStorage<D> {
    async fn create_store(&self, new: NewStore) -> Result<Store, StorageError> {
        let hours = new.active_hours.as_ref().map(|h| h.to_string());
        let params = [
            new.name.as_str().into(),
            new.time_zone.name().into(),
            new.sender_email.as_str().into(),
            hours.as_deref().into(),
        ];
        let rows = self
            .exec
            .write(sql::INSERT_STORE, &params)
            .await
            .map_err(storage_error)?;
        let id = StoreId(inserted_id::<D>(&rows)?);
        Ok(Store {
            active_hours: new.active_hours,
            ..Store::new(id, new.name, new.time_zone, new.sender_email)
        })
    }

    async fn store(&self, id: StoreId) -> Result<Option<Store>, StorageError> {
        let row = self.exec.read_one(sql::STORE, &[id.0.into()]).await?;
        row.as_ref().map(rows::store::<D>).transpose()
    }

    async fn update_store(
        &self,
        id: StoreId,
        changes: StoreChanges,
    ) -> Result<Option<Store>, StorageError> {
        let hours = changes
            .active_hours
            .as_ref()
            .map(|h| h.as_ref().map(|h| h.to_string()));
        let cap = changes
            .max_per_client
            .map(|cap| cap.map(|cap| serde_json::json!(cap).to_string()));
        let grace = changes.reply_grace.map(|grace| grace.to_string());
        let params = [
            id.0.into(),
            hours.is_some().into(),
            hours.as_ref().and_then(|h| h.as_deref()).into(),
            cap.is_some().into(),
            cap.as_ref().and_then(|c| c.as_deref()).into(),
            grace.is_some().into(),
            grace.as_deref().into(),
        ];
        let row = self.exec.write_one(sql::UPDATE_STORE, &params).await?;
        row.as_ref().map(rows::store::<D>).transpose()
    }

    async fn set_store_closures(
        &self,
        id: StoreId,
        closures: Closures,
    ) -> Result<Option<Store>, StorageError> {
        let closures = closures.to_string();
        let params = [id.0.into(), closures.as_str().into()];
        let row = self
            .exec
            .write_one(sql::SET_STORE_CLOSURES, &params)
            .await?;
        row.as_ref().map(rows::store::<D>).transpose()
    }

    async fn create_operator(&self, new: NewOperator) -> Result<Operator, StorageError> {
        let params = [
            new.name.as_str().into(),
            new.store_id.0.into(),
            new.group.as_str().into(),
        ];
        let rows = self
            .exec
            .write(sql::INSERT_OPERATOR, &params)
            .await
            .map_err(not_found(|| format!("store {}", new.store_id)))?;
        Ok(Operator {
            id: UserId(inserted_id::<D>(&rows)?),
            name: new.name,
            store_id: new.store_id,
            group: new.group,
        })
    }

    async fn operator(&self, id: UserId) -> Result<Option<Operator>, StorageError> {
        let row = self.exec.read_one(sql::OPERATOR, &[id.0.into()]).await?;
        row.as_ref().map(rows::operator::<D>).transpose()
    }

    async fn create_client(&self, new: NewClient) -> Result<Client, StorageError> {
        let key = email_key(&new.email);
        let params = [
            new.store_id.0.into(),
            new.name.as_str().into(),
            new.email.as_str().into(),
            key.as_str().into(),
            new.time_zone.map(|tz| tz.name()).into(),
        ];
        let rows =
            self.exec
                .write(sql::INSERT_CLIENT, &params)
                .await
                .map_err(|e| match violation(&e) {
                    Some(ErrorKind::ForeignKeyViolation) => {
                        StorageError::NotFound(format!("store {}", new.store_id))
                    }
                    _ => conflict("a client of this store has this email")(e),
                })?;
        Ok(Client {
            id: UserId(inserted_id::<D>(&rows)?),
            store_id: new.store_id,
            name: new.name,
            email: new.email,
            time_zone: new.time_zone,
            unsubscribed_at: None,
        })
    }

    async fn client(&self, id: UserId) -> Result<Option<Client>, StorageError> {
        let row = self.exec.read_one(sql::CLIENT, &[id.0.into()]).await?;
        row.as_ref().map(rows::client::<D>).transpose()
    }

    async fn client_by_email(
        &self,
        store: StoreId,
        email: &EmailAddress,
    ) -> Result<Option<Client>, StorageError> {
        let key = email_key(email);
        let params = [store.0.into(), key.as_str().into()];
        let row = self.exec.read_one(sql::CLIENT_BY_EMAIL, &params).await?;
        row.as_ref().map(rows::client::<D>).transpose()
    }

    async fn update_client(
        &self,
        id: UserId,
        changes: ClientChanges,
    ) -> Result<Option<Client>, StorageError> {
        let key = changes.email.as_ref().map(email_key);
        let params = [
            id.0.into(),
            changes.name.as_deref().into(),
            changes.email.as_ref().map(EmailAddress::as_str).into(),
            key.as_deref().into(),
            changes.time_zone.is_some().into(),
            changes.time_zone.flatten().map(|tz| tz.name()).into(),
        ];
        let rows = self
            .exec
            .write(sql::UPDATE_CLIENT, &params)
            .await
            .map_err(conflict("another client of this store has this email"))?;
        rows.first().map(rows::client::<D>).transpose()
    }

    async fn unsubscribe_client(
        &self,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<Option<Client>, StorageError> {
        let row = self
            .exec
            .write_one(sql::UNSUBSCRIBE_CLIENT, &[id.0.into(), at.into()])
            .await?;
        row.as_ref().map(rows::client::<D>).transpose()
    }
}
