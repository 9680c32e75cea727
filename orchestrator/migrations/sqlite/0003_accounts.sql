-- Accounts, API tokens and browser sessions (sqlite; keep in step with the other backend).
-- No secret is stored in clear: passwords as argon2id PHC strings, tokens and session cookies
-- as the SHA-256 of their value.
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    -- NULL: the account signs in with API tokens only (the bootstrap admin).
    password_hash TEXT,
    created_ms BIGINT NOT NULL,
    disabled_ms BIGINT
);
CREATE TABLE api_tokens (
    id BIGINT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL REFERENCES accounts(name),
    label TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms BIGINT
);
CREATE TABLE sessions (
    cookie_sha256 TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES accounts(name),
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    -- The absolute end; an idle session ends sooner (auth/sessions.rs).
    expires_ms BIGINT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions(account);
