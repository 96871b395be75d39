-- No schema change: this migration marks the release whose log holds `DemandRefused` events
-- (decision 0018: a refusal for want of a line is stored). A node of an earlier release cannot
-- read them and would fail on the first one it meets — as a writer, every command of that
-- tenant; as the projector, the read models of every tenant. An unknown migration makes such a
-- node refuse to start, so the upgrade is done by stopping every node first.
COMMENT ON TABLE events IS 'meetline event log; since migration 0005 it may hold DemandRefused events';
