//! The [`ApiKeys`](crate::ports::ApiKeys) port's contract.

#[allow(unused_imports)]
use super::*;

fn new_key(role: AccessRole, store: Option<StoreId>, operator: Option<UserId>, n: u8) -> NewApiKey {
    NewApiKey {
        name: name("backend"),
        role,
        store_id: store,
        operator_id: operator,
        hash: [n; 32],
        created_at: t0(),
    }
}

/// A key is found by its hash and its id, listed with its store's, and revoked once.
pub async fn keys_are_found_listed_and_revoked(s: &dyn Storage) {
    let (one, ann) = store_with_operator(s, "One").await;
    let (two, _) = store_with_operator(s, "Two").await;
    let admin = s
        .create_api_key(new_key(AccessRole::Admin, None, None, 1))
        .await
        .unwrap();
    let mine = s
        .create_api_key(new_key(AccessRole::Operator, Some(one), Some(ann), 2))
        .await
        .unwrap();
    let theirs = s
        .create_api_key(new_key(AccessRole::Integration, Some(two), None, 3))
        .await
        .unwrap();
    assert!(admin.id < mine.id && mine.id < theirs.id, "ids increase");
    assert_eq!(mine.role, AccessRole::Operator);
    assert_eq!((mine.store_id, mine.operator_id), (Some(one), Some(ann)));
    assert_eq!(mine.revoked_at, None);
    assert_eq!(
        s.api_key_by_hash(&[2; 32]).await.unwrap(),
        Some(mine.clone())
    );
    assert_eq!(s.api_key_by_hash(&[9; 32]).await.unwrap(), None);
    assert_eq!(s.api_key(theirs.id).await.unwrap(), Some(theirs.clone()));
    assert_eq!(s.api_key(theirs.id + 100).await.unwrap(), None);
    assert_eq!(
        s.list_api_keys(Some(one)).await.unwrap(),
        vec![mine.clone()]
    );
    assert_eq!(s.list_api_keys(None).await.unwrap().len(), 3);

    let revoked = s.revoke_api_key(mine.id, t0()).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t0()));
    let again = s
        .revoke_api_key(mine.id, t0() + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(t0()), "the first instant is kept");
    let found = s.api_key_by_hash(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(
        found.revoked_at,
        Some(t0()),
        "a revoked key is found as revoked"
    );
    assert_eq!(s.revoke_api_key(theirs.id + 100, t0()).await.unwrap(), None);
}

/// A key of an unknown store, or of an operator of another store, is not stored; a hash is
/// never stored twice.
pub async fn keys_need_their_store_and_operator(s: &dyn Storage) {
    let (one, ann) = store_with_operator(s, "One").await;
    let (two, _) = store_with_operator(s, "Two").await;
    let unknown = s
        .create_api_key(new_key(
            AccessRole::Manager,
            Some(StoreId(one.0 + two.0 + 5)),
            None,
            1,
        ))
        .await;
    assert!(
        matches!(unknown, Err(StorageError::NotFound(_))),
        "{unknown:?}"
    );
    let elsewhere = s
        .create_api_key(new_key(AccessRole::Operator, Some(two), Some(ann), 2))
        .await;
    assert!(
        matches!(elsewhere, Err(StorageError::NotFound(_))),
        "{elsewhere:?}"
    );
    s.create_api_key(new_key(AccessRole::Manager, Some(one), None, 3))
        .await
        .unwrap();
    let twice = s
        .create_api_key(new_key(AccessRole::Manager, Some(one), None, 3))
        .await;
    assert!(matches!(twice, Err(StorageError::Conflict(_))), "{twice:?}");
    assert_eq!(s.list_api_keys(None).await.unwrap().len(), 1);
}
