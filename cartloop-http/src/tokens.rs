//! Signed tokens for replies and unsubscribe links, and [`SignedLinks`], the
//! server's [`Links`].
//!
//! A token names what it is for, which row, and carries an HMAC-SHA256 of both under the
//! deployment's secret, so it cannot be guessed, forged or moved to another row or use:
//!
//! - reply: `c<conversationId>-<first 16 bytes of HMAC(key, "reply:c<id>"), hex>`, in the
//!   address `reply+<token>@<domain>`. It is all lowercase, so mail systems that lowercase
//!   local parts keep it valid, and short enough for the 64-character local part.
//! - unsubscribe: `u<clientId>-<HMAC(key, "unsubscribe:u<id>"), hex>`, in the URL
//!   `<public_url>/unsubscribe/<token>`.
//!
//! Verifying parses the token, recomputes the MAC over the canonical text and compares in
//! constant time. Hex digits and the prefix are accepted in either case.

use cartloop_core::domain::ConversationContext;
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::{ConversationId, UserId};
use cartloop_core::ports::Links;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC a reply token keeps (128 bits: forging one takes 2^128 tries).
const REPLY_MAC_BYTES: usize = 16;

/// The key tokens are signed with: the deployment's secret (`CARTLOOP_SECRET`, or one
/// generated once and kept by the storage).
#[derive(Clone)]
pub struct TokenKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// What a token is for; part of the signed text, so one use's token is worthless for
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reply,
    Unsubscribe,
}

impl Purpose {
    const fn prefix(self) -> char {
        match self {
            Self::Reply => 'c',
            Self::Unsubscribe => 'u',
        }
    }

    const fn label(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Unsubscribe => "unsubscribe",
        }
    }

    const fn mac_bytes(self) -> usize {
        match self {
            Self::Reply => REPLY_MAC_BYTES,
            Self::Unsubscribe => 32,
        }
    }
}

impl TokenKey {
    /// A key from the secret's bytes (any length; 32 random bytes is right).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    fn keyed(&self, purpose: Purpose, id: i64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(format!("{}:{}{id}", purpose.label(), purpose.prefix()).as_bytes());
        mac
    }

    fn sign(&self, purpose: Purpose, id: i64) -> String {
        let tag = self.keyed(purpose, id).finalize().into_bytes();
        let mut token = format!("{}{id}-", purpose.prefix());
        for byte in &tag[..purpose.mac_bytes()] {
            token.push_str(&format!("{byte:02x}"));
        }
        token
    }

    fn verify(&self, purpose: Purpose, token: &str) -> Option<i64> {
        let (head, mac_hex) = token.split_once('-')?;
        let mut chars = head.chars();
        let prefix = chars.next()?;
        if !prefix.eq_ignore_ascii_case(&purpose.prefix()) {
            return None;
        }
        let digits = chars.as_str();
        // Only the canonical form: the MAC is over `c7`, so `c07` is not another name for it.
        let canonical = !digits.is_empty()
            && digits.len() <= 19
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !canonical {
            return None;
        }
        let id: i64 = digits.parse().ok()?;
        let tag = decode_hex(mac_hex)?;
        if tag.len() != purpose.mac_bytes() {
            return None;
        }
        // `verify_truncated_left` compares in constant time and takes a prefix of the tag.
        self.keyed(purpose, id)
            .verify_truncated_left(&tag)
            .ok()
            .map(|()| id)
    }

    /// The reply token of a conversation.
    ///
    /// ```
    /// use cartloop_core::ids::ConversationId;
    /// use cartloop_http::tokens::TokenKey;
    /// let key = TokenKey::new(b"secret");
    /// let token = key.reply_token(ConversationId(7));
    /// assert!(token.starts_with("c7-") && token.len() == 3 + 32);
    /// assert_eq!(key.conversation_of_reply_token(&token), Some(ConversationId(7)));
    /// assert_eq!(TokenKey::new(b"other").conversation_of_reply_token(&token), None);
    /// ```
    pub fn reply_token(&self, conversation: ConversationId) -> String {
        self.sign(Purpose::Reply, conversation.0)
    }

    /// The conversation a reply token names, if its MAC holds.
    pub fn conversation_of_reply_token(&self, token: &str) -> Option<ConversationId> {
        self.verify(Purpose::Reply, token).map(ConversationId)
    }

    /// The unsubscribe token of a client.
    pub fn unsubscribe_token(&self, client: UserId) -> String {
        self.sign(Purpose::Unsubscribe, client.0)
    }

    /// The client an unsubscribe token names, if its MAC holds.
    pub fn client_of_unsubscribe_token(&self, token: &str) -> Option<UserId> {
        self.verify(Purpose::Unsubscribe, token).map(UserId)
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || hex.len() > 128 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The server's [`Links`]: signed reply addresses and unsubscribe URLs.
#[derive(Debug, Clone)]
pub struct SignedLinks {
    /// Signs and checks the tokens.
    pub key: TokenKey,
    /// The server's address as clients' mail programs reach it (`PUBLIC_URL`), e.g.
    /// `https://shop.example.com`; a trailing `/` is ignored.
    pub public_url: String,
    /// The domain of `reply+<token>@` addresses (`REPLY_DOMAIN`); `None`: the domain of
    /// the store's sender address.
    pub reply_domain: Option<String>,
}

impl SignedLinks {
    /// The token in a `reply+<token>@domain` address (also `<...>`-bracketed or with a
    /// display name), whatever the case of `reply+`.
    fn reply_token_of(address: &str) -> Option<&str> {
        let address = address.trim();
        let address = match (address.rfind('<'), address.rfind('>')) {
            (Some(open), Some(close)) if open < close => &address[open + 1..close],
            _ => address,
        };
        let (local, _domain) = address.trim().rsplit_once('@')?;
        let prefix = local.get(..6)?;
        prefix.eq_ignore_ascii_case("reply+").then(|| &local[6..])
    }
}

impl Links for SignedLinks {
    fn reply_to(&self, context: &ConversationContext) -> Option<EmailAddress> {
        let domain = self
            .reply_domain
            .as_deref()
            .unwrap_or_else(|| context.store.sender_email.domain());
        let token = self.key.reply_token(context.conversation.id);
        EmailAddress::parse(&format!("reply+{token}@{domain}")).ok()
    }

    fn unsubscribe_url(&self, context: &ConversationContext) -> Option<String> {
        let token = self.key.unsubscribe_token(context.client.id);
        Some(format!(
            "{}/unsubscribe/{token}",
            self.public_url.trim_end_matches('/')
        ))
    }

    /// The domain is not checked: the signature is the credential, and an address that
    /// reached us under an older `REPLY_DOMAIN` still names its conversation.
    fn conversation_of_reply(&self, address: &str) -> Option<ConversationId> {
        self.key
            .conversation_of_reply_token(Self::reply_token_of(address)?)
    }

    fn client_of_unsubscribe(&self, token: &str) -> Option<UserId> {
        self.key.client_of_unsubscribe_token(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartloop_core::demo::demo_data;
    use cartloop_core::domain::{ConversationContext, Dataset};

    fn key() -> TokenKey {
        TokenKey::new(b"0123456789abcdef0123456789abcdef")
    }

    fn links(reply_domain: Option<&str>) -> SignedLinks {
        SignedLinks {
            key: key(),
            public_url: "https://chat.example.com/".to_owned(),
            reply_domain: reply_domain.map(str::to_owned),
        }
    }

    fn context(data: &Dataset, id: i64) -> ConversationContext {
        let conversation = data
            .conversations
            .iter()
            .find(|c| c.id.0 == id)
            .unwrap()
            .clone();
        ConversationContext {
            store: data
                .stores
                .iter()
                .find(|s| s.id == conversation.store_id)
                .unwrap()
                .clone(),
            operator: data
                .operators
                .iter()
                .find(|o| o.id == conversation.operator_id)
                .unwrap()
                .clone(),
            client: data
                .clients
                .iter()
                .find(|c| c.id == conversation.client_id)
                .unwrap()
                .clone(),
            conversation,
        }
    }

    #[test]
    fn round_trip() {
        let key = key();
        for id in [1, 7, 42, i64::MAX] {
            let reply = key.reply_token(ConversationId(id));
            assert_eq!(reply, reply.to_lowercase());
            assert_eq!(
                key.conversation_of_reply_token(&reply),
                Some(ConversationId(id))
            );
            assert_eq!(
                key.conversation_of_reply_token(&reply.to_uppercase()),
                Some(ConversationId(id)),
                "mail systems may change the case"
            );
            let unsubscribe = key.unsubscribe_token(UserId(id));
            assert_eq!(
                key.client_of_unsubscribe_token(&unsubscribe),
                Some(UserId(id))
            );
        }
    }

    #[test]
    fn altered_id_is_refused() {
        let key = key();
        let token = key.reply_token(ConversationId(7));
        let moved = token.replacen("c7-", "c8-", 1);
        assert_eq!(key.conversation_of_reply_token(&moved), None);
        let padded = token.replacen("c7-", "c07-", 1);
        assert_eq!(key.conversation_of_reply_token(&padded), None);
        let unsubscribe = key.unsubscribe_token(UserId(27));
        let moved = unsubscribe.replacen("u27-", "u28-", 1);
        assert_eq!(key.client_of_unsubscribe_token(&moved), None);
    }

    #[test]
    fn altered_mac_is_refused() {
        let key = key();
        let token = key.reply_token(ConversationId(7));
        let last = token.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &token[..token.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(key.conversation_of_reply_token(&flipped), None);
        // Shorter or longer MACs are not prefixes that count.
        assert_eq!(
            key.conversation_of_reply_token(&token[..token.len() - 2]),
            None
        );
        assert_eq!(key.conversation_of_reply_token(&format!("{token}00")), None);
        for junk in [
            "", "c", "c7", "c7-", "c-00", "c7-zz", "c7-0", "x7-00", "c-7-00",
        ] {
            assert_eq!(key.conversation_of_reply_token(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn wrong_key_is_refused() {
        let other = TokenKey::new(b"another secret");
        let token = key().reply_token(ConversationId(7));
        assert_eq!(other.conversation_of_reply_token(&token), None);
        let token = key().unsubscribe_token(UserId(27));
        assert_eq!(other.client_of_unsubscribe_token(&token), None);
    }

    #[test]
    fn wrong_purpose_is_refused() {
        let key = key();
        let unsubscribe = key.unsubscribe_token(UserId(7));
        // Same id, other purpose: neither the prefix nor the MAC fits.
        assert_eq!(key.conversation_of_reply_token(&unsubscribe), None);
        let as_reply = unsubscribe.replacen('u', "c", 1);
        assert_eq!(key.conversation_of_reply_token(&as_reply), None);
        let reply = key.reply_token(ConversationId(7));
        assert_eq!(key.client_of_unsubscribe_token(&reply), None);
        assert_eq!(
            key.client_of_unsubscribe_token(&reply.replacen('c', "u", 1)),
            None
        );
    }

    #[test]
    fn reply_addresses_and_unsubscribe_urls() {
        let data = demo_data();
        let context = context(&data, 1);
        let address = links(None).reply_to(&context).unwrap();
        let sender_domain = context.store.sender_email.domain().to_owned();
        assert!(address.as_str().starts_with("reply+c1-"));
        assert!(address.as_str().ends_with(&format!("@{sender_domain}")));
        let address = links(Some("in.example.net")).reply_to(&context).unwrap();
        assert!(address.as_str().ends_with("@in.example.net"));
        let links = links(None);
        for form in [
            address.as_str().to_owned(),
            address.as_str().to_uppercase(),
            format!("<{address}>"),
            format!("\"Sneaker Hub\" <{address}>"),
        ] {
            assert_eq!(
                links.conversation_of_reply(&form),
                Some(ConversationId(1)),
                "{form}"
            );
        }
        assert_eq!(links.conversation_of_reply("shop@example.com"), None);
        assert_eq!(
            links.conversation_of_reply(&address.as_str().replace("reply+", "reply-")),
            None
        );

        let url = links.unsubscribe_url(&context).unwrap();
        let token = url
            .strip_prefix("https://chat.example.com/unsubscribe/")
            .unwrap();
        assert_eq!(links.client_of_unsubscribe(token), Some(context.client.id));
        assert_eq!(
            links.conversation_of_reply(&format!("reply+{token}@x.com")),
            None
        );
    }
}
