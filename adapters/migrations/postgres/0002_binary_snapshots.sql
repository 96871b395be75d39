-- Snapshots are binary (postcard) from snapshot schema 3 on. Older ones (JSON text) become their
-- UTF-8 bytes; their schema number tells the command service to ignore them and replay.
ALTER TABLE snapshots ALTER COLUMN data TYPE BYTEA USING convert_to(data, 'UTF8');
