-- The seed's 000005/000006 semantics: every installation has a `default`
-- organization, and every existing user belongs to it (platform
-- administrators as org_owner, everyone else as org_member).
--
-- Resources and remote sessions carry a NOT NULL organization_id since V1,
-- so, unlike the seed's 000005, there are no rows to backfill for them.
--
-- Idempotent: running these statements again changes nothing, because the
-- organization is created only when its slug is free and memberships only
-- where (organization_id, user_id) has none (the UNIQUE constraint).
-- SQLite has no UUID function: ids are random v4 UUIDs built from
-- randomblob, in the canonical lowercase form the CHECKs require.

INSERT INTO organizations (id, slug, name, created_at, updated_at)
SELECT
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
        || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
        || '-' || lower(hex(randomblob(6))),
    'default',
    'Default',
    strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z',
    strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE slug = 'default');

INSERT INTO organization_memberships (id, organization_id, user_id, role, status, created_at, updated_at)
SELECT
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
        || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
        || '-' || lower(hex(randomblob(6))),
    o.id,
    u.id,
    CASE WHEN u.platform_role IS NOT NULL THEN 'org_owner' ELSE 'org_member' END,
    'active',
    strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z',
    strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
FROM users u
JOIN organizations o ON o.slug = 'default'
WHERE true
ON CONFLICT (organization_id, user_id) DO NOTHING;
