//! The [`Accounts`](crate::ports::Accounts) port's contract: accounts, sessions, failed
//! sign-ins.

#[allow(unused_imports)]
use super::*;

const LIMITS: SessionLimits = SessionLimits {
    idle: Duration::hours(12),
    max: Duration::days(7),
    touch_every: Duration::minutes(1),
};

fn new_operator(store: StoreId, raw_name: &str) -> NewOperator {
    NewOperator {
        name: name(raw_name),
        store_id: store,
        group: name("sales"),
    }
}

fn account(email: &str, role: OperatorRole) -> NewAccount {
    NewAccount {
        email: Some(address(email)),
        role,
        password_hash: Some("$argon2id$v=19$fake".into()),
    }
}

/// An account is created with its operator, found by its email in any case, and changed;
/// an email is one operator's across the deployment.
pub async fn accounts_sign_in_by_email(s: &dyn Storage) {
    let one = s.create_store(new_store("One")).await.unwrap().id;
    let two = s.create_store(new_store("Two")).await.unwrap().id;
    let ann = s
        .create_operator_account(
            new_operator(one, "Ann"),
            account("ann@one.example", OperatorRole::Manager),
        )
        .await
        .unwrap();
    assert_eq!(ann.role, OperatorRole::Manager);
    assert!(ann.has_password);
    assert_eq!(ann.operator.store_id, one);
    assert_eq!(
        s.operator(ann.operator.id).await.unwrap(),
        Some(ann.operator.clone())
    );
    let found = s
        .sign_in(&address("ANN@one.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.account, ann);
    assert_eq!(found.password_hash.as_deref(), Some("$argon2id$v=19$fake"));
    assert_eq!(
        s.sign_in(&address("nobody@one.example")).await.unwrap(),
        None
    );

    let taken = s
        .create_operator_account(
            new_operator(two, "Other"),
            account("Ann@One.example", OperatorRole::Operator),
        )
        .await;
    assert!(matches!(taken, Err(StorageError::Conflict(_))), "{taken:?}");
    let unknown = s
        .create_operator_account(
            new_operator(StoreId(one.0 + two.0 + 5), "X"),
            NewAccount::default(),
        )
        .await;
    assert!(
        matches!(unknown, Err(StorageError::NotFound(_))),
        "{unknown:?}"
    );

    // An operator made without an account has none: no email, the operator role.
    let plain = s.create_operator(new_operator(two, "Ben")).await.unwrap();
    let bare = s.account(plain.id).await.unwrap().unwrap();
    assert_eq!(
        (bare.email, bare.role, bare.has_password),
        (None, OperatorRole::Operator, false)
    );
    let clash = s
        .update_account(
            plain.id,
            AccountChanges {
                email: Some(Some(address("ann@ONE.example"))),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(clash, Err(StorageError::Conflict(_))), "{clash:?}");
    let ben = s
        .update_account(
            plain.id,
            AccountChanges {
                email: Some(Some(address("ben@two.example"))),
                role: Some(OperatorRole::Manager),
                password_hash: Some("$argon2id$v=19$other".into()),
                keep_session: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ben.email, Some(address("ben@two.example")));
    assert_eq!(ben.role, OperatorRole::Manager);
    assert!(ben.has_password);
    assert_eq!(s.account(plain.id).await.unwrap(), Some(ben));
    assert_eq!(
        s.update_account(UserId(9999), AccountChanges::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.account(UserId(9999)).await.unwrap(), None);
}

/// A session lasts 12 h after its last use and 7 days at most; sign-out and a password
/// change end sessions.
pub async fn sessions_expire_and_end(s: &dyn Storage) {
    let (store, ann) = store_with_operator(s, "One").await;
    let _ = store;
    s.create_session(&[1; 32], ann, t0()).await.unwrap();
    let live = s
        .session(&[1; 32], t0() + Duration::hours(1), LIMITS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.account.operator.id, ann);
    assert_eq!(live.created_at, t0());
    assert_eq!(
        live.last_used_at,
        t0() + Duration::hours(1),
        "the use is recorded"
    );
    // Used every 11 hours, it lives until the 7 days are up.
    let mut at = t0() + Duration::hours(1);
    while at + Duration::hours(11) < t0() + Duration::days(7) {
        at += Duration::hours(11);
        assert!(
            s.session(&[1; 32], at, LIMITS).await.unwrap().is_some(),
            "live at {at}"
        );
    }
    assert_eq!(
        s.session(&[1; 32], t0() + Duration::days(7), LIMITS)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.session(&[1; 32], t0(), LIMITS).await.unwrap(),
        None,
        "an expired session is ended"
    );

    s.create_session(&[2; 32], ann, t0()).await.unwrap();
    assert_eq!(
        s.session(&[2; 32], t0() + Duration::hours(12), LIMITS)
            .await
            .unwrap(),
        None,
        "idle for 12 h"
    );
    assert_eq!(s.session(&[9; 32], t0(), LIMITS).await.unwrap(), None);

    s.create_session(&[3; 32], ann, t0()).await.unwrap();
    assert!(s.end_session(&[3; 32]).await.unwrap());
    assert!(!s.end_session(&[3; 32]).await.unwrap());
    assert_eq!(s.session(&[3; 32], t0(), LIMITS).await.unwrap(), None);

    for hash in [[4; 32], [5; 32], [6; 32]] {
        s.create_session(&hash, ann, t0()).await.unwrap();
    }
    let change = AccountChanges {
        password_hash: Some("$argon2id$v=19$new".into()),
        keep_session: Some([5; 32]),
        ..Default::default()
    };
    s.update_account(ann, change).await.unwrap().unwrap();
    assert_eq!(s.session(&[4; 32], t0(), LIMITS).await.unwrap(), None);
    assert!(
        s.session(&[5; 32], t0(), LIMITS).await.unwrap().is_some(),
        "the changing session stays"
    );
    assert_eq!(s.session(&[6; 32], t0(), LIMITS).await.unwrap(), None);
    // A role change alone ends nothing, and shows in the session at once.
    let promote = AccountChanges {
        role: Some(OperatorRole::Manager),
        ..Default::default()
    };
    s.update_account(ann, promote).await.unwrap().unwrap();
    let promoted = s.session(&[5; 32], t0(), LIMITS).await.unwrap().unwrap();
    assert_eq!(promoted.account.role, OperatorRole::Manager);
}

/// Failed sign-ins are counted per email (in any case) from an instant on, and cleared.
pub async fn login_failures_are_counted(s: &dyn Storage) {
    let ann = address("ann@one.example");
    for minute in 0..3 {
        s.record_login_failure(
            &address("ANN@one.example"),
            t0() + Duration::minutes(minute),
        )
        .await
        .unwrap();
    }
    s.record_login_failure(&address("ben@one.example"), t0())
        .await
        .unwrap();
    let all = s.login_failures(&ann, t0()).await.unwrap();
    assert_eq!(
        all,
        vec![
            t0(),
            t0() + Duration::minutes(1),
            t0() + Duration::minutes(2)
        ]
    );
    let recent = s
        .login_failures(&ann, t0() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(recent.len(), 2);
    s.clear_login_failures(&ann, t0()).await.unwrap();
    assert!(s.login_failures(&ann, t0()).await.unwrap().is_empty());
    let ben = address("ben@one.example");
    assert_eq!(s.login_failures(&ben, t0()).await.unwrap(), vec![t0()]);
    s.clear_login_failures(&ann, t0() + Duration::seconds(1))
        .await
        .unwrap();
    assert!(
        s.login_failures(&ben, t0()).await.unwrap().is_empty(),
        "older failures of any email go"
    );
}

/// A store's operators are listed with their accounts, by id: those made without one too,
/// never another store's operators nor a client.
pub async fn accounts_are_listed_per_store(s: &dyn Storage) {
    let one = s.create_store(new_store("One")).await.unwrap().id;
    let two = s.create_store(new_store("Two")).await.unwrap().id;
    let ann = s
        .create_operator_account(
            new_operator(one, "Ann"),
            account("ann@one.example", OperatorRole::Manager),
        )
        .await
        .unwrap();
    let ben = s
        .create_operator_account(
            new_operator(two, "Ben"),
            account("ben@two.example", OperatorRole::Operator),
        )
        .await
        .unwrap();
    let cy = s.create_operator(new_operator(one, "Cy")).await.unwrap();
    s.create_client(NewClient {
        store_id: one,
        name: name("Dee Client"),
        email: address("dee@client.example"),
        time_zone: None,
    })
    .await
    .unwrap();

    let listed = s.list_accounts(Some(one)).await.unwrap();
    let cy_account = s.account(cy.id).await.unwrap().unwrap();
    assert_eq!(
        (
            cy_account.email.clone(),
            cy_account.role,
            cy_account.has_password
        ),
        (None, OperatorRole::Operator, false),
        "an operator without an account"
    );
    assert_eq!(listed, vec![ann.clone(), cy_account.clone()]);
    assert_eq!(s.list_accounts(Some(two)).await.unwrap(), vec![ben.clone()]);
    assert_eq!(
        s.list_accounts(None).await.unwrap(),
        vec![ann, ben, cy_account],
        "every store's, by id"
    );
    assert!(s
        .list_accounts(Some(StoreId(one.0 + two.0 + 5)))
        .await
        .unwrap()
        .is_empty());
}
