-- Snapshots are binary (postcard) from snapshot schema 3 on. Older ones (JSON text) would be
-- ignored by their schema number anyway: drop them rather than convert them under the table's
-- lock (the next snapshot is written after a tenant's next 2,000 events, or at once when a
-- writer loads a pool without one).
DELETE FROM snapshots;
ALTER TABLE snapshots ALTER COLUMN data TYPE BYTEA USING convert_to(data, 'UTF8');
