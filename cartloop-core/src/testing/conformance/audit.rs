//! The [`AuditLog`](crate::ports::AuditLog) port's contract.

#[allow(unused_imports)]
use super::*;

fn entry(
    minute: i64,
    store: Option<i64>,
    actor: Option<(ActorKind, Option<i64>)>,
) -> NewAuditEntry {
    NewAuditEntry {
        at: t0() + Duration::minutes(minute),
        actor: actor.map(|(kind, id)| Actor {
            kind,
            id,
            name: id.map(|id| format!("actor {id}")),
        }),
        action: format!("POST /chat/ {minute}"),
        target_kind: Some("conversation".into()),
        target_id: Some(minute.to_string()),
        store_id: store.map(StoreId),
        status: 201,
    }
}

/// Entries come back newest first, filtered by store and actor, paged by id, and pruned by
/// age.
pub async fn audit_pages_filters_and_prunes(s: &dyn Storage) {
    let entries: Vec<_> = (0..10)
        .map(|minute| {
            let store = if minute % 2 == 0 { Some(1) } else { Some(2) };
            let actor = match minute % 3 {
                0 => Some((ActorKind::Token, None)),
                1 => Some((ActorKind::Key, Some(7))),
                _ => Some((ActorKind::Operator, Some(24))),
            };
            entry(minute, store, actor)
        })
        .collect();
    s.append_audit(entries[..4].to_vec()).await.unwrap();
    s.append_audit(entries[4..].to_vec()).await.unwrap();
    s.append_audit(vec![entry(10, None, None)]).await.unwrap();

    let all = s.audit(AuditFilter::default(), 100).await.unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].entry, entry(10, None, None));
    assert_eq!(all[10].entry, entries[0]);

    let first = s.audit(AuditFilter::default(), 4).await.unwrap();
    let next = s
        .audit(
            AuditFilter {
                before: Some(first[3].id),
                ..Default::default()
            },
            4,
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(
        next[0].entry, all[4].entry,
        "the cursor continues where the page ended"
    );

    let store = s
        .audit(
            AuditFilter {
                store: Some(StoreId(1)),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(store.len(), 5);
    assert!(store.iter().all(|e| e.entry.store_id == Some(StoreId(1))));
    let key = AuditFilter {
        actor: Some((ActorKind::Key, Some(7))),
        ..Default::default()
    };
    assert_eq!(s.audit(key, 100).await.unwrap().len(), 3);
    let other_key = AuditFilter {
        actor: Some((ActorKind::Key, Some(8))),
        ..Default::default()
    };
    assert!(s.audit(other_key, 100).await.unwrap().is_empty());
    let token = AuditFilter {
        actor: Some((ActorKind::Token, None)),
        store: Some(StoreId(2)),
        ..Default::default()
    };
    let token = s.audit(token, 100).await.unwrap();
    assert_eq!(token.len(), 2, "minutes 3 and 9");

    assert_eq!(s.prune_audit(t0() + Duration::minutes(5)).await.unwrap(), 5);
    let left = s.audit(AuditFilter::default(), 100).await.unwrap();
    assert_eq!(left.len(), 6);
    assert!(left
        .iter()
        .all(|e| e.entry.at >= t0() + Duration::minutes(5)));
}
