//! The [`Admin`](crate::ports::Admin) port's contract: imports and secrets.

#[allow(unused_imports)]
use super::*;

/// Import loads the demo set exactly, and a second import changes nothing.
pub async fn import_is_exact_and_idempotent(s: &dyn Storage) {
    let data = demo_data();
    let first = s.import(&data).await.unwrap();
    assert!(first.inserted > 0);
    let second = s.import(&data).await.unwrap();
    assert_eq!(second.inserted, 0, "second import must insert nothing");
    for conversation in &data.conversations {
        let ctx = s
            .conversation(conversation.id)
            .await
            .unwrap()
            .expect("imported conversation");
        assert_eq!(&ctx.conversation, conversation);
        assert_eq!(
            data.stores.iter().find(|x| x.id == conversation.store_id),
            Some(&ctx.store)
        );
        assert_eq!(
            data.operators
                .iter()
                .find(|x| x.id == conversation.operator_id),
            Some(&ctx.operator)
        );
        assert_eq!(
            data.clients.iter().find(|x| x.id == conversation.client_id),
            Some(&ctx.client)
        );
        let expected: Vec<_> = data
            .messages
            .iter()
            .filter(|m| m.conversation_id == conversation.id)
            .cloned()
            .collect();
        assert_eq!(messages(s, conversation.id, ALL).await.unwrap(), expected);
    }
    let resolved = s.conversation(ConversationId(24)).await.unwrap().unwrap();
    assert_eq!(resolved.conversation.status, ConversationStatus::Resolved);
    let no_zone = s.conversation(ConversationId(14)).await.unwrap().unwrap();
    assert_eq!(no_zone.client.time_zone, None);
}

/// A secret is stored once: later candidates are ignored, also when they race.
pub async fn secret_is_created_once(s: &dyn Storage) {
    let first = s.secret("tokens", b"first".to_vec()).await.unwrap();
    assert_eq!(first, b"first");
    let second = s.secret("tokens", b"second".to_vec()).await.unwrap();
    assert_eq!(second, b"first");
    let other = s.secret("other", b"second".to_vec()).await.unwrap();
    assert_eq!(other, b"second");
    let racing: Vec<Boxed<'_, Vec<u8>>> = (0u8..8)
        .map(|n| -> Boxed<'_, Vec<u8>> {
            Box::pin(async move { s.secret("race", vec![n; 32]).await.unwrap() })
        })
        .collect();
    let values = join_all(racing).await;
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    assert_eq!(s.secret("race", vec![9; 32]).await.unwrap(), values[0]);
}

/// A storage that answers calls answers `ping`.
pub async fn ping_answers(s: &dyn Storage) {
    s.ping().await.unwrap();
    s.import(&demo_data()).await.unwrap();
    s.ping().await.unwrap();
}
