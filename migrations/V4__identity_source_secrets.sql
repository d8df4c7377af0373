-- An identity source's credential-like settings (LDAP bind password, OIDC
-- client secret...) are kept out of `config` and stored here, encrypted
-- with the secret key ring like resource secrets (AES-256-GCM, the source
-- id as associated data); `config` keeps "[redacted]" in their place.
ALTER TABLE identity_sources ADD COLUMN secret_key_id TEXT;
ALTER TABLE identity_sources ADD COLUMN secret_nonce BLOB CHECK (secret_nonce IS NULL OR length(secret_nonce) = 12);
ALTER TABLE identity_sources ADD COLUMN secret_ciphertext BLOB CHECK (secret_ciphertext IS NULL OR length(secret_ciphertext) > 16);
CREATE INDEX idx_identity_sources_secret_key ON identity_sources (secret_key_id) WHERE secret_key_id IS NOT NULL;
