-- Why a detached session is detached: `detached` (asked), `transport_closed`
-- (its controller's connection died) or `appliance_restarted` (the session
-- kept its row but no connection; it resumes on its next attach).
-- failure_reason stays for failed sessions alone.
ALTER TABLE remote_sessions
    ADD COLUMN detach_reason TEXT CHECK (detach_reason IS NULL OR state = 'detached');
