//! Who may do what: API tokens, checking a bearer token, and whether a
//! caller's token covers a request.
//!
//! A token is `flint_` and 64 hex digits of randomness. The server keeps
//! only its SHA-256: a request's token is hashed, looked up by that hash
//! and compared in constant time, so neither the store nor the timing of a
//! check reveals a token. The bootstrap token (`FLINT_ADMIN_TOKEN` or
//! `--admin-token-file`) is named `admin`, has scope `admin` and lives in
//! memory only.
//!
//! Authentication is on once any token exists (the bootstrap token or a
//! stored one); until then the admin API is open, which the server allows
//! only on a loopback address. A function whose `invoke_auth` is `token`
//! always needs a token that covers it.

use super::{Control, CoreError, CoreResult, State};
use crate::secrets;
use crate::store::{Change, TokenRecord};
use flint_spec::token::{TOKEN_PREFIX, any_matches};
use flint_spec::{DesiredState, Glob, InvokeAuth, Scope, TokenSpec};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// The name of the bootstrap token, reserved.
pub const BOOTSTRAP_TOKEN_NAME: &str = "admin";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// A token's last use is written to the store at most this often.
const LAST_USED_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// Who is asking, once their token (if any) has been checked.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No token, on a server without tokens: the admin API is open.
    Open,
    /// A valid token.
    Token(Arc<Grant>),
}

/// What a valid token grants.
#[derive(Debug)]
pub struct Grant {
    /// The token's name: the actor of what it changes.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// The functions it covers (none: all).
    pub functions: Vec<Glob>,
    /// The secrets it may reference (none: none, unless admin).
    pub secrets: Vec<Glob>,
}

/// What a request needs of its caller's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// Nothing: an open endpoint.
    Nothing,
    /// A scope, whatever the function.
    Scope(Scope),
    /// A scope and a token whose function globs cover this function.
    Function(Scope, &'a str),
}

impl Caller {
    /// The token's name, if the caller has a token.
    pub fn token_name(&self) -> Option<&str> {
        match self {
            Self::Open => None,
            Self::Token(grant) => Some(&grant.name),
        }
    }

    /// Allows the request if the caller's token covers `need`.
    pub fn allow(&self, need: Need<'_>) -> CoreResult<()> {
        let (scope, function) = match need {
            Need::Nothing => return Ok(()),
            Need::Scope(scope) => (scope, None),
            Need::Function(scope, function) => (scope, Some(function)),
        };
        let Self::Token(grant) = self else {
            return Ok(());
        };
        if !grant.scope.covers(scope) {
            return Err(CoreError::Forbidden(format!(
                "this request needs a token of scope `{scope}`{}; token `{}` has scope `{}`",
                function.map_or(String::new(), |f| format!(" that covers function `{f}`")),
                grant.name,
                grant.scope
            )));
        }
        if let Some(function) = function
            && grant.scope != Scope::Admin
            && !any_matches(&grant.functions, function)
        {
            return Err(CoreError::Forbidden(format!(
                "token `{}` does not cover function `{function}` (it covers {}); this request needs a `{scope}` token that does",
                grant.name,
                list(&grant.functions)
            )));
        }
        Ok(())
    }

    /// Whether the caller may see `function` (in listings): no token, an
    /// admin token, or function globs that match it.
    pub fn sees(&self, function: &str) -> bool {
        match self {
            Self::Open => true,
            Self::Token(grant) => {
                grant.scope == Scope::Admin || any_matches(&grant.functions, function)
            }
        }
    }

    /// Allows an `env` that references secrets only if the token's secret
    /// globs cover every one (`admin` covers all; no token, on a server
    /// without tokens, too).
    pub fn allow_secrets(&self, env: &BTreeMap<String, String>) -> CoreResult<()> {
        let Self::Token(grant) = self else {
            return Ok(());
        };
        if grant.scope == Scope::Admin {
            return Ok(());
        }
        for (var, value) in env {
            if let Some(secret) = secrets::reference(value)
                && !grant.secrets.iter().any(|g| g.matches(secret))
            {
                return Err(CoreError::Forbidden(format!(
                    "token `{}` may not reference secret `{secret}` (env `{var}`): its secret globs are {}; use a token created with `--secret {secret}` or an admin token",
                    grant.name,
                    list(&grant.secrets)
                )));
            }
        }
        Ok(())
    }

    /// Allows a plan or apply of `desired`: a `deploy` token that covers
    /// every function in it and every secret they reference; `prune`
    /// (deleting whatever it does not name) needs `admin`.
    pub fn allow_desired(&self, desired: &DesiredState, prune: bool) -> CoreResult<()> {
        if prune
            && let Self::Token(grant) = self
            && grant.scope != Scope::Admin
        {
            return Err(CoreError::Forbidden(format!(
                "prune deletes every function the desired state leaves out: it needs a token of scope `admin`; token `{}` has scope `{}`",
                grant.name, grant.scope
            )));
        }
        for (name, function) in &desired.functions {
            self.allow(Need::Function(Scope::Deploy, name))?;
            self.allow_secrets(&function.config.env)?;
        }
        Ok(())
    }
}

fn list(globs: &[Glob]) -> String {
    if globs.is_empty() {
        return "none".into();
    }
    globs
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A token as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    /// Its name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// The functions it covers (empty: all).
    pub functions: Vec<Glob>,
    /// The secrets it may reference.
    pub secrets: Vec<Glob>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it expires, if ever.
    pub expires_at: Option<String>,
    /// When it was last used, if ever.
    pub last_used_at: Option<String>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    /// The secret, to send as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// The rest of it.
    #[serde(flatten)]
    pub view: TokenView,
}

/// One stored token in memory.
struct Live {
    record: TokenRecord,
    grant: Arc<Grant>,
    /// Last use, in ms since the epoch (0: never).
    last_used_ms: AtomicU64,
    /// The last use written to the store.
    written_ms: AtomicU64,
}

/// The tokens the server accepts, by the hash of their secret.
#[derive(Default)]
pub(super) struct Tokens {
    by_hash: RwLock<HashMap<String, Arc<Live>>>,
    /// The bootstrap token's hash.
    bootstrap: Option<String>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Tokens {
    /// The tokens of a server whose bootstrap token is `bootstrap`.
    pub(super) fn new(bootstrap: Option<&str>) -> Self {
        Self {
            by_hash: RwLock::default(),
            bootstrap: bootstrap.map(hash),
        }
    }

    fn live(record: TokenRecord) -> Arc<Live> {
        let used = record.last_used_at.map_or(0, ms);
        Arc::new(Live {
            grant: Arc::new(Grant {
                name: record.name.clone(),
                scope: record.scope,
                functions: record.functions.clone(),
                secrets: record.secrets.clone(),
            }),
            record,
            last_used_ms: AtomicU64::new(used),
            written_ms: AtomicU64::new(used),
        })
    }

    /// Replaces every stored token (from a store snapshot).
    pub(super) fn replace(&self, records: Vec<TokenRecord>) {
        let map = records
            .into_iter()
            .map(|r| (r.hash.clone(), Self::live(r)))
            .collect();
        *self.by_hash.write().unwrap() = map;
    }

    pub(super) fn insert(&self, record: TokenRecord) {
        let mut map = self.by_hash.write().unwrap();
        map.retain(|_, live| live.record.name != record.name);
        map.insert(record.hash.clone(), Self::live(record));
    }

    pub(super) fn remove(&self, name: &str) {
        self.by_hash
            .write()
            .unwrap()
            .retain(|_, live| live.record.name != name);
    }

    fn enabled(&self) -> bool {
        self.bootstrap.is_some() || !self.by_hash.read().unwrap().is_empty()
    }
}

impl Control {
    /// Whether the admin API needs a token: once any token exists.
    pub fn auth_enabled(&self) -> bool {
        self.s.tokens.enabled()
    }

    /// Checks a bearer token. No token is [`Caller::Open`] on a server
    /// without tokens and 401 otherwise; a token that is unknown, revoked
    /// or expired is always 401.
    pub fn authenticate(&self, bearer: Option<&str>) -> CoreResult<Caller> {
        let tokens = &self.s.tokens;
        let Some(token) = bearer else {
            if tokens.enabled() {
                return Err(CoreError::Unauthorized(
                    "this request needs a token: send `Authorization: Bearer TOKEN` (the CLI takes --token or FLINT_TOKEN)".into(),
                ));
            }
            return Ok(Caller::Open);
        };
        let wrong = || {
            CoreError::Unauthorized(
                "the bearer token is not valid: it is unknown or was revoked; create one with `flint token create`".into(),
            )
        };
        let presented = hash(token);
        if let Some(bootstrap) = &tokens.bootstrap
            && bool::from(presented.as_bytes().ct_eq(bootstrap.as_bytes()))
        {
            return Ok(Caller::Token(self.s.bootstrap_grant.clone()));
        }
        let live = tokens.by_hash.read().unwrap().get(&presented).cloned();
        let Some(live) = live else {
            return Err(wrong());
        };
        if !bool::from(live.record.hash.as_bytes().ct_eq(presented.as_bytes())) {
            return Err(wrong());
        }
        let now = SystemTime::now();
        if let Some(expires) = live.record.expires_at
            && now >= expires
        {
            return Err(CoreError::Unauthorized(format!(
                "token `{}` expired at {}; create a new one with `flint token create`",
                live.record.name,
                time(expires)
            )));
        }
        self.used(&live, now);
        Ok(Caller::Token(live.grant.clone()))
    }

    /// Notes a token's use; writes it to the store at most once a minute.
    fn used(&self, live: &Arc<Live>, now: SystemTime) {
        let now_ms = ms(now);
        live.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
        let written = live.written_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(written) >= LAST_USED_WRITE_INTERVAL.as_millis() as u64;
        if due
            && live
                .written_ms
                .compare_exchange(written, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let control = self.clone();
            let name = live.record.name.clone();
            tokio::spawn(async move {
                let change = Change::TokenUsed { name, at: now };
                if let Err(e) = control.write(vec![change], &Default::default()).await {
                    tracing::warn!(error = %e, "could not record a token's last use");
                }
            });
        }
    }

    /// Whether calls of `function` need a token (its `invoke_auth`).
    pub fn invoke_needs_token(&self, function: &str) -> bool {
        self.s
            .table
            .get(function)
            .is_some_and(|entry| entry.config().invoke_auth == InvokeAuth::Token)
    }

    /// Creates a token; the answer holds its secret, shown this once.
    pub async fn create_token(&self, spec: TokenSpec) -> CoreResult<CreatedToken> {
        spec.validate().map_err(CoreError::BadRequest)?;
        if spec.name == BOOTSTRAP_TOKEN_NAME {
            return Err(CoreError::Conflict(format!(
                "the name `{BOOTSTRAP_TOKEN_NAME}` is the bootstrap token's (FLINT_ADMIN_TOKEN); pick another"
            )));
        }
        let mut random = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut random)
            .map_err(|e| CoreError::internal(format!("no randomness for a token: {e}")))?;
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(random));
        let now = SystemTime::now();
        let record = TokenRecord {
            name: spec.name.clone(),
            hash: hash(&token),
            scope: spec.scope,
            functions: spec.functions,
            secrets: spec.secrets,
            created_at: now,
            expires_at: spec
                .expires_in_secs
                .map(|secs| now + Duration::from_secs(secs)),
            last_used_at: None,
        };
        let view = view(&record, None);
        let outcomes = self
            .write(
                vec![Change::AddToken(Box::new(record))],
                &Default::default(),
            )
            .await?;
        if !outcomes.first().is_some_and(|o| o.applied()) {
            return Err(CoreError::Conflict(format!(
                "a token named `{}` exists; revoke it first with `flint token revoke {}`",
                spec.name, spec.name
            )));
        }
        tracing::info!(token = %spec.name, scope = %spec.scope, "token created");
        Ok(CreatedToken { token, view })
    }

    /// Every stored token, by name, without secrets.
    pub fn tokens(&self) -> Vec<TokenView> {
        let mut views: Vec<_> = self
            .s
            .tokens
            .by_hash
            .read()
            .unwrap()
            .values()
            .map(|live| {
                let used = live.last_used_ms.load(Ordering::Relaxed);
                let used = (used > 0).then(|| UNIX_EPOCH + Duration::from_millis(used));
                view(&live.record, used)
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Revokes a token: from the next request on, it is refused.
    pub async fn revoke_token(&self, name: &str) -> CoreResult<()> {
        let outcomes = self
            .write(
                vec![Change::RevokeToken { name: name.into() }],
                &Default::default(),
            )
            .await?;
        if !outcomes.first().is_some_and(|o| o.applied()) {
            return Err(CoreError::TokenNotFound(name.to_string()));
        }
        tracing::info!(token = %name, "token revoked");
        Ok(())
    }
}

fn view(record: &TokenRecord, last_used: Option<SystemTime>) -> TokenView {
    TokenView {
        name: record.name.clone(),
        scope: record.scope,
        functions: record.functions.clone(),
        secrets: record.secrets.clone(),
        created_at: time(record.created_at),
        expires_at: record.expires_at.map(time),
        last_used_at: last_used.or(record.last_used_at).map(time),
    }
}

impl State {
    /// Mirrors a committed token change.
    pub(super) fn mirror_token(&self, change: &Change) {
        match change {
            Change::AddToken(record) => self.tokens.insert((**record).clone()),
            Change::RevokeToken { name } => self.tokens.remove(name),
            _ => {}
        }
    }
}

/// The grant of the bootstrap token.
pub(super) fn bootstrap_grant() -> Arc<Grant> {
    Arc::new(Grant {
        name: BOOTSTRAP_TOKEN_NAME.into(),
        scope: Scope::Admin,
        functions: Vec::new(),
        secrets: Vec::new(),
    })
}
